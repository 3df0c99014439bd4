"""Ed25519 signatures over artifacts: who published this model, and is it what they published.

A signed artifact carries one more file beside ``modelport.json``: ``modelport.sig``, a small
JSON object (format_version 1)::

    format_version   1
    algorithm        "ed25519"
    key_fingerprint  "sha256:<hex>"  SHA-256 of the signer's raw 32-byte public key
    manifest_sha256  "<hex>"         SHA-256 of the modelport.json that was signed
    signature        "<base64>"      Ed25519 signature (64 bytes) of the exact bytes of
                                     modelport.json, nothing prepended or appended

The signature covers ``modelport.json`` byte for byte, and the manifest pins the SHA-256 of
every other file, so one signature covers the whole artifact. ``key_fingerprint`` and
``manifest_sha256`` are not signed: they only let :func:`verify_artifact` say *which* key
signed (so a wrong key is reported as such) and whether the manifest changed since. Because
the signed message is the raw manifest, anyone can check it without modelport, e.g. with
``openssl pkeyutl -verify -pubin -inkey signing.pub -rawin -in modelport.json -sigfile SIG``
where ``SIG`` holds the base64-decoded ``signature``.

``modelport.sig`` is written after the manifest, so it is never listed in ``files``; checksum
verification ignores files the manifest does not list, and ``.tar`` bundles carry it.

Keys are PEM files: the private key PKCS#8 (unencrypted, mode 0600), the public key
SubjectPublicKeyInfo, as written by :func:`generate_keypair` (or ``openssl genpkey -algorithm
ed25519``). (The model *signature* of ``signature.py`` is the input/output schema; this module
is about cryptographic signatures only.)

>>> generate_keypair(Path("signing.pem"), Path("signing.pub"))
>>> sign_artifact(Path("out/churn"), Path("signing.pem"))
>>> verify_artifact(Path("out/churn"), Path("signing.pub")).key_fingerprint
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelport.artifact.checksums import verify_files
from modelport.artifact.manifest import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    Manifest,
    parse_manifest,
    read_manifest_bytes,
)
from modelport.errors import (
    ArtifactCorrupted,
    ArtifactUnsigned,
    BadArtifactSignature,
    Conflict,
    InvalidSigningKey,
    SignedByOtherKey,
)

SIGNATURE_FORMAT_VERSION = 1
ALGORITHM = "ed25519"
_MAX_SIGNATURE_FILE = 64 * 1024  # a real one is ~300 bytes; never read an arbitrary file whole
_MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class VerifiedArtifact:
    """What :func:`verify_artifact` proved: the manifest read from the verified bytes, and
    the fingerprint of the key that signed it."""

    path: Path
    manifest: Manifest
    key_fingerprint: str


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair as PEM files; returns the public key's fingerprint.

    The private key file is created with mode 0600. Existing files are never overwritten
    (Conflict), so a key that signed artifacts cannot be lost by a repeated command.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.resolve() == public_path.resolve():
        raise Conflict("the private and public key need two different paths")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise Conflict(f"{path} already exists; keygen never overwrites a key file")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)  # no half pair left behind
        raise
    return fingerprint(key.public_key())


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: how messages and files name a key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key; InvalidSigningKey saying what is wrong with the file."""
    data = _read_key_file(Path(path))
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = "; it holds a private key, pass the public one" if b"PRIVATE KEY" in data else ""
        raise InvalidSigningKey(str(path), f"not a PEM public key{hint}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidSigningKey(str(path), "not an Ed25519 key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 private key."""
    data = _read_key_file(Path(path))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # raised by cryptography for a key that needs a password
        raise InvalidSigningKey(str(path), "encrypted private keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        hint = "; it holds a public key, pass the private one" if b"PUBLIC KEY" in data else ""
        raise InvalidSigningKey(str(path), f"not a PEM private key{hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidSigningKey(str(path), "not an Ed25519 key")
    return key


def sign_artifact(
    artifact_dir: Path, private_key_path: Path, *, manifest_sha256: str | None = None
) -> Path:
    """Sign the artifact folder's ``modelport.json``; returns the ``modelport.sig`` written.

    Every file's checksum is verified first, so a corrupted artifact is never signed.
    ``manifest_sha256`` (the registry's record) refuses a manifest edited in the store.
    An existing signature is replaced.
    """
    root = Path(artifact_dir)
    key = load_private_key(private_key_path)
    data = read_manifest_bytes(root)
    _check_pin(data, manifest_sha256)
    manifest = parse_manifest(data)
    if SIGNATURE_FILE in manifest.files:
        raise ArtifactCorrupted(SIGNATURE_FILE, "is listed in the manifest; the name is reserved")
    verify_files(root, manifest.files)
    record = {
        "format_version": SIGNATURE_FORMAT_VERSION,
        "algorithm": ALGORITHM,
        "key_fingerprint": fingerprint(key.public_key()),
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
        "signature": base64.b64encode(key.sign(data)).decode("ascii"),
    }
    target = root / SIGNATURE_FILE
    _replace(target, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return target


def verify_artifact(
    artifact_dir: Path, public_key_path: Path, *, manifest_sha256: str | None = None
) -> VerifiedArtifact:
    """Prove the artifact was signed by this key and that no byte changed since.

    Checks, in order, raising at the first failure:

    - ArtifactUnsigned: there is no ``modelport.sig``;
    - BadArtifactSignature: ``modelport.sig`` is not a valid signature file;
    - SignedByOtherKey: it names another key than ``public_key_path``;
    - BadArtifactSignature: the signature does not match ``modelport.json`` (edited after
      signing, or forged);
    - ArtifactCorrupted: ``manifest_sha256`` (the registry's record) does not match, or a
      file listed in the manifest changed (the message names the file).

    Nothing is deserialized; the returned manifest is parsed from the bytes that were verified.
    """
    root = Path(artifact_dir)
    key = load_public_key(public_key_path)
    data = read_manifest_bytes(root)
    record = _read_signature_file(root)
    trusted = fingerprint(key)
    if record.key_fingerprint != trusted:
        raise SignedByOtherKey(record.key_fingerprint, trusted)
    try:
        key.verify(record.signature, data)
    except InvalidSignature:
        if record.manifest_sha256 != hashlib.sha256(data).hexdigest():
            reason = f"{MANIFEST_FILE} was changed after it was signed"
        else:
            reason = f"the signature in {SIGNATURE_FILE} does not match {MANIFEST_FILE}"
        raise BadArtifactSignature(reason) from None
    _check_pin(data, manifest_sha256)
    manifest = parse_manifest(data)
    verify_files(root, manifest.files)
    return VerifiedArtifact(path=root, manifest=manifest, key_fingerprint=trusted)


def trusted_signature(
    artifact_dir: Path, public_key_paths: Sequence[Path], *, manifest_sha256: str | None = None
) -> VerifiedArtifact | None:
    """The verified artifact if it is signed by one of ``public_key_paths``, else None.

    An unsigned artifact, or one signed by a key not in the list, is simply not trusted
    (None). One that names a listed key but whose signature or files do not match was
    changed after signing, and raises (BadArtifactSignature, ArtifactCorrupted).
    """
    root = Path(artifact_dir)
    if not public_key_paths or not (root / SIGNATURE_FILE).exists():
        return None
    record = _read_signature_file(root)
    for path in public_key_paths:
        if fingerprint(load_public_key(path)) == record.key_fingerprint:
            return verify_artifact(root, path, manifest_sha256=manifest_sha256)
    return None


@dataclass(frozen=True)
class _SignatureRecord:
    key_fingerprint: str
    manifest_sha256: str
    signature: bytes


def _read_signature_file(root: Path) -> _SignatureRecord:
    file = root / SIGNATURE_FILE
    if file.is_symlink():
        raise BadArtifactSignature(f"{SIGNATURE_FILE} is a link")
    if not file.is_file():
        raise ArtifactUnsigned(str(root), SIGNATURE_FILE)
    with file.open("rb") as fh:
        raw = fh.read(_MAX_SIGNATURE_FILE + 1)
    try:
        if len(raw) > _MAX_SIGNATURE_FILE:
            raise ValueError("file is too large")
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format_version") != SIGNATURE_FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {data.get('format_version')!r}")
        if data.get("algorithm") != ALGORITHM:
            raise ValueError(f"unsupported algorithm {data.get('algorithm')!r}")
        key_fingerprint, manifest_sha256, signature = (
            data.get(name) for name in ("key_fingerprint", "manifest_sha256", "signature")
        )
        if not (
            isinstance(key_fingerprint, str)
            and isinstance(manifest_sha256, str)
            and isinstance(signature, str)
        ):
            raise ValueError("key_fingerprint, manifest_sha256 and signature must be strings")
        raw_signature = base64.b64decode(signature, validate=True)
        if len(raw_signature) != 64:
            raise ValueError("an Ed25519 signature is 64 bytes")
    except (ValueError, binascii.Error) as exc:
        reason = f"{SIGNATURE_FILE} is not a valid signature file ({exc})"
        raise BadArtifactSignature(reason) from None
    return _SignatureRecord(key_fingerprint, manifest_sha256, raw_signature)


def _check_pin(data: bytes, manifest_sha256: str | None) -> None:
    if manifest_sha256 is not None and hashlib.sha256(data).hexdigest() != manifest_sha256:
        raise ArtifactCorrupted(MANIFEST_FILE, "sha256 does not match the registry's record")


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise InvalidSigningKey(str(path), "file not found") from None
    except OSError as exc:
        raise InvalidSigningKey(str(path), f"cannot read it ({exc.strerror or exc})") from None
    if len(data) > _MAX_KEY_FILE:
        raise InvalidSigningKey(str(path), "file is too large to be a key")
    return data


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (O_EXCL: never replace a file, even in a race)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidSigningKey(str(path), f"cannot create its folder ({exc})") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise Conflict(f"{path} already exists; keygen never overwrites a key file") from None
    except OSError as exc:
        raise InvalidSigningKey(str(path), f"cannot write it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _replace(target: Path, data: bytes) -> None:
    """Write ``target`` atomically: readers see the old signature or the new one, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}-", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a server running as another user reads it
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
