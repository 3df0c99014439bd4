"""What the benchmarks that start servers share: a free loopback port, stopping a server the
way an orchestrator does (SIGTERM, then SIGKILL if it does not exit), and timing a
``modelport serve`` from its start until it answers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

MODELPORT = str(Path(sys.executable).with_name("modelport"))
"""The console script of the Python running the benchmark."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds for the drain, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def seconds_until(
    serve_args: list[str],
    env: dict[str, str],
    log: Path,
    answered: Callable[[httpx.Client, str], bool],
    timeout: float,
) -> float:
    """Seconds from starting ``modelport serve SERVE_ARGS`` on a free port until
    ``answered(client, base_url)`` is true (asked every 10 ms); the server is always
    stopped. Exits naming ``log`` if the server dies or ``timeout`` passes."""
    port = free_port()
    started = time.monotonic()
    with log.open("ab") as out:
        server = subprocess.Popen(
            [MODELPORT, "serve", *serve_args, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < started + timeout:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with {server.returncode}; see {log}")
                try:
                    if answered(client, f"http://127.0.0.1:{port}"):
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise SystemExit(f"no answer in {timeout:.0f} s; see {log}")
    finally:
        stop(server)
