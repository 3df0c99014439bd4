"""Atomic publication of a folder: build it beside its final place, then rename it there.

A reader either sees no folder or a complete one; a crash leaves only a ``.tmp-*`` sibling,
which is never read and is removed by the next failed or successful attempt's cleanup.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelport.errors import Conflict


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``target`` when the block succeeds."""
    target = Path(target)
    if target.exists():
        raise Conflict(f"{target} already exists; choose a new path or delete it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    # Flush file contents before the rename so a power cut cannot publish empty files.
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
