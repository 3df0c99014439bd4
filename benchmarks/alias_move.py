"""How long an alias move takes to reach every replica: LISTEN/NOTIFY against polling.

Three ``modelport serve m@production`` processes share one fresh PostgreSQL database and one
artifact folder, the topology ``tests/integration/test_nginx_replicas.py`` runs behind nginx.
Each repetition moves ``production`` to a version no replica has loaded yet (version k
predicts k), with ``Registry.set_alias`` in this process, and measures from just before that
call until each replica, asked directly every 10 ms, answers with the new version. A replica
answers with it only once it has loaded and warmed it, so the time includes the load. The
figure of a repetition is the slowest replica's.

- ``notify``: the servers as shipped. The registry sends ``NOTIFY`` in the transaction that
  moves the alias and each server listens on a connection of its own.
- ``polling``: the same servers with the listener off, so they follow a move at their next
  poll (``serving.poll_interval_s``), as they do on SQLite. modelport has no setting for
  this: here the server process starts with ``alias_events.listens`` answering False.

Both keep the poll at ``--poll-interval`` (default 5 s, the setting's default). Before each
move the benchmark waits a random 0 to ``--poll-interval`` seconds, so moves fall at random
points of the replicas' polls. One untimed move per mode comes first.

Run: ``.venv/bin/python benchmarks/alias_move.py [--repeat 10] [--poll-interval 5]``. Needs
the PostgreSQL server at 127.0.0.1:5432 (or ``$MODELPORT_TEST_DATABASE_URL``, an admin URL);
the benchmark's database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg
from psycopg import sql
from sklearn.linear_model import LinearRegression
from sqlalchemy.engine import make_url

import modelport

REPLICAS = 3
PROBE_EVERY_S = 0.01
BODY = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 1]}]}
ADMIN_URL = os.environ.get("MODELPORT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")

# `modelport serve` as the script runs it; in polling mode without the alias listener.
SERVER = """
import sys
from modelport.cli import main
if sys.argv[1] == "polling":
    from modelport.serving import alias_events
    alias_events.listens = lambda registry_uri: False
sys.argv[0] = "modelport"
main(sys.argv[2:])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _database() -> Iterator[str]:
    """A fresh PostgreSQL database's URI, dropped at the end."""
    admin = make_url(ADMIN_URL).set(drivername="postgresql")
    admin = admin if admin.database else admin.set(database="postgres")
    name = f"modelport_bench_{secrets.token_hex(6)}"
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def _register(settings: modelport.Settings, versions: int) -> None:
    """Versions 1..``versions`` of ``m``, each predicting its own number; production -> 1."""
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    with modelport.Registry(settings) as registry:
        for version in range(1, versions + 1):
            model = LinearRegression().fit(x, np.full(len(x), float(version)))
            registry.register("m", model, input_example=x[:2])
        registry.set_alias("m", "production", 1)


def _version(client: httpx.Client) -> int:
    answer = client.post("/v2/models/m/infer", json=BODY)
    answer.raise_for_status()
    return int(answer.json()["model_version"])


@contextmanager
def _replica(folder: Path, mode: str, env: dict[str, str]) -> Iterator[str]:
    """One ``modelport serve m@production`` on a free port until it is ready; its URL."""
    folder.mkdir()
    port = _free_port()
    script = folder / "server.py"
    script.write_text(SERVER)
    log = folder / "server.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    environ.update({"MODELPORT_HOME": str(folder), **env})
    command = [sys.executable, str(script), mode, "serve", "m@production", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in 120 s:\n{log.read_text()}")
            time.sleep(0.1)
        if mode == "notify":  # the listener connects in the background, after start-up
            while "following alias changes" not in log.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not listening:\n{log.read_text()}")
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    listened = "following alias changes" in log.read_text()
    if listened != (mode == "notify"):
        raise RuntimeError(f"{mode}: the server {'did' if listened else 'did not'} listen")


def _move(registry: modelport.Registry, urls: list[str], version: int) -> list[float]:
    """Seconds from the move until each replica answers with ``version``."""
    reached: list[float] = [0.0] * len(urls)
    go = threading.Barrier(len(urls) + 1)
    started = 0.0

    def probe(i: int) -> None:
        with httpx.Client(base_url=urls[i], timeout=30) as client:
            go.wait()
            while _version(client) != version:
                time.sleep(PROBE_EVERY_S)
            reached[i] = time.perf_counter() - started

    threads = [threading.Thread(target=probe, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    registry.set_alias("m", "production", version)
    go.wait()
    for thread in threads:
        thread.join()
    return reached


def _run(
    mode: str,
    folder: Path,
    settings: modelport.Settings,
    versions: Iterator[int],
    repeat: int,
    poll: float,
) -> list[list[float]]:
    env = {
        "MODELPORT_REGISTRY_URI": settings.resolved_registry_uri(),
        "MODELPORT_ARTIFACT_URI": settings.resolved_artifact_uri(),
        "MODELPORT_SERVING__POLL_INTERVAL_S": str(poll),
        "MODELPORT_SERVING__ACCESS_LOG": "false",
    }
    with ExitStack() as stack:
        urls = [
            stack.enter_context(_replica(folder / f"{mode}-{i}", mode, env))
            for i in range(REPLICAS)
        ]
        registry = stack.enter_context(modelport.Registry(settings))
        _move(registry, urls, next(versions))  # untimed: the first swap of each process
        samples: list[list[float]] = []
        for _ in range(repeat):
            time.sleep(random.uniform(0, poll))
            samples.append(_move(registry, urls, next(versions)))
            print(f"  {mode}: " + "  ".join(f"{s:.3f}" for s in samples[-1]), flush=True)
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    options = parser.parse_args()
    modes = ["notify", "polling"]
    with tempfile.TemporaryDirectory(prefix="modelport-alias-") as tmp, _database() as uri:
        folder = Path(tmp)
        settings = modelport.Settings(
            home=folder / "admin", registry_uri=uri, artifact_uri=str(folder / "artifacts")
        )
        _register(settings, 1 + len(modes) * (options.repeat + 1))
        versions = iter(range(2, 2 + len(modes) * (options.repeat + 1)))
        print(
            f"{REPLICAS} replicas, poll_interval_s {options.poll_interval:g}, "
            f"{options.repeat} moves per mode; seconds until each replica answers the new version"
        )
        results = {
            mode: _run(mode, folder, settings, versions, options.repeat, options.poll_interval)
            for mode in modes
        }
    print("\nuntil all replicas answer the new version (the slowest of the three), seconds:")
    for mode, samples in results.items():
        slowest = [max(sample) for sample in samples]
        fastest = [min(sample) for sample in samples]
        print(
            f"  {mode:8} median {statistics.median(slowest):.3f}  max {max(slowest):.3f}  "
            f"min {min(slowest):.3f}   (first replica: median {statistics.median(fastest):.3f})"
        )


if __name__ == "__main__":
    main()
