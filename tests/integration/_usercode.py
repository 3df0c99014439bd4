"""User model code written to its own module, as a notebook user's ``.py`` file would be."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any


def user_module(folder: Path, source: str) -> Any:  # Any: the module the source defines
    """Write ``source`` to a uniquely named module in ``folder`` and import it."""
    name = f"user_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
