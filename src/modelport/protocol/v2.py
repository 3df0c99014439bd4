"""Open Inference Protocol (KServe V2) REST bodies: datatypes, tensors, and the server's half.

A request is a JSON object::

    {"id": "42", "parameters": {"binary_data_output": false},
     "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}],
     "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}

``data`` is row-major, flat or nested. With Triton's binary tensor data extension
(:mod:`modelport.protocol.v2_binary`) a tensor's values follow the JSON as raw bytes instead.
Source: kserve/open-inference-protocol ``specification/protocol/inference_rest.md``.

JSON has no NaN or infinity. Like MLServer (SeldonIO/MLServer#1346), FP outputs write them as
``null`` and a ``null`` in FP input data reads as NaN; ask for binary outputs to keep the
distinction between NaN and the infinities.

This module reads requests and writes responses, metadata and errors (the server's half);
:mod:`modelport.protocol.v2_client` writes requests and reads responses with the same tensor
code. Both need only numpy and orjson.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelport.artifact.casting import fit_values
from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import InvalidInput, ModelportError
from modelport.protocol import v2_binary

DATATYPES: dict[str, str] = {
    "bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "str": "BYTES",
}  # fmt: skip
_DTYPES = {v: k for k, v in DATATYPES.items()}
# Binary tensors are little-endian whatever the machine is.
_WIRE = {v: np.dtype(k).newbyteorder("<") for k, v in DATATYPES.items() if k != "str"}
_NATIVE = {v: np.dtype(k) for k, v in DATATYPES.items() if k != "str"}
_BY_DTYPE = {np.dtype(k): v for k, v in DATATYPES.items() if k != "str"}  # native byte order
_ALLOWED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}  # numpy kinds each target takes
_WANTED = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}


def to_dtype(datatype: str) -> str:
    """The signature dtype for a V2 datatype, e.g. ``"FP32"`` -> ``"float32"``."""
    try:
        return _DTYPES[datatype]
    except (KeyError, TypeError):
        known = ", ".join(_DTYPES)
        raise InvalidInput(f"unknown datatype {datatype!r} (known: {known})") from None


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond per request
class V2Request:
    """A decoded inference request; ``outputs`` is None when the client wants every output."""

    id: str | None
    inputs: dict[str, np.ndarray]
    parameters: dict[str, Any]  # Any: free-form JSON values chosen by the client
    outputs: list[str] | None
    binary_outputs: dict[str, bool]
    binary_default: bool

    def wants_binary(self, output: str) -> bool:
        """Whether ``output`` goes in the binary tail: its own flag, else the request's."""
        return self.binary_outputs.get(output, self.binary_default)


def decode_request(body: bytes, header_length: int | None) -> V2Request:
    """Read an inference request; ``header_length`` is ``Inference-Header-Content-Length``."""
    doc, tail = split(body, header_length)
    if not isinstance(doc, dict):
        raise InvalidInput("inference request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = _parameters(doc, "inference request")
    inputs = decode_tensors(doc.get("inputs"), "inputs", "input", tail)
    binary_default = _flag(parameters, "binary_data_output", "inference request")
    outputs: list[str] | None = None
    binary_outputs: dict[str, bool] = {}
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise InvalidInput("'outputs' must be a list of objects")
        outputs = []
        for i, item in enumerate(doc["outputs"]):
            name = _name(item, i, "outputs")
            if name in outputs:
                raise InvalidInput(f"output {name!r} is requested more than once")
            outputs.append(name)
            params = _parameters(item, f"output {name!r}")
            if "binary_data" in params:
                binary_outputs[name] = _flag(params, "binary_data", f"output {name!r}")
    return V2Request(request_id, inputs, parameters, outputs, binary_outputs, binary_default)


def encode_response(
    model_name: str,
    model_version: str | None,
    outputs: Mapping[str, np.ndarray],
    request: V2Request | None,
    response_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Write the response for ``outputs``, honouring the request's output list and binary flags.

    ``response_id`` is the response's ``id`` (the server passes the request id); without
    it, the request's own ``id`` is echoed.

    Returns the body and the headers to send with it (content type, and the JSON length when
    a binary tail follows).
    """
    names = list(outputs) if request is None or request.outputs is None else request.outputs
    doc: dict[str, Any] = {"model_name": model_name}  # Any: JSON values of several types
    if model_version is not None:
        doc["model_version"] = model_version
    if response_id is None and request is not None:
        response_id = request.id
    if response_id is not None:
        doc["id"] = response_id
    missing = [n for n in names if n not in outputs]
    if missing:
        raise InvalidInput(
            f"model has no output {missing[0]!r} (outputs: {', '.join(outputs) or 'none'})"
        )
    binary = {n: request is not None and request.wants_binary(n) for n in names}
    doc["outputs"], tail = encode_tensors({n: outputs[n] for n in names}, binary)
    return join(doc, tail)


def encode_error(message: str, code: str = "internal") -> bytes:
    """The protocol's error body, ``{"error": message}``, with modelport's stable error
    ``code`` beside it (``modelport.Client`` raises the matching exception class)."""
    return orjson.dumps({"error": message, "code": code})


def model_metadata(
    name: str, versions: list[str], platform: str, signature: Signature
) -> dict[str, Any]:  # Any: a JSON document
    """The model metadata response: inputs and outputs with datatype and ``-1`` shapes."""

    def tensors(specs: Sequence[Any]) -> list[dict[str, Any]]:  # Any: TensorSpec / JSON values
        return [
            {"name": s.name, "datatype": DATATYPES[s.dtype], "shape": list(s.shape)} for s in specs
        ]

    return {
        "name": name,
        "versions": versions,
        "platform": platform,
        "inputs": tensors(signature.inputs),
        "outputs": tensors(signature.outputs),
    }


def server_metadata(name: str, version: str, extensions: list[str]) -> dict[str, Any]:
    """The server metadata response (``GET /v2``)."""
    return {"name": name, "version": version, "extensions": extensions}


# --- decoding -----------------------------------------------------------------------------


def split(body: bytes, header_length: int | None) -> tuple[object, memoryview]:
    """The parsed JSON document of ``body`` and its binary tail (see :mod:`.v2_binary`)."""
    header, tail = v2_binary.split_body(body, header_length)
    try:
        return orjson.loads(header), tail
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"invalid JSON: {exc}") from None


def decode_tensors(items: object, key: str, what: str, tail: memoryview) -> dict[str, np.ndarray]:
    """Read the tensor list ``items`` (``inputs`` or ``outputs``, named by ``key``; ``what`` is
    one of them in messages), taking binary tensors from ``tail`` in order."""
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"'{key}' must be a non-empty list of tensors")
    out: dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(items):
        name = _name(item, i, key)
        if name in out:
            raise InvalidInput(f"{what} {name!r} appears more than once")
        label = f"{what} {name!r}"
        datatype, shape = item.get("datatype"), _shape(label, item.get("shape"))
        if datatype not in _DTYPES:
            raise InvalidInput(f"{label}: unknown datatype {datatype!r}")
        size = _parameters(item, label).get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidInput(f"{label}: binary_data_size must be a non-negative integer")
            if offset + size > len(tail):
                raise InvalidInput(
                    f"{label}: binary_data_size {size} runs past the end of the body"
                    + ("" if tail else f" (was {v2_binary.HEADER_LENGTH} sent?)")
                )
            raw = tail[offset : offset + size]
            out[name] = v2_binary.read_tensor(label, datatype, _WIRE.get(datatype), shape, raw)
            offset += size
        elif "data" in item:
            out[name] = _from_json(label, datatype, shape, item["data"])
        else:
            raise InvalidInput(f"{label}: has neither 'data' nor binary_data_size")
    if offset != len(tail):
        raise InvalidInput(f"{len(tail) - offset} bytes of binary data follow the last tensor")
    return out


def _name(item: object, index: int, key: str) -> str:
    if not isinstance(item, dict):
        raise InvalidInput(f"'{key}' item {index} must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"'{key}' item {index} needs a 'name' string")
    return name


def _shape(label: str, shape: object) -> list[int]:
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):  # bool is no int
        raise InvalidInput(f"{label}: 'shape' must be a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{label}: shape {shape} has a negative dimension")
    return shape


def _parameters(item: dict[str, Any], label: str) -> dict[str, Any]:  # Any: client JSON
    params = item.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(f"{label}: 'parameters' must be an object")
    return params


def _flag(params: Mapping[str, object], key: str, label: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{label}: parameter {key!r} must be true or false")
    return value


def _count_error(label: str, shape: list[int], count: int, got: int) -> InvalidInput:
    return InvalidInput(f"{label}: shape {shape} needs {count} elements, got {got}")


def _from_json(label: str, datatype: str, shape: list[int], data: object) -> np.ndarray:
    count = math.prod(shape)
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        try:
            flat = np.asarray(data, dtype=object).ravel()
        except ValueError:
            raise InvalidInput(f"{label}: nested lists have different lengths") from None
        if flat.size != count:
            raise _count_error(label, shape, count, flat.size)
        if not all(isinstance(v, str) for v in flat):
            raise InvalidInput(f"{label}: BYTES data must be strings")
        return flat.reshape(shape)
    try:
        raw = np.asarray(data)
    except ValueError:
        raise InvalidInput(f"{label}: nested lists have different lengths") from None
    except OverflowError:  # e.g. -1 next to 2**64 - 1: no numpy integer holds both
        raw = np.asarray(data, dtype=object)
    if raw.size != count:
        raise _count_error(label, shape, count, raw.size)
    target = _NATIVE[datatype]
    if raw.size == 0:
        return np.empty(shape, dtype=target)
    kind = raw.dtype.kind
    if kind == "O" and target.kind == "f":
        # JSON cannot carry NaN, so null stands for it (the same convention the encoder uses).
        if not all(v is None or type(v) in (int, float) for v in raw.flat):
            raise InvalidInput(f"{label}: {datatype} data must be numbers or null")
        raw, kind = np.asarray(data, dtype=target), "f"
    elif kind in "fO" and target.kind in "iu":
        # Ints with no common numpy type (1 and 2**64 - 1) arrive as floats or objects, and
        # a whole float (2005.0) is an integer written another way: the one rule of
        # ``fit_values`` takes both exactly, and names a value that is neither.
        raw = np.asarray(data, dtype=object)
        if all(type(v) in (int, float) for v in raw.flat):
            fitted = fit_values(TensorSpec(label, _DTYPES[datatype], ()), raw)
            if fitted.unfit is not None:
                raise _unfit_integer(label, datatype, raw.flat[np.argmax(fitted.unfit)])
            raw, kind = fitted.values, target.kind
    if kind not in _ALLOWED_KINDS[target.kind]:
        raise InvalidInput(f"{label}: {datatype} data must be {_WANTED[target.kind]}")
    if target.kind in "iu" and raw.dtype != target:
        info = np.iinfo(target)
        outside = (raw < info.min) | (raw > info.max)
        if outside.any():
            raise _unfit_integer(label, datatype, raw.flat[np.argmax(outside)])
    return raw.astype(target, copy=False).reshape(shape)


def _unfit_integer(label: str, datatype: str, value: object) -> InvalidInput:
    """A value an integer tensor cannot hold, named: a fraction, or one out of range."""
    number = value.item() if isinstance(value, np.generic) else value
    if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
        return InvalidInput(f"{label}: {datatype} data must be integers, got {number!r}")
    shown = int(number) if isinstance(number, float) else number
    return InvalidInput(f"{label}: values out of range for {datatype}, got {shown}")


# --- encoding -----------------------------------------------------------------------------


def _datatype(name: str, arr: np.ndarray) -> str:
    datatype = _BY_DTYPE.get(arr.dtype)  # a dict lookup: ``dtype.name`` is slow
    if datatype is not None:
        return datatype
    if arr.dtype.kind in "UO":
        return "BYTES"
    datatype = DATATYPES.get(arr.dtype.name)  # a non-native byte order
    if datatype is None:
        raise ModelportError(f"tensor {name!r} has dtype {arr.dtype}, which V2 cannot carry")
    return datatype


def encode_tensors(
    arrays: Mapping[str, np.ndarray], binary: Mapping[str, bool]
) -> tuple[list[dict[str, Any]], list[bytes]]:  # Any: JSON values of several types
    """The tensor list for ``arrays``, and the binary tail of those ``binary`` names."""
    items: list[dict[str, Any]] = []
    tail: list[bytes] = []
    for name, arr in arrays.items():
        datatype = _datatype(name, arr)
        item: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary[name]:
            chunk = v2_binary.write_tensor(arr, _WIRE.get(datatype))
            item["parameters"] = {"binary_data_size": len(chunk)}
            tail.append(chunk)
        elif datatype == "BYTES":
            item["data"] = [v2_binary.text(v) for v in arr.ravel().tolist()]
        else:
            # orjson writes C-contiguous native-endian arrays itself, far faster than tolist().
            if not (arr.dtype.isnative and arr.flags.c_contiguous):
                arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
            item["data"] = arr.reshape(-1)
        items.append(item)
    return items, tail


def join(doc: dict[str, Any], tail: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """The body for JSON ``doc`` and its binary ``tail``, and the headers to send with it."""
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    return v2_binary.join_body(header, tail)
