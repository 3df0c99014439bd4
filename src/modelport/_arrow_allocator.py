"""Settings for Arrow's memory allocator (mimalloc) that keep a batch job small.

mimalloc commits whole arenas up front and keeps freed pages a while, so streaming a Parquet
file grew a batch job by ~120 MB whatever its chunk size; committing pages as they are used
and returning freed ones after 10 ms keeps it to ~75 MB for ~10% of an I/O-bound job's rate
(0 ms: ~65 MB, ~25% slower; ``benchmarks/batch.py``). mimalloc reads them from the environment
once, when pyarrow loads, so they must be set before then, and by whoever owns the process:
the ``modelport`` command sets them first thing (:func:`set_defaults`), the Ray engine hands
them to the workers it starts (:func:`defaults`), and ``import modelport`` sets nothing.
Values already in the environment always win. Stdlib only: this runs before anything heavy.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

logger = logging.getLogger(__name__)

SETTINGS: Mapping[str, str] = {"MIMALLOC_PURGE_DELAY": "10", "MIMALLOC_ARENA_EAGER_COMMIT": "0"}
"""The variables and the values modelport uses when the environment has none."""


def defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings, with the values ``environ`` already has in place of modelport's."""
    return {name: environ.get(name, value) for name, value in SETTINGS.items()}


def set_defaults() -> None:
    """Put the settings in ``os.environ`` where unset; call before pyarrow is imported.

    Warns when one is unset and pyarrow is already loaded: its allocator has read the
    environment by then, so setting it now changes only child processes.
    """
    unset = [name for name in SETTINGS if name not in os.environ]
    if unset and "pyarrow" in sys.modules:
        logger.warning(
            "pyarrow was imported before modelport set %s; batch jobs may use more memory",
            " and ".join(unset),
        )
    for name in unset:
        os.environ[name] = SETTINGS[name]
