"""Running the app under uvicorn: one process, or ``workers`` processes sharing the port.

uvicorn stops accepting on SIGTERM, lets in-flight requests finish (up to the graceful
timeout), runs the app's shutdown (which drains the model manager) and exits 0.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from modelport.artifact import signing
from modelport.config import Settings
from modelport.errors import AddressInUse, ArtifactNotFound, InvalidInput, VersionNotReady
from modelport.monitoring import metrics
from modelport.ref import ModelRef
from modelport.registry import Registry
from modelport.serving._http_limits import HeadLimits, protocol_factory
from modelport.serving.deployment import ModelSpec
from modelport.serving.worker_board import WorkerBoard

logger = logging.getLogger(__name__)
_SPEC_ENV = "MODELPORT_SERVE_SPEC"
GRACEFUL_SECONDS = 30
WORKER_HEALTHCHECK_SECONDS = 60
"""How long uvicorn waits for a worker to answer its health ping before killing it. Its
default (5 s) killed workers still importing on a busy machine, which then started again
and again; a worker loading a model answers from a thread, so only a hung one is slower."""


def serve(settings: Settings, specs: list[ModelSpec], *, insecure_no_auth: bool = False) -> None:
    """Serve ``specs`` until SIGTERM/SIGINT. Blocks.

    API keys are required when ``settings.serving.auth`` is set, and always on an address
    other than loopback unless ``insecure_no_auth`` (which then logs a warning).
    """
    if not specs:
        raise InvalidInput("nothing to serve: name at least one model ref or a deployment file")
    names = [spec.served_name for spec in specs]
    if len(set(names)) != len(names):
        raise InvalidInput("two models would be served under the same name; use a deployment file")
    cfg = settings.serving
    if not _is_loopback(cfg.host):
        if insecure_no_auth:
            if cfg.auth:
                raise InvalidInput("--insecure-no-auth contradicts auth: true; choose one")
            logger.warning("serving on %s with NO authentication (--insecure-no-auth)", cfg.host)
        elif not cfg.auth:
            cfg = cfg.model_copy(update={"auth": True})
            settings = settings.model_copy(update={"serving": cfg})
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise InvalidInput("HTTPS needs both --tls-cert and --tls-key")
    for path in (cfg.tls_cert, cfg.tls_key, cfg.require_signed):
        if path is not None and not path.is_file():
            raise InvalidInput(f"no such file: {path}")
    _say_what_is_served()
    if cfg.require_signed is not None:  # a bad key file stops the server here, not per model
        key = signing.fingerprint(signing.load_public_key(cfg.require_signed))
        logger.info("serving only models signed by key %s", key)
    _check_refs(settings, specs)
    _check_address(cfg.host, cfg.port)
    options: dict[str, Any] = {
        "host": cfg.host,
        "port": cfg.port,
        "http": protocol_factory(HeadLimits(cfg.max_header_bytes, cfg.max_header_line_bytes)),
        "loop": "uvloop",
        "access_log": False,
        # No "server: uvicorn" header (it names our stack to scanners and costs a header per
        # response), and no X-Forwarded-* rewriting: nothing here uses the client address.
        "server_header": False,
        "proxy_headers": False,
        "log_level": "info",
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
    }
    if cfg.tls_cert is not None:
        options.update(ssl_certfile=str(cfg.tls_cert), ssl_keyfile=str(cfg.tls_key))
    # uvicorn drains on SIGTERM, restores the previous handler and re-raises the signal;
    # with this no-op handler in place the re-raise is harmless and a drained stop exits 0.
    # Only the main thread may set it; uvicorn, too, leaves signals alone in any other.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if cfg.workers > 1:
        metrics.enable_multiprocess()  # before any worker imports prometheus_client
        folder = Path(tempfile.mkdtemp(prefix="modelport-workers-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        board = folder / "board"
        # Room for restarted workers too: a dead worker's slot is reused.
        WorkerBoard.create(board, models=len(specs), slots=2 * cfg.workers + 2)
        # Worker processes rebuild the app from this variable: uvicorn needs an import string.
        os.environ[_SPEC_ENV] = json.dumps(
            {
                "settings": settings.model_dump(mode="json"),
                "models": [s.model_dump() for s in specs],
                "board": str(board),
            }
        )
        uvicorn.run(
            "modelport.serving.server:app_from_environment",
            factory=True,
            workers=cfg.workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
    else:
        from modelport.serving.app import create_app

        uvicorn.run(create_app(settings, specs), **options)


def app_from_environment() -> ASGIApp:
    """The app factory each worker process calls (see :func:`serve`)."""
    # A worker is a fresh process: the CLI's logging set-up is not inherited. Its lines
    # carry its pid, so a log says which worker loaded what.
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s:%(name)s:worker %(process)d: %(message)s",
    )
    _say_what_is_served()
    data = json.loads(os.environ[_SPEC_ENV])
    settings = Settings.model_validate(data["settings"])
    specs = [ModelSpec.model_validate(m) for m in data["models"]]
    from modelport.serving.app import create_app

    return create_app(settings, specs, WorkerBoard.open(Path(data["board"])))


def _say_what_is_served() -> None:
    """modelport's own INFO lines (which version each model serves, swaps, unloads) go to
    the server's log; the CLI shows only warnings of other commands."""
    logging.getLogger("modelport").setLevel(logging.INFO)


def _check_refs(settings: Settings, specs: list[ModelSpec]) -> None:
    """Stop before starting when a ref names nothing: a misspelled model is an error to fix,
    not a model to retry every few seconds. (A model that exists but fails to load is
    reported not ready, and the others are served.)"""
    refs = [ModelRef.parse(spec.ref) for spec in specs]
    for ref in refs:
        if ref.path is not None and not Path(ref.path).exists():
            raise ArtifactNotFound(str(ref.path))
    if any(ref.path is None for ref in refs):
        with Registry(settings) as registry:
            for ref in refs:
                if ref.path is None:
                    # Registered but not ready yet is fine: the server follows it.
                    with contextlib.suppress(VersionNotReady):
                        registry.resolve(ref)


def _check_address(host: str, port: int) -> None:
    """AddressInUse (exit 7) now, rather than uvicorn's start-up failure code after the
    models load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AddressInUse(host, port, exc.strerror or str(exc)) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
