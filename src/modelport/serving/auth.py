"""Who may call what: API keys, checked once, in front of every route.

Every HTTP request passes through :class:`Authenticator` before any route runs, inference and
Starlette routes alike. The scope a request needs, and the model it is about, come from the
route table (:mod:`modelport.serving.routes`) that also builds the routers, so no route can
be forgotten here: each route declares its scope, and a request no route takes by its method
and path needs ``read`` for GET and HEAD and ``admin`` otherwise. In the table:

- open, no key: ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /ping``,
  ``GET /health`` (probes must work without secrets), and the dashboard's static files under
  ``/ui/`` and ``/ui/api/config`` (they hold no data; the page asks for a key and sends it to
  the dashboard's data route, ``/ui/api/models``);
- ``predict``: ``POST .../infer``, ``POST ...:predict``, ``POST [/models/{name}]/invocations``,
  and ``POST /v2/models/{name}/feedback`` (whoever may ask may say what the answer was);
- ``admin``: ``POST /v2/repository/models/{name}/load|unload``;
- ``read``: every other route, including ``POST /v2/repository/index`` (the V2 spec lists
  models with a POST): metadata, repository index, ``/openapi.json``, ``/docs``.

The model a request is about is its route's ``{name}``, the first model served for
``/invocations``, and none for server-wide routes such as ``/v2``.

A key limited to one model sees only that model wherever a server-wide route lists models
(the repository index, ``/metrics``, the dashboard's data): the accepted key is left in the
request's state, and those routes ask :func:`visible_model`.

The key comes as ``Authorization: Bearer <key>``: missing, malformed, unknown or revoked is
401 (with ``WWW-Authenticate: Bearer``), a scope or model the key does not allow is 403. Keys
are verified by the registry (a salted hash, compared in constant time) and the answer is
cached for ``cache_seconds``, so a request costs no database round trip and a revoked key
stops working within that time.

With the registry out of reach, checks fail closed. A key verified less than
``cache_seconds`` ago keeps what it was allowed (and a refused one stays refused) until
that verification is ``cache_seconds`` old, counted from when the registry answered: an
outage never extends it. Any other key, including a cached one past that age, gets 503
(:class:`~modelport.errors.RegistryUnavailable`, with ``Retry-After``), never 200 and not
401: the key may well be valid, and a 401 would tell a client to give up on it rather than
retry. For one second after such a failure, further uncached keys get 503 at once, without
another try, so a flood of them cannot hold every thread for the connect timeout.

A key created with a ``rate_limit`` (requests per second) gets a token bucket holding one
second's worth of requests: beyond it, 429 with ``Retry-After``. Buckets live in each server
process, so with ``--workers N`` a key may get up to N times its limit in total.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.errors import (
    Forbidden,
    ModelportError,
    RateLimited,
    RegistryUnavailable,
    Unauthenticated,
)
from modelport.registry import ApiKey, Registry
from modelport.serving._http import ErrorBody, error_reply
from modelport.serving._outage import RegistryOutage
from modelport.serving.observe import tag
from modelport.serving.routes import Protocol, Resolved, RouteTable

_CACHE_LIMIT = 10_000
_OUTAGE_HOLD_S = 1.0
"""After a check found the registry out of reach, uncached keys get 503 this long without
another try."""
_KEY_STATE = "modelport_api_key"
_MODEL_OF_STATE = "modelport_model_of"


def visible_model(request: Request) -> str | None:
    """The only model this request may see, for a key limited to one; None: all of them
    (a key for every model, or a server without auth)."""
    key = request.scope.get("state", {}).get(_KEY_STATE)
    return key.model if isinstance(key, ApiKey) else None


def sees(request: Request, served: str) -> bool:
    """True if this request may see the model served as ``served`` (a key limited to one
    model sees it under any name it is served as)."""
    only = visible_model(request)
    if only is None:
        return True
    model_of = request.scope.get("state", {}).get(_MODEL_OF_STATE)
    return only == (model_of(served) if callable(model_of) else served)


def model_named(resolved: Resolved | None, default_model: Callable[[], str | None]) -> str | None:
    """The model a request is about (None for server-wide routes such as ``/v2``)."""
    if resolved is None:
        return None
    name = resolved.params.get("name")
    if isinstance(name, str):
        return name
    return default_model() if resolved.route.default_model else None


class Authenticator:
    """ASGI middleware: answers 401/403 itself, passes allowed requests to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        registry: Callable[[], Registry],
        *,
        table: RouteTable,
        default_model: Callable[[], str | None],
        error_bodies: Mapping[Protocol, ErrorBody],
        cache_seconds: float = 5.0,
        model_of: Callable[[str], str] = str,
        outage: RegistryOutage | None = None,
    ) -> None:
        self.app = app
        self._registry = registry
        self._default_model = default_model
        # The registry name a served name stands for: a key's --model is a registry name,
        # and a model may be served under another one (deployment.yaml's ``name``).
        self._model_of = model_of
        self._table = table
        self._error_bodies = error_bodies
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._outage = outage if outage is not None else RegistryOutage()
        self._unreachable_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed, resolved = self._table.scope_for(method, path)
        if needed is not None:
            try:
                key = await self._key(scope)
                served = model_named(resolved, self._default_model)
                model = None if served is None else self._model_of(served)
                if not key.allows(needed, model):
                    raise Forbidden(key.name, needed, model)
                if key.rate_limit is not None:
                    self._spend(key, key.rate_limit)
            except ModelportError as exc:
                if resolved is not None and resolved.route.fast and method == "POST":
                    # Counted like any inference request, under model "": a name from an
                    # unauthenticated path must not grow the metrics' label sets.
                    tag(scope, resolved.route.protocol, "")
                await self._refuse(scope, send, exc, resolved)
                return
            state = scope.setdefault("state", {})
            state[_KEY_STATE], state[_MODEL_OF_STATE] = key, self._model_of
        await self.app(scope, receive, send)

    async def _key(self, scope: Scope) -> ApiKey:
        token = _bearer(scope)
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is None or now - cached[1] > self._cache_seconds:
            if now < self._unreachable_until:
                raise RegistryUnavailable()
            loop = asyncio.get_running_loop()
            try:
                key: ApiKey | None = await loop.run_in_executor(None, self._authenticate, token)
            except Unauthenticated:
                key = None
            except Exception as exc:  # fail closed; the cached entry is left to expire
                unavailable = self._outage.check(exc)
                if unavailable is None:
                    raise
                self._unreachable_until = time.monotonic() + _OUTAGE_HOLD_S
                if unavailable is exc:
                    raise
                raise unavailable from exc
            self._outage.recovered()
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            cached = self._cache[token] = (key, now)
        if cached[0] is None:
            raise Unauthenticated("invalid or revoked API key")
        return cached[0]

    def _spend(self, key: ApiKey, per_second: float) -> None:
        bucket = self._buckets.get(key.key_id)
        if bucket is None or bucket.per_second != per_second:
            if len(self._buckets) >= _CACHE_LIMIT:
                self._buckets.clear()
            bucket = self._buckets[key.key_id] = _Bucket(per_second)
        wait = bucket.take(time.monotonic())
        if wait > 0:
            raise RateLimited(key.name, per_second, max(1, math.ceil(wait)))

    def _authenticate(self, token: str) -> ApiKey:
        return self._registry().keys.authenticate(token)

    async def _refuse(
        self, scope: Scope, send: Send, exc: ModelportError, resolved: Resolved | None
    ) -> None:
        path = scope["path"]
        protocol = "v2" if resolved is None else resolved.route.protocol
        reply = error_reply(exc, self._error_bodies[protocol], scope["method"], path)
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
        ]
        if isinstance(exc, Unauthenticated):
            headers.append((b"www-authenticate", b"Bearer"))
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


class _Bucket:
    """A token bucket: ``per_second`` tokens a second, holding at most one second's worth."""

    __slots__ = ("capacity", "level", "per_second", "updated")

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.capacity = max(1.0, per_second)
        self.level = self.capacity
        self.updated = time.monotonic()

    def take(self, now: float) -> float:
        """Spend one token and return 0, or return the seconds until one is available."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_second)
        self.updated = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.per_second


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the Authorization header must be 'Bearer <API key>'")
            return str(token.strip())
    raise Unauthenticated("this server requires an API key: send 'Authorization: Bearer <key>'")
