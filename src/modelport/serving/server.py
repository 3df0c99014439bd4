"""Running the app under uvicorn: one process, or ``workers`` processes sharing the port.

uvicorn stops accepting on SIGTERM, lets in-flight requests finish (up to the graceful
timeout), runs the app's shutdown (which drains the model manager) and exits 0.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
from typing import Any

import uvicorn

from modelport.config import Settings
from modelport.errors import InvalidInput
from modelport.serving.app import create_app
from modelport.serving.asgi import InferenceRoutes
from modelport.serving.deployment import ModelSpec

logger = logging.getLogger(__name__)
_SPEC_ENV = "MODELPORT_SERVE_SPEC"
GRACEFUL_SECONDS = 30


def serve(settings: Settings, specs: list[ModelSpec], *, insecure_no_auth: bool = False) -> None:
    """Serve ``specs`` until SIGTERM/SIGINT. Blocks."""
    if not specs:
        raise InvalidInput("nothing to serve: name at least one model ref or a deployment file")
    names = [spec.served_name for spec in specs]
    if len(set(names)) != len(names):
        raise InvalidInput("two models would be served under the same name; use a deployment file")
    cfg = settings.serving
    if not _is_loopback(cfg.host) and not insecure_no_auth:
        raise InvalidInput(
            f"refusing to serve on {cfg.host} without authentication; "
            "pass --insecure-no-auth if this network is trusted"
        )
    if not _is_loopback(cfg.host):
        logger.warning("serving on %s with NO authentication", cfg.host)
    options: dict[str, Any] = {
        "host": cfg.host,
        "port": cfg.port,
        "http": "httptools",
        "loop": "uvloop",
        "access_log": False,
        # No "server: uvicorn" header (it names our stack to scanners and costs a header per
        # response), and no X-Forwarded-* rewriting: nothing here uses the client address.
        "server_header": False,
        "proxy_headers": False,
        "log_level": "info",
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
    }
    # uvicorn drains on SIGTERM, restores the previous handler and re-raises the signal;
    # with this no-op handler in place the re-raise is harmless and a drained stop exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if cfg.workers > 1:
        # Worker processes rebuild the app from this variable: uvicorn needs an import string.
        os.environ[_SPEC_ENV] = json.dumps(
            {
                "settings": settings.model_dump(mode="json"),
                "models": [s.model_dump() for s in specs],
            }
        )
        uvicorn.run(
            "modelport.serving.server:app_from_environment",
            factory=True,
            workers=cfg.workers,
            **options,
        )
    else:
        uvicorn.run(create_app(settings, specs), **options)


def app_from_environment() -> InferenceRoutes:
    """The app factory each worker process calls (see :func:`serve`)."""
    data = json.loads(os.environ[_SPEC_ENV])
    settings = Settings.model_validate(data["settings"])
    return create_app(settings, [ModelSpec.model_validate(m) for m in data["models"]])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
