"""Bundles: round trip, and every malicious entry refused with nothing written outside."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from modelport.artifact.bundle import pack, unpack
from modelport.artifact.checksums import verify_files
from modelport.artifact.manifest import read_manifest
from modelport.config import BundleLimits
from modelport.errors import ArtifactCorrupted, ArtifactNotFound, UnsafeBundle


def test_pack_unpack_roundtrip(artifact_dir: Path, tmp_path: Path) -> None:
    bundle = pack(artifact_dir, tmp_path / "churn.tar")
    out = unpack(bundle, tmp_path / "out")
    manifest = read_manifest(out)
    verify_files(out, manifest.files)
    assert (out / "sub" / "vocab.txt").read_text() == "a\nb\n"


def _evil_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), b"pwned"


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([_file("m/modelport.json"), _file("m/../../escape.txt")], "'..' in path"),
        ([_file("/tmp/abs-escape.txt")], "absolute path"),
        ([_file("m/modelport.json"), _link("m/link", "/etc/passwd", tarfile.SYMTYPE)], "link to"),
        ([_file("m/modelport.json"), _link("m/hard", "../../x", tarfile.LNKTYPE)], "link to"),
        ([_file("m/a"), _file("n/b")], "exactly one top folder"),
        ([_file("modelport.json")], "inside the bundle's top folder"),
    ],
)
def test_malicious_bundles_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], reason: str
) -> None:
    bundle = _evil_tar(tmp_path / "evil.tar", members)
    target = tmp_path / "deep" / "er" / "target"
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeBundle, match=reason):
        unpack(bundle, target)
    assert not target.exists()
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/abs-escape.txt").exists()


def test_device_entries_are_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("m/fifo")
    info.type = tarfile.FIFOTYPE
    bundle = _evil_tar(tmp_path / "fifo.tar", [_file("m/modelport.json"), (info, None)])
    with pytest.raises(UnsafeBundle, match="not a regular file"):
        unpack(bundle, tmp_path / "t")


def test_bundle_without_manifest_leaves_nothing(tmp_path: Path) -> None:
    bundle = _evil_tar(tmp_path / "b.tar", [_file("m/weights.bin")])
    with pytest.raises(ArtifactCorrupted, match=r"bundle has no modelport\.json"):
        unpack(bundle, tmp_path / "t")
    assert not (tmp_path / "t").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar"]


def test_not_a_tar(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 100)
    with pytest.raises(ArtifactCorrupted, match="not a readable tar bundle"):
        unpack(junk, tmp_path / "t")


def test_truncated_tar(artifact_dir: Path, tmp_path: Path) -> None:
    bundle = pack(artifact_dir, tmp_path / "churn.tar")
    bundle.write_bytes(bundle.read_bytes()[:700])
    with pytest.raises(ArtifactCorrupted, match=r"(not a readable tar bundle|bundle has no)"):
        unpack(bundle, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="no modelport artifact at"):
        unpack(tmp_path / "nope.tar", tmp_path / "t")


# -- size limits: refused at the first oversized header, before its bytes are inflated ------


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as they are read (a big member costs no memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _bomb(path: Path, member_bytes: int, extra: int = 0) -> Path:
    """A gzip-compressed bundle (named .tar, as a hostile one would be) holding a manifest
    and ``member_bytes`` of zeros, then ``extra`` more small files."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        manifest = b'{"format_version": 1}'
        info = tarfile.TarInfo("m/modelport.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        info = tarfile.TarInfo("m/weights.bin")
        info.size = member_bytes
        tar.addfile(info, _Zeros(member_bytes))
        for i in range(extra):
            info = tarfile.TarInfo(f"m/f{i}")
            tar.addfile(info, io.BytesIO(b""))
    return path


def _nothing_left(tmp_path: Path, bundle: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == [bundle.name]


@pytest.mark.parametrize(
    ("limits", "extra", "message"),
    [
        (BundleLimits(), 0, r"more than 100 times its size: a decompression bomb"),
        (BundleLimits(max_ratio=1e6, max_file_bytes=1_000_000), 0,
         r"'m/weights\.bin': expands to 8,000,000 bytes, over the limit of 1,000,000 per file"),
        (BundleLimits(max_ratio=1e6, max_total_bytes=2_000_000), 0,
         r"expands to more than 2,000,000 bytes \(MODELPORT_BUNDLE__MAX_TOTAL_BYTES\)"),
        (BundleLimits(max_ratio=1e6, max_files=10), 20, r"holds more than 10 entries"),
    ],
)  # fmt: skip
def test_bundles_past_a_size_limit_are_refused_and_leave_nothing(
    limits: BundleLimits, extra: int, message: str, tmp_path: Path
) -> None:
    bundle = _bomb(tmp_path / "bomb.tar", 8_000_000, extra)
    assert bundle.stat().st_size < 80_000, "8 MB of zeros compresses to a few KB"
    with pytest.raises(UnsafeBundle, match=message):
        unpack(bundle, tmp_path / "out", limits)
    _nothing_left(tmp_path, bundle)


def test_the_ratio_limit_does_not_refuse_an_ordinary_bundle(
    artifact_dir: Path, tmp_path: Path
) -> None:
    bundle = pack(artifact_dir, tmp_path / "churn.tar")
    unpack(bundle, tmp_path / "out", BundleLimits(max_ratio=1.0))


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("m/hole.bin")
    info.type = tarfile.GNUTYPE_SPARSE
    bundle = _evil_tar(tmp_path / "sparse.tar", [_file("m/modelport.json"), (info, b"x")])
    with pytest.raises(UnsafeBundle, match="sparse files are not allowed"):
        unpack(bundle, tmp_path / "out")
    _nothing_left(tmp_path, bundle)
