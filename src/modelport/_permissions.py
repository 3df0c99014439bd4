"""Owner-only files and folders for what modelport keeps on disk.

The embedded registry database holds API key hashes and logged model inputs, and the
artifact store holds the models themselves: both are created readable by their owner only
(folders 0700, files 0600), whatever the process's umask. Existing files and folders keep the
permissions someone gave them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as owner-only folders; returns ``path``."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    return path


def make_private(root: Path) -> None:
    """Make a folder tree owner-only: folders 0700, files 0600 (links are left alone)."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o700)
        for name in files:
            file = os.path.join(folder, name)
            if not os.path.islink(file):
                os.chmod(file, 0o600)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only unless it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
