"""The artifact manifest, ``modelport.json``: what a model is and how to load it.

An artifact is a folder::

    churn/
      modelport.json          this manifest
      model.skops             the flavor's files (names chosen by the flavor)
      input_example.json      {"inputs": {name: nested lists}}  (optional)
      reference_profile.json  per-feature summary of the training data (optional)
      modelport.sig           detached Ed25519 signature of modelport.json (optional, see
                              modelport.artifact.signing); never listed in ``files``

``modelport.json`` holds (format_version 1)::

    format_version  1
    name            model name (a safe name, see modelport.ref)
    flavor          a registered flavor name: "sklearn", "xgboost", "lightgbm", "onnx", "pyfunc"
    flavor_options  what the flavor needs to load its files (file name, serialization, classes)
    framework       {"name": "scikit-learn", "version": "1.5.0"}
    python_version  "3.11.7"
    modelport_version
    requirements    pip requirement lines needed to load the model
    created_at      ISO-8601 UTC
    signature       {"kind": "columns"|"tensors", "inputs": [...], "outputs": [...]}
    input_example   file name or null
    reference_profile  file name or null
    metrics         {"auc": 0.91}
    tags            {"team": "growth"}
    description     free text
    lineage         {"source": where it came from, "parent": "name/3" or null,
                     "conversion": e.g. "pickle->skops" or null}
    files           {relative path: sha256 hex} for every file except modelport.json
                    (and modelport.sig, which is written after the manifest)

Every file listed in ``files`` is checked against its SHA-256 before anything is deserialized.
The registry also records the manifest's own SHA-256, so the manifest cannot be edited either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelport.artifact.signature import Signature
from modelport.errors import ArtifactCorrupted, ArtifactNotFound

MANIFEST_FILE = "modelport.json"
SIGNATURE_FILE = "modelport.sig"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """The parsed ``modelport.json``."""

    name: str
    flavor: str
    signature: Signature
    files: dict[str, str]
    flavor_options: dict[str, Any] = field(default_factory=dict)
    framework: dict[str, str] = field(default_factory=dict)
    python_version: str = ""
    modelport_version: str = ""
    requirements: list[str] = field(default_factory=list)
    created_at: str = ""
    input_example: str | None = None
    reference_profile: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    lineage: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["signature"] = self.signature.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {version!r}")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["signature"] = Signature.from_dict(data["signature"])
        return cls(**values)


def read_manifest(path: Path) -> Manifest:
    """Read ``path/modelport.json``; a missing file is ArtifactNotFound, a broken one corrupted."""
    return parse_manifest(read_manifest_bytes(path))


def read_manifest_bytes(path: Path) -> bytes:
    """The exact bytes of ``path/modelport.json`` (what a signature covers)."""
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise ArtifactNotFound(str(path))
    return file.read_bytes()


def parse_manifest(data: bytes) -> Manifest:
    """Parse manifest bytes already read (and perhaps verified), so they are not read twice."""
    try:
        return Manifest.from_dict(json.loads(data.decode("utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactCorrupted(MANIFEST_FILE, f"not a valid manifest ({exc})") from None
