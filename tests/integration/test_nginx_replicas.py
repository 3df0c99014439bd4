"""Three replicas behind nginx, as in production: one PostgreSQL registry, one artifact
store, ``modelport serve m@production`` three times on loopback, and Debian's nginx in
front (installed by ``make test``). A bounded client loop predicts through nginx while the
alias moves twice and one replica is stopped with SIGTERM and started again on its port:
no request fails, and every replica, asked directly, ends on the last version."""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import modelport

from ._server import Server, free_port, running_server
from .test_serving_replicas import _answering_version, _follows_within, _wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # Debian puts it in /usr/sbin
DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.access(NGINX, os.X_OK),
        reason="needs nginx (Debian's package: `make system-deps`, which `make test` runs)",
    ),
]

REQUESTS = 3000
CLIENTS = 4
FAIL_TIMEOUT_S = 1
"""The documented ``fail_timeout``: how long nginx leaves out a replica that failed."""
BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 1]}]}

# The documented config goes inside this one, which keeps nginx in the foreground and every
# file it writes in the test's folder.
NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user {user} {group};
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/nginx-access.log;
    client_body_temp_path {prefix}/nginx-body;
    proxy_temp_path {prefix}/nginx-proxy;
    fastcgi_temp_path {prefix}/nginx-fastcgi;
    uwsgi_temp_path {prefix}/nginx-uwsgi;
    scgi_temp_path {prefix}/nginx-scgi;
{documented}
}}
"""


def _documented_config() -> str:
    """The nginx block of docs/deployment.md's "Behind nginx"."""
    section = DOCS.read_text().split("\n## Behind nginx\n", 1)[1]
    block = re.search(r"^```nginx\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block is not None, "docs/deployment.md: no nginx block under 'Behind nginx'"
    return block.group(1)


def _nginx_conf(prefix: Path, port: int, replicas: list[int]) -> Path:
    """The documented config on the test's ports, answering with the replicas nginx tried."""
    documented = _documented_config()
    assert f"fail_timeout={FAIL_TIMEOUT_S}s;" in documented
    ports = iter(replicas)
    documented, count = re.subn(
        r"\b10\.0\.0\.1\d:8000\b", lambda _: f"127.0.0.1:{next(ports)}", documented
    )
    assert count == len(replicas), documented
    listen = "    listen 80;\n"
    assert listen in documented, documented
    documented = documented.replace(
        listen,
        f"    listen 127.0.0.1:{port};\n    add_header X-Upstream $upstream_addr always;\n",
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            prefix=prefix,
            documented=documented,
            user=pwd.getpwuid(os.geteuid()).pw_name,  # its workers write under tmp_path
            group=grp.getgrgid(os.getegid()).gr_name,
        )
    )
    return conf


@contextmanager
def _nginx(prefix: Path, replicas: list[int]) -> Iterator[str]:
    """nginx in the foreground, balancing over ``replicas``; its URL. Stopped gracefully."""
    port = free_port()
    conf = _nginx_conf(prefix, port, replicas)
    log = prefix / "nginx-error.log"
    process = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(prefix), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        _wait_for(listening, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()


def _register_three(settings: modelport.Settings) -> None:
    """Versions 1, 2 and 3 of ``m``, each predicting its own number, ``production`` -> 1."""
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    with modelport.Registry(settings) as registry:
        for version in (1, 2, 3):
            model = LinearRegression().fit(x, np.full(len(x), float(version)))
            registry.register("m", model, input_example=x[:2])
        registry.set_alias("m", "production", 1)


@dataclass
class Answer:
    status: int
    tried: list[str]  # the replicas nginx tried, the one that answered last
    version: int | None  # what the model predicted: the version it is
    at: float = field(default_factory=time.monotonic)

    @property
    def upstream(self) -> str:
        return self.tried[-1]


def _predict(client: httpx.Client) -> Answer:
    response = client.post("/v2/models/m/infer", json=BODY)
    version = None
    if response.status_code == 200:
        body = response.json()
        version = round(body["outputs"][0]["data"][0])
        assert str(version) == body["model_version"]  # the prediction names the version
    tried = response.headers.get("x-upstream", "").split(", ")
    return Answer(response.status_code, tried, version)


class Load:
    """``REQUESTS`` predictions through nginx from ``CLIENTS`` threads (one keep-alive
    connection each). No request past a gate is sent until the scenario opens it, so each
    step of the scenario runs under load and none is left until the load is over."""

    def __init__(self, url: str, gates: list[int]) -> None:
        self.url = url
        self.gates = {n: threading.Event() for n in gates}
        self.answers: list[list[Answer]] = [[] for _ in range(CLIENTS)]
        self.errors: list[BaseException] = []
        self.sent = 0
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, error: type[BaseException] | None, *rest: object) -> None:
        if error is not None:  # the scenario failed: send nothing more
            self._stopped.set()
        for gate in self.gates.values():
            gate.set()
        for thread in self._threads:
            thread.join(timeout=300)

    def when_sent(self, n: int) -> None:
        _wait_for(lambda: self.sent >= n, timeout=120)

    def _client(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while (n := next(self._next)) < REQUESTS and not self._stopped.is_set():
                for gate in (g for at, g in self.gates.items() if n >= at):
                    gate.wait(timeout=120)
                try:
                    self.answers[i].append(_predict(client))
                except BaseException as exc:  # the test reports it, not the thread
                    self.errors.append(exc)
                with self._lock:
                    self.sent += 1


class Replicas:
    """``modelport serve m@production`` on three fixed loopback ports; one can be stopped
    with SIGTERM and started again on its port."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.ports = [free_port() for _ in range(3)]
        self.servers: list[Server] = []
        self._stops: list[ExitStack] = []
        self._starts = Counter[int]()

    def __enter__(self) -> Replicas:
        for i in range(3):
            self.servers.append(self._start(i))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stop in self._stops:
            stop.close()

    def _start(self, i: int) -> Server:
        self._starts[i] += 1
        home = self.home / f"replica-{i}-{self._starts[i]}"  # each start keeps its own log
        home.mkdir()
        stop = ExitStack()
        self._stops.append(stop)
        args = ("m@production",)
        return stop.enter_context(running_server(home, *args, env=self.env, port=self.ports[i]))

    def wait_until_on(self, version: str) -> None:
        """Until each replica, asked directly, answers with ``version``."""
        for server in self.servers:
            assert _follows_within(server.url, version, 30), server.logs()

    def stop(self, i: int) -> None:
        """SIGTERM: the replica closes its port, drains, and exits 0."""
        process = self.servers[i].process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, self.servers[i].logs()

    def start(self, i: int) -> None:
        """The same command again, on the same port, until it is live."""
        self.servers[i] = self._start(i)


def test_alias_moves_and_a_restart_behind_nginx_lose_no_request(
    tmp_path: Path, fresh_pg_database: str
) -> None:
    artifacts = tmp_path / "artifacts"  # one store for every replica (a shared folder)
    settings = modelport.Settings(
        home=tmp_path / "admin", registry_uri=fresh_pg_database, artifact_uri=str(artifacts)
    )
    _register_three(settings)
    env = {
        "MODELPORT_REGISTRY_URI": fresh_pg_database,
        "MODELPORT_ARTIFACT_URI": str(artifacts),
        "MODELPORT_SERVING__POLL_INTERVAL_S": "3600",  # only a notification moves them
    }
    with (
        Replicas(tmp_path, env) as replicas,
        _nginx(tmp_path, replicas.ports) as url,
        modelport.Registry(settings) as registry,
    ):
        started = time.monotonic()
        # Each step runs while requests flow; the next gate opens once every replica has
        # followed the move, so each version answers some of the requests through nginx.
        with Load(url, gates=[600, 1500, 2400]) as load:
            load.when_sent(300)
            registry.set_alias("m", "production", 2)
            replicas.wait_until_on("2")
            load.gates[600].set()

            load.when_sent(900)
            stopped = time.monotonic()
            replicas.stop(1)
            load.when_sent(1100)  # some requests while it is gone, more while it starts
            replicas.start(1)
            restarted = time.monotonic()
            time.sleep(FAIL_TIMEOUT_S)  # nginx sends to it again once this has passed
            load.gates[1500].set()

            load.when_sent(2000)
            registry.set_alias("m", "production", 3)
            replicas.wait_until_on("3")
            load.gates[2400].set()
        seconds = time.monotonic() - started

        assert not load.errors, load.errors[:3]
        answers = [answer for client in load.answers for answer in client]
        assert len(answers) == REQUESTS
        failed = Counter(a.status for a in answers if a.status != 200)
        assert not failed, f"{failed.total()} of {REQUESTS} requests failed: {failed}"
        assert {a.version for a in answers} == {1, 2, 3}
        # Each client saw each replica only move forward (v1, v2, v3, never back).
        for client in load.answers:
            for upstream in {a.upstream for a in client}:
                versions = [a.version for a in client if a.upstream == upstream]
                assert versions == sorted(versions), upstream  # type: ignore[type-var]
        addresses = [f"127.0.0.1:{port}" for port in replicas.ports]
        served = Counter(a.upstream for a in answers)
        assert set(served) == set(addresses), served
        back = [a for a in answers if a.upstream == addresses[1] and a.at > restarted]
        assert back, "the restarted replica got no request through nginx"
        for server in replicas.servers:  # asked directly, each ends on the new version
            assert _answering_version(server.url) == "3", server.logs()
    retried = sum(len(a.tried) > 1 for a in answers)
    while_down = sum(stopped < a.at < restarted for a in answers)
    print(  # noqa: T201 (measurement)
        f"{REQUESTS} requests through nginx in {seconds:.1f} s, {retried} retried by nginx, "
        f"{while_down} answered while a replica was down; answered by "
        f"{sorted(served.values())}, {len(back)} by the restarted replica"
    )
