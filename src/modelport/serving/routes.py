"""The server's one route table: every route declared once, everything else derived from it.

Each :class:`Route` says what a route is: its methods, its path pattern (Starlette's syntax,
``/v2/models/{name}/infer``), the handler that answers it, the API key scope it needs (None:
open), the wire protocol whose error body it answers with, whether the raw-ASGI fast path
serves it, and how ``/openapi.json`` describes it (:class:`Doc`; None: not described). From
:data:`TABLE` come:

- Starlette's router (:meth:`RouteTable.starlette_routes`), for every route not ``fast``;
- the fast path's matcher (:meth:`RouteTable.fast`): one regular expression over the ``fast``
  routes, tried before Starlette sees the request (:mod:`modelport.serving.asgi`);
- the auth check (:meth:`RouteTable.resolve`): the scope a request needs and the model its
  path names (:mod:`modelport.serving.auth`);
- ``/openapi.json`` (:mod:`modelport.serving.docs`), with the 401, 403 and 429 answers of
  every route that needs a key when the server runs with auth.

A handler is named by a key (``"infer"``, ``"model_metadata"``); the app binds the keys to the
functions each protocol module returns from its ``handlers()``, and refuses to start if a key
has no function or a function no route. A ``mount`` route is a prefix served by an ASGI app
(static files): every path under it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.routing import Route as StarletteRoute

T = TypeVar("T")
Scope = Literal["predict", "read", "admin"]
Protocol = Literal["v2", "tfserving", "mlflow"]
RequestHandler = Callable[[Request], Awaitable[Response]]
"""A Starlette route's handler."""
Handlers = Mapping[str, Callable[..., Any]]
"""Handler key → endpoint (``Request`` → ``Response``), or an ASGI app for a ``mount``.
Any: Starlette takes either, and the table cannot type one key apart from another."""

ERRORS = (400, 404, 413, 415, 422, 503, 504)
"""The error answers most routes may give (each with the ``Error`` body)."""


@dataclass(frozen=True, slots=True)
class Query:
    """A query parameter, as ``/openapi.json`` describes it."""

    name: str
    kind: Literal["string", "number", "integer"]
    description: str


@dataclass(frozen=True, slots=True)
class Doc:
    """How ``/openapi.json`` describes a route (path parameters come from its pattern)."""

    summary: str
    body: str | None = None
    """The ``components/schemas`` name of its JSON request body; None: it takes none."""
    query: tuple[Query, ...] = ()
    ok: str = "OK"
    """The 200 answer's description."""
    errors: tuple[int, ...] = ERRORS


@dataclass(frozen=True, slots=True)
class Route:
    """One route: what answers it, who may call it, how it is documented."""

    path: str
    handler: str
    methods: tuple[str, ...] = ("GET",)
    scope: Scope | None = "read"
    """The API key scope it needs; None: open (probes, the dashboard's static files)."""
    protocol: Protocol = "v2"
    """Whose error body it answers with, and the ``protocol`` label of a fast route's metrics."""
    fast: bool = False
    """Served by :class:`~modelport.serving.asgi.InferenceRoutes`, without Starlette."""
    mount: bool = False
    doc: Doc | None = None
    default_model: bool = False
    """Names no model in its path but scores the first one served (``/invocations``)."""


_WINDOW = Query("window", "string", "e.g. 30m, 1h, 7d (default 1h)")
_V2M = "/v2/models/{name}"
_V2V = "/v2/models/{name}/versions/{version}"
_V1M = "/v1/models/{name}"
_V1V = "/v1/models/{name}/versions/{version}"
_INFER = Doc("Inference (Open Inference Protocol)", body="InferenceRequest")
_TF_PREDICT = Doc("TF-Serving-style predict", body="TfPredictRequest")
_V1V_INT = _V1V.replace("{version}", "{version:int}")  # no match but digits: a 404
_MLFLOW_FIRST = Doc("MLflow-style scoring of the first served model", body="MlflowRequest")
_MLFLOW = Doc("MLflow-style scoring of one model", body="MlflowRequest")
_LIVE = Doc("Server liveness", ok="live", errors=())
_SERVER_READY = Doc("Server readiness (all models ready)", ok="ready", errors=(503,))
_LOAD = Doc("Load or re-resolve a model")
_UNLOAD = Doc("Unload a model")
_METRICS = Doc("Prometheus metrics", ok="Prometheus text format", errors=())
_FEEDBACK = Doc("True labels for logged request ids", body="Feedback")
_METADATA = Doc("Model metadata (inputs, outputs, state)")
_READY = Doc("Model readiness")
_INDEX = Doc("Model repository index", errors=())
_TF_STATUS = Doc("TF-Serving-style model status")
_PING = Doc("MLflow-style health check", errors=())
_DRIFT = Doc(
    "Per-feature drift of the logged inputs against the reference profile",
    query=(
        _WINDOW,
        Query("alpha", "number", "flag when p < alpha (default 0.01)"),
        Query("psi", "number", "... and PSI > psi (default 0.1)"),
        Query("min_samples", "integer", "fewer logged rows: no verdict (default 100)"),
    ),
)
_QUALITY = Doc(
    "Live accuracy/F1/AUC or MAE/RMSE from posted labels",
    query=(_WINDOW, Query("buckets", "integer", "chart points")),
)

_POST = ("POST",)
TABLE: tuple[Route, ...] = (
    # Inference: the fast path answers these before Starlette's router sees them.
    Route(f"{_V2M}/infer", "infer", _POST, "predict", fast=True, doc=_INFER),
    Route(f"{_V2V}/infer", "infer", _POST, "predict", fast=True, doc=_INFER),
    Route(f"{_V1M}:predict", "predict", _POST, "predict", "tfserving", True, doc=_TF_PREDICT),
    Route(f"{_V1V}:predict", "predict", _POST, "predict", "tfserving", True, doc=_TF_PREDICT),
    Route("/invocations", "invocations", _POST, "predict", "mlflow", True, doc=_MLFLOW_FIRST,
          default_model=True),
    Route("/models/{name}/invocations", "invocations", _POST, "predict", "mlflow", True,
          doc=_MLFLOW),
    # Open Inference Protocol (V2): health, metadata, the model repository extension.
    Route("/v2/health/live", "live", scope=None, doc=_LIVE),
    Route("/v2/health/ready", "ready", scope=None, doc=_SERVER_READY),
    Route("/v2", "server_metadata", doc=Doc("Server metadata", errors=())),
    Route(_V2M, "model_metadata", doc=_METADATA),
    Route(_V2V, "model_metadata", doc=_METADATA),
    Route(f"{_V2M}/ready", "model_ready", doc=_READY),
    Route(f"{_V2V}/ready", "model_ready", doc=_READY),
    Route("/v2/repository/index", "repository_index", ("GET", "POST"), doc=_INDEX),
    Route("/v2/repository/models/{name}/load", "repository_load", _POST, "admin", doc=_LOAD),
    Route("/v2/repository/models/{name}/unload", "repository_unload", _POST, "admin",
          doc=_UNLOAD),
    # TF-Serving-style model status; MLflow-style health checks.
    Route(_V1M, "model_status", protocol="tfserving", doc=_TF_STATUS),
    Route(_V1V_INT, "model_status", protocol="tfserving", doc=_TF_STATUS),
    Route("/ping", "ping", scope=None, protocol="mlflow", doc=_PING),
    Route("/health", "ping", scope=None, protocol="mlflow", doc=_PING),
    # The API's own description.
    Route("/openapi.json", "openapi"),
    Route("/docs", "docs_page"),
    Route("/docs/static", "docs_static", mount=True),
    # Monitoring and the dashboard. Whoever may ask a model may tell it the true answer.
    Route("/metrics", "metrics", doc=_METRICS),
    Route(f"{_V2M}/drift", "drift", doc=_DRIFT),
    Route(f"{_V2M}/quality", "quality", doc=_QUALITY),
    Route(f"{_V2M}/feedback", "feedback", _POST, "predict", doc=_FEEDBACK),
    Route("/ui/api/models", "ui_models", doc=Doc("Dashboard data", errors=())),
    Route("/ui/api/config", "ui_config", scope=None),  # says only whether a key is needed
    Route("/ui", "ui_root", scope=None),
    Route("/ui", "ui_files", scope=None, mount=True),  # static files: no data
)  # fmt: skip
"""Every route the server answers, in the order they are matched (fast routes first)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The route a request reaches, and the model its path names."""

    route: Route
    allowed: bool
    """False: the path is this route's but the method is not (a 405)."""
    params: Mapping[str, Any]


def method_scope(method: str) -> Scope:
    """The scope a request needs when no route takes its method and path: ``read`` to look,
    ``admin`` for anything else."""
    return "read" if method in ("GET", "HEAD") else "admin"


class RouteTable:
    """A route table compiled once: the matchers every consumer of the table uses."""

    def __init__(self, routes: Sequence[Route] = TABLE) -> None:
        fast = [r for r in routes if r.fast]
        self.routes = (*fast, *(r for r in routes if not r.fast))
        self._compiled = [(r, _compile(r)) for r in self.routes]

    def fast_matcher(self, bind: Callable[[Route], T]) -> FastMatcher[T]:
        """The fast path's matcher, answering with ``bind(route)`` for the route matched."""
        return FastMatcher([(r, bind(r)) for r in self.routes if r.fast])

    def resolve(self, method: str, path: str) -> Resolved | None:
        """The route that answers ``method path`` as the server does: a fast route by its path
        alone, else the first route taking both, else the first taking the path (a 405)."""
        partial: Resolved | None = None
        for route, (regex, _, convertors) in self._compiled:
            found = regex.match(path)
            if found is None:
                continue
            params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            allowed = method in route.methods or (method == "HEAD" and "GET" in route.methods)
            if allowed or route.fast:
                return Resolved(route, allowed, params)
            partial = partial or Resolved(route, False, params)
        return partial

    def scope_for(self, method: str, path: str) -> tuple[Scope | None, Resolved | None]:
        """The scope ``method path`` needs (None: open), and the route it reaches."""
        resolved = self.resolve(method, path)
        if resolved is None or not resolved.allowed:
            return method_scope(method), resolved
        return resolved.route.scope, resolved

    def starlette_routes(self, handlers: Handlers) -> list[BaseRoute]:
        """Starlette's routes for every route not served by the fast path."""
        slow = [r for r in self.routes if not r.fast]
        check_handlers(slow, handlers)
        built: list[BaseRoute] = []
        for route in slow:
            handler = handlers[route.handler]
            if route.mount:
                built.append(Mount(route.path, handler, name=route.handler))
            else:
                built.append(StarletteRoute(route.path, handler, methods=list(route.methods)))
        return built


class FastMatcher(Generic[T]):
    """One regular expression over the fast routes: a path's route by one ``match`` call."""

    def __init__(self, entries: Sequence[tuple[Route, T]]) -> None:
        alternatives = []
        self._targets: dict[str, tuple[T, str | None, str | None]] = {}
        for i, (route, target) in enumerate(entries):
            regex, _, convertors = _compile(route)
            if route.mount or set(convertors) - {"name", "version"}:
                raise ValueError(f"fast route {route.path}: one path, {{name}} and {{version}}")
            pattern = regex.pattern[1:-1].replace("(?P<", f"(?P<r{i}_")  # without ^ and $
            alternatives.append(f"(?P<r{i}>{pattern})")
            self._targets[f"r{i}"] = (
                target,
                f"r{i}_name" if "name" in convertors else None,
                f"r{i}_version" if "version" in convertors else None,
            )
        self._regex = re.compile(f"^(?:{'|'.join(alternatives)})$" if entries else "(?!)")

    def __call__(self, path: str) -> tuple[T, str | None, str | None] | None:
        """What the route of ``path`` was bound to (any method), with its ``{name}`` and
        ``{version}`` text; None if no fast route has this path."""
        found = self._regex.match(path)
        if found is None:
            return None
        # Each alternative is a named group enclosing its parameters: the last one to close.
        target, name, version = self._targets[found.lastgroup]  # type: ignore[index]
        return target, found[name] if name else None, found[version] if version else None


def check_handlers(routes: Sequence[Route], handlers: Mapping[str, object]) -> None:
    """ValueError unless ``handlers`` has a function for each route's key, and no other."""
    keys = {r.handler for r in routes}
    if missing := keys - set(handlers):
        raise ValueError(f"routes without a handler: {sorted(missing)}")
    if unused := set(handlers) - keys:
        raise ValueError(f"handlers of no route: {sorted(unused)}")


def _compile(route: Route) -> tuple[re.Pattern[str], str, dict[str, Any]]:
    # Any: Starlette's convertors are Convertor[Any] (str, int or path).
    return compile_path(f"{route.path}/{{path:path}}" if route.mount else route.path)
