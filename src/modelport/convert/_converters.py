"""One converter per flavor: the loaded version's native model -> an ONNX graph.

Tabular models (scikit-learn, XGBoost, LightGBM, CatBoost) get one float32 input ``[N, k]``
with a free batch axis (``None``: converters otherwise fix it to the example's row count);
:mod:`modelport.convert._graph` then gives the graph the original's interface. Every
converter is imported only when its flavor is converted, and a missing one names the
``modelport[convert]`` extra.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature
from modelport.errors import FlavorError, InvalidInput, UnsupportedModel
from modelport.flavors._framework import import_framework
from modelport.packaging import LoadedModel

Rows = Mapping[str, np.ndarray]
FEATURES = "__modelport_features__"
"""The converted graph's one input when the original took a table (replaced by its columns)."""


@dataclass(frozen=True)
class Converted:
    """An ONNX graph and what made it."""

    model: Any  # Any: onnx.ModelProto, untyped
    converter: str
    """The converter and its version, e.g. ``skl2onnx 1.20.0``."""
    label_classes: list[Any] | None = None
    """Set when the graph's label output is a class index: labels are these classes at the
    argmax of the probabilities."""


def _framework(module: str, package: str) -> Any:  # Any: untyped converters
    return import_framework(module, package, "convert")


def tabular_input(signature: Signature) -> tuple[str, int]:
    """The graph input name and feature count for a tabular model, or InvalidInput."""
    if signature.kind == "columns":
        odd = [s.name for s in signature.inputs if s.categories is not None or s.dtype == "str"]
        if odd:
            raise UnsupportedModel(
                f"a model with text or categorical columns ({', '.join(odd)}): only numeric "
                "columns convert to ONNX for now"
            )
        return FEATURES, len(signature.inputs)
    specs = signature.inputs
    if len(specs) == 1 and len(specs[0].shape) == 2 and specs[0].shape[1] > 0:
        return specs[0].name, specs[0].shape[1]
    shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in specs)
    raise UnsupportedModel(f"a tabular model whose inputs are not one [N, k] table ({shapes})")


def _sklearn(loaded: LoadedModel, rows: Rows) -> Converted:
    skl2onnx = _framework("skl2onnx", "skl2onnx")
    types = _framework("skl2onnx.common.data_types", "skl2onnx")
    name, k = tabular_input(loaded.signature)
    model = _native(loaded, "model")
    try:
        proto = skl2onnx.convert_sklearn(
            model, initial_types=[(name, types.FloatTensorType([None, k]))]
        )
    except Exception as exc:  # skl2onnx raises many untyped errors (no converter, shape, ...)
        raise UnsupportedModel(f"a model skl2onnx cannot convert: {_first_line(exc)}") from None
    return Converted(proto, f"skl2onnx {skl2onnx.__version__}")


def _xgboost(loaded: LoadedModel, rows: Rows) -> Converted:
    onnxmltools = _framework("onnxmltools", "onnxmltools")
    name, k = tabular_input(loaded.signature)
    model = _native(loaded, "model")
    try:
        proto = onnxmltools.convert_xgboost(model, initial_types=[(name, _float_type(k))])
    except Exception as exc:  # onnxmltools raises untyped errors
        raise UnsupportedModel(
            f"an XGBoost model onnxmltools cannot convert: {_first_line(exc)}"
        ) from None
    return Converted(proto, f"onnxmltools {onnxmltools.__version__}")


def _lightgbm(loaded: LoadedModel, rows: Rows) -> Converted:
    onnxmltools = _framework("onnxmltools", "onnxmltools")
    name, k = tabular_input(loaded.signature)
    booster = _native(loaded, "booster")
    classes = getattr(loaded.predictor, "classes", None)
    try:
        proto = onnxmltools.convert_lightgbm(
            booster, initial_types=[(name, _float_type(k))], zipmap=False
        )
    except Exception as exc:  # onnxmltools raises untyped errors
        raise UnsupportedModel(
            f"a LightGBM model onnxmltools cannot convert: {_first_line(exc)}"
        ) from None
    labels = None if classes is None else np.asarray(classes).tolist()
    return Converted(proto, f"onnxmltools {onnxmltools.__version__}", labels)


def _catboost(loaded: LoadedModel, rows: Rows) -> Converted:
    """CatBoost writes ONNX itself (``save_model(format="onnx")``); its input is named
    ``features``, renamed here to the original's."""
    catboost = _framework("catboost", "catboost")
    onnx = _framework("onnx", "onnx")
    name, _ = tabular_input(loaded.signature)
    model = _native(loaded, "model")
    with tempfile.TemporaryDirectory(prefix="modelport-catboost-") as tmp:
        file = Path(tmp) / "model.onnx"
        try:
            model.save_model(str(file), format="onnx")
        except Exception as exc:  # CatBoostError, or a model with categorical features
            raise UnsupportedModel(
                f"a CatBoost model it cannot write as ONNX: {_first_line(exc)}"
            ) from None
        proto = onnx.load(str(file))
    from modelport.convert._graph import rename_tensor

    rename_tensor(proto.graph, proto.graph.input[0].name, name)
    return Converted(proto, f"catboost {catboost.__version__}")


def _torch(loaded: LoadedModel, rows: Rows) -> Converted:
    """``torch.onnx.export`` (the dynamo exporter, which needs onnxscript) of the version's
    ``torch.export`` program, whose batch axis is already dynamic."""
    torch = _framework("torch", "torch")
    _framework("onnxscript", "onnxscript")
    predictor = loaded.predictor
    program = getattr(predictor, "program", None)
    if program is None:
        raise UnsupportedModel(
            "a TorchScript model: only torch.export programs (.pt2, the default) convert to ONNX"
        )
    names = [str(name) for name, _ in getattr(predictor, "inputs", [])] or list(rows)
    args = tuple(
        torch.from_numpy(np.ascontiguousarray(_as_dtype(rows[name], dtype)))
        for name, dtype in getattr(predictor, "inputs", [(n, None) for n in names])
    )
    return Converted(_export_torch(torch, program, args, names), f"torch {torch.__version__}")


def _keras(loaded: LoadedModel, rows: Rows) -> Converted:
    """A Keras model on the torch backend is a ``torch.nn.Module``: ``torch.export`` it with
    a dynamic batch axis, then export that program as for the torch flavor."""
    keras = _framework("keras", "keras")
    torch = _framework("torch", "torch")
    _framework("onnxscript", "onnxscript")
    backend = str(keras.config.backend())
    if backend != "torch":
        raise UnsupportedModel(
            f"a Keras model on the {backend} backend: only the torch backend converts to ONNX"
        )
    names = loaded.signature.input_names
    if len(names) != 1:
        raise UnsupportedModel(
            f"a Keras model with {len(names)} inputs: only single-input Keras models convert yet"
        )
    model = _native(loaded, "model")
    sample = torch.from_numpy(np.ascontiguousarray(rows[names[0]]))
    batch = torch.export.Dim("batch")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # forward(*args): the dynamic shapes of the one positional input, inside a tuple
            program = torch.export.export(
                model, (sample,), dynamic_shapes=(({0: batch},),), strict=False
            )
    except Exception as exc:  # torch.export raises many error types
        raise UnsupportedModel(
            f"a Keras model torch.export cannot trace: {_first_line(exc)}"
        ) from None
    proto = _export_torch(torch, program, (sample,), names)
    return Converted(proto, f"torch {torch.__version__} (keras {keras.__version__})")


def _export_torch(torch: Any, model: Any, args: tuple[Any, ...], names: list[str]) -> Any:
    """``torch.onnx.export`` with its warnings and log lines kept out of the caller's
    output (torchvision's missing ops, deprecations in its dependencies)."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.onnx.export(model, args, dynamo=True, input_names=names, verbose=False)
    except Exception as exc:  # the exporter raises many error types
        raise UnsupportedModel(
            f"a model torch.onnx.export cannot convert: {_first_line(exc)}"
        ) from None
    finally:
        quiet.setLevel(level)
    return exported.model_proto


def _as_dtype(arr: np.ndarray, dtype: str | None) -> np.ndarray:
    return arr if dtype is None or arr.dtype == np.dtype(dtype) else arr.astype(dtype)


def _float_type(k: int) -> Any:  # Any: onnxmltools' FloatTensorType
    types = _framework("onnxmltools.convert.common.data_types", "onnxmltools")
    return types.FloatTensorType([None, k])


def _native(loaded: LoadedModel, attribute: str) -> Any:  # Any: the framework's model
    native = getattr(loaded.predictor, attribute, None)
    if native is None:
        raise FlavorError(
            f"the {loaded.manifest.flavor} predictor of {loaded.name!r} keeps no native model "
            f"(.{attribute}) to convert"
        )
    return native


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


CONVERTERS: Mapping[str, Callable[[LoadedModel, Rows], Converted]] = {
    "sklearn": _sklearn,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "catboost": _catboost,
    "torch": _torch,
    "keras": _keras,
}


def to_onnx(loaded: LoadedModel, rows: Rows) -> Converted:
    """Convert ``loaded``'s native model with the converter for its flavor; ``rows`` are
    sample inputs for converters that trace the model."""
    flavor = loaded.manifest.flavor
    if flavor == "onnx":
        raise InvalidInput(f"{loaded.name}/{loaded.version} is already ONNX")
    converter = CONVERTERS.get(flavor)
    if converter is None:
        known = ", ".join(CONVERTERS)
        raise InvalidInput(f"no converter for flavor {flavor} yet: modelport converts {known}")
    return converter(loaded, rows)
