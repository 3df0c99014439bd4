"""The CatBoost flavor: classifiers, regressors and plain models in CatBoost's own ``.cbm`` format.

Files written: ``model.cbm`` (``save_model(format="cbm")``), never pickle. The options record
the model kind (``classifier``, ``regressor`` or ``booster`` for a plain ``CatBoost`` or a
ranker) so a classifier comes back as a classifier and still returns class probabilities, and
a classifier's ``classes`` (its labels, as JSON values).

Categorical (and text) features take their values as they are, strings or integers: CatBoost
hashes each value itself, so the signature needs no category list. Without an example, the
signature comes from the model's feature names: a categorical or text feature is a ``str``
column, any other a ``float64`` one; a model trained on a bare array (names ``"0"``, ``"1"``,
...) and without categorical features takes one ``float64`` tensor instead. CatBoost matches a
table's columns by position, so the predictor puts them in the model's order first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError
from modelport.flavors import Options, Predictor, SavedFlavor
from modelport.flavors._framework import from_package, import_framework, model_input

NAME = "catboost"
FILE_SUFFIXES = (".cbm",)

_FILE = "model.cbm"
_KINDS = ("classifier", "regressor", "booster")
# Loss functions that make a model read from a plain file a classifier or a regressor (by
# the name before any ``:param=value``); any other (ranking, say) stays a plain model.
_CLASSIFIER_LOSSES = frozenset({"Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll"})
_REGRESSOR_LOSSES = frozenset(
    {
        "RMSE", "MAE", "Quantile", "MultiQuantile", "MAPE", "Poisson", "Tweedie", "Huber",
        "Expectile", "Lq", "LogLinQuantile", "LogCosh", "MultiRMSE", "RMSEWithUncertainty",
    }
)  # fmt: skip


def handles(model: object) -> bool:
    """True for CatBoost models, decided by module name without importing catboost."""
    return from_package(model, "catboost")


def _catboost() -> Any:  # Any: catboost is untyped
    return import_framework("catboost", "catboost", "catboost")


def _kind(model: object, cb: Any) -> str:
    if isinstance(model, cb.CatBoostClassifier):
        return "classifier"
    if isinstance(model, cb.CatBoostRegressor):
        return "regressor"
    if isinstance(model, cb.CatBoost):
        return "booster"
    raise FlavorError(f"the catboost flavor cannot save a {type(model).__qualname__}")


def save(model: object, path: Path, options: Options) -> SavedFlavor:
    """Save with ``save_model`` in CatBoost's native format; record the kind and classes."""
    cb = _catboost()
    kind = _kind(model, cb)
    if not model.is_fitted():  # type: ignore[attr-defined]
        raise FlavorError("the CatBoost model is not fitted")
    model.save_model(str(path / _FILE), format="cbm")  # type: ignore[attr-defined]
    saved: dict[str, Any] = {"file": _FILE, "kind": kind}
    if kind == "classifier":
        saved["classes"] = np.asarray(model.classes_).tolist()  # type: ignore[attr-defined]
    return SavedFlavor(
        framework="catboost",
        framework_version=str(cb.__version__),
        options=saved,
        requirements=[f"catboost=={cb.__version__}"],
    )


def load(path: Path, options: Options, signature: Signature) -> Predictor:
    """Rebuild the model of the recorded kind from its ``.cbm`` file."""
    cb = _catboost()
    kind = str(options.get("kind", "booster"))
    file = path / str(options.get("file", _FILE))
    if kind not in _KINDS or file.parent != path:
        raise FlavorError(f"invalid catboost flavor options: {dict(options)!r}")
    return CatBoostPredictor(_read(file, kind, cb), signature)


def _read(file: Path, kind: str, cb: Any) -> Any:  # Any: a catboost model
    model = {"classifier": cb.CatBoostClassifier, "regressor": cb.CatBoostRegressor}.get(
        kind, cb.CatBoost
    )()
    try:
        model.load_model(str(file), format="cbm")
    except cb.CatBoostError as exc:
        raise FlavorError(f"cannot read CatBoost model {file.name!r}: {exc}") from None
    return model


def read_file(path: Path) -> object:
    """Read a ``.cbm`` file: a classifier or regressor when its loss function says which
    (so a classifier keeps its labels and probabilities), else a plain ``CatBoost``."""
    cb = _catboost()
    plain = _read(path, "booster", cb)
    loss = str(plain.get_all_params().get("loss_function", "")).partition(":")[0]
    if loss in _CLASSIFIER_LOSSES:
        return _read(path, "classifier", cb)
    if loss in _REGRESSOR_LOSSES:
        return _read(path, "regressor", cb)
    return plain


def infer_signature(model: object) -> Signature | None:
    """Columns from the model's feature names (``str`` for categorical and text features),
    or one float64 tensor for a model trained on a bare array; None before fitting."""
    cb = _catboost()
    if not isinstance(model, cb.CatBoost) or not model.is_fitted():
        return None
    names = [str(n) for n in (model.feature_names_ or [])]
    if not names:
        return None
    text = {*model.get_cat_feature_indices(), *model.get_text_feature_indices()}
    if not text and names == [str(i) for i in range(len(names))]:
        return Signature("tensors", (TensorSpec("input", "float64", (-1, len(names))),))
    return Signature(
        "columns",
        tuple(TensorSpec(n, "str" if i in text else "float64") for i, n in enumerate(names)),
    )


class CatBoostPredictor:
    """Predictions (and probabilities for classifiers) from a CatBoost model."""

    def __init__(self, model: Any, signature: Signature) -> None:  # Any: a catboost model
        self.model = model
        self.signature = signature
        self.classifier = hasattr(model, "predict_proba")
        self.feature_names = [str(n) for n in (model.feature_names_ or [])]

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Primary output ``predictions`` (class labels for a classifier, 1-D) first, then
        ``probabilities`` for classifiers."""
        data = model_input(inputs, self.signature, "catboost")
        if self.signature.kind == "columns" and set(self.feature_names) <= set(data.columns):
            data = data[self.feature_names]  # CatBoost reads columns by position
        out: dict[str, np.ndarray] = {}
        if outputs is None or "predictions" in outputs or not self.classifier:
            predictions = np.asarray(self.model.predict(data))
            if self.classifier and predictions.ndim == 2 and predictions.shape[1] == 1:
                predictions = predictions[:, 0]  # multi-class labels come as a column
            out["predictions"] = (
                predictions.astype(object) if predictions.dtype.kind in "US" else predictions
            )
        if self.classifier and (outputs is None or "probabilities" in outputs):
            out["probabilities"] = np.asarray(self.model.predict_proba(data))
        return out
