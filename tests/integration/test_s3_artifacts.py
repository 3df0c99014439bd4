"""The S3 artifact store against moto's standalone server: whole-or-nothing artifacts,
objects never overwritten, every download checked against the registry's SHA-256, a host
cache that is bounded and safe to fill from several processes, clear errors that never show
a secret, and registrations from many processes (and one killed mid-upload) on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest

from modelport.config import Settings
from modelport.errors import ArtifactCorrupted, ArtifactNotFound, StoreError, VersionNotReady
from modelport.registry import Registry
from modelport.registry.s3_store import MARKER, S3ArtifactStore
from tests.integration._cli import cli
from tests.s3server import CREDENTIALS, S3Server

pytestmark = pytest.mark.s3

WORKER = Path(__file__).with_name("registry_worker.py")
MIB = 1024**2
Data = tuple[np.ndarray, np.ndarray]


def _bucket(uri: str) -> str:
    return uri.removeprefix("s3://").split("/")[0]


def _objects(server: S3Server, uri: str) -> list[str]:
    listed: dict[str, Any] = server.client().list_objects_v2(Bucket=_bucket(uri))  # type: ignore[attr-defined]
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def _store(uri: str, tmp_path: Path, **settings: Any) -> S3ArtifactStore:
    return S3ArtifactStore(uri, Settings(cache_dir=tmp_path / "cache", **settings))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "modelport.json").write_text("{}")
    (src / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    return src


def test_put_read_delete_under_the_prefix(
    s3_uri: str, s3_server: S3Server, source: Path, tmp_path: Path
) -> None:
    store = _store(s3_uri, tmp_path)
    store.put_dir("models/1/v1", source)
    assert store.exists("models/1/v1")
    assert _objects(s3_server, s3_uri) == [
        f"prod/models/1/v1/{MARKER}",
        "prod/models/1/v1/modelport.json",
        "prod/models/1/v1/sub/weights.bin",
    ]
    path = store.local_path("models/1/v1")
    assert path.is_relative_to(tmp_path / "cache")
    assert (path / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    assert oct(path.stat().st_mode & 0o777) == "0o700"

    store.delete("models/1/v1")
    assert not store.exists("models/1/v1")
    assert _objects(s3_server, s3_uri) == []
    assert not path.exists(), "the cached copy goes with it"
    store.delete("models/1/v1")  # deleting nothing is fine
    with pytest.raises(ArtifactNotFound, match="models/1/v1"):
        store.local_path("models/1/v1")


def test_a_taken_key_is_never_overwritten(
    s3_uri: str, s3_server: S3Server, source: Path, tmp_path: Path
) -> None:
    store = _store(s3_uri, tmp_path)
    store.put_dir("models/1/v1", source)
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    (other / "modelport.json").write_text('{"other": true}')
    (other / "extra.bin").write_bytes(b"new")
    with pytest.raises(StoreError, match="already taken"):
        store.put_dir("models/1/v1", other)
    client: Any = s3_server.client()
    body = client.get_object(Bucket=_bucket(s3_uri), Key="prod/models/1/v1/modelport.json")
    assert body["Body"].read() == b"{}"
    assert "prod/models/1/v1/extra.bin" not in _objects(s3_server, s3_uri), "its own are removed"


def test_large_files_go_up_in_parts_and_come_back_whole(
    s3_uri: str, source: Path, tmp_path: Path
) -> None:
    big = np.random.default_rng(1).bytes(11 * MIB + 123)
    (source / "sub" / "big.bin").write_bytes(big)
    store = _store(s3_uri, tmp_path, s3={"multipart_threshold_bytes": 5 * MIB})
    store.put_dir("models/2/v1", source)
    head: Any = store._client.head_object(Bucket=store.bucket, Key="prod/models/2/v1/sub/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), "three parts of 5 MiB"
    assert (store.local_path("models/2/v1") / "sub" / "big.bin").read_bytes() == big


def test_invalid_keys_are_refused(s3_uri: str, source: Path, tmp_path: Path) -> None:
    store = _store(s3_uri, tmp_path)
    for key in ("../x", "models/../../x", "/etc", ".tmp/x", "", "a\x00b"):
        with pytest.raises(StoreError, match="invalid artifact key"):
            store.put_dir(key, source)
        with pytest.raises(StoreError, match="invalid artifact key"):
            store.exists(key)


def test_a_marker_naming_a_path_outside_its_folder_is_refused(
    s3_uri: str, s3_server: S3Server, tmp_path: Path
) -> None:
    client: Any = s3_server.client()
    marker = {"files": [{"path": "../../escape.txt", "size": 1}]}
    client.put_object(
        Bucket=_bucket(s3_uri), Key=f"prod/models/3/v1/{MARKER}", Body=json.dumps(marker)
    )
    store = _store(s3_uri, tmp_path)
    with pytest.raises(StoreError, match="escapes its folder"):
        store.local_path("models/3/v1")
    assert not list((tmp_path / "cache").rglob("escape.txt"))
    assert list((tmp_path / "cache").rglob(".tmp/get-*")) == [], "nothing half-written kept"


def _register(registry: Registry, model: object, data: Data) -> str:
    return registry.register("churn", model, input_example=data[0][:2]).artifact_key


def test_a_changed_object_is_refused_naming_the_file(
    s3_uri: str, s3_server: S3Server, tmp_path: Path, tiny_model: object, tiny_data: Data
) -> None:
    settings = Settings(home=tmp_path / "home", artifact_uri=s3_uri)
    with Registry(settings) as registry:
        key = _register(registry, tiny_model, tiny_data)
    client: Any = s3_server.client()
    name = next(n for n in _objects(s3_server, s3_uri) if n.endswith(".skops"))
    body = bytearray(client.get_object(Bucket=_bucket(s3_uri), Key=name)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket=_bucket(s3_uri), Key=name, Body=bytes(body))  # same size

    with Registry(settings) as registry, pytest.raises(ArtifactCorrupted, match=Path(name).name):
        registry.load("churn")
    assert not list(settings.resolved_cache_dir().glob(f"s3/*/prod/{key}")), "evicted"


def test_a_changed_cached_copy_is_refused_then_fetched_again(
    s3_uri: str, tmp_path: Path, tiny_model: object, tiny_data: Data
) -> None:
    settings = Settings(home=tmp_path / "home", artifact_uri=s3_uri)
    with Registry(settings) as registry:
        _register(registry, tiny_model, tiny_data)
        expected = registry.load("churn").predict(tiny_data[0])
        cached = next(registry.artifact_path("churn").rglob("*.skops"))
        data = bytearray(cached.read_bytes())
        data[len(data) // 2] ^= 0xFF
        cached.write_bytes(bytes(data))
        with pytest.raises(ArtifactCorrupted, match=cached.name):
            registry.load("churn")
        # the bad copy was evicted: the next load downloads a good one
        np.testing.assert_array_equal(registry.load("churn").predict(tiny_data[0]), expected)


def test_the_cache_keeps_to_its_size_evicting_the_least_recently_used(
    s3_uri: str, tmp_path: Path
) -> None:
    store = _store(s3_uri, tmp_path, cache_max_bytes=2500)
    for n in (1, 2, 3):
        src = tmp_path / f"src{n}"
        src.mkdir()
        (src / "weights.bin").write_bytes(bytes([n]) * 1000)
        store.put_dir(f"models/{n}/v1", src)
    one = store.local_path("models/1/v1")
    two = store.local_path("models/2/v1")
    os.utime(one, (time.time() - 100, time.time() - 100))
    os.utime(two, (time.time() - 200, time.time() - 200))
    assert store.local_path("models/1/v1") == one  # a hit: now the most recent
    three = store.local_path("models/3/v1")  # 3000 bytes > 2500: the oldest use goes
    assert one.exists()
    assert three.exists()
    assert not two.exists()
    assert store.cache.size() == 2000
    assert (store.local_path("models/2/v1") / "weights.bin").read_bytes() == b"\x02" * 1000


def _fetch_in_child(uri: str, cache: str, key: str) -> str:
    store = S3ArtifactStore(uri, Settings(cache_dir=Path(cache)))
    path = store.local_path(key)
    return f"{path}:{(path / 'weights.bin').stat().st_size}"


def test_processes_filling_the_cache_at_once_share_one_complete_copy(
    s3_uri: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(np.random.default_rng(2).bytes(3 * MIB))
    _store(s3_uri, tmp_path).put_dir("models/7/v1", src)
    cache = tmp_path / "shared-cache"
    with ProcessPoolExecutor(4) as pool:
        answers = list(
            pool.map(_fetch_in_child, [s3_uri] * 8, [str(cache)] * 8, ["models/7/v1"] * 8)
        )
    assert len(set(answers)) == 1
    assert answers[0].endswith(f":{3 * MIB}")
    assert [p.name for p in cache.rglob(".tmp/*")] == [], "no download left half-done"


def test_errors_name_the_bucket_and_endpoint_never_a_secret(
    s3_uri: str, s3_server: S3Server, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist") as missing:
        _store("s3://no-such-bucket/p", tmp_path).put_dir("models/1/v1", source)
    assert s3_server.endpoint in str(missing.value)

    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    settings = {"s3": {"max_attempts": 1, "connect_timeout_s": 2}}
    with pytest.raises(StoreError, match="cannot reach s3://") as unreachable:
        _store(s3_uri, tmp_path, **settings).exists("models/1/v1")
    assert dead in str(unreachable.value)

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no AWS credentials for s3://"):
        _store(s3_uri, tmp_path).put_dir("models/1/v1", source)
    for error in (missing.value, unreachable.value):
        assert secret not in str(error)


@pytest.mark.parametrize(
    ("mode", "sends_crc"), [("when_required", False), ("when_supported", True), (None, True)]
)
def test_the_checksum_setting_decides_whether_uploads_carry_crc_headers(
    s3_uri: str,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str | None,
    sends_crc: bool,
) -> None:
    """Several S3-compatible stores reject the CRC headers recent botocore sends by default:
    MODELPORT_S3__CHECKSUM=when_required leaves them off every upload the store makes."""
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION", raising=False)
    if mode is not None:
        monkeypatch.setenv("MODELPORT_S3__CHECKSUM", mode)
    store = S3ArtifactStore(s3_uri, Settings(cache_dir=tmp_path / "cache"))
    sent: list[dict[str, str]] = []
    store._client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    store.put_dir("models/1/v1", source)
    assert len(sent) == 3  # two files and the marker
    for headers in sent:
        crc = [h for h in headers if h.lower().startswith("x-amz-checksum-")]
        assert bool(crc) is sends_crc, headers
    assert (store.local_path("models/1/v1") / "sub" / "weights.bin").read_bytes() == b"\x00\x01"


class _Throttling(BaseHTTPRequestHandler):
    """Forwards requests to moto, but answers the first ``refuse`` PUTs with S3's 503
    SlowDown (what AWS sends when a prefix is written too fast)."""

    upstream = ""
    refuse = 0
    seen: ClassVar[list[tuple[str, int]]] = []

    def do_PUT(self) -> None:
        if type(self).refuse > 0:
            type(self).refuse -= 1
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.seen.append((self.path, 503))
            slow = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(slow)))
            self.end_headers()
            self.wfile.write(slow)
            return
        self._forward()

    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        answer = httpx.request(
            self.command, f"{self.upstream}{self.path}", content=body, headers=headers
        )
        self.seen.append((self.path, answer.status_code))
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.content)

    def log_message(self, *args: object) -> None:
        pass


def test_throttled_uploads_are_retried_with_backoff_up_to_max_attempts(
    s3_uri: str, s3_server: S3Server, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _Throttling.upstream, _Throttling.seen = s3_server.endpoint, []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_port}")
        _Throttling.refuse = 2
        store = _store(s3_uri, tmp_path, s3={"max_attempts": 3})
        store.put_dir("models/1/v1", source)  # two 503s, then through
        assert [code for _, code in _Throttling.seen].count(503) == 2
        assert store.exists("models/1/v1")
        assert (store.local_path("models/1/v1") / "modelport.json").read_text() == "{}"

        _Throttling.refuse = 5
        once = _store(s3_uri, tmp_path, s3={"max_attempts": 1})
        with pytest.raises(StoreError, match=rf"s3://{_bucket(s3_uri)}") as failed:
            once.put_dir("models/1/v2", source)
        assert "SlowDown" in str(failed.value)
        assert not store.exists("models/1/v2")
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_the_cli_registers_and_serves_names_from_s3(
    s3_uri: str,
    s3_server: S3Server,
    tmp_path: Path,
    tiny_model: object,
    tiny_data: Data,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import modelport

    folder = tmp_path / "out" / "churn"
    modelport.save(tiny_model, folder, input_example=tiny_data[0][:2])
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELPORT_ARTIFACT_URI", s3_uri)
    registered = cli(capsys, "register", str(folder), "--name", "churn")
    assert registered.code == 0, registered.err
    assert any(n.endswith(MARKER) for n in _objects(s3_server, s3_uri))
    assert not (tmp_path / "home" / "artifacts").exists(), "nothing went to the local folder"
    loaded = modelport.load("churn")
    np.testing.assert_array_equal(loaded.predict(tiny_data[0]), tiny_model.predict(tiny_data[0]))  # type: ignore[attr-defined]

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MODELPORT_S3__MAX_ATTEMPTS", "1")
    monkeypatch.setenv("MODELPORT_CACHE_DIR", str(tmp_path / "cold-cache"))
    refused = cli(capsys, "register", str(folder), "--name", "churn")
    assert refused.code == 6
    assert "cannot reach s3://" in refused.err
    assert "Traceback" not in refused.err


def _wait_for(path: Path, child: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"worker exited early ({child.returncode}): {child.communicate()[1]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("worker never reached the crash point")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_processes_registering_on_postgresql_and_s3(
    fresh_pg_database: str, s3_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPORT_CACHE_DIR", str(tmp_path / "cache"))
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "register", fresh_pg_database, s3_uri, str(go), "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    go.touch()
    numbers: list[int] = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        numbers += json.loads(out)
    assert sorted(numbers) == list(range(1, 17)), "contiguous: none lost or duplicated"
    with Registry(registry_uri=fresh_pg_database, artifact_uri=s3_uri) as registry:
        versions = registry.list_versions("churn", max_results=100).items
        assert {v.status for v in versions} == {"ready"}
        assert len({v.artifact_key for v in versions}) == 16
        for version in versions:
            assert registry.load(f"churn/{version.version}").version == version.version


@pytest.mark.slow
@pytest.mark.postgres
def test_a_register_killed_mid_upload_leaves_nothing_loadable_and_cleanup_removes_it(
    fresh_pg_database: str,
    s3_uri: str,
    s3_server: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "stopped"
    child = subprocess.Popen(
        [sys.executable, str(WORKER), "hang-upload", fresh_pg_database, s3_uri, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(marker, child)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    left = _objects(s3_server, s3_uri)
    assert left, "killed after its first file was stored"
    assert not any(n.endswith(MARKER) for n in left), "but before the marker"

    monkeypatch.setenv("MODELPORT_REGISTRY_URI", fresh_pg_database)
    monkeypatch.setenv("MODELPORT_ARTIFACT_URI", s3_uri)
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    with Registry(Settings()) as registry:
        assert registry.get_version("churn", 1).status == "pending"
        assert not registry.artifacts.exists("models/1/v1")
        with pytest.raises(VersionNotReady, match="pending"):
            registry.load("churn/1")
    time.sleep(1.5)  # the shortest window cleanup takes is a second
    cleaned = cli(capsys, "cleanup", "--older-than", "1s")
    assert cleaned.code == 0, cleaned.err
    assert _objects(s3_server, s3_uri) == []
    with Registry(Settings()) as registry:
        assert registry.get_version("churn", 1).status == "failed"


def test_cleanup_removes_markerless_leftovers_only_when_old(
    s3_uri: str, s3_server: S3Server, source: Path, tmp_path: Path
) -> None:
    from datetime import timedelta

    store = _store(s3_uri, tmp_path)
    store.put_dir("models/1/v1", source)
    client: Any = s3_server.client()
    client.put_object(Bucket=_bucket(s3_uri), Key="prod/models/1/v2/half.bin", Body=b"x")
    assert store.purge_partial(timedelta(hours=1)) == 0, "may still be uploading"
    # moto dates every multipart upload in 2010, so only the zero window is checked for them
    started = client.create_multipart_upload(Bucket=_bucket(s3_uri), Key="prod/models/1/v3/big")
    assert store.purge_partial(timedelta(0)) == 2
    assert _objects(s3_server, s3_uri) == sorted(
        f"prod/models/1/v1/{n}" for n in (MARKER, "modelport.json", "sub/weights.bin")
    )
    uploads = client.list_multipart_uploads(Bucket=_bucket(s3_uri)).get("Uploads", [])
    assert started["UploadId"] not in [u["UploadId"] for u in uploads]
