"""Hostile requests against a real server: each gets a clear 4xx in valid JSON, memory stays
bounded, nothing outside the store is touched, and the server keeps serving.

Requests the HTTP client libraries would not send (a lying ``Content-Length``, a million
chunks) are written byte by byte on a raw socket.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.protocol import v2_client as v2codec

from ._server import Server, running_server
from ._usercode import user_module

pytestmark = pytest.mark.slow

LIMIT = 8 * 1024 * 1024  # the server's body limit in this module
MIB = 1024 * 1024

NONFINITE = """
import numpy as np

from modelport.flavors.pyfunc import PythonModel


class NonFinite(PythonModel):
    def predict(self, inputs):
        return inputs["input"] * np.array([np.nan, np.inf, -np.inf, 1.0])
"""

INFER = {
    "v2": "/v2/models/churn/infer",
    "tf": "/v1/models/churn:predict",
    "mlflow": "/invocations",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hostile")
    x, y = make_classification(n_samples=300, n_features=4, random_state=0)
    model = LogisticRegression().fit(x.astype(np.float32), y)
    nonfinite = user_module(home, NONFINITE).NonFinite()
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn", model, input_example=x[:3].astype(np.float32))
        registry.register("nonfinite", nonfinite, input_example=np.ones((2, 4)))
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    env = {"MODELPORT_SERVING__MAX_BODY_BYTES": str(LIMIT)}
    with running_server(home, "churn", "nonfinite", env=env) as srv:
        yield srv


def strict_json(body: bytes) -> object:
    """Parse as RFC 8259 JSON: the NaN/Infinity tokens Python would accept are refused."""

    def refuse(token: str) -> object:
        raise ValueError(f"not JSON: {token}")

    return json.loads(body, parse_constant=refuse)


def rss_mib(server: Server) -> float:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw(server: Server, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` and ``body`` as they are (from a thread, so an early answer is read
    while the body is still going out) and return the response status and body."""
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=120)

    def send() -> None:
        # OSError: the server answered and closed before taking everything, which is fine
        with contextlib.suppress(OSError):
            sock.sendall(head + body)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()
    finally:
        sender.join()
        sock.close()


def still_serving(server: Server) -> None:
    body, headers = v2codec.encode_request({"input": np.zeros((1, 4), dtype=np.float32)})
    r = httpx.post(f"{server.url}{INFER['v2']}", content=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def valid_body(protocol: str) -> bytes:
    """A valid body for the protocol's inference route."""
    v2body, _ = v2codec.encode_request({"input": np.zeros((1, 4), dtype=np.float32)})
    other = {"tf": b'{"instances": [[0, 0, 0, 0]]}', "mlflow": b'{"inputs": [[0, 0, 0, 0]]}'}
    return other.get(protocol, v2body)


def error_text(protocol: str, body: bytes) -> str:
    doc = strict_json(body)
    assert isinstance(doc, dict), body
    return str(doc["message"] if protocol == "mlflow" else doc["error"])


@pytest.mark.parametrize("protocol", list(INFER))
def test_a_1_gib_content_length_is_refused_before_reading(server: Server, protocol: str) -> None:
    before = rss_mib(server)
    head = (
        f"POST {INFER[protocol]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1024 * MIB}\r\n\r\n"
    ).encode()
    status, body = raw(server, head, b'{"inputs": [')
    assert status == 413, body
    assert f"larger than the limit of {LIMIT} bytes" in error_text(protocol, body)
    assert rss_mib(server) - before < 50
    still_serving(server)


@pytest.mark.parametrize("protocol", list(INFER))
def test_json_nested_100000_levels_deep_is_a_400(server: Server, protocol: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    body = {
        "v2": b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": '
        + deep
        + b"}]}",
        "tf": b'{"instances": ' + deep + b"}",
        "mlflow": b'{"inputs": ' + deep + b"}",
    }[protocol]
    r = httpx.post(
        f"{server.url}{INFER[protocol]}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    assert "invalid JSON" in error_text(protocol, r.content)
    still_serving(server)


def chunked(payload: bytes, size: int) -> bytes:
    """``payload`` as HTTP/1.1 chunks of ``size`` bytes, then the last chunk."""
    parts = [b"%x\r\n%s\r\n" % (size, payload[i : i + size]) for i in range(0, len(payload), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_million_one_byte_chunks_are_read_and_answered(server: Server, home: Path) -> None:
    x = np.array([[0.5, -1.0, 2.0, 0.0]], dtype=np.float32)
    body, _ = v2codec.encode_request({"input": x})
    payload = body + b" " * (1_000_000 - len(body))  # JSON allows trailing whitespace
    head = (
        f"POST {INFER['v2']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    before = rss_mib(server)
    status, answer = raw(server, head, chunked(payload, 1))
    assert status == 200, answer
    got = v2codec.decode_response(answer, None)[0]["predictions"]
    model = modelport.load("churn", settings=modelport.Settings(home=home))
    assert got.tolist() == model.predict(x).tolist()
    assert rss_mib(server) - before < 100
    still_serving(server)


def test_chunks_past_the_limit_are_refused_as_they_stream(server: Server) -> None:
    head = (
        f"POST {INFER['v2']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    before = rss_mib(server)
    status, answer = raw(server, head, chunked(b" " * (LIMIT + MIB), 16))
    assert status == 413, answer
    assert "larger than the limit" in error_text("v2", answer)
    assert rss_mib(server) - before < 100
    still_serving(server)


@pytest.mark.parametrize("protocol", list(INFER))
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_compressed_bodies_are_refused_so_no_bomb_is_inflated(
    server: Server, protocol: str, encoding: str
) -> None:
    bomb = gzip.compress(b" " * (256 * MIB), compresslevel=9)  # 256 MiB in ~250 KiB
    r = httpx.post(
        f"{server.url}{INFER[protocol]}",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
        timeout=60,
    )
    assert r.status_code == 415, r.text
    assert f"Content-Encoding '{encoding}' is not accepted" in error_text(protocol, r.content)
    r = httpx.post(
        f"{server.url}{INFER[protocol]}",
        content=valid_body(protocol),
        headers={"Content-Type": "application/json", "Content-Encoding": "identity"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ([10_000_000, 4], "shape [10000000, 4] needs 40000000 elements, got 4"),
        ([2**62, 2**62], "needs 21267647932558653966460912964485513216 elements, got 4"),
    ],
)
def test_a_huge_shape_with_little_data_is_a_400(
    server: Server, shape: list[int], expected: str
) -> None:
    before = rss_mib(server)
    doc = {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    r = httpx.post(f"{server.url}{INFER['v2']}", json=doc, timeout=30)
    assert r.status_code == 400, r.text
    assert expected in error_text("v2", r.content)
    # the same claim in the binary extension: 16 bytes of data for a huge tensor
    header = {
        "inputs": [
            {"name": "input", "shape": shape, "datatype": "FP32",
             "parameters": {"binary_data_size": 16}},
        ]
    }  # fmt: skip
    head = json.dumps(header).encode()
    r = httpx.post(
        f"{server.url}{INFER['v2']}",
        content=head + np.ones(4, dtype=np.float32).tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert "needs" in error_text("v2", r.content)
    assert rss_mib(server) - before < 50
    still_serving(server)


def test_nan_and_infinity_in_inputs(server: Server) -> None:
    # V2 is strict JSON: the bare tokens are refused; null in FP data stands for NaN
    doc = b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", '
    doc += b'"data": [NaN, 0, 0, 0]}]}'
    r = httpx.post(f"{server.url}{INFER['v2']}", content=doc, timeout=30)
    assert r.status_code == 400, r.text
    assert "invalid JSON" in error_text("v2", r.content)
    for path, body, protocol in [
        (INFER["v2"], b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", '
                      b'"data": [null, 0, 0, 0]}]}', "v2"),
        (INFER["tf"], b'{"instances": [[NaN, Infinity, 0, 0]]}', "tf"),
        (INFER["mlflow"], b'{"inputs": [[NaN, -Infinity, 0, 0]]}', "mlflow"),
    ]:  # fmt: skip
        # LogisticRegression cannot take NaN: the model's own refusal is a 4xx, not a 500
        r = httpx.post(f"{server.url}{path}", content=body, timeout=30,
                       headers={"Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 422, (protocol, r.text)
        message = error_text(protocol, r.content)
        # One line for the client (scikit-learn's message is six sentences and two URLs)...
        assert message == "model 'churn' failed to predict: ValueError: Input X contains NaN."
    # ... and the whole of it, with the traceback, in the server's log.
    assert "Traceback" in server.logs()
    assert "does not accept missing values encoded as NaN" in server.logs()
    still_serving(server)


def test_nan_and_infinity_in_outputs_are_valid_json(server: Server) -> None:
    x = np.ones((1, 4))
    expected = [None, None, None, 1.0]
    body, headers = v2codec.encode_request({"input": x})
    r = httpx.post(f"{server.url}/v2/models/nonfinite/infer", content=body, headers=headers)
    doc = strict_json(r.content)
    assert isinstance(doc, dict), r.text
    assert doc["outputs"][0]["data"] == expected
    # binary outputs keep the exact values
    body, headers = v2codec.encode_request({"input": x}, binary_outputs=True)
    r = httpx.post(f"{server.url}/v2/models/nonfinite/infer", content=body, headers=headers)
    length = int(r.headers["inference-header-content-length"])
    out = next(iter(v2codec.decode_response(r.content, length)[0].values()))
    assert np.isnan(out[0, 0])
    assert out[0, 1:].tolist() == [np.inf, -np.inf, 1.0]
    r = httpx.post(f"{server.url}/v1/models/nonfinite:predict", json={"instances": x.tolist()})
    assert strict_json(r.content) == {"predictions": [expected]}
    r = httpx.post(f"{server.url}/models/nonfinite/invocations", json={"inputs": x.tolist()})
    assert strict_json(r.content) == {"predictions": [expected]}


HOSTILE_NAMES = [
    "..%2F..%2Fetc%2Fpasswd",
    "..",
    "%2E%2E",
    "%2Fetc%2Fpasswd",
    "churn%00",
    "%00",
    "churn%2F..%2F..%2Fx",
    "..%5C..%5Cwindows",
    "a" * 10_000,
]


def test_hostile_model_names_in_paths_are_refused(server: Server, home: Path) -> None:
    outside = home.parent
    before = sorted(p.name for p in outside.iterdir())
    for name in HOSTILE_NAMES:
        for method, path in [
            ("GET", f"/v2/models/{name}"),
            ("GET", f"/v2/models/{name}/ready"),
            ("GET", f"/v2/models/churn/versions/{name}"),
            ("POST", f"/v2/models/{name}/infer"),
            ("POST", f"/v2/models/churn/versions/{name}/infer"),
            ("POST", f"/v1/models/{name}:predict"),
            ("POST", f"/models/{name}/invocations"),
            ("POST", f"/v2/repository/models/{name}/load"),
            ("POST", f"/v2/repository/models/{name}/unload"),
        ]:
            # sent as written: an HTTP client library would resolve '..' before sending
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
            status, body = raw(server, head.encode(), b"{}")
            assert status in (400, 404, 405), (method, path[:80], status, body[:200])
            strict_json(body)
    assert sorted(p.name for p in outside.iterdir()) == before
    still_serving(server)


# -- request heads: bounded before auth and before anything past the limit is kept ------------


def _send_head_until_refused(server: Server, head: bytes, piece: int = 4096) -> tuple[int, bytes]:
    """Send ``head`` in pieces, never finishing it, until the server answers and closes."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # the server closes while we are still sending
            for start in range(0, len(head), piece):
                sock.sendall(head[start : start + piece])
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


def test_an_8_mb_header_is_refused_with_431(server: Server) -> None:
    head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * MIB)
    before = rss_mib(server)
    status, body = _send_head_until_refused(server, head, piece=256 * 1024)
    assert status == 431, body
    assert b"request head exceeds the limit" in body
    assert rss_mib(server) - before < 50
    still_serving(server)


def test_one_header_line_past_the_line_limit_is_refused(server: Server) -> None:
    head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (20 * 1024) + b"\r\n\r\n"
    status, body = raw(server, head)
    assert status == 431, body
    assert b"header 'x-long' exceeds the limit" in body
    still_serving(server)


def test_a_request_line_past_the_line_limit_is_414(server: Server) -> None:
    head = b"GET /v2/health/live?" + b"a" * (20 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, body = raw(server, head)
    assert status == 414, body
    still_serving(server)


def test_ordinary_large_headers_are_fine(server: Server) -> None:
    """Well under the 64 KiB default: 40 headers of 1 KiB (cookies, tokens, tracing)."""
    headers = {f"X-H{i}": "v" * 1024 for i in range(40)}
    assert httpx.get(f"{server.url}/v2/health/live", headers=headers).status_code == 200


def test_many_slow_senders_keep_memory_flat(server: Server) -> None:
    """Sixty connections each hold an unfinished head just under the limit, then push past
    it: the server holds at most the limit per connection and refuses each one."""
    url = urlsplit(server.url)
    before = rss_mib(server)
    socks = [socket.create_connection((url.hostname, url.port), timeout=30) for _ in range(60)]
    try:
        for sock in socks:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(15):  # 15 x 4 KiB = 60 KiB each, still under the 64 KiB limit
            for sock in socks:
                sock.sendall(b"a" * 4096)
        still_serving(server)
        assert rss_mib(server) - before < 50
        for sock in socks:
            with contextlib.suppress(OSError):
                for _ in range(64):
                    sock.sendall(b"a" * 4096)
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 431
    finally:
        for sock in socks:
            sock.close()
    assert rss_mib(server) - before < 50
    still_serving(server)


@pytest.mark.parametrize(
    ("path", "media"),
    [
        (INFER["v2"], "application/xml"),
        (INFER["v2"], "text/csv"),
        (INFER["tf"], "text/xml; charset=utf-8"),
        (INFER["tf"], "application/octet-stream"),  # binary tensors are a V2 extension only
    ],
)
def test_a_body_that_is_not_json_is_415(server: Server, path: str, media: str) -> None:
    r = httpx.post(
        f"{server.url}{path}", content=b"<x>1</x>", headers={"Content-Type": media}, timeout=30
    )
    assert r.status_code == 415, r.text
    assert "is not accepted here; use application/json" in error_text("v2", r.content)


def test_curl_without_a_content_type_still_works(server: Server) -> None:
    """``curl -d`` sends ``application/x-www-form-urlencoded`` unless told otherwise."""
    body = b'{"instances": [[0, 0, 0, 0]]}'
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = httpx.post(f"{server.url}{INFER['tf']}", content=body, headers=form, timeout=30)
    assert r.status_code == 200, r.text
