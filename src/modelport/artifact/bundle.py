"""Single-file bundles (``.tar``) for moving an artifact between machines.

``pack`` writes the artifact folder's files under one top-level folder named after the model:
``modelport.json``, every file it lists, and ``modelport.sig`` when the artifact is signed.
``unpack`` refuses, before writing anything, every entry that is absolute, contains ``..``,
is a link, a device, a FIFO or a sparse file, or would land outside the target, and a bundle
whose headers declare more than :class:`~modelport.config.BundleLimits` allow (total and
per-file size, expansion over the bundle's own size, number of entries); headers are read one
at a time, so a bomb is refused at its first oversized entry without inflating it. Then it
extracts into a staging folder that is renamed into place, so a refused or broken bundle
leaves nothing behind.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from modelport.artifact.manifest import MANIFEST_FILE, SIGNATURE_FILE, read_manifest
from modelport.artifact.staging import staging_dir
from modelport.config import BundleLimits
from modelport.errors import ArtifactCorrupted, ArtifactError, ArtifactNotFound, UnsafeBundle


def pack(artifact: Path, bundle: Path) -> Path:
    """Write ``artifact`` (a folder with ``modelport.json``) into the tar file ``bundle``."""
    manifest = read_manifest(artifact)
    sig = artifact / SIGNATURE_FILE
    signed = [SIGNATURE_FILE] if sig.is_file() and not sig.is_symlink() else []
    bundle.parent.mkdir(parents=True, exist_ok=True)
    tmp = bundle.with_name(f".tmp-{bundle.name}")
    try:
        with tarfile.open(tmp, "w") as tar:
            for rel in [MANIFEST_FILE, *signed, *sorted(manifest.files)]:
                tar.add(artifact / rel, arcname=f"{manifest.name}/{rel}", recursive=False)
        tmp.replace(bundle)
    finally:
        tmp.unlink(missing_ok=True)
    return bundle


def unpack(bundle: Path, target: Path, limits: BundleLimits | None = None) -> Path:
    """Extract ``bundle`` into the new folder ``target``; returns ``target``."""
    if not bundle.is_file():
        raise ArtifactNotFound(str(bundle))
    bounds = limits or BundleLimits()
    try:
        with tarfile.open(bundle, "r:*") as tar:
            members = _read_members(tar, bundle, bounds)
            root = _check_members(members)
            with staging_dir(target) as tmp:
                for member in members:
                    if member.isdir():
                        continue
                    rel = PurePosixPath(member.name).relative_to(root)
                    dest = tmp.joinpath(*rel.parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    if src is None:
                        raise UnsafeBundle(member.name, "not a regular file")
                    with src, dest.open("wb") as out:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                if not (tmp / MANIFEST_FILE).is_file():
                    raise ArtifactCorrupted(bundle.name, f"bundle has no {MANIFEST_FILE}")
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ArtifactCorrupted(bundle.name, f"not a readable tar bundle ({exc})") from None
    except OSError as exc:
        if exc.errno is None:  # a damaged compressed stream (gzip.BadGzipFile)
            raise ArtifactCorrupted(bundle.name, f"not a readable tar bundle ({exc})") from None
        # Disk full, permissions: not the bundle's fault (the staging folder is gone already).
        raise ArtifactError(f"cannot unpack {bundle.name} into {target}: {exc.strerror}") from None
    return target


def _read_members(
    tar: tarfile.TarFile, bundle: Path, limits: BundleLimits
) -> list[tarfile.TarInfo]:
    """The bundle's entries, read header by header and refused at the first one that takes
    the declared sizes past a limit (before its data is read or inflated)."""
    compressed = max(bundle.stat().st_size, 1)
    members: list[tarfile.TarInfo] = []
    total = 0
    while (member := tar.next()) is not None:
        members.append(member)
        if len(members) > limits.max_files:
            raise UnsafeBundle(bundle.name, f"holds more than {limits.max_files:,} entries")
        if member.issparse():
            raise UnsafeBundle(member.name, "sparse files are not allowed")
        if member.size > limits.max_file_bytes:
            raise UnsafeBundle(
                member.name,
                f"expands to {member.size:,} bytes, over the limit of "
                f"{limits.max_file_bytes:,} per file (MODELPORT_BUNDLE__MAX_FILE_BYTES)",
            )
        total += member.size
        if total > limits.max_total_bytes:
            raise UnsafeBundle(
                bundle.name,
                f"expands to more than {limits.max_total_bytes:,} bytes "
                "(MODELPORT_BUNDLE__MAX_TOTAL_BYTES)",
            )
        if total > limits.max_ratio * compressed:
            raise UnsafeBundle(
                bundle.name,
                f"expands to at least {total:,} bytes from {compressed:,}, more than "
                f"{limits.max_ratio:g} times its size: a decompression bomb? "
                "(MODELPORT_BUNDLE__MAX_RATIO)",
            )
    return members


def _check_members(members: list[tarfile.TarInfo]) -> PurePosixPath:
    """Validate every entry; return the single top-level folder all entries live under."""
    if not members:
        raise ArtifactCorrupted("bundle", "is empty")
    roots: set[str] = set()
    for member in members:
        name = member.name
        path = PurePosixPath(name)
        if "\x00" in name or name.startswith(("/", "\\")) or path.is_absolute():
            raise UnsafeBundle(name, "absolute path")
        if ":" in path.parts[0] or "\\" in name:
            raise UnsafeBundle(name, "drive letter or backslash in path")
        if ".." in path.parts:
            raise UnsafeBundle(name, "'..' in path")
        if member.issym() or member.islnk():
            raise UnsafeBundle(name, f"link to {member.linkname!r}")
        if not (member.isfile() or member.isdir()):
            raise UnsafeBundle(name, "not a regular file or folder")
        if member.isfile() and len(path.parts) < 2:
            raise UnsafeBundle(name, "files must sit inside the bundle's top folder")
        roots.add(path.parts[0])
    if len(roots) != 1:
        raise UnsafeBundle(", ".join(sorted(roots)), "bundle must hold exactly one top folder")
    return PurePosixPath(roots.pop())
