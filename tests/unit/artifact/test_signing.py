"""Ed25519 artifact signatures: what is refused, why, and that it is refused before loading."""

from __future__ import annotations

import base64
import json
import stat
import sys
import tarfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import modelport
from modelport._load import registered_artifact
from modelport.artifact import signing
from modelport.artifact.bundle import pack, unpack
from modelport.artifact.checksums import verify_files
from modelport.artifact.manifest import MANIFEST_FILE, SIGNATURE_FILE, read_manifest
from modelport.errors import (
    ArtifactCorrupted,
    ArtifactUnsigned,
    BadArtifactSignature,
    Conflict,
    InvalidSigningKey,
    ModelportError,
    SignedByOtherKey,
)
from modelport.packaging import load_artifact
from modelport.registry import Registry

KeyPair = tuple[Path, Path]


def _keypair(folder: Path) -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "signing.pem", folder / "signing.pub"
    signing.generate_keypair(private, public)
    return private, public


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return _keypair(tmp_path / "keys")


@pytest.fixture
def other_keys(tmp_path: Path) -> KeyPair:
    return _keypair(tmp_path / "other-keys")


def _flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_manifest(root: Path) -> None:
    """A small, still valid edit: what an attacker changing a hash or option would do."""
    text = (root / MANIFEST_FILE).read_text()
    assert '"description": ""' in text
    (root / MANIFEST_FILE).write_text(text.replace('"description": ""', '"description": "x"'))


# -- keys ---------------------------------------------------------------------------------


def test_keygen_writes_a_pem_pair_with_a_private_file_only_the_owner_reads(
    tmp_path: Path,
) -> None:
    private, public = tmp_path / "new" / "k.pem", tmp_path / "new" / "k.pub"
    fingerprint = signing.generate_keypair(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert fingerprint == signing.fingerprint(signing.load_public_key(public))
    assert fingerprint == signing.fingerprint(signing.load_private_key(private).public_key())
    assert fingerprint.startswith("sha256:")
    assert len(fingerprint) == len("sha256:") + 64


@pytest.mark.parametrize("existing", ["private", "public"])
def test_keygen_never_overwrites_a_key_file(tmp_path: Path, existing: str) -> None:
    paths = {"private": tmp_path / "k.pem", "public": tmp_path / "k.pub"}
    paths[existing].write_text("precious")
    with pytest.raises(Conflict, match="already exists; keygen never overwrites"):
        signing.generate_keypair(paths["private"], paths["public"])
    assert paths[existing].read_text() == "precious"
    other = "public" if existing == "private" else "private"
    assert not paths[other].exists(), "no half key pair is left behind"


def test_key_files_are_checked_and_the_error_says_what_is_wrong(
    tmp_path: Path, keys: KeyPair
) -> None:
    private, public = keys
    with pytest.raises(InvalidSigningKey, match="holds a private key, pass the public one"):
        signing.load_public_key(private)
    with pytest.raises(InvalidSigningKey, match="holds a public key, pass the private one"):
        signing.load_private_key(public)
    with pytest.raises(InvalidSigningKey, match=r"missing\.pub: file not found"):
        signing.load_public_key(tmp_path / "missing.pub")
    ec_key = tmp_path / "ec.pub"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidSigningKey, match="not an Ed25519 key"):
        signing.load_public_key(ec_key)


# -- sign and verify ----------------------------------------------------------------------


def test_sign_then_verify_names_the_signing_key(artifact_dir: Path, keys: KeyPair) -> None:
    private, public = keys
    written = signing.sign_artifact(artifact_dir, private)
    assert written == artifact_dir / SIGNATURE_FILE
    record = json.loads(written.read_text())
    assert record["algorithm"] == "ed25519"
    assert len(base64.b64decode(record["signature"])) == 64
    verified = signing.verify_artifact(artifact_dir, public)
    assert verified.key_fingerprint == signing.fingerprint(signing.load_public_key(public))
    assert verified.key_fingerprint == record["key_fingerprint"]
    assert verified.manifest.name == "churn"
    # The signature sits beside the manifest without being listed in it, and the existing
    # checksum verification is not disturbed by it.
    manifest = read_manifest(artifact_dir)
    assert SIGNATURE_FILE not in manifest.files
    verify_files(artifact_dir, manifest.files)


def test_an_unsigned_artifact_is_refused(artifact_dir: Path, keys: KeyPair) -> None:
    with pytest.raises(ArtifactUnsigned, match=r"is not signed \(it has no modelport.sig\)"):
        signing.verify_artifact(artifact_dir, keys[1])


def test_an_artifact_signed_by_another_key_is_refused(
    artifact_dir: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    signing.sign_artifact(artifact_dir, other_keys[0])
    theirs = signing.fingerprint(signing.load_public_key(other_keys[1]))
    ours = signing.fingerprint(signing.load_public_key(keys[1]))
    with pytest.raises(SignedByOtherKey, match=f"signed by key {theirs}, not by the trusted key"):
        signing.verify_artifact(artifact_dir, keys[1])
    with pytest.raises(SignedByOtherKey, match=ours):
        signing.verify_artifact(artifact_dir, keys[1])


def test_a_manifest_edited_after_signing_is_refused(artifact_dir: Path, keys: KeyPair) -> None:
    signing.sign_artifact(artifact_dir, keys[0])
    _edit_manifest(artifact_dir)
    with pytest.raises(
        BadArtifactSignature, match=r"modelport\.json was changed after it was signed"
    ):
        signing.verify_artifact(artifact_dir, keys[1])


def test_one_flipped_manifest_byte_is_refused(artifact_dir: Path, keys: KeyPair) -> None:
    signing.sign_artifact(artifact_dir, keys[0])
    _flip_byte(artifact_dir / MANIFEST_FILE, offset=-3)
    with pytest.raises(BadArtifactSignature, match="changed after it was signed"):
        signing.verify_artifact(artifact_dir, keys[1])


def test_a_forged_signature_claiming_the_trusted_key_is_refused(
    artifact_dir: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    """The fingerprint in the file is only a hint: copying the trusted one proves nothing."""
    signing.sign_artifact(artifact_dir, other_keys[0])
    sig_file = artifact_dir / SIGNATURE_FILE
    record = json.loads(sig_file.read_text())
    record["key_fingerprint"] = signing.fingerprint(signing.load_public_key(keys[1]))
    sig_file.write_text(json.dumps(record))
    with pytest.raises(BadArtifactSignature, match=r"does not match modelport\.json"):
        signing.verify_artifact(artifact_dir, keys[1])


def test_a_tampered_model_file_is_refused_and_named(artifact_dir: Path, keys: KeyPair) -> None:
    signing.sign_artifact(artifact_dir, keys[0])
    _flip_byte(artifact_dir / "sub" / "vocab.txt")
    with pytest.raises(ArtifactCorrupted, match=r"'sub/vocab.txt' is corrupted: sha256 is"):
        signing.verify_artifact(artifact_dir, keys[1])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "not a valid signature file"),
        ('{"format_version": 2}', "unsupported format_version 2"),
        ('{"format_version": 1, "algorithm": "rsa"}', "unsupported algorithm 'rsa'"),
        ('{"format_version": 1, "algorithm": "ed25519"}', "must be strings"),
    ],
)
def test_a_garbled_signature_file_is_refused(
    artifact_dir: Path, keys: KeyPair, content: str, reason: str
) -> None:
    (artifact_dir / SIGNATURE_FILE).write_text(content)
    with pytest.raises(BadArtifactSignature, match=reason):
        signing.verify_artifact(artifact_dir, keys[1])


def test_the_registry_pin_is_checked_too(artifact_dir: Path, keys: KeyPair) -> None:
    signing.sign_artifact(artifact_dir, keys[0])
    with pytest.raises(ArtifactCorrupted, match="does not match the registry's record"):
        signing.verify_artifact(artifact_dir, keys[1], manifest_sha256="0" * 64)


def test_a_corrupted_artifact_is_never_signed(artifact_dir: Path, keys: KeyPair) -> None:
    _flip_byte(artifact_dir / "weights.bin")
    with pytest.raises(ArtifactCorrupted, match=r"'weights\.bin' is corrupted"):
        signing.sign_artifact(artifact_dir, keys[0])
    assert not (artifact_dir / SIGNATURE_FILE).exists()


def test_signing_again_replaces_the_signature(
    artifact_dir: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    signing.sign_artifact(artifact_dir, keys[0])
    signing.sign_artifact(artifact_dir, other_keys[0])
    signing.verify_artifact(artifact_dir, other_keys[1])
    assert [p.name for p in artifact_dir.iterdir() if p.name.startswith(".tmp")] == []
    assert stat.S_IMODE((artifact_dir / SIGNATURE_FILE).stat().st_mode) == 0o644


def test_a_signed_bundle_carries_its_signature(
    artifact_dir: Path, keys: KeyPair, tmp_path: Path
) -> None:
    signing.sign_artifact(artifact_dir, keys[0])
    bundle = pack(artifact_dir, tmp_path / "churn.tar")
    with tarfile.open(bundle) as tar:
        assert "churn/modelport.sig" in tar.getnames()
    unpacked = unpack(bundle, tmp_path / "unpacked")
    assert signing.verify_artifact(unpacked, keys[1]).manifest.name == "churn"
    _flip_byte(unpacked / "weights.bin")
    with pytest.raises(ArtifactCorrupted, match=r"'weights\.bin' is corrupted"):
        signing.verify_artifact(unpacked, keys[1])


# -- loading: refused before the flavor deserializes anything ------------------------------

MARKED_MODEL = """
    import pathlib

    from modelport.flavors.pyfunc import PythonModel

    # Runs whenever the artifact's code is imported, i.e. whenever the flavor deserializes.
    pathlib.Path({marker!r}).write_text("deserialized")


    class Model(PythonModel):
        def predict(self, inputs):
            return inputs["x"].sum(axis=1)
"""


@pytest.fixture
def marked_artifact(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A pyfunc artifact whose code leaves a marker file whenever it is loaded; the marker
    is removed after saving. Each load from a new folder imports the code anew."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    marker = tmp_path / "marker"
    module = f"signed_model_{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{module}.py").write_text(textwrap.dedent(MARKED_MODEL.format(marker=str(marker))))
    sys.path.insert(0, str(src))
    try:
        model = __import__(module).Model()
        art = tmp_path / "art" / "marked"
        modelport.save(model, art, input_example={"x": np.ones((2, 2))})
        marker.unlink()
        yield art, marker
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name == module or name.startswith("_modelport_pyfunc_"):
                del sys.modules[name]


LoadCase = Callable[[Path, KeyPair, KeyPair], None]


def _unsigned(art: Path, keys: KeyPair, other: KeyPair) -> None:
    pass


def _other_key(art: Path, keys: KeyPair, other: KeyPair) -> None:
    signing.sign_artifact(art, other[0])


def _manifest_edited(art: Path, keys: KeyPair, other: KeyPair) -> None:
    signing.sign_artifact(art, keys[0])
    _edit_manifest(art)


def _code_tampered(art: Path, keys: KeyPair, other: KeyPair) -> None:
    signing.sign_artifact(art, keys[0])
    code = next((art / "code").glob("*.py"))
    code.write_text(code.read_text() + "\nimport os  # injected\n")


@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [
        pytest.param(_unsigned, ArtifactUnsigned, "is not signed", id="unsigned"),
        pytest.param(_other_key, SignedByOtherKey, "not by the trusted key", id="other-key"),
        pytest.param(
            _manifest_edited, BadArtifactSignature, "changed after it was signed", id="manifest"
        ),
        pytest.param(_code_tampered, ArtifactCorrupted, r"'code/signed_model_\w+\.py'", id="file"),
    ],
)
def test_load_with_a_public_key_refuses_before_deserializing(
    marked_artifact: tuple[Path, Path],
    keys: KeyPair,
    other_keys: KeyPair,
    tamper: LoadCase,
    error: type[ModelportError],
    message: str,
) -> None:
    art, marker = marked_artifact
    tamper(art, keys, other_keys)
    with pytest.raises(error, match=message):
        load_artifact(art, public_key=keys[1])
    assert not marker.exists(), "the flavor ran before the signature was checked"
    with pytest.raises(error, match=message):
        modelport.load(art, require_signed=keys[1])
    assert not marker.exists(), "the flavor ran before the signature was checked"


def test_load_with_a_public_key_loads_a_signed_artifact(
    marked_artifact: tuple[Path, Path], keys: KeyPair, tmp_path: Path
) -> None:
    art, marker = marked_artifact
    signing.sign_artifact(art, keys[0])
    model = load_artifact(art, public_key=keys[1])
    assert marker.exists(), "the marker shows when the flavor runs"
    np.testing.assert_allclose(model.predict({"x": np.ones((3, 2))}), [2.0, 2.0, 2.0])
    bundle = pack(art, tmp_path / "marked.tar")
    settings = modelport.Settings(home=tmp_path / "home")
    loaded = modelport.load(bundle, settings=settings, require_signed=keys[1])
    assert loaded.name == "marked"


def test_load_of_a_registered_version_requires_its_signature(
    marked_artifact: tuple[Path, Path], keys: KeyPair, registry_uri: str, tmp_path: Path
) -> None:
    art, marker = marked_artifact
    settings = modelport.Settings(
        home=tmp_path / "home", registry_uri=registry_uri, artifact_uri=str(tmp_path / "store")
    )
    signing.sign_artifact(art, keys[0])  # pyfunc code registers only when trusted
    with Registry(settings) as registry:
        registry.register("churn", art, trusted_keys=[keys[1]])
        registry.register("churn", art, trusted_keys=[keys[1]])
        path, pinned = registered_artifact(registry, "churn/1")
        assert pinned is not None
        signing.sign_artifact(path, keys[0], manifest_sha256=pinned)
        registry.set_alias("churn", "production", 1)
    loaded = modelport.load("churn@production", settings=settings, require_signed=keys[1])
    assert loaded.name == "churn"
    marker.unlink()
    with pytest.raises(ArtifactUnsigned, match="is not signed"):
        modelport.load("churn/2", settings=settings, require_signed=keys[1])
    assert not marker.exists(), "the flavor ran before the signature was checked"
