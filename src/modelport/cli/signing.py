"""Artifact signing (Ed25519): make a key pair, sign an artifact, verify one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport._load import registered_artifact
from modelport.artifact import signing
from modelport.cli._shared import open_registry, out
from modelport.errors import InvalidInput
from modelport.ref import ModelRef


def keygen(
    private: Annotated[
        Path,
        typer.Option(
            "--private", help="Private key file to create (PEM, mode 0600). Keep it secret."
        ),
    ],
    public: Annotated[
        Path,
        typer.Option(
            "--public", help="Public key file to create (PEM); give it to whoever verifies."
        ),
    ],
) -> None:
    """Create an Ed25519 key pair for signing artifacts. Never overwrites an existing file."""
    fingerprint = signing.generate_keypair(private, public)
    out.print(f"wrote private key {private} and public key {public}", markup=False)
    out.print(f"key fingerprint: {fingerprint}", markup=False)


def sign(
    ref: Annotated[
        str, typer.Argument(help="NAME/3, NAME@ALIAS, NAME (latest) or an artifact folder.")
    ],
    key: Annotated[
        Path, typer.Option("--key", help="Private key (PEM) made by 'modelport keygen'.")
    ],
) -> None:
    """Sign REF's modelport.json with an Ed25519 key, writing modelport.sig beside it.

    A registered version is signed in place, in the registry's artifact store, after its
    manifest is checked against the registry's record and every file against its checksum.
    To ship a signed bundle, sign the folder and then pack it: the bundle carries the
    signature. Signing again replaces the signature.
    """
    parsed = ModelRef.parse(ref)
    if parsed.path is not None and parsed.path.is_file():
        raise InvalidInput(f"{ref} is a file; sign the artifact folder, then pack it")
    with open_registry() as reg:
        path, pinned = registered_artifact(reg, parsed)
        written = signing.sign_artifact(path, key, manifest_sha256=pinned)
    fingerprint = signing.fingerprint(signing.load_private_key(key).public_key())
    out.print(f"signed {ref} with key {fingerprint} (wrote {written})", markup=False)


def verify(
    ref: Annotated[
        str, typer.Argument(help="NAME/3, NAME@ALIAS, NAME, an artifact folder or a .tar bundle.")
    ],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="Trusted public key (PEM) to check against.")
    ],
) -> None:
    """Check that REF is signed by --public-key and unchanged since: exit 0 if so.

    Otherwise exit 5 and say why: not signed, signed by another key, manifest edited after
    signing, or which file changed (exit 2 for an unreadable key file). Nothing is loaded.
    """
    with open_registry() as reg:
        path, pinned = registered_artifact(reg, ref)
        verified = signing.verify_artifact(path, public_key, manifest_sha256=pinned)
    files = len(verified.manifest.files)
    out.print(
        f"verified {ref}: signed by key {verified.key_fingerprint}, {files} files match",
        markup=False,
    )
