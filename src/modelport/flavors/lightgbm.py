"""The LightGBM flavor: estimators and boosters in LightGBM's own text format, never pickle.

Files written: ``model.txt`` (``Booster.save_model``). The options record the estimator kind and,
for classifiers, ``classes`` (JSON values), because the text file only knows class indices:
predictions are ``classes[argmax(probabilities)]``.

A model trained on pandas ``category`` columns records their categories in the signature
(from the example, or from the booster's ``pandas_categorical``): clients send the values,
and the predictor hands LightGBM ``category`` columns, which it maps onto its own codes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature, TensorSpec, categorical_spec
from modelport.errors import FlavorError
from modelport.flavors import Options, Predictor, SavedFlavor
from modelport.flavors._framework import from_package, import_framework, model_input

NAME = "lightgbm"
FILE_SUFFIXES = (".txt",)

_FILE = "model.txt"
_KINDS = ("classifier", "regressor", "booster")
# Names LightGBM makes up when it was trained on a bare array.
_GENERATED_NAME = re.compile(r"Column_\d+")


def handles(model: object) -> bool:
    """True for LightGBM estimators and boosters, decided by module name without importing."""
    return from_package(model, "lightgbm")


def _booster(model: object, lgb: Any) -> Any:  # Any: lightgbm.Booster
    if isinstance(model, lgb.Booster):
        return model
    if isinstance(model, lgb.LGBMModel):
        try:
            return model.booster_
        except (AttributeError, ValueError) as exc:  # sklearn's NotFittedError is both
            raise FlavorError(f"the LightGBM model is not fitted: {exc}") from None
    raise FlavorError(f"the lightgbm flavor cannot save a {type(model).__qualname__}")


def _kind_and_classes(model: object, booster: Any, lgb: Any) -> tuple[str, list[Any] | None]:
    """Classifier classes from the estimator, or from a bare booster's objective."""
    if isinstance(model, lgb.LGBMClassifier):
        return "classifier", np.asarray(model.classes_).tolist()
    if isinstance(model, lgb.LGBMModel):
        return "regressor", None
    objective = str(booster.params.get("objective", ""))
    if objective.startswith("binary"):
        return "classifier", [0, 1]
    if objective.startswith(("multiclass", "softmax", "multiclassova", "ova")):
        return "classifier", list(range(int(booster.num_model_per_iteration())))
    return "booster", None


def save(model: object, path: Path, options: Options) -> SavedFlavor:
    """Save the booster as text and record the kind and classes needed to predict labels."""
    lgb = import_framework("lightgbm", "lightgbm", "lightgbm")
    booster = _booster(model, lgb)
    kind, classes = _kind_and_classes(model, booster, lgb)
    booster.save_model(str(path / _FILE))
    saved: dict[str, Any] = {"file": _FILE, "kind": kind}
    if classes is not None:
        saved["classes"] = classes
    return SavedFlavor(
        framework="lightgbm",
        framework_version=str(lgb.__version__),
        options=saved,
        requirements=[f"lightgbm=={lgb.__version__}"],
    )


def load(path: Path, options: Options, signature: Signature) -> Predictor:
    """Load the text model into a Booster and wrap it with the recorded classes."""
    lgb = import_framework("lightgbm", "lightgbm", "lightgbm")
    kind = str(options.get("kind", "booster"))
    file = path / str(options.get("file", _FILE))
    if kind not in _KINDS or file.parent != path:
        raise FlavorError(f"invalid lightgbm flavor options: {dict(options)!r}")
    booster = lgb.Booster(model_file=str(file))
    classes = options.get("classes") if kind == "classifier" else None
    return LightGBMPredictor(booster, signature, None if classes is None else np.asarray(classes))


def read_file(path: Path) -> object:
    """Read a LightGBM text model into a Booster."""
    lgb = import_framework("lightgbm", "lightgbm", "lightgbm")
    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise FlavorError(f"cannot read LightGBM model {path.name!r}: {exc}") from None


def infer_signature(model: object) -> Signature | None:
    """Columns from real feature names, else one float64 tensor of the feature count."""
    lgb = import_framework("lightgbm", "lightgbm", "lightgbm")
    try:
        booster = _booster(model, lgb)
    except FlavorError:
        return None
    names = [str(n) for n in booster.feature_name()]
    if not names:
        return None
    if all(_GENERATED_NAME.fullmatch(n) for n in names):
        return Signature("tensors", (TensorSpec("input", "float64", (-1, len(names))),))
    specs = [TensorSpec(n, "float64") for n in names]
    pandas_categories = booster.pandas_categorical or []
    if pandas_categories:
        columns = _categorical_columns(booster)
        if len(columns) != len(pandas_categories):  # some were int codes: which, unknown
            return None
        for index, categories in zip(columns, pandas_categories, strict=True):
            specs[index] = categorical_spec(names[index], categories)
    return Signature("columns", tuple(specs))


def _categorical_columns(booster: Any) -> list[int]:  # Any: lightgbm.Booster
    """Positions of the categorical features: ``categorical_column`` in a trained booster's
    parameters, ``categorical_feature`` in one read from a file."""
    params = booster.params
    value = params.get("categorical_column", params.get("categorical_feature", []))
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):  # names rather than positions: not this LightGBM's form
        return []


class LightGBMPredictor:
    """Predictions from a Booster; for classifiers, labels plus a 2-D probability matrix."""

    def __init__(self, booster: Any, signature: Signature, classes: np.ndarray | None) -> None:
        self.booster = booster  # Any: lightgbm.Booster, untyped
        self.signature = signature
        self.classes = classes

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Primary output ``predictions`` first, then ``probabilities`` for classifiers.

        Labels come from the probabilities, so both cost one pass; ``outputs`` saves nothing.
        """
        raw = np.asarray(self.booster.predict(model_input(inputs, self.signature, "LightGBM")))
        if self.classes is None:
            return {"predictions": raw}
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        labels = self.classes[np.argmax(proba, axis=1)]
        if labels.dtype.kind in "US":
            labels = labels.astype(object)
        return {"predictions": labels, "probabilities": proba}
