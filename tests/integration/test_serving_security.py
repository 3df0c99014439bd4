"""Auth, TLS and signed models on a real server: every route refuses what it must.

Each test here fails if its protection is removed: routes are enumerated from the server's
own OpenAPI document, so a route added without passing the auth layer shows up as a 200.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.protocol import v2_client as v2codec

from ._server import Server, serving

OPEN = {
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/ping"),
    ("GET", "/health"),
}


def predict_scope(method: str, path: str) -> bool:
    """Calling a model, and telling it the true answer later (feedback)."""
    return method == "POST" and (
        path.endswith("/infer")
        or path.endswith(":predict")
        or path.endswith("/invocations")
        or path.endswith("/feedback")
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("secure")
    x, y = make_classification(n_samples=300, n_features=4, random_state=0)
    x = x.astype(np.float32)
    model = LogisticRegression().fit(x, y)
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn", model, input_example=x[:3])
        registry.register("other", model, input_example=x[:3])
    return home


@pytest.fixture(scope="module")
def keys(home: Path) -> dict[str, str]:
    tokens: dict[str, str] = {}
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        for name, scope, model in [
            ("predict", "predict", None),
            ("predict-other", "predict", "other"),
            ("read", "read", None),
            ("read-other", "read", "other"),
            ("admin", "admin", None),
            ("revoked", "admin", None),
        ]:
            _, tokens[name] = registry.keys.create_key(name, scope, model=model)
        registry.keys.revoke_key("revoked")
    return tokens


@pytest.fixture(scope="module")
def server(home: Path, keys: dict[str, str]) -> Iterator[Server]:
    env = {"MODELPORT_SERVING__AUTH_CACHE_S": "0"}
    with serving(home, "churn", "other", "--auth", env=env) as srv:
        yield srv


def routes(server: Server, admin: str) -> list[tuple[str, str]]:
    """Every (method, concrete path) in the server's OpenAPI document."""
    doc = httpx.get(f"{server.url}/openapi.json", headers=bearer(admin)).json()
    found = []
    for template, item in doc["paths"].items():
        if template.startswith("/v2/models/other/"):
            continue  # the document also describes each served model: the same routes again
        path = template.replace("{name}", "churn").replace("{version}", "1")
        found += [(method.upper(), path) for method in item if method in ("get", "post")]
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(server: Server, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body, extra = v2codec.encode_request({"input": np.zeros((1, 4), dtype=np.float32)})
    if path.endswith(":predict"):
        body = b'{"instances": [[0, 0, 0, 0]]}'
    elif path.endswith("/invocations"):
        body = b'{"inputs": [[0, 0, 0, 0]]}'
    return httpx.request(
        method, f"{server.url}{path}", content=body, headers={**extra, **headers}, timeout=30
    )


def test_the_openapi_document_lists_the_routes_under_test(
    server: Server, keys: dict[str, str]
) -> None:
    found = routes(server, keys["admin"])
    assert ("POST", "/v2/models/churn/infer") in found
    assert ("POST", "/v2/repository/models/churn/load") in found
    assert len(found) >= 15


@pytest.mark.parametrize(
    ("who", "header"),
    [
        ("no key", {}),
        ("bad key", {"Authorization": "Bearer mp_nope_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        ("not bearer", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("revoked", None),
    ],
)
def test_every_route_refuses_a_missing_bad_or_revoked_key(
    server: Server, keys: dict[str, str], who: str, header: dict[str, str] | None
) -> None:
    headers = bearer(keys["revoked"]) if header is None else header
    for method, path in routes(server, keys["admin"]):
        r = call(server, method, path, headers)
        if (method, path) in OPEN:
            assert r.status_code in (200, 503), (who, method, path, r.text)
            continue
        assert r.status_code == 401, (who, method, path, r.status_code, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200


def test_scopes_and_model_restrictions_are_enforced_on_every_route(
    server: Server, keys: dict[str, str]
) -> None:
    for method, path in routes(server, keys["admin"]):
        if (method, path) in OPEN:
            continue
        if predict_scope(method, path):
            allowed, refused = ["predict", "admin"], ["read", "predict-other"]
        elif method == "GET" or path == "/v2/repository/index":
            allowed, refused = ["read", "admin"], ["predict"]
            if "churn" in path:
                refused.append("read-other")
        else:
            allowed, refused = ["admin"], ["read", "predict"]
        for name in refused:
            r = call(server, method, path, bearer(keys[name]))
            assert r.status_code == 403, (name, method, path, r.status_code, r.text)
        for name in allowed:
            r = call(server, method, path, bearer(keys[name]))
            assert r.status_code not in (401, 403), (name, method, path, r.status_code, r.text)


def test_a_key_revoked_while_serving_stops_working(home: Path, server: Server) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        _, token = registry.keys.create_key("short-lived", "read")
    assert httpx.get(f"{server.url}/v2", headers=bearer(token)).status_code == 200
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.keys.revoke_key("short-lived")
    r = httpx.get(f"{server.url}/v2", headers=bearer(token))  # cache is 0 s in this server
    assert r.status_code == 401


def test_a_public_address_turns_auth_on_unless_told_otherwise(
    home: Path, keys: dict[str, str]
) -> None:
    with serving(home, "churn", "--host", "0.0.0.0") as srv:
        url = srv.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/v2/models/churn").status_code == 401
        assert httpx.get(f"{url}/v2/models/churn", headers=bearer(keys["read"])).status_code == 200
    with serving(home, "churn", "--host", "0.0.0.0", "--insecure-no-auth") as srv:
        assert httpx.get(f"{srv.url}/v2/models/churn").status_code == 200
        assert "NO authentication" in srv.logs()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_a_self_signed_certificate(home: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    args = ("churn", "--tls-cert", str(cert), "--tls-key", str(key))
    with serving(home, *args, ca=cert) as srv:
        assert srv.url.startswith("https://")
        context = ssl.create_default_context(cafile=cert)
        body, headers = v2codec.encode_request({"input": np.zeros((2, 4), dtype=np.float32)})
        r = httpx.post(
            f"{srv.url}/v2/models/churn/infer", content=body, headers=headers, verify=context
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["outputs"][0]["data"]) == 2
        plain = srv.url.replace("https://", "http://")
        with pytest.raises(httpx.TransportError, match=r".*"):
            httpx.get(f"{plain}/v2/health/live", timeout=5)


def test_require_signed_serves_only_signed_models(home: Path, tmp_path: Path) -> None:
    from modelport._load import registered_artifact
    from modelport.artifact import signing

    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub"
    signing.generate_keypair(private, public)
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        folder, pin = registered_artifact(registry, "other")
        signing.sign_artifact(folder, private, manifest_sha256=pin)
        x = np.zeros((3, 4), dtype=np.float32)
        registry.register("tampered", LogisticRegression().fit(x, [0, 1, 0]), input_example=x)
        folder, pin = registered_artifact(registry, "tampered")
        signing.sign_artifact(folder, private, manifest_sha256=pin)
    model_file = folder / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit after signing
    model_file.write_bytes(bytes(data))
    args = ("churn", "other", "tampered", "--require-signed", str(public))
    with serving(home, *args) as srv:
        body, headers = v2codec.encode_request({"input": np.zeros((1, 4), dtype=np.float32)})
        signed = httpx.post(f"{srv.url}/v2/models/other/infer", content=body, headers=headers)
        assert signed.status_code == 200, signed.text
        unsigned = httpx.post(f"{srv.url}/v2/models/churn/infer", content=body, headers=headers)
        assert unsigned.status_code == 503
        meta = httpx.get(f"{srv.url}/v2/repository/index").json()
        churn = next(m for m in meta if m["name"] == "churn")
        assert "not signed" in churn["reason"] or "unsigned" in churn["reason"], churn
        tampered = next(m for m in meta if m["name"] == "tampered")
        assert tampered["state"] != "READY", tampered
        assert "model.skops" in tampered["reason"], tampered
        r = httpx.post(f"{srv.url}/v2/models/tampered/infer", content=body, headers=headers)
        assert r.status_code == 503, r.text


def test_every_other_method_needs_a_key_too(server: Server, keys: dict[str, str]) -> None:
    paths = {path for _, path in routes(server, keys["admin"])} | {"/nowhere", "/v2/models/x/y/z"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path in sorted(paths):
            for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "POST", "GET"):
                if (method, path) in OPEN:
                    continue
                r = client.request(method, path)
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                r = client.request(method, path, headers=bearer(keys["predict-other"]))
                assert r.status_code in (401, 403, 404, 405), (method, path, r.status_code)
                assert r.status_code != 200


def test_a_key_rate_limit_answers_429_with_retry_after(home: Path, server: Server) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        _, slow = registry.keys.create_key("slow", "predict", rate_limit=0.01)  # 1 per 100 s
        key, fast = registry.keys.create_key("fast", "predict")
    assert key.rate_limit is None
    body, headers = v2codec.encode_request({"input": np.zeros((1, 4), dtype=np.float32)})
    url = f"{server.url}/v2/models/other/infer"  # an earlier test may have unloaded churn
    first = httpx.post(url, content=body, headers={**headers, **bearer(slow)})
    assert first.status_code == 200, first.text
    second = httpx.post(url, content=body, headers={**headers, **bearer(slow)})
    assert second.status_code == 429, second.text
    assert 90 <= int(second.headers["retry-after"]) <= 100
    assert "API key 'slow' is limited to 0.01 requests per second" in second.json()["error"]
    mlflow = httpx.post(
        f"{server.url}/models/other/invocations",
        json={"inputs": [[0, 0, 0, 0]]},
        headers=bearer(slow),
    )
    assert mlflow.status_code == 429
    assert mlflow.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    for _ in range(5):  # other keys are not held back
        assert httpx.post(url, content=body, headers={**headers, **bearer(fast)}).status_code == 200


def test_a_key_for_one_model_sees_only_that_model_on_server_wide_routes(
    server: Server, keys: dict[str, str]
) -> None:
    """``read-other`` may read model ``other``: the index, /metrics and the dashboard's data
    show it and nothing of ``churn``, as ``GET /v2/models/churn`` answers 403."""
    for name in ("churn", "other"):  # loaded (another test unloads), with traffic
        httpx.post(f"{server.url}/v2/repository/models/{name}/load", headers=bearer(keys["admin"]))
        assert call(server, "POST", f"/v2/models/{name}/infer", bearer(keys["admin"])).is_success
    limited, full = bearer(keys["read-other"]), bearer(keys["read"])
    assert call(server, "GET", "/v2/models/churn", limited).status_code == 403

    def names(headers: dict[str, str]) -> tuple[set[str], set[str], set[str]]:
        index = httpx.post(f"{server.url}/v2/repository/index", headers=headers).json()
        ui = httpx.get(f"{server.url}/ui/api/models", headers=headers).json()
        text = httpx.get(f"{server.url}/metrics", headers=headers).text
        labelled = {
            line.split('model="', 1)[1].split('"', 1)[0]
            for line in text.splitlines()
            if 'model="' in line and not line.startswith("#")
        }
        labelled.discard("")  # requests that named no served model
        return {m["name"] for m in index}, {m["name"] for m in ui["models"]}, labelled

    assert names(limited) == ({"other"}, {"other"}, {"other"})
    assert names(full) == ({"churn", "other"}, {"churn", "other"}, {"churn", "other"})
    described = httpx.get(f"{server.url}/openapi.json", headers=limited).json()["paths"]
    assert "/v2/models/other/infer" in described
    assert "/v2/models/churn/infer" not in described
    # Server-wide figures about no model stay visible.
    assert (
        "modelport_process_resident_memory_bytes"
        in httpx.get(f"{server.url}/metrics", headers=limited).text
    )


def test_refused_inference_requests_are_counted(server: Server, keys: dict[str, str]) -> None:
    """401, 403 and 429 answers are requests too: ``modelport_requests_total`` counts them."""

    def refused(code: str) -> float:
        text = httpx.get(f"{server.url}/metrics", headers=bearer(keys["admin"])).text
        total = 0.0
        for line in text.splitlines():
            counted = line.startswith("modelport_requests_total{") and 'protocol="v2"' in line
            if counted and f'code="{code}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    before = {code: refused(code) for code in ("401", "403")}
    assert call(server, "POST", "/v2/models/churn/infer", {}).status_code == 401
    other = bearer(keys["predict-other"])
    assert call(server, "POST", "/v2/models/churn/infer", other).status_code == 403
    assert refused("401") == before["401"] + 1
    assert refused("403") == before["403"] + 1


def test_a_key_for_a_model_follows_it_under_another_served_name(
    home: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    """``--model churn`` names the registry's model: served as ``scorer`` (a deployment
    file's ``name``), it is still churn, for the routes and for what the key may see."""
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        _, churn_only = registry.keys.create_key("churn-only", "predict", model="churn")
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("models:\n  - {ref: churn, name: scorer}\n")
    env = {"MODELPORT_SERVING__AUTH_CACHE_S": "0"}
    with serving(home, "-c", str(deployment), "--auth", env=env) as srv:
        allowed = call(srv, "POST", "/v2/models/scorer/infer", bearer(churn_only))
        assert allowed.status_code == 200, allowed.text
        refused = call(srv, "POST", "/v2/models/scorer/infer", bearer(keys["predict-other"]))
        assert refused.status_code == 403
        index = httpx.post(f"{srv.url}/v2/repository/index", headers=bearer(keys["read-other"]))
        assert index.json() == []
