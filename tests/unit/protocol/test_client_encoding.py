"""The client's request building and response reading, against an ``httpx.MockTransport``.

These check only encoding and decoding (what goes on the wire, what comes back as arrays);
the client against a real server is tested with the server itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.client import Client
from modelport.errors import Conflict, InvalidInput, ModelportError, NotFound
from modelport.protocol import v2, v2_binary

METADATA = {
    "name": "m",
    "versions": ["1"],
    "platform": "sklearn",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
}


class FakeServer:
    """Answers metadata and echoes each request's inputs back as outputs."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.error: tuple[int, bytes] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error:
            return httpx.Response(self.error[0], content=self.error[1])
        if request.url.path.endswith("/infer"):
            length = request.headers.get(v2_binary.HEADER_LENGTH)
            decoded = v2.decode_request(request.content, int(length) if length else None)
            body, headers = v2.encode_response("m", "1", decoded.inputs, decoded)
            return httpx.Response(200, content=body, headers=headers)
        if request.url.path.endswith("/ready") or request.url.path == "/v2/health/live":
            return httpx.Response(200)
        return httpx.Response(200, content=orjson.dumps(METADATA))


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(server: FakeServer) -> Iterator[Client]:
    with Client("http://test/", api_key="k", transport=httpx.MockTransport(server)) as c:
        yield c


def test_array_goes_to_the_single_input_narrowed_to_its_datatype(
    client: Client, server: FakeServer
) -> None:
    got = client.predict("m", np.array([[1.0, 2.0]]))
    assert got["x"].dtype == np.float32
    np.testing.assert_array_equal(got["x"], [[1, 2]])
    metadata_call, infer_call = server.requests
    assert metadata_call.url.path == "/v2/models/m"
    assert infer_call.url.path == "/v2/models/m/infer"
    assert infer_call.headers["authorization"] == "Bearer k"
    assert v2_binary.HEADER_LENGTH not in infer_call.headers  # small: JSON
    client.predict("m", np.array([[1.0, 2.0]]), version=1)
    assert [r.url.path for r in server.requests[2:]] == [
        "/v2/models/m/versions/1",
        "/v2/models/m/versions/1/infer",
    ]
    client.predict("m", np.array([[1.0, 2.0]]))
    assert server.requests[-1].url.path == "/v2/models/m/infer"  # metadata was cached


def test_large_requests_go_binary_both_ways(client: Client, server: FakeServer) -> None:
    big = np.ones((20_000, 2))
    got = client.predict("m", big)
    assert v2_binary.HEADER_LENGTH in server.requests[-1].headers
    request = server.requests[-1]
    header = orjson.loads(request.content[: int(request.headers[v2_binary.HEADER_LENGTH])])
    assert header["parameters"] == {"binary_data_output": True}
    assert got["x"].shape == big.shape
    client.predict("m", big, binary=False)
    assert v2_binary.HEADER_LENGTH not in server.requests[-1].headers


def test_dataframe_and_dict_inputs(client: Client) -> None:
    frame = pd.DataFrame({"age": [3, 4], "city": ["a", "b"]})
    got = client.predict("m", frame, outputs=["city"], binary=True)
    assert list(got) == ["city"]
    assert got["city"].tolist() == ["a", "b"]
    got = client.predict("m", {"x": [[1, 2]], "s": np.array(["t"])})
    assert got["x"].dtype == np.float32  # the declared FP32, not int64
    assert got["s"].tolist() == ["t"]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, InvalidInput), (404, NotFound), (409, Conflict), (503, ModelportError)],
)
def test_errors_map_to_the_exception_tree(
    client: Client, server: FakeServer, status: int, error: type[ModelportError]
) -> None:
    server.error = (status, orjson.dumps({"error": "model 'm' says no"}))
    with pytest.raises(error, match="model 'm' says no"):
        client.metadata("m")


def test_non_json_error_body(client: Client, server: FakeServer) -> None:
    server.error = (502, b"bad gateway")
    with pytest.raises(ModelportError, match="bad gateway"):
        client.metadata("m")


def test_multi_input_model_needs_a_dict(client: Client) -> None:
    two = {**METADATA, "inputs": [{"name": "a"}, {"name": "b"}]}
    client._metadata["two", None] = two
    with pytest.raises(InvalidInput, match=r"model 'two' takes 2 inputs \(a, b\); pass a dict"):
        client.predict("two", np.zeros(2))


def test_probes(client: Client) -> None:
    assert client.live()
    assert client.ready("m")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = Client("http://test", transport=httpx.MockTransport(refuse))
    assert not down.live()
    assert not down.ready("m")
    down.close()
