"""The scikit-learn flavor: estimators and pipelines, stored with skops unless asked otherwise.

Files written into the artifact's flavor folder:

- ``model.skops`` (default): skops' zip format, which rebuilds objects without unpickling. On
  load, any type skops does not trust by default must pass the same allow-list as pickles.
- ``model.joblib`` / ``model.pkl`` (``{"serialization": "joblib" | "pickle"}``): loaded through
  :mod:`modelport.flavors._pickle_guard`, which refuses globals outside the allow-list.

``trust_unsafe=True`` (given only for versions a person registered as trusted) skips the
allow-list: pickles are then loaded as they are, running whatever they name.
"""

from __future__ import annotations

import importlib.metadata
import pickle
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, MissingDependency, UnsafeArtifact
from modelport.flavors import Options, Predictor, SavedFlavor, _pickle_guard
from modelport.flavors._framework import from_package, import_framework, model_input

NAME = "sklearn"
FILE_SUFFIXES = (".pkl", ".pickle", ".joblib")

_FILES = {"skops": "model.skops", "joblib": "model.joblib", "pickle": "model.pkl"}
T = TypeVar("T")


def handles(model: object) -> bool:
    """True for scikit-learn estimators, decided by module name so nothing is imported."""
    return from_package(model, "sklearn") and hasattr(model, "predict")


def save(model: object, path: Path, options: Options, *, trust_unsafe: bool = False) -> SavedFlavor:
    """Write the estimator with skops, or joblib/pickle when asked, and check it loads back
    through the allow-list (unless ``trust_unsafe``).

    Without an explicit ``serialization``, a model skops cannot write (it supports most but
    not all estimators, e.g. not Birch) is written with joblib instead, which loads through
    the same audited allow-list.
    """
    sklearn = import_framework("sklearn", "scikit-learn", "sklearn")
    chosen = options.get("serialization")
    serialization = str(chosen or "skops")
    if serialization not in _FILES:
        raise FlavorError(
            f"unknown sklearn serialization {serialization!r}; use one of: {', '.join(_FILES)}"
        )
    if serialization == "skops" and chosen is None:
        try:
            _write(model, path, "skops")
        except Exception:  # skops refuses some estimator types: joblib covers them
            (path / _FILES["skops"]).unlink(missing_ok=True)
            serialization = "joblib"
    if not (path / _FILES[serialization]).exists():
        _write(model, path, serialization)
    file = path / _FILES[serialization]
    if not trust_unsafe:
        _check_loadable(file, serialization)
    requirements = [f"scikit-learn=={sklearn.__version__}"]
    if serialization != "pickle":
        requirements.append(f"{serialization}=={_version(serialization)}")
    saved_options: dict[str, Any] = {"file": file.name, "serialization": serialization}
    classes = getattr(model, "classes_", None)
    if classes is not None:
        saved_options["classes"] = np.asarray(classes).tolist()
    return SavedFlavor(
        framework="scikit-learn",
        framework_version=str(sklearn.__version__),
        options=saved_options,
        requirements=requirements,
    )


def _write(model: object, path: Path, serialization: str) -> None:
    file = path / _FILES[serialization]
    if serialization == "skops":
        import_framework("skops.io", "skops", "sklearn").dump(model, file)
    elif serialization == "joblib":
        import_framework("joblib", "joblib", "sklearn").dump(model, file)
    else:
        with file.open("wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)


def load(
    path: Path, options: Options, signature: Signature, *, trust_unsafe: bool = False
) -> Predictor:
    """Rebuild the estimator from its file, refusing any type outside the allow-list unless
    ``trust_unsafe``."""
    import_framework("sklearn", "scikit-learn", "sklearn")
    serialization = str(options.get("serialization", "skops"))
    file = path / str(options.get("file", _FILES.get(serialization, "")))
    if file.parent != path or serialization not in _FILES:
        raise FlavorError(f"invalid sklearn flavor options: {dict(options)!r}")
    if trust_unsafe:
        model = _load_unguarded(file, serialization)
    elif serialization == "skops":
        sio = import_framework("skops.io", "skops", "sklearn")
        trusted = _check_skops_types(file, sio)
        model = _read_skops(file, lambda: sio.load(file, trusted=trusted))
    elif serialization == "joblib":
        model = _pickle_guard.load_joblib(file)
    else:
        model = _pickle_guard.load_pickle(file)
    return SklearnPredictor(model, signature)


def _load_unguarded(file: Path, serialization: str) -> Any:  # Any: whatever the file holds
    """Load without the allow-list: only for files a person registered as trusted."""
    if serialization == "skops":
        sio = import_framework("skops.io", "skops", "sklearn")
        return sio.load(file, trusted=sio.get_untrusted_types(file=file))
    joblib = import_framework("joblib", "joblib", "sklearn")
    # joblib's reader takes plain pickles as well.
    return joblib.load(file)


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, reason)`` for a model file that the allow-list refuses (at most one: the
    file is refused at its first bad global). Loads through the guard, which runs nothing
    outside the allow-list."""
    serialization = str(options.get("serialization", "skops"))
    file = path / str(options.get("file", _FILES.get(serialization, "")))
    if file.parent != path or serialization not in _FILES:
        raise FlavorError(f"invalid sklearn flavor options: {dict(options)!r}")
    import_framework("sklearn", "scikit-learn", "sklearn")
    try:
        _guard(file, serialization)
    except UnsafeArtifact as exc:
        return [(file.name, _reason(exc))]
    return []


def _guard(file: Path, serialization: str) -> None:
    """Raise UnsafeArtifact if ``file`` names a type or global outside the allow-list; reads
    names only, constructing nothing from the file."""
    if serialization == "skops":
        _check_skops_types(file, import_framework("skops.io", "skops", "sklearn"))
    elif serialization == "joblib":
        _pickle_guard.scan_joblib(file)
    else:
        _pickle_guard.scan_pickle(file)


def _reason(exc: UnsafeArtifact) -> str:
    """The reason part of ``refusing to load '<path>': <reason>``."""
    return str(exc).partition("': ")[2] or str(exc)


def _check_loadable(file: Path, serialization: str) -> None:
    """Fail at save time, not when the model is served, if load would refuse what it holds."""
    try:
        _guard(file, serialization)
    except UnsafeArtifact as exc:
        raise FlavorError(
            f"this model cannot be saved safely: {_reason(exc)}; a scikit-learn model may hold "
            "only the scikit-learn, numpy and scipy types on modelport's audited allow-list "
            "(see docs/security.md; trust_unsafe=True skips this check for a model you trust)"
        ) from None


def _check_skops_types(file: Path, sio: Any) -> list[str]:
    """The skops file's types outside skops's own defaults, each of which must be on the
    pickle allow-list by exact name."""
    unknown: list[str] = _read_skops(file, lambda: list(sio.get_untrusted_types(file=file)))
    refused = _pickle_guard.untrusted_type_names(unknown)
    if refused:
        raise UnsafeArtifact(str(file), f"types {', '.join(refused)} are not trusted")
    return unknown


def _read_skops(file: Path, read: Callable[[], T]) -> T:
    """Run a skops read, reporting a damaged file as a FlavorError rather than a traceback."""
    try:
        return read()
    except (UnsafeArtifact, MissingDependency):
        raise
    except Exception as exc:  # skops raises whatever its parser meets
        raise FlavorError(f"cannot read skops file {file.name!r}: {exc!r}") from None


def read_file(path: Path, *, trust_unsafe: bool = False) -> object:
    """Read a user's ``.pkl``/``.pickle``/``.joblib`` file through the pickle guard (or, with
    ``trust_unsafe``, as it is)."""
    import_framework("sklearn", "scikit-learn", "sklearn")
    if trust_unsafe:
        return _load_unguarded(path, "joblib")
    # joblib's reader also takes plain pickles, and users name joblib files ``.pkl`` too.
    return _pickle_guard.load_joblib(path)


def infer_signature(model: object) -> Signature | None:
    """Columns from ``feature_names_in_`` (str for categorical columns), else one tensor."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        text_columns = _text_columns(model)
        return Signature(
            "columns",
            tuple(
                TensorSpec(str(n), "str" if str(n) in text_columns else "float64") for n in names
            ),
        )
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(n_features, int | np.integer):
        return Signature("tensors", (TensorSpec("input", "float64", (-1, int(n_features))),))
    return None


def _text_columns(model: object) -> set[str]:
    """Columns a fitted ColumnTransformer sends to an encoder that learned string categories."""
    steps = getattr(model, "steps", None)
    first = steps[0][1] if steps else model
    found: set[str] = set()
    for _, transformer, columns in getattr(first, "transformers_", []):
        if isinstance(columns, str):
            columns = [columns]
        inner = getattr(transformer, "steps", None)
        encoder = inner[0][1] if inner else transformer
        categories = getattr(encoder, "categories_", None)
        if not categories or not all(isinstance(c, str) for c in columns):
            continue
        for column, values in zip(columns, categories, strict=False):
            if np.asarray(values).dtype.kind in "OUS":
                found.add(column)
    return found


def _version(package: str) -> str:
    return importlib.metadata.version(package)


class SklearnPredictor:
    """Calls ``predict`` (and ``predict_proba`` for classifiers) on canonical inputs."""

    def __init__(self, model: Any, signature: Signature) -> None:  # Any: any estimator
        self.model = model
        self.signature = signature

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Primary output ``predictions`` first, then ``probabilities`` when available."""
        data = model_input(inputs, self.signature, "scikit-learn")
        out: dict[str, np.ndarray] = {}
        if outputs is None or "predictions" in outputs:
            out["predictions"] = _canonical(np.asarray(self.model.predict(data)))
        if hasattr(self.model, "predict_proba") and (outputs is None or "probabilities" in outputs):
            out["probabilities"] = np.asarray(self.model.predict_proba(data))
        return out


def _canonical(arr: np.ndarray) -> np.ndarray:
    """Strings as object arrays of ``str``, as everywhere else in modelport."""
    return arr.astype(object) if arr.dtype.kind in "US" else arr
