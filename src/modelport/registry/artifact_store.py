"""Where artifact folders live: the ``ArtifactStore`` protocol and the local-folder store.

Keys look like ``models/17/v3`` and are built only by the registry from database ids, never
from user input; still, every key is resolved and checked to stay inside the store's root,
so a bad key can never read or delete outside it. A folder appears at its key all at once:
it is copied into a temporary folder inside the root and renamed into place.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from modelport._permissions import make_private, private_dir
from modelport.errors import ArtifactNotFound, StoreError

logger = logging.getLogger(__name__)

TEMP_DIR = ".tmp"
"""Folder inside the root for copies in progress; same file system, so rename is atomic."""

PARTIAL = ("put-", "del-", "get-")
"""Names of folders in TEMP_DIR left by an interrupted copy, delete or download."""


@runtime_checkable
class ArtifactStore(Protocol):
    """Stores complete artifact folders under registry-built keys.

    ``put_dir`` is called once per version after the artifact is fully written locally;
    ``local_path`` is called to load it (a remote store downloads into a cache first);
    ``delete`` is called when a version is deleted or its registration failed.
    """

    def put_dir(self, key: str, src: Path) -> None:
        """Copy the folder ``src`` to ``key``; the key shows the whole folder or nothing."""
        ...

    def local_path(self, key: str) -> Path:
        """A local folder holding the artifact at ``key``; ArtifactNotFound if absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove whatever is at ``key``; nothing there is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """True if a complete artifact is stored at ``key``."""
        ...

    def purge_partial(self, older_than: timedelta) -> int:
        """Remove leftovers of puts or deletes interrupted more than ``older_than`` ago
        (a killed process); returns how many were removed. Complete artifacts are untouched.
        """
        ...


class LocalArtifactStore:
    """Artifacts as folders under a local root: ``{root}/models/{model_id}/v{version}``."""

    def __init__(self, root: str | Path) -> None:
        self.root = _root_from_uri(root)
        try:
            private_dir(self.root / TEMP_DIR)  # owner-only, like the database
        except OSError as exc:
            raise StoreError(f"cannot create artifact store at {self.root}: {exc}") from exc

    def path_for(self, key: str) -> Path:
        """The folder for ``key``, refused unless it lies strictly inside the root."""
        if not key or key.startswith(("/", "\\", ".")) or "\x00" in key:
            raise StoreError(f"invalid artifact key {key[:80]!r}")
        path = (self.root / key).resolve()
        if path == self.root or not path.is_relative_to(self.root):
            raise StoreError(f"artifact key {key[:80]!r} escapes the store root")
        return path

    def put_dir(self, key: str, src: Path) -> None:
        """Copy ``src`` into a temporary folder in the root, then rename it to ``key``."""
        dest = self.path_for(key)
        if dest.exists():
            raise StoreError(f"artifact key {key!r} is already taken")
        tmp = self.root / TEMP_DIR / f"put-{uuid.uuid4().hex}"
        try:
            shutil.copytree(src, tmp)
            make_private(tmp)
            private_dir(dest.parent)
            os.rename(tmp, dest)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"cannot store artifact {key!r}: {exc.strerror or exc}") from exc
        logger.debug("stored artifact %s", key)

    def local_path(self, key: str) -> Path:
        """The artifact's folder, read in place."""
        path = self.path_for(key)
        if not path.is_dir():
            raise ArtifactNotFound(key)
        return path

    def delete(self, key: str) -> None:
        """Move the folder aside (atomic), then remove it, so no half-deleted key is visible."""
        path = self.path_for(key)
        if not path.exists():
            return
        trash = self.root / TEMP_DIR / f"del-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)
        except OSError as exc:
            raise StoreError(f"cannot delete artifact {key!r}: {exc.strerror or exc}") from exc
        shutil.rmtree(trash, ignore_errors=True)
        logger.debug("deleted artifact %s", key)

    def exists(self, key: str) -> bool:
        """True if the folder for ``key`` exists."""
        return self.path_for(key).is_dir()

    def purge_partial(self, older_than: timedelta) -> int:
        """Remove ``.tmp/put-*``, ``.tmp/del-*`` (and a cache's ``.tmp/get-*``) folders last
        modified before the cutoff."""
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for leftover in (self.root / TEMP_DIR).iterdir():
            if leftover.name.startswith(PARTIAL) and leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
                removed += 1
        return removed

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"


def _root_from_uri(uri: str | Path) -> Path:
    """``file:///abs/path`` or a plain path -> an absolute, resolved Path."""
    text = str(uri)
    if text.startswith("file:"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file URI {text!r} names a remote host")
        text = unquote(parsed.path)
    return Path(text).expanduser().resolve()
