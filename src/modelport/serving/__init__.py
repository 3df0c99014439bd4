"""Online serving: one ASGI app speaking V2, TF-Serving-style and MLflow-style protocols.

:func:`create_app` is imported when first used: ``serve --workers N`` runs a supervisor that
only starts and watches the workers, and the app's modules (Starlette's routing, the registry,
the monitoring) would cost it memory for nothing. The wire codecs are in
:mod:`modelport.protocol`, which the client imports without this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelport._extras import require

try:
    from modelport.serving.deployment import Deployment, ModelSpec, load_deployment
    from modelport.serving.server import serve
except ImportError:
    require("serve")  # names the missing package and modelport[serve]
    raise

if TYPE_CHECKING:
    from modelport.serving.app import create_app

__all__ = ["Deployment", "ModelSpec", "create_app", "load_deployment", "serve"]


def __getattr__(name: str) -> Any:  # Any: the attribute asked for
    if name == "create_app":
        from modelport.serving.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
