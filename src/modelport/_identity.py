"""Who is acting: the name recorded when a person trusts a model."""

from __future__ import annotations

import getpass


def current_user() -> str:
    """The OS login name, or ``unknown`` where there is none (a container's numeric user)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
