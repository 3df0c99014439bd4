"""The ONNX flavor: an ``onnx.ModelProto`` (or its serialized bytes) run by onnxruntime on CPU.

Files written: ``model.onnx``. Inputs are fed by their graph names, cast to the graph's element
type; outputs keep their graph names. A ZipMap output (skl2onnx classifiers' list of
``{label: probability}`` dicts) becomes a 2-D float array with columns in sorted label order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, MissingDependency
from modelport.flavors import Options, Predictor, SavedFlavor
from modelport.flavors._framework import from_package, import_framework

NAME = "onnx"
FILE_SUFFIXES = (".onnx",)
DECLARES_INPUTS = True  # the graph's inputs are the signature; an example must fit them

_FILE = "model.onnx"

# ONNX TensorProto.DataType values (fixed by the ONNX spec) -> signature dtype names.
_ELEM_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "str", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
}  # fmt: skip

# onnxruntime's type strings -> the numpy dtype it expects to be fed.
_ORT_DTYPES: dict[str, Any] = {  # Any: numpy dtype-likes
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
    "tensor(string)": object,
}  # fmt: skip


def handles(model: object) -> bool:
    """True for an ``onnx.ModelProto``, or bytes that parse as one when onnx is installed."""
    if from_package(model, "onnx"):
        return isinstance(model, import_framework("onnx", "onnx", "onnx").ModelProto)
    if isinstance(model, bytes):
        try:
            return _parse(model) is not None
        except MissingDependency:
            return False
    return False


def _parse(data: bytes) -> Any | None:  # Any: onnx.ModelProto
    """The ModelProto in ``data``, or None; protobuf accepts junk, so require a real graph."""
    onnx = import_framework("onnx", "onnx", "onnx")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError; any failure means "not ONNX"
        return None
    return model if model.ir_version > 0 and len(model.graph.node) > 0 else None


def _as_model_proto(model: object) -> Any:  # Any: onnx.ModelProto
    if isinstance(model, bytes):
        parsed = _parse(model)
        if parsed is None:
            raise FlavorError("the bytes given are not a serialized ONNX model")
        return parsed
    if not isinstance(model, import_framework("onnx", "onnx", "onnx").ModelProto):
        raise FlavorError(f"the onnx flavor cannot save a {type(model).__qualname__}")
    return model


def save(model: object, path: Path, options: Options) -> SavedFlavor:
    """Write ``model.onnx`` after onnx's checker accepts it, so broken graphs fail early."""
    onnx = import_framework("onnx", "onnx", "onnx")
    ort = import_framework("onnxruntime", "onnxruntime", "onnx")
    proto = _as_model_proto(model)
    file = path / _FILE
    onnx.save_model(proto, str(file))
    try:
        onnx.checker.check_model(str(file))
    except onnx.checker.ValidationError as exc:
        raise FlavorError(f"the ONNX model is invalid: {exc}") from None
    _session(file, ort)  # a model this onnxruntime cannot run fails now, not when served
    opsets = {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import}
    return SavedFlavor(
        framework="onnx",
        framework_version=str(onnx.__version__),
        options={"file": _FILE, "opsets": opsets, "producer": str(proto.producer_name)},
        requirements=[f"onnxruntime=={ort.__version__}"],
    )


def load(path: Path, options: Options, signature: Signature, device: str = "cpu") -> Predictor:
    """Open an onnxruntime session for the saved graph: on the CPU, or on a GPU through the
    CUDA execution provider (``onnxruntime-gpu``) for ``cuda``/``cuda:N``."""
    ort = import_framework("onnxruntime", "onnxruntime", "onnx")
    file = path / str(options.get("file", _FILE))
    if file.parent != path:
        raise FlavorError(f"invalid onnx flavor options: {dict(options)!r}")
    return OnnxPredictor(_session(file, ort, _providers(device, ort)))


def _providers(device: str, ort: Any) -> list[Any]:  # Any: a provider name or (name, options)
    """onnxruntime's execution providers for ``device``; a GPU device with no CUDA provider
    is refused rather than run on the CPU behind the user's back."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = list(ort.get_available_providers())
    if "CUDAExecutionProvider" not in available:
        raise FlavorError(
            f"device {device!r} needs onnxruntime-gpu (CUDAExecutionProvider); this "
            f"onnxruntime {ort.__version__} has: {', '.join(available)}"
        )
    _, _, index = device.partition(":")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


def _session(
    file: Path, ort: Any, providers: list[Any] | None = None
) -> Any:  # Any: onnxruntime.InferenceSession
    try:
        return ort.InferenceSession(str(file), providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise FlavorError(
            f"onnxruntime {ort.__version__} cannot load {file.name!r}: {exc}"
        ) from None


def read_file(path: Path) -> object:
    """Read an ``.onnx`` file (and any external data beside it) into a ModelProto."""
    onnx = import_framework("onnx", "onnx", "onnx")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError or a missing external-data file
        raise FlavorError(f"cannot read ONNX model {path.name!r}: {exc}") from None


def infer_signature(model: object) -> Signature | None:
    """Named tensors from the graph's inputs; unknown or symbolic dimensions become ``-1``."""
    try:
        proto = _as_model_proto(model)
    except FlavorError:
        return None
    initializers = {init.name for init in proto.graph.initializer}
    specs = []
    for value in proto.graph.input:
        if value.name in initializers:  # old exporters list weights as inputs too
            continue
        if value.type.WhichOneof("value") != "tensor_type":
            return None
        tensor = value.type.tensor_type
        dtype = _ELEM_DTYPES.get(int(tensor.elem_type))
        if dtype is None:
            return None
        dims = tuple(
            int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else -1
            for d in tensor.shape.dim
        )
        specs.append(TensorSpec(value.name, dtype, dims))
    return Signature("tensors", tuple(specs)) if specs else None


class OnnxPredictor:
    """Feeds canonical arrays to an onnxruntime session and returns its outputs by name."""

    def __init__(self, session: Any) -> None:  # Any: onnxruntime.InferenceSession
        self.session = session
        self.inputs = [
            (i.name, _ORT_DTYPES.get(i.type), len(i.shape)) for i in session.get_inputs()
        ]
        self.output_names = [o.name for o in session.get_outputs()]

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the graph for the requested outputs (all by default), ZipMaps as 2-D arrays."""
        feed = {}
        for name, dtype, rank in self.inputs:
            if name not in inputs:
                raise FlavorError(f"the ONNX graph needs input {name!r}")
            arr = np.asarray(inputs[name])
            if dtype is not None and arr.dtype != dtype:
                arr = arr.astype(dtype)
            if rank == 2 and arr.ndim == 1:  # a table column fed to an [N, 1] graph input
                arr = arr.reshape(-1, 1)
            feed[name] = arr
        names = [n for n in self.output_names if outputs is None or n in outputs]
        results = self.session.run(names or self.output_names, feed)
        return {n: _to_array(r) for n, r in zip(names or self.output_names, results, strict=True)}


def _to_array(value: object) -> np.ndarray:
    """ZipMap's list of dicts -> 2-D float array (sorted keys); strings -> object arrays."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = sorted(value[0])
        return np.asarray([[row[k] for k in keys] for row in value], dtype=np.float32)
    arr = np.asarray(value)
    return arr.astype(object) if arr.dtype.kind in "US" else arr
