"""Test helpers: ``modelport serve`` in this process (:func:`serving`, the default) or as a
real process on its own port (:func:`running_server`, for signals, workers and exit codes)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import httpx
import uvicorn

from modelport.cli import main
from modelport.serving import server as server_module

ADDRESS_IN_USE = 7
"""``modelport serve``'s exit code when its port is taken (see modelport.errors)."""


def free_port() -> int:
    """A port free a moment ago. Another process may take it before it is used: callers
    that start a server on it retry on ADDRESS_IN_USE (see :func:`running_server`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes] | None
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The server's process (this one, for a server in this process)."""
        return os.getpid() if self.process is None else self.process.pid


def _wait_live(
    server: Server,
    exited: Callable[[], int | None],
    verify: bool | ssl.SSLContext,
    timeout: float,
) -> None:
    """Until /v2/health/live answers 200; RuntimeError with the log if the server exits."""
    deadline = time.monotonic() + timeout
    while True:
        code = exited()
        if code is not None:
            raise ServerExited(code, server.logs())
        try:
            live = httpx.get(f"{server.url}/v2/health/live", timeout=1, verify=verify)
            if live.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not live after {timeout} s:\n{server.logs()}")
        time.sleep(0.05)


class ServerExited(RuntimeError):
    def __init__(self, code: int, logs: str) -> None:
        super().__init__(f"server exited with {code}:\n{logs}")
        self.code = code


@contextmanager
def running_server(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
    ca: Path | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    """Start ``modelport serve`` as a process, wait until it is live, and always stop it.

    With ``ca`` (the certificate the server presents), the server is reached over HTTPS.
    A port taken between choosing and binding it is retried with another, unless ``port``
    is given (a replica started again where a load balancer expects it).
    """
    for attempt in range(5):
        try:
            with _process(home, args, env, ready_timeout, ca, port) as server:
                yield server
                return
        except ServerExited as exc:
            if exc.code != ADDRESS_IN_USE or attempt == 4 or port is not None:
                raise


@contextmanager
def _process(
    home: Path,
    args: tuple[str, ...],
    env: dict[str, str] | None,
    ready_timeout: float,
    ca: Path | None,
    port: int | None,
) -> Iterator[Server]:
    port = free_port() if port is None else port
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
        _wait_live(server, process.poll, verify, ready_timeout)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serving(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
    ca: Path | None = None,
) -> Iterator[Server]:
    """``modelport serve ARGS`` in this process, on a real port, until the block ends.

    The command runs as a user runs it (flags, settings from the environment, start-up
    checks, the app, uvicorn) in a thread, so a test pays no interpreter start. uvicorn
    listens on a socket bound here first (no race for a free port), and, as in any thread
    but the main one, no SIGTERM handler is installed. Whatever needs
    a process of its own (signals, ``--workers``, exit codes) uses :func:`running_server`.
    """
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    home.mkdir(parents=True, exist_ok=True)  # the log goes there, as `modelport serve` would
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the start-up check binds
    sock.bind((host, 0))
    port = int(sock.getsockname()[1])
    log = home / f"server-{port}.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    servers: list[uvicorn.Server] = []
    outcome: list[int] = []

    def run(app: object, **options: object) -> None:  # stands in for uvicorn.run
        server = uvicorn.Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]
        servers.append(server)
        for logger in loggers:  # uvicorn's Config has just set up its loggers
            logger.addHandler(handler)
        server.run(sockets=[sock])

    def command() -> None:
        try:
            main(["serve", *args, "--port", str(port)])
            outcome.append(0)
        except SystemExit as exc:
            outcome.append(exc.code if isinstance(exc.code, int) else 1)

    saved = {k: os.environ.get(k) for k in [*(env or {}), "MODELPORT_HOME"]}
    os.environ.update({"MODELPORT_HOME": str(home), **(env or {})})
    scheme = "http" if ca is None else "https"
    server = Server(f"{scheme}://127.0.0.1:{port}", None, log)
    verify: bool | ssl.SSLContext = True if ca is None else ssl.create_default_context(cafile=ca)
    thread = threading.Thread(target=command, name=f"modelport serve :{port}", daemon=True)
    try:
        with mock.patch.object(server_module, "uvicorn", SimpleNamespace(run=run)):
            for logger in loggers:
                logger.addHandler(handler)
            thread.start()
            _wait_live(server, lambda: outcome[0] if outcome else None, verify, ready_timeout)
            yield server
    finally:
        for one in servers:
            one.should_exit = True
        thread.join(timeout=60)
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
        sock.close()
        gc.unfreeze()  # the app froze what was alive when it started
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
