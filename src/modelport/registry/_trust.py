"""Trust at registration: who trusts a model, whether it is code, what refuses it.

An artifact whose pickle names a global outside the allow-list, or whose pyfunc code makes
plainly dangerous calls, is refused (UntrustedArtifact); any other pyfunc artifact from a
file, folder or bundle is refused too (CodeNotTrusted), unless trusted: ``trust_unsafe`` (by
a named person, :func:`truster`), a signature by a trusted key (:func:`signed_source`), or a
``PythonModel`` object from the caller's own process (:func:`is_code`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelport import packaging
from modelport._identity import current_user
from modelport.artifact import files, signing
from modelport.artifact.bundle import unpack
from modelport.artifact.manifest import read_manifest
from modelport.config import BundleLimits
from modelport.errors import CodeNotTrusted, InvalidInput, ModelportError, UntrustedArtifact
from modelport.flavors import flavor_for_model, get_flavor


def signed_source(
    source: Path, scratch: Path, keys: Sequence[Path], limits: BundleLimits
) -> tuple[Path, str | None]:
    """The folder to import from (a bundle is unpacked first under ``scratch``) and, when it
    carries a valid signature by one of ``keys``, ``"signature: <fingerprint>"``."""
    if not keys or not (source.is_dir() or source.suffix.lower() in files.BUNDLE_SUFFIXES):
        return source, None
    folder = unpack(source, scratch / "source", limits) if source.is_file() else source
    verified = signing.trusted_signature(folder, keys)
    return folder, None if verified is None else f"signature: {verified.key_fingerprint}"


def truster(trusted_by: str | None) -> str:
    """Who is trusting a model: the name given, else the OS user."""
    trusted_by = (current_user() if trusted_by is None else trusted_by).strip()
    if not trusted_by or len(trusted_by) > 128:
        raise InvalidInput("trusted_by must be 1 to 128 characters")
    return trusted_by


def is_code(model: object, flavor: str | None) -> bool:
    """True when ``model`` would be saved by a flavor whose artifacts are code. A model no
    flavor takes is not code: saving it fails later, and the version is marked failed."""
    try:
        return packaging.runs_code(get_flavor(flavor) if flavor else flavor_for_model(model))
    except ModelportError:
        return False


def refuse_unsafe(path: Path, *, code_trusted: bool) -> None:
    """UntrustedArtifact naming the first unsafe thing found in the artifact, if any; then,
    unless its code is trusted, CodeNotTrusted for an artifact that is code."""
    found = packaging.find_unsafe(path)
    if found:
        raise UntrustedArtifact(f"refusing {packaging.describe_findings(found)}")
    manifest = read_manifest(path)
    if not code_trusted and packaging.runs_code(get_flavor(manifest.flavor)):
        raise CodeNotTrusted(manifest.name, manifest.flavor)
