"""The exact allow-list still covers the models people have.

Every estimator scikit-learn lists (``sklearn.utils.all_estimators()``), plus variants that pull
in other internal classes and pipelines on mixed-type DataFrames (see
``tests/unit/flavors/_sklearn_zoo.py``), is fitted on small data and saved with joblib. Each
registers from that file without trust and predicts exactly what it predicted in memory;
each transformer does so at the head of a pipeline; models that neither predict nor transform
(clusterers such as DBSCAN, embeddings such as TSNE) load back through the guard unchanged.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from modelport.flavors import _pickle_guard
from modelport.registry import Registry
from tests.unit.flavors._sklearn_zoo import Case, cases

CASES = cases()
# Inputs modelport's signatures do not describe (dicts, ragged lists, images, kernels): these
# transformers are covered by the guarded load below, not by a served pipeline.
NOT_TABULAR = {
    "DictVectorizer", "FeatureHasher", "LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer",
    "PatchExtractor", "KernelCenterer", "CountVectorizer", "TfidfVectorizer", "HashingVectorizer",
}  # fmt: skip
# PLSSVD.fit_transform returns X and Y scores together, so it cannot head a pipeline.
NOT_TABULAR.add("PLSSVD")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    home = tmp_path_factory.mktemp("coverage")
    with Registry(
        registry_uri=f"sqlite:///{home / 'registry.db'}", artifact_uri=str(home / "a")
    ) as r:
        yield r


def _register_and_predict(
    registry: Registry, label: str, model: Any, rows: Any, folder: Path
) -> None:
    file = folder / f"{len(list(folder.iterdir()))}.joblib"
    joblib.dump(model, file)
    name = "m" + str(abs(hash(label)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. deprecation warnings of deprecated estimators
        version = registry.register(name, file, input_example=rows[:5])
        served = registry.load(f"{name}/{version.version}").predict(rows)
        expected = model.predict(rows)
    assert version.trusted_unsafe_by is None
    # Bit-identical is not promised: a reloaded model's arrays may sit differently in memory,
    # which can change the last bit of a BLAS sum.
    if np.asarray(expected).dtype.kind in "fc":
        np.testing.assert_allclose(served, expected, rtol=1e-9, atol=1e-12, err_msg=label)
    else:
        np.testing.assert_array_equal(served, expected, err_msg=label)


def _predicting() -> list[Case]:
    return [c for c in CASES if c.predict_rows is not None]


def _transforming() -> list[Case]:
    return [
        c
        for c in CASES
        if c.transform_rows is not None and c.predict_rows is None and c.label not in NOT_TABULAR
    ]


@pytest.mark.parametrize("case", _predicting(), ids=lambda c: c.label)
def test_every_predicting_estimator_registers_untrusted_and_predicts_as_before(
    case: Case, registry: Registry, tmp_path: Path
) -> None:
    _register_and_predict(registry, case.label, case.model, case.predict_rows, tmp_path)


@pytest.mark.parametrize("case", _transforming(), ids=lambda c: c.label)
def test_every_transformer_serves_at_the_head_of_a_pipeline(
    case: Case, registry: Registry, tmp_path: Path
) -> None:
    x = np.asarray(case.transform_rows, dtype=np.float64)
    y = (x[:, 0] > np.median(x[:, 0])).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = make_pipeline(clone(case.model), LogisticRegression(max_iter=200)).fit(x, y)
    _register_and_predict(registry, case.label, pipeline, x, tmp_path)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_every_model_loads_back_through_the_guard_unchanged(case: Case, tmp_path: Path) -> None:
    file = tmp_path / "model.joblib"
    joblib.dump(case.model, file, compress=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = _pickle_guard.load_joblib(file)
    assert_same_state(loaded, case.model, case.label)


ATOMS = (str, bytes, int, float, complex, bool, type(None), type, np.generic, np.dtype)


def assert_same_state(a: object, b: object, where: str, seen: set[int] | None = None) -> None:
    """Recursively equal: same types, equal arrays and values (NaN equal to NaN), and equal
    state for everything else (what ``__reduce_ex__`` would pickle)."""
    seen = set() if seen is None else seen
    assert type(a) is type(b), where
    if id(a) in seen:
        return  # a cycle, already being compared
    if isinstance(a, ATOMS) or inspect.isroutine(a):
        assert a == b or (a != a and b != b), where  # NaN is equal to NaN here
        return
    seen.add(id(a))
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert (a.shape, a.dtype) == (b.shape, b.dtype), where
        if a.dtype.hasobject:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel(), strict=True)):
                assert_same_state(x, y, f"{where}[{i}]", seen)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]", seen)
    elif isinstance(a, list | tuple | set | frozenset):
        assert isinstance(b, list | tuple | set | frozenset)
        unordered = isinstance(a, set | frozenset)
        items_a = sorted(a, key=repr) if unordered else list(a)
        items_b = sorted(b, key=repr) if unordered else list(b)
        assert len(items_a) == len(items_b), where
        for i, (x, y) in enumerate(zip(items_a, items_b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]", seen)
    else:
        assert_same_state(_state(a), _state(b), f"{where}.state", seen)


def _state(obj: object) -> object:
    reduced = obj.__reduce_ex__(5)
    return reduced[1:3] if isinstance(reduced, tuple) else reduced
