"""What a server serves: model specs from the command line or a ``deployment.yaml``.

``deployment.yaml``::

    serving:                # any ServingSettings field (port, workers, max_body_bytes, ...)
      port: 8000
    models:
      - ref: churn@production     # name, name/3, name@alias, or a path
        name: churn               # served name; default: the ref's model name or folder name
        max_batch_size: 32        # per-model overrides of the batching settings
        max_batch_delay_ms: 1
        max_queue: 256
        batching: true
        log_sample_rate: 0.1      # log 10% of requests for drift and live accuracy
        device: cuda:0            # cpu (default), cuda or cuda:N: torch and ONNX models
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelport.config import DEVICE_PATTERN, ServingSettings, settings_error
from modelport.errors import InvalidInput
from modelport.ref import ModelRef, validate_name


class ModelSpec(BaseModel):
    """One served model: its ref, the name it is served under, and batching overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str
    name: str | None = None
    max_batch_size: int | None = Field(default=None, ge=1)
    max_batch_delay_ms: float | None = Field(default=None, ge=0, le=60_000)
    max_queue: int | None = Field(default=None, ge=1)
    batching: bool | None = None
    log_sample_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    device: str | None = Field(default=None, pattern=DEVICE_PATTERN)

    @property
    def served_name(self) -> str:
        """The ``{name}`` in the URLs."""
        if self.name:
            return validate_name(self.name)
        parsed = ModelRef.parse(self.ref)
        if parsed.path is not None:
            return validate_name(parsed.path.name.removesuffix(".tar"))
        assert parsed.name is not None
        return parsed.name


KSERVE_MODEL_DIR = Path("/mnt/models")
"""Where KServe's storage initializer puts the files of an InferenceService's ``storageUri``."""


def storage_uri_path(storage_uri: str) -> Path:
    """The folder to serve for a ``STORAGE_URI``, as a KServe runtime gets it: a local path
    (or ``file://`` URI) is served where it is; any other scheme (``s3://``, ``gs://``,
    ``pvc://``, ``https://``) was downloaded by KServe's storage initializer into
    :data:`KSERVE_MODEL_DIR`."""
    uri = storage_uri.strip()
    if not uri:
        raise InvalidInput("STORAGE_URI is empty")
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri:
        return KSERVE_MODEL_DIR
    return Path(uri)


def command_line_specs(
    refs: list[str], name: str | None, storage_uri: str | None
) -> list[ModelSpec]:
    """The models named on ``modelport serve``'s command line. With no ref, a
    ``STORAGE_URI`` (KServe's) names the folder to serve; ``name`` renames the one model."""
    if not refs and storage_uri is not None:
        refs = [str(storage_uri_path(storage_uri))]
    if name is not None and len(refs) != 1:
        raise InvalidInput(f"--name names one model; {len(refs)} refs were given")
    return [ModelSpec(ref=ref, name=name) for ref in refs]


class Deployment(BaseModel):
    """The whole file: server settings and the models to serve."""

    model_config = ConfigDict(extra="forbid")

    serving: dict[str, Any] = {}
    models: list[ModelSpec] = []


def load_deployment(path: Path) -> Deployment:
    """Read and validate a deployment file; every problem is one clear InvalidInput."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        deployment = Deployment.model_validate(data)
    except OSError as exc:
        raise InvalidInput(f"cannot read deployment file {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"deployment file {str(path)!r} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            fields = (
                ModelSpec.model_fields if first["loc"][0] == "models" else Deployment.model_fields
            )
            known = ", ".join(fields)
            raise InvalidInput(
                f"deployment file {str(path)!r}: {where}: unknown field (known: {known})"
            ) from None
        given = first.get("input")
        shown = "" if isinstance(given, dict | list) else f" = {given!r}"
        rule = str(first["msg"]).removeprefix("Input ").replace("should be", "must be")
        raise InvalidInput(f"deployment file {str(path)!r}: {where}{shown}: {rule}") from None
    unknown = sorted(set(deployment.serving) - set(ServingSettings.model_fields))
    if unknown:  # a misspelled setting would otherwise be ignored without a word
        known = ", ".join(ServingSettings.model_fields)
        raise InvalidInput(
            f"deployment file {str(path)!r}: serving.{unknown[0]}: unknown setting (known: {known})"
        )
    try:
        ServingSettings.model_validate(deployment.serving)
    except ValidationError as exc:
        message = settings_error(exc, "serving")
        raise InvalidInput(f"deployment file {str(path)!r}: {message}") from None
    names = [spec.served_name for spec in deployment.models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"deployment file serves {duplicates[0]!r} twice; give one a name")
    return deployment
