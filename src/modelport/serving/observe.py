"""Outermost ASGI layer: a request id, one JSON access-log line and the request metrics.

Every request, refused by auth or not, passes here once. Its id is the client's
``X-Request-ID`` when that is a sane token (1-128 of ``[A-Za-z0-9._:-]``), else a new random
one; inner layers read it from the ASGI scope (V2's ``infer`` may take the body's ``id``
when no header came), and it is echoed in the ``X-Request-ID`` response header. The access
line and the Prometheus counters need the model and version, which only the inference route
knows once the model is found: it leaves them in the scope too (see :func:`tag`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import re
import sys
import time
from typing import Any, BinaryIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.monitoring.metrics import ServerMetrics

REQUEST_ID = "modelport.request_id"
_ID_GIVEN = "modelport.request_id_given"
_MODEL = "modelport.model"
_VERSION = "modelport.version"
_PROTOCOL = "modelport.protocol"
_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_FLUSH_AFTER_S = 0.2
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _reseed() -> None:  # a forked worker must not repeat its parent's ids
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_reseed)


class AccessLog:
    """JSON lines on stdout, written to its buffer and flushed within 0.2 s.

    Through ``logging`` with a flush per line, the log cost a quarter of the server's
    throughput on one-row requests (a handler call and a write system call each); buffered,
    a line costs its ``orjson.dumps``.
    """

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stdout.buffer
        self._flush_due = False
        atexit.register(self.flush)

    def write(self, record: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        if not self._flush_due:
            self._flush_due = True
            try:
                asyncio.get_running_loop().call_later(_FLUSH_AFTER_S, self.flush)
            except RuntimeError:  # no loop (tests, embedding): write through
                self.flush()

    def flush(self) -> None:
        self._flush_due = False
        with contextlib.suppress(ValueError, OSError):  # closed at exit: nothing to save
            self._out.flush()


def new_request_id() -> str:
    """32 hex characters, unique: a random prefix per process and a counter (a uuid4 per
    request cost 2 µs, a tenth of what the server spends around a one-row prediction)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def request_id(scope: Scope) -> str:
    """The id of the request ``scope`` belongs to (set by :class:`RequestObserver`)."""
    rid = scope.get(REQUEST_ID)
    if rid is None:  # the app used without the observer in front (tests, embedding)
        rid = scope[REQUEST_ID] = new_request_id()
    return str(rid)


def adopt_request_id(scope: Scope, body_id: str | None) -> None:
    """Use a V2 body's ``id`` as the request id when no ``X-Request-ID`` header came."""
    if body_id is not None and not scope.get(_ID_GIVEN) and _SANE_ID.fullmatch(body_id):
        scope[REQUEST_ID] = body_id


def tag(scope: Scope, protocol: str, model: str | None = None, version: int | None = None) -> None:
    """Record what the request was about, for the access line and the metrics."""
    scope[_PROTOCOL] = protocol
    if model is not None:
        scope[_MODEL] = model
        scope[_VERSION] = version


class RequestObserver:
    """Assigns the request id, then logs and counts the response."""

    def __init__(
        self, app: ASGIApp, *, metrics: ServerMetrics, access_log: AccessLog | None = None
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._log = access_log
        # Metric children by label values: ``labels()`` validates and locks on every call.
        # Bounded: ``model`` is a served model or "", statuses and protocols are few.
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = None
        for key, value in scope["headers"]:
            if key == _ID_HEADER:
                text = value.decode("latin-1")
                rid = text if _SANE_ID.fullmatch(text) else None
                break
        scope[_ID_GIVEN] = rid is not None
        scope[REQUEST_ID] = rid or new_request_id()
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # In place, as Starlette's own middleware do: the list is this response's.
                message.setdefault("headers", []).append(
                    (_ID_HEADER, scope[REQUEST_ID].encode("latin-1"))
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        model = scope.get(_MODEL, "")
        version = scope.get(_VERSION)
        protocol = scope.get(_PROTOCOL)
        if protocol is not None:  # an inference route: count it
            text_version = "" if version is None else str(version)
            key = (model, text_version, protocol, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    self._metrics.requests.labels(model, text_version, protocol, str(status)),
                    self._metrics.latency.labels(model, protocol),
                )
            children[0].inc()
            children[1].observe(elapsed)
        if self._log is not None:
            line: dict[str, Any] = {
                "ts": time.time(),
                "request_id": scope[REQUEST_ID],
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000.0, 3),
            }
            if model:
                line["model"] = model
                line["version"] = version
            if protocol is not None:
                line["protocol"] = protocol
            self._log.write(line)
