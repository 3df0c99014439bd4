"""Triton's binary tensor data extension to the V2 protocol: raw tensor bytes after the JSON.

A body with binary tensors is the JSON document followed by the tensors' bytes, and the
header ``Inference-Header-Content-Length`` gives the JSON's length. Each binary tensor carries
``parameters.binary_data_size`` instead of ``data``, and the tensors appear in the tail in the
order they appear in the JSON. Numbers are little-endian whatever the machine is, BOOL is one
byte (0 or 1), and each BYTES element is a 4-byte little-endian length followed by its bytes.
Source: triton-inference-server/server ``docs/protocol/extension_binary_data.md``.

Tensors read here are not copied: their arrays are read-only views of the body. Datatypes
are :mod:`modelport.protocol.v2`'s business; this module takes the wire dtype it chose
(``None`` for BYTES) and the datatype's name for its messages.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from modelport.errors import InvalidInput

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"

_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: int | None) -> tuple[bytes, memoryview]:
    """The JSON part of ``body`` and the binary tail after it (empty without a length)."""
    if header_length is None:
        return body, memoryview(b"")
    if not 0 <= header_length <= len(body):
        raise InvalidInput(f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes")
    return body[:header_length], memoryview(body)[header_length:]


def join_body(header: bytes, tail: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """The body for a JSON ``header`` and its binary ``tail``, and the headers to send."""
    if not tail:
        return header, {"Content-Type": JSON_TYPE}
    headers = {"Content-Type": BINARY_TYPE, HEADER_LENGTH: str(len(header))}
    return b"".join([header, *tail]), headers


def read_tensor(
    label: str, datatype: str, wire: np.dtype[Any] | None, shape: list[int], raw: memoryview
) -> np.ndarray:
    """The tensor in ``raw``: ``wire`` is its little-endian dtype, None for BYTES."""
    count = math.prod(shape)
    if wire is None:
        return _unpack_strings(label, shape, count, raw)
    if count * wire.itemsize != len(raw):
        raise InvalidInput(
            f"{label}: shape {shape} of {datatype} needs {count * wire.itemsize} bytes, "
            f"got {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=wire)
    if wire.kind == "b" and count and arr.view(np.uint8).max() > 1:
        raise InvalidInput(f"{label}: {datatype} bytes must be 0 or 1")
    return arr.reshape(shape)


def write_tensor(arr: np.ndarray, wire: np.dtype[Any] | None) -> bytes:
    """The bytes of ``arr`` as ``wire`` (little-endian), or as length-prefixed text for None."""
    if wire is not None:
        return np.ascontiguousarray(arr, dtype=wire).tobytes()
    parts: list[bytes] = []
    for value in arr.ravel().tolist():
        data = value if isinstance(value, bytes) else text(value).encode("utf-8")
        parts += (_LENGTH.pack(len(data)), data)
    return b"".join(parts)


def text(value: object) -> str:
    """A BYTES element as text: bytes are UTF-8 (bad bytes replaced), other values ``str``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _unpack_strings(label: str, shape: list[int], count: int, raw: memoryview) -> np.ndarray:
    if count * _LENGTH.size > len(raw):  # before allocating anything for ``count``
        raise InvalidInput(f"{label}: shape {shape} needs {count} elements, got {len(raw)} bytes")
    out = np.empty(count, dtype=object)
    pos = 0
    try:
        for i in range(count):
            (length,) = _LENGTH.unpack_from(raw, pos)
            pos += _LENGTH.size
            if pos + length > len(raw):
                raise InvalidInput(f"{label}: element {i} runs past its binary data")
            out[i] = str(raw[pos : pos + length], "utf-8")
            pos += length
    except struct.error:
        raise InvalidInput(f"{label}: binary data ends inside element {i}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{label}: element {i} is not UTF-8 text") from None
    if pos != len(raw):
        raise InvalidInput(f"{label}: {len(raw) - pos} bytes left after {count} elements")
    return out.reshape(shape)
