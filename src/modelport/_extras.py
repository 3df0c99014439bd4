"""The optional stacks and the extra that installs each, in one place.

``pip install modelport`` gives the artifact format, the registry and the command line. The
server, batch scoring, drift statistics and the HTTP client each come with an extra
(``modelport[serve]``, ``[batch]``, ``[drift]``, ``[client]``; ``[all]`` for everything).
Each of those entry points calls :func:`require` before it imports its stack, so a missing
package is one :class:`~modelport.errors.MissingDependency` line naming the extra to
install, not an ImportError from deep inside a module. Frameworks (scikit-learn, XGBoost,
...) are checked the same way by their flavors when a model needs them.
"""

from __future__ import annotations

import importlib.util

from modelport.errors import MissingDependency

STACKS: dict[str, tuple[tuple[str, str], ...]] = {
    # extra: (import name, distribution name), as pyproject.toml's extras list them
    "serve": (
        ("starlette", "starlette"),
        ("uvicorn", "uvicorn"),
        ("prometheus_client", "prometheus-client"),
        ("swagger_ui_bundle", "swagger-ui-bundle"),
        ("scipy", "scipy"),
    ),
    "batch": (("pyarrow", "pyarrow"), ("threadpoolctl", "threadpoolctl")),
    "drift": (("scipy", "scipy"),),
    "client": (("httpx", "httpx"),),
    "ray": (("ray", "ray"),),
    "s3": (("boto3", "boto3"),),
}


def require(extra: str) -> None:
    """Raise MissingDependency naming ``extra`` unless every package of its stack is
    installed. Looks the packages up without importing them: cheap enough for every call."""
    for module, package in STACKS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install, or a module hidden in sys.modules
            found = False
        if not found:
            raise MissingDependency(package, extra)
