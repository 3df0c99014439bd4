"""The route table: the fast path, the auth check and /openapi.json are all derived from it.

Every test iterates :data:`modelport.serving.routes.TABLE`, so a route added to the table is
checked here without a hand-kept list to update.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from modelport.errors import Unauthenticated
from modelport.registry import ApiKey
from modelport.serving import docs, mlflow, v2
from modelport.serving._http import Call, Reply
from modelport.serving.app import ERROR_BODIES
from modelport.serving.asgi import InferenceRoutes
from modelport.serving.auth import Authenticator
from modelport.serving.routes import TABLE, Route, RouteTable

TABLE_ROUTES = [pytest.param(r, id=f"{'|'.join(r.methods)} {r.path}") for r in TABLE]
DOCUMENTED = [p for p in TABLE_ROUTES if p.values[0].doc is not None]  # type: ignore[union-attr]
AUTH_ANSWERS = {"401", "403", "429"}


def concrete(route: Route) -> str:
    """A path the route answers: ``{name}`` is ``churn``, ``{version}`` is 1."""
    path = re.sub(r"{version(:int)?}", "1", route.path).replace("{name}", "churn")
    return f"{path}/index.html" if route.mount else path


def spec_path(route: Route) -> str:
    """The route's path as /openapi.json writes it (no convertors)."""
    return re.sub(r"{(\w+):\w+}", r"{\1}", route.path)


class Inner:
    """The app behind the fast path or the authenticator: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def request(app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    """The status ``app`` answers ``method path`` with, in process."""

    async def go() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.request(method, path, headers=headers)).status_code

    return asyncio.run(go())


@pytest.mark.parametrize("route", DOCUMENTED)
def test_every_documented_route_is_in_openapi_with_its_auth_answers(route: Route) -> None:
    with_auth = docs.openapi_document(auth=True)
    without = docs.openapi_document(auth=False)
    for method in route.methods:
        op = with_auth["paths"][spec_path(route)][method.lower()]
        plain = without["paths"][spec_path(route)][method.lower()]
        assert route.doc is not None
        assert op["summary"] == route.doc.summary
        assert not AUTH_ANSWERS & set(plain["responses"])  # no auth, no such answers
        if route.scope is None:
            assert not AUTH_ANSWERS & set(op["responses"]), "an open route needs no key"
            assert "security" not in op
        else:
            assert set(op["responses"]) >= AUTH_ANSWERS
            assert op["x-modelport-scope"] == route.scope
            assert op["security"] == [{"apiKey": []}]
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"{(\w+)", route.path))


def test_the_document_describes_the_table_and_nothing_else() -> None:
    described = {
        (method.upper(), path)
        for path, item in docs.openapi_document(auth=True)["paths"].items()
        for method in item
    }
    assert described == {(m, spec_path(r)) for r in TABLE if r.doc is not None for m in r.methods}
    assert docs.openapi_document(auth=True)["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
    }


@pytest.mark.parametrize("route", TABLE_ROUTES)
def test_the_fast_path_serves_exactly_the_routes_marked_fast(route: Route) -> None:
    calls: list[Call] = []

    async def handler(call: Call) -> Reply:
        calls.append(call)
        return Reply(b"{}", {"Content-Type": "application/json"})

    inner = Inner()
    handlers = {r.handler: handler for r in TABLE if r.fast}
    app = InferenceRoutes(
        inner, table=RouteTable(), handlers=handlers, error_bodies=ERROR_BODIES, max_body_bytes=1
    )
    status = request(app, route.methods[0], concrete(route))
    if route.fast:
        assert (status, inner.paths) == (200, [])
        assert calls[0].name == (None if route.default_model else "churn")
        assert calls[0].version == (1 if "{version" in route.path else None)
    else:
        assert (status, inner.paths, calls) == (299, [concrete(route)], [])


def test_the_fast_path_answers_another_method_with_405() -> None:
    async def never(call: Call) -> Reply:
        raise AssertionError("a GET reached the inference handler")

    handlers = {r.handler: never for r in TABLE if r.fast}
    app = InferenceRoutes(
        Inner(), table=RouteTable(), handlers=handlers, error_bodies=ERROR_BODIES, max_body_bytes=1
    )
    assert request(app, "GET", "/v2/models/churn/infer") == 405


class Keys:
    """A registry whose only key is ``key``, with the given scope (its ``keys`` is itself)."""

    def __init__(self, scope: str) -> None:
        now = datetime.now(UTC)
        self.key = ApiKey("k", "id", scope, None, now)  # type: ignore[arg-type]
        self.keys = self

    def authenticate(self, token: str) -> ApiKey:
        if token != "good":
            raise Unauthenticated("unknown key")
        return self.key


def authenticator(scope: str = "read") -> tuple[Authenticator, Inner]:
    inner = Inner()
    keys = Keys(scope)
    app = Authenticator(
        inner,
        lambda: keys,  # type: ignore[arg-type,return-value]
        table=RouteTable(),
        default_model=lambda: "churn",
        error_bodies=ERROR_BODIES,
        cache_seconds=0,
    )
    return app, inner


@pytest.mark.parametrize("route", TABLE_ROUTES)
def test_every_route_needing_a_scope_refuses_a_request_without_a_key(route: Route) -> None:
    app, inner = authenticator()
    for method in route.methods:
        status = request(app, method, concrete(route))
        if route.scope is None:
            assert (status, inner.paths[-1]) == (299, concrete(route)), "open: no key needed"
        else:
            assert status == 401, (method, route.path)
    if route.scope is not None:
        assert inner.paths == []


@pytest.mark.parametrize("scope", ["predict", "read", "admin"])
@pytest.mark.parametrize("route", TABLE_ROUTES)
def test_a_key_reaches_the_routes_its_scope_allows(route: Route, scope: str) -> None:
    app, _ = authenticator(scope)
    allowed = route.scope in (None, scope) or scope == "admin"
    for method in route.methods:
        status = request(app, method, concrete(route), {"Authorization": "Bearer good"})
        assert status == (299 if allowed else 403), (scope, method, route.path)


def test_refusals_on_mlflow_routes_have_mlflow_s_error_body() -> None:
    app, _ = authenticator()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/invocations")

    refused = asyncio.run(go())
    assert refused.status_code == 401
    body = refused.json()
    assert refused.content == mlflow.encode_error(body["message"], 401, body["code"])


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/models/churn/infer", "read"),  # a fast route's path, another method
        ("PUT", "/v2/models/churn", "admin"),
        ("GET", "/no/such/route", "read"),
        ("DELETE", "/no/such/route", "admin"),
        ("HEAD", "/v2/health/live", None),
        ("POST", "/ui/index.html", "admin"),
    ],
)
def test_a_request_no_route_takes_needs_read_to_look_and_admin_otherwise(
    method: str, path: str, scope: str | None
) -> None:
    assert RouteTable().scope_for(method, path)[0] == scope


def test_a_route_without_a_handler_or_a_handler_without_a_route_is_refused() -> None:
    table = RouteTable([Route("/a", "a"), Route("/b", "b")])
    with pytest.raises(ValueError, match=r"routes without a handler: \['b'\]"):
        table.starlette_routes({"a": v2.error_body})
    with pytest.raises(ValueError, match=r"handlers of no route: \['c'\]"):
        table.starlette_routes({"a": v2.error_body, "b": v2.error_body, "c": v2.error_body})


def test_a_fast_route_may_name_only_a_model_and_a_version() -> None:
    table = RouteTable([Route("/x/{other}", "x", fast=True)])
    with pytest.raises(ValueError, match=r"one path, \{name\} and \{version\}"):
        table.fast_matcher(lambda r: r)
