"""The per-host read-through cache of a remote artifact store.

A remote store (S3) downloads an artifact once per host into this cache and loads it from
there. Several processes on one host (server workers, replicas, a batch job) may ask for the
same artifact at once: one takes the key's file lock and downloads into a temporary folder
inside the cache, then renames it into place, so the others, waiting on the lock, find it
complete. Nothing here trusts the cache: every load verifies each file against the SHA-256
the registry recorded (:func:`modelport.packaging.load_artifact`), and a copy found corrupt
is evicted so the next load downloads it again.

The cache is bounded (``cache_max_bytes``): after each download the artifacts used least
recently (each use touches its folder's mtime) are removed until it fits, never the one just
fetched. An artifact removed while another process is still reading it can fail that load;
size the cache to hold every model a host serves.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from modelport._permissions import private_dir
from modelport.registry.artifact_store import TEMP_DIR, LocalArtifactStore

logger = logging.getLogger(__name__)

LOCK_DIR = ".locks"


class ArtifactCache:
    """Complete artifact folders under ``root``, filled by a download function, LRU-bounded."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self._folders = LocalArtifactStore(root)  # key checks and atomic placement
        self.root = self._folders.root
        self.max_bytes = max_bytes
        private_dir(self.root / LOCK_DIR)

    def get(self, key: str, download: Callable[[Path], None]) -> Path:
        """The cached folder for ``key``; on a miss, ``download(folder)`` fills a temporary
        folder under the key's lock, which is then renamed into place."""
        dest = self._folders.path_for(key)
        if dest.is_dir():
            _touch(dest)
            return dest
        with self._locked(key):
            if dest.is_dir():  # another process fetched it while this one waited
                _touch(dest)
                return dest
            tmp = self.root / TEMP_DIR / f"get-{uuid.uuid4().hex}"
            private_dir(tmp)
            try:
                download(tmp)
                private_dir(dest.parent)
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        logger.debug("cached artifact %s", key)
        self.shrink(keep=dest)
        return dest

    def evict(self, key: str) -> None:
        """Drop the cached copy of ``key`` (found corrupt, or deleted from the store)."""
        with self._locked(key):
            self._folders.delete(key)

    def shrink(self, keep: Path | None = None) -> int:
        """Remove the least recently used artifacts until the cache fits ``max_bytes``;
        returns how many were removed."""
        entries = sorted(self._entries(), key=lambda entry: entry[1])
        total = sum(size for _, _, size in entries)
        removed = 0
        for folder, _, size in entries:
            if total <= self.max_bytes:
                break
            if folder == keep:
                continue
            key = folder.relative_to(self.root).as_posix()
            self.evict(key)
            total -= size
            removed += 1
            logger.info("evicted %s from the artifact cache (%d bytes)", key, size)
        return removed

    def size(self) -> int:
        """Bytes held by complete cached artifacts."""
        return sum(size for _, _, size in self._entries())

    def purge_partial(self, older_than: timedelta) -> int:
        """Remove downloads interrupted more than ``older_than`` ago (a killed process)."""
        return self._folders.purge_partial(older_than)

    def _entries(self) -> Iterator[tuple[Path, float, int]]:
        """(folder, last use, bytes) of each cached artifact: ``models/<id>/v<n>``."""
        for folder in self.root.glob("models/*/v*"):
            if folder.is_dir():
                size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
                yield folder, folder.stat().st_mtime, size

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with open(self.root / LOCK_DIR / name, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _touch(folder: Path) -> None:
    now = time.time()
    with contextlib.suppress(OSError):  # a read-only cache still serves; it just ages
        os.utime(folder, (now, now))
