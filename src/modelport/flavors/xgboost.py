"""The XGBoost flavor: estimators and boosters in XGBoost's own JSON or UBJSON format, never pickle.

Files written: ``model.json`` (default) or ``model.ubj`` (``{"format": "ubj"}``). The options
record the estimator kind (``classifier``, ``regressor`` or ``booster``) so a classifier comes
back as a classifier and still returns class probabilities.

A model trained on pandas ``category`` columns (``enable_categorical=True``) records its
categories in the signature: clients send the values (``"pro"``), and the predictor hands
XGBoost ``category`` columns with the training categories, which it re-codes by value.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature, TensorSpec, categorical_spec
from modelport.errors import FlavorError
from modelport.flavors import Options, Predictor, SavedFlavor
from modelport.flavors._framework import from_package, import_framework, model_input

NAME = "xgboost"
FILE_SUFFIXES = (".json", ".ubj")

_FORMATS = ("json", "ubj")
_KINDS = ("classifier", "regressor", "booster")


def handles(model: object) -> bool:
    """True for XGBoost estimators and boosters, decided by module name without importing."""
    return from_package(model, "xgboost")


def _kind(model: object, xgb: Any) -> str:
    if isinstance(model, xgb.XGBClassifier):
        return "classifier"
    if isinstance(model, xgb.XGBRegressor):
        return "regressor"
    return "booster"


def _booster(model: object, xgb: Any) -> Any:  # Any: xgboost.Booster
    if isinstance(model, xgb.Booster):
        return model
    if isinstance(model, xgb.XGBModel):
        return model.get_booster()
    raise FlavorError(f"the xgboost flavor cannot save a {type(model).__qualname__}")


def save(model: object, path: Path, options: Options) -> SavedFlavor:
    """Save with ``save_model`` in XGBoost's native format and record the estimator kind."""
    xgb = import_framework("xgboost", "xgboost", "xgboost")
    fmt = str(options.get("format", "json"))
    if fmt not in _FORMATS:
        raise FlavorError(f"unknown xgboost format {fmt!r}; use one of: {', '.join(_FORMATS)}")
    kind = _kind(model, xgb)
    file = path / f"model.{fmt}"
    if kind == "booster":
        _booster(model, xgb).save_model(str(file))
    else:
        model.save_model(str(file))  # type: ignore[attr-defined]
    saved: dict[str, Any] = {"file": file.name, "format": fmt, "kind": kind}
    classes = getattr(model, "classes_", None) if kind == "classifier" else None
    if classes is not None:
        saved["classes"] = np.asarray(classes).tolist()
    return SavedFlavor(
        framework="xgboost",
        framework_version=str(xgb.__version__),
        options=saved,
        requirements=[f"xgboost=={xgb.__version__}"],
    )


def load(path: Path, options: Options, signature: Signature) -> Predictor:
    """Rebuild the estimator of the recorded kind from its native model file."""
    xgb = import_framework("xgboost", "xgboost", "xgboost")
    kind = str(options.get("kind", "booster"))
    file = path / str(options.get("file", "model.json"))
    if kind not in _KINDS or file.parent != path:
        raise FlavorError(f"invalid xgboost flavor options: {dict(options)!r}")
    return XGBoostPredictor(_read(file, kind, xgb), signature)


def _read(file: Path, kind: str, xgb: Any) -> Any:  # Any: an xgboost estimator or Booster
    if kind == "booster":
        return xgb.Booster(model_file=str(file))
    model = xgb.XGBClassifier() if kind == "classifier" else xgb.XGBRegressor()
    model.load_model(str(file))
    return model


def read_file(path: Path) -> object:
    """Read a ``.json``/``.ubj`` model; an estimator if the file says which kind, else a Booster."""
    xgb = import_framework("xgboost", "xgboost", "xgboost")
    try:
        booster = xgb.Booster(model_file=str(path))
    except xgb.core.XGBoostError as exc:
        raise FlavorError(f"cannot read xgboost model {path.name!r}: {exc}") from None
    meta = json.loads(booster.attributes().get("scikit_learn") or "{}")
    kind = {"classifier": "classifier", "regressor": "regressor"}.get(
        meta.get("_estimator_type"), "booster"
    )
    return booster if kind == "booster" else _read(path, kind, xgb)


def infer_signature(model: object) -> Signature | None:
    """Columns from the booster's feature names (a categorical one with the categories it
    was trained on), else one float32 tensor of its feature count."""
    xgb = import_framework("xgboost", "xgboost", "xgboost")
    try:
        booster = _booster(model, xgb)
    except (FlavorError, xgb.core.XGBoostError, AttributeError):  # not fitted
        return None
    names = booster.feature_names
    if names:
        types = booster.feature_types or [None] * len(names)
        categories = _categories(booster, xgb) if "c" in types else {}
        specs = []
        for name, kind in zip(names, types, strict=True):
            if kind != "c":
                specs.append(TensorSpec(str(name), "float32"))
            elif name in categories:
                specs.append(categorical_spec(str(name), categories[name]))
            else:  # categories this XGBoost does not record: only an example can say
                return None
        return Signature("columns", tuple(specs))
    n_features = int(booster.num_features())
    if n_features <= 0:
        return None
    return Signature("tensors", (TensorSpec("input", "float32", (-1, n_features)),))


def _categories(booster: Any, xgb: Any) -> dict[str, list[Any]]:  # Any: untyped xgboost
    """The categories of each categorical feature, as recorded in the model (XGBoost 3.1+
    keeps those of a pandas ``category`` column); empty when this XGBoost cannot say."""
    try:
        exported = booster.get_categories(export_to_arrow=True).to_arrow()
    except (AttributeError, TypeError, ValueError, xgb.core.XGBoostError):
        return {}
    return {str(name): values.to_pylist() for name, values in exported if values is not None}


class XGBoostPredictor:
    """Predictions (and probabilities for classifiers) from an XGBoost model."""

    def __init__(self, model: Any, signature: Signature) -> None:  # Any: estimator or Booster
        self.model = model
        self.signature = signature

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Primary output ``predictions`` first, then ``probabilities`` for classifiers."""
        data = model_input(inputs, self.signature, "xgboost")
        if hasattr(self.model, "predict_proba"):
            out: dict[str, np.ndarray] = {}
            if outputs is None or "predictions" in outputs:
                out["predictions"] = np.asarray(self.model.predict(data))
            if outputs is None or "probabilities" in outputs:
                out["probabilities"] = np.asarray(self.model.predict_proba(data))
            return out
        if hasattr(self.model, "inplace_predict"):
            return {"predictions": np.asarray(self.model.inplace_predict(data))}
        return {"predictions": np.asarray(self.model.predict(data))}
