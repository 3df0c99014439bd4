"""Schema-driven fuzzing: schemathesis generates requests from the server's own /openapi.json.

Every operation gets a bounded number of generated requests (valid and invalid bodies, path
parameters, headers); none may get a 5xx or an answer that is not JSON, and the server must
still answer afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport

from ._server import Server, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("fuzz")
    x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    model = LogisticRegression().fit(x.astype(np.float32), y)
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn", model, input_example=x[:3].astype(np.float32))
    with serving(home, "churn") as srv:
        yield srv


def operations(server: Server) -> list[Any]:  # Any: schemathesis' APIOperation, 4 type args
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # Err: the document has an invalid operation
        found.append(result.ok())
    return found


def test_the_schema_covers_the_inference_routes(server: Server) -> None:
    found = {(op.method.upper(), op.path) for op in operations(server)}
    assert ("POST", "/v2/models/{name}/infer") in found
    assert ("POST", "/v1/models/{name}:predict") in found
    assert ("POST", "/invocations") in found
    assert len(found) >= 15


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE,
                                  schemathesis.GenerationMode.NEGATIVE])  # fmt: skip
def test_no_generated_request_gets_a_server_error(
    server: Server, mode: schemathesis.GenerationMode
) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9; drive Hypothesis directly
    # (the same strategies, one bounded run per operation).
    seen: list[tuple[str, int]] = []
    for operation in operations(server):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:  # Any: schemathesis.Case, generic
            response = case.call(base_url=server.url, timeout=30)
            where = (case.method, case.formatted_path, response.text[:300])
            assert response.status_code < 500, where
            # MLflow's /ping answers a bare newline labelled JSON; clients read only its status
            if "json" in " ".join(response.headers.get("content-type", [])) and (
                response.content.strip()
            ):
                orjson.loads(response.content)  # valid JSON, never NaN tokens
            seen.append((case.method, response.status_code))

        try:
            run()
        except Unsatisfiable:  # nothing to get wrong: e.g. a GET without parameters
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.path
    assert len(seen) >= 100  # the run really sent requests
    if mode == schemathesis.GenerationMode.NEGATIVE:
        assert any(400 <= status < 500 for _, status in seen)


def test_the_server_still_serves_after_fuzzing(server: Server) -> None:
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/churn/ready").status_code == 200
