"""TensorFlow Serving REST ``:predict`` bodies.

A request has exactly one of two keys (``signature_name`` may be present and is ignored: a
modelport model has one signature)::

    {"instances": [row, row, ...]}   row format: one item per example; with several inputs
                                     each row is an object keyed by input name
    {"inputs": value}                columnar: the whole batch, an object keyed by input
                                     name, or the bare tensor when the model has one input

The response mirrors the request: ``{"predictions": [...]}`` for rows (one value per row, or one
object per row keyed by output name when there are several outputs) and ``{"outputs": ...}`` for
columns (the value itself, or an object keyed by output name). Errors are ``{"error": "..."}``.

A string written as ``{"b64": "..."}`` is base64; modelport string tensors hold text, so it must
decode to UTF-8. Like TF Serving, requests may hold the non-standard JSON tokens ``NaN``,
``Infinity`` and ``-Infinity``; responses are always standard JSON, so a NaN or infinite output
is written as ``null`` (as the V2 routes do; TF Serving would write the bare tokens, which strict
JSON parsers refuse). It does not base64-encode ``*_bytes`` outputs: they are already text.
Source: tensorflow.org/tfx/serving/api_rest ("Request format", "Encoding binary values",
"Response format") and tensorflow/serving ``util/json_tensor.cc`` for the error wording.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from modelport.artifact.signature import Signature
from modelport.errors import InvalidInput, ModelportError


def decode_request(body: bytes, signature: Signature) -> tuple[object, bool]:
    """Read a predict request into what ``Signature.coerce`` takes, and whether it was rows."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise InvalidInput("request must be a JSON object with an 'instances' or 'inputs' key")
    if "instances" in doc and "inputs" in doc:
        raise InvalidInput(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if "instances" not in doc and "inputs" not in doc:
        raise InvalidInput("Missing 'inputs' or 'instances' key")
    # Walking every value for b64 objects costs a pass over the data; skip it when the body
    # cannot contain one.
    if b'"b64"' in body:
        doc = decode_b64(doc)
    if "instances" in doc:
        return rows_to_columns(doc["instances"], signature, strict=True), True
    return _columns(doc["inputs"], signature), False


def encode_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> bytes:
    """Write ``{"predictions": ...}`` (row format) or ``{"outputs": ...}`` (columnar)."""
    if not row_format:
        value: object = next(iter(outputs.values())) if len(outputs) == 1 else dict(outputs)
        return dumps({"outputs": value})
    if len(outputs) == 1:
        return dumps({"predictions": next(iter(outputs.values()))})
    lengths = {name: arr.shape[0] if arr.ndim else None for name, arr in outputs.items()}
    if None in lengths.values() or len(set(lengths.values())) > 1:
        raise ModelportError(
            f"outputs cannot be split into rows: batch sizes {lengths}; use 'inputs' instead"
        )
    names = list(outputs)
    columns = zip(*(arr.tolist() for arr in outputs.values()), strict=True)
    rows = [dict(zip(names, row, strict=True)) for row in columns]
    return dumps({"predictions": rows})


def encode_error(message: str) -> bytes:
    """TF Serving's error body, ``{"error": message}``."""
    return orjson.dumps({"error": message})


def loads(body: bytes) -> Any:  # Any: whatever JSON the client sent
    """Parse JSON, also accepting the ``NaN``/``Infinity`` tokens TF Serving and MLflow allow."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:  # the slow path runs only for bodies orjson refused, usually for NaN tokens
        return json.loads(body)
    # ValueError covers bad JSON and UTF-8 and over-long integers; RecursionError, nesting
    # deeper than Python's stack (orjson refuses past 1,024 levels and so lands here).
    except (ValueError, RecursionError):
        raise InvalidInput(f"invalid JSON: {error}") from None


def dumps(doc: object) -> bytes:
    """Standard JSON: NaN and the infinities become ``null``, numpy arrays are written whole."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)


def rows_to_columns(rows: object, signature: Signature, *, strict: bool) -> object:
    """Turn ``instances`` rows into columns: objects keyed by input name, or bare rows.

    With ``strict`` (TF Serving), a model with several inputs must get objects; without it
    (MLflow), bare rows pass through for ``Signature.coerce`` to read as positional columns.
    """
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("'instances' must be a non-empty list")
    names = signature.input_names
    if not isinstance(rows[0], dict):
        if len(names) == 1:
            return {names[0]: rows}
        if strict:
            raise InvalidInput(
                f"model takes {len(names)} named inputs ({', '.join(names)}); "
                f"expecting object but got {type(rows[0]).__name__} at item 0 of 'instances'"
            )
        return rows
    keys = rows[0].keys()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.keys() != keys:
            raise InvalidInput(
                f"instance {i} must be an object with the same keys as instance 0 "
                f"({', '.join(keys)})"
            )
    return {key: [row[key] for row in rows] for key in keys}


def decode_b64(value: Any) -> Any:  # Any: a JSON tree, returned with b64 objects replaced
    """Replace every ``{"b64": "..."}`` in a JSON tree by the text it encodes."""
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    if isinstance(value, dict):
        if value.keys() == {"b64"}:
            return _b64_text(value["b64"])
        return {k: decode_b64(v) for k, v in value.items()}
    return value


def _b64_text(encoded: object) -> str:
    if not isinstance(encoded, str):
        raise InvalidInput("'b64' value must be a string")
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except binascii.Error:
        raise InvalidInput(f"Unable to base64 decode {encoded[:40]!r}") from None
    except UnicodeDecodeError:
        raise InvalidInput("'b64' value is not UTF-8 text; string inputs must be text") from None


def _columns(inputs: object, signature: Signature) -> object:
    names = signature.input_names
    if isinstance(inputs, dict):
        return inputs
    if len(names) == 1:
        return {names[0]: inputs}
    raise InvalidInput(
        f"model takes {len(names)} named inputs ({', '.join(names)}); "
        "'inputs' must be an object keyed by input name"
    )


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
