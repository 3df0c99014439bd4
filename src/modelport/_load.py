"""``modelport.load``: one call from any ref to a verified, ready-to-predict model."""

from __future__ import annotations

from pathlib import Path

from modelport.config import Settings
from modelport.packaging import LoadedModel
from modelport.ref import ModelRef
from modelport.registry import Registry
from modelport.registry.registry import load_local


def load(
    ref: str | Path | ModelRef,
    *,
    settings: Settings | None = None,
    require_signed: str | Path | None = None,
    trust_unsafe: bool = False,
    device: str = "cpu",
) -> LoadedModel:
    """Load ``churn@production``, ``churn/3``, ``churn`` (latest ready), a folder or a bundle.

    Registry refs use ``settings`` (default: built from ``MODELPORT_*`` env vars). Paths never
    open the registry; a ``.tar`` bundle is unpacked once into the cache, keyed by its hash.
    ``require_signed`` (a PEM Ed25519 public key file) refuses, before anything is
    deserialized, an artifact that is not signed by that key or changed since it was signed.

    Every path gets the checks a registered version gets (checksums, the pickle allow-list,
    trust for code). A folder or bundle that is code (a pyfunc model) loads only when trusted:
    signed by ``require_signed`` or one of ``settings.trusted_keys``, or with
    ``trust_unsafe=True``, which also loads its pickles without the allow-list. A registered
    version follows the trust its record carries. ``device`` (``cpu``, ``cuda``, ``cuda:N``)
    is where a torch or ONNX model runs; other flavors run on the CPU only.

    >>> model = modelport.load("churn@production", require_signed="signing.pub")
    >>> model.predict(rows)
    """
    parsed = ModelRef.parse(ref)
    config = settings or Settings()
    if parsed.path is not None:
        return load_local(
            parsed.path,
            config,
            require_signed=require_signed,
            trust_unsafe=trust_unsafe,
            device=device,
        )
    with Registry(config) as registry:
        return registry.load(parsed, require_signed=require_signed, device=device)


def registered_artifact(registry: Registry, ref: str | Path | ModelRef) -> tuple[Path, str | None]:
    """The local folder of the artifact a ref names, and the manifest SHA-256 the registry
    recorded for it (None for a path ref, which has no record).

    Resolves the ref once, so the folder and the hash belong to the same version even while
    an alias moves.
    """
    parsed = ModelRef.parse(ref)
    if parsed.path is not None:
        return registry.artifact_path(parsed), None
    version = registry.resolve(parsed)
    return registry.artifacts.local_path(version.artifact_key), version.manifest_sha256
