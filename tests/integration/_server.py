"""Test helper: run ``modelport serve`` as a real process on a free port, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
    ca: Path | None = None,
) -> Iterator[Server]:
    """Start the server, wait until /v2/health/live answers, and always stop it.

    With ``ca`` (the certificate the server presents), the server is reached over HTTPS.
    """
    port = free_port()
    log = home / f"server-{port}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    environ.update({"MODELPORT_HOME": str(home), **(env or {})})
    exe = Path(sys.executable).with_name("modelport")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(exe), "serve", *args, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    scheme = "http" if ca is None else "https"
    server = Server(f"{scheme}://127.0.0.1:{port}", process, log)
    verify: bool | ssl.SSLContext = True if ca is None else ssl.create_default_context(cafile=ca)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.logs()}")
            try:
                live = httpx.get(f"{server.url}/v2/health/live", timeout=1, verify=verify)
                if live.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not live after {ready_timeout} s:\n{server.logs()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
