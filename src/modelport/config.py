"""One settings object: flags, then ``MODELPORT_*`` env vars, then ``.env``, then defaults.

Build a :class:`Settings` once at the edge (CLI, app factory, ``modelport.load``) and pass it
down; library code never reads ``os.environ`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelport.errors import InvalidInput


def settings_error(exc: ValidationError, group: str = "") -> InvalidInput:
    """One line for the first bad value: which setting (as its environment variable too),
    what was given, what is allowed. ``group`` prefixes the setting's name (``serving``)."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in (*([group] if group else []), *first["loc"]))
    env = "MODELPORT_" + path.upper().replace(".", "__")
    given = first.get("input")
    shown = "" if isinstance(given, dict) else f" = {given!r}"
    rule = str(first["msg"]).removeprefix("Input ").replace("should be", "must be")
    return InvalidInput(f"setting {path}{shown}: {rule} ({env})")


DEVICE_PATTERN = r"^(cpu|cuda(:\d+)?)$"
"""A device a model may be loaded on: ``cpu``, ``cuda`` (the current GPU) or ``cuda:N``."""

GPU_BATCH_DELAY_MS = 2.0
"""The batching wait for a model on a GPU when none is set: a GPU call costs about the same
for 1 row as for 64, so waiting a little for a fuller batch pays (see benchmarks/gpu.py)."""


def _default_home() -> Path:
    return Path("~/.modelport").expanduser()


class ServingSettings(BaseModel):
    """How the HTTP server runs. Per-model batching can be overridden in ``deployment.yaml``."""

    host: str = "127.0.0.1"
    """Address to bind. Loopback by default; anything else should come with auth."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port (0: any free one)."""

    workers: int = Field(default=1, ge=1, le=512)
    """Server processes sharing the port."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Requests with a larger body get 413 before it is read."""

    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Most bytes of a request's head (request line and headers): past it, 431 and the
    connection is closed, before auth and before more is buffered."""

    max_header_line_bytes: int = Field(default=16 * 1024, ge=256)
    """Most bytes of one header (name and value) or of the request line (414 past it)."""

    request_timeout_s: float = Field(default=30.0, gt=0, le=86_400)
    """A prediction not finished by then gets 504 (the request, not the model, is dropped)."""

    max_batch_size: int = Field(default=64, ge=1)
    """Most rows one batched ``predict`` call may take (requests are never split)."""

    max_batch_delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    """Extra wait for a full batch once traffic is concurrent. 0: a batch is what queued
    while the previous one ran, which already grows with the load and adds no latency."""

    inline_predict_ms: float = Field(default=1.0, ge=0)
    """Models whose measured ``predict`` takes less run it on the event loop: a thread hop
    would cost more than the call. Slower ones run in worker threads. 0: always threads."""

    max_queue: int = Field(default=1024, ge=1)
    """Requests a model may have waiting; more get 503 with Retry-After."""

    poll_interval_s: float = Field(default=5.0, ge=0.05, le=86_400)
    """How often a served ``name@alias`` or ``name`` checks the registry for a new version."""

    batching: bool = True
    """Adaptive batching for models whose signature has a batch axis."""

    device: str = Field(default="cpu", pattern=DEVICE_PATTERN)
    """Where models run: ``cpu``, ``cuda`` or ``cuda:N`` (torch and ONNX models; a flavor
    that runs on the CPU only refuses a GPU device). Per model in ``deployment.yaml``."""

    auth: bool = False
    """Require API keys (``Authorization: Bearer``). Always on for a non-loopback ``host``
    unless the server is started with ``--insecure-no-auth``."""

    auth_cache_s: float = Field(default=5.0, ge=0, le=3600)
    """How long a checked API key is trusted before the registry is asked again (a revoked
    key stops working within this time)."""

    tls_cert: Path | None = None
    """PEM certificate chain: serve HTTPS (with ``tls_key``)."""

    tls_key: Path | None = None
    """PEM private key for ``tls_cert``."""

    require_signed: Path | None = None
    """Ed25519 public key (PEM): refuse to load any model not signed with its private key."""

    trust_unsafe: bool = False
    """Load models served from a path (folder or bundle) as they are: their code runs and
    their pickles skip the allow-list. For code you wrote; registered versions follow their
    own trust record instead. Flag: ``serve --trust-unsafe``."""

    log_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of requests whose inputs and outputs go to the prediction log (drift, live
    accuracy). 0: off. Per model in ``deployment.yaml`` as ``log_sample_rate``."""

    log_queue: int = Field(default=10_000, ge=1)
    """Sampled requests that may wait for the log writer; beyond, they are dropped and
    counted in ``modelport_prediction_log_dropped_total`` (a request never waits)."""

    access_log: bool = True
    """One JSON line per request on stdout (request id, status, model, duration)."""

    chart_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between two points of the dashboard's request charts (an hour is kept)."""

    monitor_interval_s: float = Field(default=60.0, gt=0)
    """How often drift and live accuracy of logged models are recomputed for the gauges."""


MIB = 1024**2
GIB = 1024**3


class BundleLimits(BaseModel):
    """How much unpacking one ``.tar`` bundle may write. A bundle past any limit is refused
    with one line naming it, before its oversized member is written; nothing is left behind.
    """

    max_total_bytes: int = Field(default=16 * GIB, ge=1)
    """All files of the bundle together, as declared in its headers."""

    max_file_bytes: int = Field(default=8 * GIB, ge=1)
    """Any one file."""

    max_ratio: float = Field(default=100.0, ge=1.0)
    """Extracted size over the bundle's size on disk: a compressed bundle that claims more is
    a decompression bomb (a model's weights compress far less than 100:1)."""

    max_files: int = Field(default=100_000, ge=1)
    """Entries in the bundle."""


class S3Settings(BaseModel):
    """How the S3 artifact store talks to its endpoint. Credentials, region and endpoint come
    from the standard AWS chain (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``, an instance role,
    ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for MinIO, Ceph or R2), never from these settings."""

    checksum: Literal["when_supported", "when_required"] | None = None
    """botocore's request checksum mode. Recent botocore sends CRC headers on every upload
    (``when_supported``); several S3-compatible stores reject them: set ``when_required``.
    Unset: botocore's own default (or ``AWS_REQUEST_CHECKSUM_CALCULATION``). modelport checks
    every download against the SHA-256 the registry recorded either way."""

    max_attempts: int = Field(default=5, ge=1, le=20)
    """Tries per request, with botocore's backoff on throttling, 5xx and dropped connections."""

    connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    """How long to wait to connect to the endpoint before an attempt fails."""

    multipart_threshold_bytes: int = Field(default=16 * MIB, ge=5 * MIB, le=5 * GIB)
    """Files this large or larger go up as multipart uploads of parts this size."""


class Settings(BaseSettings):
    """Where the registry lives. Values given to the constructor (CLI flags) win over env vars.

    A value out of its range, from a flag or the environment, is one InvalidInput naming the
    setting and the rule (the CLI's exit code 2), never a validation traceback.
    """

    model_config = SettingsConfigDict(
        env_prefix="MODELPORT_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    def __init__(self, **values: Any) -> None:  # Any: whatever a caller passes as settings
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise settings_error(exc) from None

    home: Path = Field(default_factory=_default_home)
    """Folder holding the embedded registry (``registry.db``) and artifacts (``artifacts/``)."""

    registry_uri: str | None = None
    """Metadata store: ``sqlite:///path/registry.db`` or ``postgresql://user@host/db``.
    Default: ``sqlite:///{home}/registry.db``."""

    artifact_uri: str | None = None
    """Artifact store: a local folder (``file:///path`` or a plain path), or
    ``s3://bucket/prefix`` (the ``[s3]`` extra). Default: ``{home}/artifacts``."""

    serving: ServingSettings = Field(default_factory=ServingSettings)
    """Server settings, e.g. ``MODELPORT_SERVING__PORT=9000``."""

    cache_dir: Path | None = None
    """Where artifacts from remote stores (S3) and bundles are unpacked for loading; one per
    host, shared safely by every process on it. Default: ``{home}/cache``."""

    cache_max_bytes: int = Field(default=20 * GIB, ge=0)
    """Size bound of the S3 read-through cache: past it, the artifacts used least recently
    are removed (never the one just fetched). Size it to hold the models a host serves."""

    s3: S3Settings = Field(default_factory=S3Settings)
    """The S3 artifact store, e.g. ``MODELPORT_S3__CHECKSUM=when_required``."""

    bundle: BundleLimits = Field(default_factory=BundleLimits)
    """Limits on unpacking ``.tar`` bundles, e.g. ``MODELPORT_BUNDLE__MAX_TOTAL_BYTES``."""

    trusted_keys: list[Path] = Field(default_factory=list)
    """Ed25519 public keys (PEM) you trust: an artifact signed by one of them is trusted, so
    its own code may run when it loads (pyfunc models) and its pickles load without the
    allow-list. Env: ``MODELPORT_TRUSTED_KEYS='["/etc/modelport/ci.pub"]'``. Flags:
    ``--trusted-key``."""

    def resolved_registry_uri(self) -> str:
        """The metadata store URI with the embedded default filled in."""
        return self.registry_uri or f"sqlite:///{self.home / 'registry.db'}"

    def resolved_artifact_uri(self) -> str:
        """The artifact store URI with the embedded default filled in."""
        return self.artifact_uri or str(self.home / "artifacts")

    def resolved_cache_dir(self) -> Path:
        """The local cache folder for artifacts fetched from remote stores."""
        return self.cache_dir or self.home / "cache"
