"""The client's half of the V2 protocol: write inference requests, read their responses.

These mirror :func:`modelport.protocol.v2.decode_request` and
:func:`~modelport.protocol.v2.encode_response`, with the same tensor code; the format is
described in :mod:`modelport.protocol.v2` and :mod:`modelport.protocol.v2_binary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.errors import InvalidInput
from modelport.protocol import v2


def encode_request(
    inputs: Mapping[str, np.ndarray],
    *,
    outputs: list[str] | None = None,
    binary: bool = False,
    binary_outputs: bool = False,
    request_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Write an inference request for ``inputs``; returns the body and its headers."""
    doc: dict[str, Any] = {}  # Any: JSON values of several types
    if request_id is not None:
        doc["id"] = request_id
    if binary_outputs:
        doc["parameters"] = {"binary_data_output": True}
    arrays = {n: np.asarray(a) for n, a in inputs.items()}
    doc["inputs"], tail = v2.encode_tensors(arrays, dict.fromkeys(arrays, binary))
    if outputs is not None:
        doc["outputs"] = [{"name": n} for n in outputs]
    return v2.join(doc, tail)


def decode_response(
    body: bytes, header_length: int | None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # Any: the rest of the JSON document
    """Read an inference response: the outputs as arrays, and the other top-level fields."""
    doc, tail = v2.split(body, header_length)
    if not isinstance(doc, dict):
        raise InvalidInput("inference response must be a JSON object")
    outputs = v2.decode_tensors(doc.pop("outputs", None), "outputs", "output", tail)
    return outputs, doc
