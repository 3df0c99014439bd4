"""A small synchronous client for a modelport server, speaking the V2 inference protocol.

    >>> with Client("http://localhost:8080") as client:
    ...     client.predict("churn", features)["label"]

The client learns each model's input names and datatypes from ``GET /v2/models/{name}`` once,
so a bare array can be sent to a single-input model and floats are narrowed on the client
(float64 -> FP32 halves the bytes on the wire). Large requests switch to the binary tensor
extension on their own.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from modelport._extras import require

try:
    import httpx
except ImportError:
    require("client")  # names modelport[client]
    raise

from modelport.errors import Conflict, InvalidInput, ModelportError, NotFound, from_code
from modelport.protocol import v2, v2_binary, v2_client

BINARY_THRESHOLD = 64 * 1024
"""Requests whose tensors hold more bytes than this go binary unless ``binary`` says otherwise."""

_ERRORS: dict[int, type[ModelportError]] = {400: InvalidInput, 404: NotFound, 409: Conflict}


class Outputs(dict[str, np.ndarray]):
    """A model's outputs by name, and which request and version produced them."""

    request_id: str | None
    """The request's id (``X-Request-ID``): what ``feedback`` labels later."""
    version: int | None
    """The model version that answered."""

    def __init__(
        self, outputs: Mapping[str, np.ndarray], request_id: str | None, version: int | None
    ) -> None:
        super().__init__(outputs)
        self.request_id = request_id
        self.version = version


class Client:
    """Calls a modelport server over HTTP; errors come back as :class:`ModelportError`.

    Args:
        url: the server's base URL, e.g. ``http://localhost:8080``.
        timeout: seconds for each request.
        api_key: sent as ``Authorization: Bearer <api_key>``.
        transport: an httpx transport, for tests or custom networking.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), timeout=timeout, headers=headers, transport=transport
        )
        self._metadata: dict[tuple[str, int | None], dict[str, Any]] = {}  # Any: JSON

    def predict(
        self,
        name: str,
        data: Any,  # Any: an array, a DataFrame, or a dict of arrays (see below)
        *,
        version: int | None = None,
        outputs: list[str] | None = None,
        binary: bool | None = None,
        request_id: str | None = None,
    ) -> Outputs:
        """Run ``data`` through model ``name`` and return its outputs by name.

        ``data`` is a numpy array (for a model with one input), a DataFrame or a list of
        records (dicts: one tensor per column), or a dict of arrays keyed by input name.
        ``binary`` forces the binary tensor extension on or off for inputs and outputs; by
        default it is used past 64 KiB. ``request_id`` is sent as ``X-Request-ID`` (the server
        makes one otherwise); the result carries it as ``.request_id``, with ``.version``, so
        that :meth:`feedback` can label the prediction later.
        """
        metadata = self._model(name, version)
        inputs = _cast(_named(name, data, metadata), metadata)
        if binary is None:
            binary = sum(_size(a) for a in inputs.values()) > BINARY_THRESHOLD
        body, headers = v2_client.encode_request(
            inputs, outputs=outputs, binary=binary, binary_outputs=binary
        )
        if request_id is not None:
            headers = {**headers, "X-Request-ID": request_id}
        response = self._http.post(_path(name, version) + "/infer", content=body, headers=headers)
        _raise_for_status(response)
        length = response.headers.get(v2_binary.HEADER_LENGTH)
        result, rest = v2_client.decode_response(response.content, int(length) if length else None)
        answered = rest.get("model_version")
        return Outputs(
            result,
            response.headers.get("x-request-id"),
            int(answered) if isinstance(answered, str) and answered.isdigit() else None,
        )

    def feedback(self, name: str, labels: Mapping[str, Any]) -> dict[str, Any]:  # Any: JSON
        """Post the true labels of earlier predictions (request id -> label, or a list of
        labels for a request of several rows), for live accuracy; returns how many were
        accepted and the ids the server never logged (``unknown_ids``)."""
        items = [{"id": rid, "label": _plain(label)} for rid, label in labels.items()]
        response = self._http.post(
            f"/v2/models/{quote(name, safe='')}/feedback", json={"labels": items}
        )
        _raise_for_status(response)
        answer: dict[str, Any] = orjson.loads(response.content)  # Any: JSON
        return answer

    def metadata(self, name: str, version: int | None = None) -> dict[str, Any]:  # Any: JSON
        """The model's V2 metadata: versions, platform, inputs and outputs."""
        response = self._http.get(_path(name, version))
        _raise_for_status(response)
        metadata: dict[str, Any] = orjson.loads(response.content)  # Any: JSON
        self._metadata[name, version] = metadata
        return metadata

    def ready(self, name: str, version: int | None = None) -> bool:
        """Whether the model can serve now; False when it is unknown or the server is down."""
        try:
            return self._http.get(_path(name, version) + "/ready").status_code == 200
        except httpx.TransportError:
            return False

    def live(self) -> bool:
        """Whether the server answers its liveness probe."""
        try:
            return self._http.get("/v2/health/live").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _model(self, name: str, version: int | None) -> dict[str, Any]:  # Any: JSON
        cached = self._metadata.get((name, version))
        return cached if cached is not None else self.metadata(name, version)


def _path(name: str, version: int | None) -> str:
    path = f"/v2/models/{quote(name, safe='')}"
    return path if version is None else f"{path}/versions/{version}"


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = orjson.loads(response.content)
        message = str(body["error"])
        code = str(body.get("code", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        message, code = response.text or response.reason_phrase, ""
    if code:
        raise from_code(code, message)
    raise _ERRORS.get(response.status_code, ModelportError)(message)  # an older server


def _plain(label: Any) -> Any:  # Any: a JSON value
    """numpy scalars and arrays as the JSON numbers and lists they stand for."""
    return label.tolist() if isinstance(label, np.ndarray | np.generic) else label


def _named(name: str, data: object, metadata: Mapping[str, Any]) -> dict[str, np.ndarray]:
    # pandas only when the data needs it: a DataFrame means the caller loaded it already, and
    # records are read into one (one tensor per column, each with the type pandas infers).
    if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        import pandas as pd

        data = pd.DataFrame(data)
    pd_module = sys.modules.get("pandas")
    if pd_module is not None and isinstance(data, pd_module.DataFrame):
        return {str(c): data[c].to_numpy() for c in data.columns}
    if isinstance(data, Mapping):
        return {str(k): np.asarray(v) for k, v in data.items()}
    names = [spec["name"] for spec in metadata.get("inputs", [])]
    if len(names) != 1:
        raise InvalidInput(
            f"model {name!r} takes {len(names)} inputs ({', '.join(names)}); "
            "pass a dict of arrays keyed by input name"
        )
    return {names[0]: np.asarray(data)}


def _cast(inputs: dict[str, np.ndarray], metadata: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Narrow numbers to the datatype the model declares when no value can change."""
    declared = {spec["name"]: spec["datatype"] for spec in metadata.get("inputs", [])}
    out = {}
    for name, arr in inputs.items():
        datatype = declared.get(name)
        if arr.dtype.kind == "U":
            arr = arr.astype(object)
        elif datatype not in (None, "BYTES") and arr.dtype.kind in "biuf":
            target = np.dtype(v2.to_dtype(datatype))
            # Floats narrow (as the server would); ints only when every value fits.
            if target.kind == "f" or (
                target.kind in "iu"
                and arr.dtype.kind in "biu"
                and (not arr.size or _fits(arr, target))
            ):
                arr = arr.astype(target, copy=False)
        out[name] = arr
    return out


def _fits(arr: np.ndarray, target: np.dtype[Any]) -> bool:
    info = np.iinfo(target)
    return bool(info.min <= arr.min() and arr.max() <= info.max)


def _size(arr: np.ndarray) -> int:
    if arr.dtype.kind == "O":
        return sum(len(v) if isinstance(v, str | bytes) else 8 for v in arr.ravel().tolist())
    return int(arr.nbytes)
