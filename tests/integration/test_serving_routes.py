"""The route table, served: ``modelport serve --auth`` (in process) answers and documents every
route of :data:`modelport.serving.routes.TABLE` as the table says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.serving.routes import TABLE, Route

from ._server import Server, serving


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("routes")
    x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    model = LogisticRegression().fit(x.astype(np.float32), y)
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn", model, input_example=x[:3].astype(np.float32))
    return home


@pytest.fixture(scope="module")
def admin(home: Path) -> dict[str, str]:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        _, token = registry.keys.create_key("admin", "admin")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(home: Path, admin: dict[str, str]) -> Iterator[Server]:
    with serving(home, "churn", "--auth") as srv:
        yield srv


def concrete(route: Route) -> str:
    path = re.sub(r"{version(:int)?}", "1", route.path).replace("{name}", "churn")
    return f"{path}/index.html" if route.mount else path


def test_the_served_document_lists_every_route_with_its_auth_answers(
    server: Server, admin: dict[str, str]
) -> None:
    doc = httpx.get(f"{server.url}/openapi.json", headers=admin).json()
    for route in TABLE:
        if route.doc is None:
            continue
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        for method in route.methods:
            responses = set(doc["paths"][path][method.lower()]["responses"])
            assert ({"401", "403", "429"} <= responses) == (route.scope is not None), path
    served = doc["paths"]["/v2/models/churn/infer"]["post"]  # the model's own operation
    assert {"401", "403", "429"} <= set(served["responses"])
    assert served["x-modelport-scope"] == "predict"


def test_every_route_the_table_scopes_refuses_a_request_without_a_key(server: Server) -> None:
    for route in TABLE:
        for method in route.methods:
            r = httpx.request(method, f"{server.url}{concrete(route)}", timeout=30)
            if route.scope is None:
                # 307: /ui redirects to /ui/; 503: not ready yet
                assert r.status_code in (200, 307, 503), (method, route.path, r.text)
            else:
                assert r.status_code == 401, (method, route.path, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
