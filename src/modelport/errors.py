"""One exception tree for all of modelport; each error has a stable code and an HTTP status.

Errors are mapped only at the edges: the server turns any ``ModelportError`` into
``{"error": message}`` with ``status``; the CLI prints the message and exits with
``exit_code``. Messages may reach clients, so they never carry secrets or tracebacks.

    ModelportError                       internal            500
    ├── InvalidName                      invalid_name        400
    ├── InvalidRef                       invalid_ref         400
    ├── InvalidInput                     invalid_input       400
    │   ├── SignatureError               signature_error     400
    │   └── InvalidSigningKey            invalid_signing_key 400
    ├── Unauthenticated                  unauthenticated     401
    ├── Forbidden                        forbidden           403
    ├── NotFound                         not_found           404
    │   ├── ModelNotFound                model_not_found     404
    │   ├── VersionNotFound              version_not_found   404
    │   ├── AliasNotFound                alias_not_found     404
    │   ├── NoReadyVersion               no_ready_version    404
    │   ├── KeyNotFound                  key_not_found       404
    │   └── ArtifactNotFound             artifact_not_found  404
    ├── Conflict                         conflict            409
    │   ├── VersionNotReady              version_not_ready   409
    │   ├── VersionInUse                 version_in_use      409
    │   └── ModelInUse                   model_in_use        409
    ├── ArtifactError                    artifact_error      422
    │   ├── ArtifactCorrupted            artifact_corrupted  422
    │   ├── UnsafeArtifact               unsafe_artifact     422
    │   │   └── UntrustedArtifact        untrusted_artifact  422
    │   │       └── CodeNotTrusted       code_not_trusted    422
    │   ├── UnsafeBundle                 unsafe_bundle       422
    │   └── SigningError                 signing_error       422
    │       ├── ArtifactUnsigned         artifact_unsigned   422
    │       ├── SignedByOtherKey         signed_by_other_key 422
    │       └── BadArtifactSignature     bad_artifact_signature 422
    ├── FlavorError                      flavor_error        422
    │   ├── UnsupportedModel             unsupported_model   422
    │   └── PredictionFailed             prediction_failed   422
    ├── MissingDependency                missing_dependency  500
    ├── ServingError                     serving_error       503
    │   ├── AddressInUse                 address_in_use      503
    │   ├── ModelNotReady                model_not_ready     503
    │   ├── Overloaded                   overloaded          503
    │   ├── RequestTimeout               request_timeout     504
    │   ├── PayloadTooLarge              payload_too_large   413
    │   ├── UnsupportedMediaType         unsupported_media_type 415
    │   ├── UnsupportedContentEncoding   unsupported_content_encoding 415
    │   └── RateLimited                  rate_limited        429
    └── StoreError                       store_error         500
        ├── UnsupportedURI               unsupported_uri     400
        ├── SchemaOutdated               schema_outdated     503
        ├── SchemaTooNew                 schema_too_new      503
        └── RegistryUnavailable          registry_unavailable 503
"""

from __future__ import annotations

from typing import ClassVar


class ModelportError(Exception):
    """Root of every error modelport raises on purpose."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    @property
    def message(self) -> str:
        """The human-readable message, safe to show to a client."""
        return str(self)


class InvalidName(ModelportError):
    """A model name, alias or tag key that could escape the store or confuse a ref."""

    code = "invalid_name"
    status = 400
    exit_code = 2

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}")


class InvalidRef(ModelportError):
    """A string that is neither ``name``, ``name/3``, ``name@alias`` nor a path."""

    code = "invalid_ref"
    status = 400
    exit_code = 2

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"invalid model ref {ref!r}: {reason}")


class InvalidInput(ModelportError):
    """Input data that cannot be read as model input (before the signature is applied)."""

    code = "invalid_input"
    status = 400
    exit_code = 2


class SignatureError(InvalidInput):
    """Input that does not match the model's signature: names the input, expected vs got."""

    code = "signature_error"


class InvalidSigningKey(InvalidInput):
    """An Ed25519 key file for artifact signing that is missing, unreadable or of another kind."""

    code = "invalid_signing_key"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"signing key {path}: {reason}")


class Unauthenticated(ModelportError):
    """A request without a valid API key: missing, malformed, unknown, wrong or revoked.

    The message never says which, so a caller cannot probe for key ids that exist.
    """

    code = "unauthenticated"
    status = 401

    def __init__(self, reason: str = "invalid or revoked API key") -> None:
        super().__init__(reason)


class Forbidden(ModelportError):
    """A valid API key whose scope or model restriction does not cover this request."""

    code = "forbidden"
    status = 403

    def __init__(self, key_name: str, scope: str, model: str | None) -> None:
        where = f"model {model!r}" if model is not None else "this server"
        super().__init__(f"API key {key_name!r} has no {scope!r} access to {where}")


class NotFound(ModelportError):
    """Something named by the caller does not exist."""

    code = "not_found"
    status = 404
    exit_code = 3


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, name: str, suggestion: str | None = None) -> None:
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"model {name!r} not found{hint}")


class VersionNotFound(NotFound):
    code = "version_not_found"

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"model {name!r} has no version {version}")


class AliasNotFound(NotFound):
    code = "alias_not_found"

    def __init__(self, name: str, alias: str) -> None:
        super().__init__(f"model {name!r} has no alias {alias!r}")


class NoReadyVersion(NotFound):
    code = "no_ready_version"

    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} has no ready version")


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"

    def __init__(self, location: str) -> None:
        super().__init__(f"no modelport artifact at {location}")


class KeyNotFound(NotFound):
    code = "key_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no API key named {name!r}")


class Conflict(ModelportError):
    """The request is valid but the current state forbids it."""

    code = "conflict"
    status = 409
    exit_code = 4


class VersionNotReady(Conflict):
    code = "version_not_ready"

    def __init__(self, name: str, version: int, status: str) -> None:
        super().__init__(f"model {name!r} version {version} is {status}, not ready")


class ModelInUse(Conflict):
    code = "model_in_use"

    def __init__(self, name: str, aliases: dict[str, int]) -> None:
        listed = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items()))
        super().__init__(
            f"model {name!r} is the target of aliases ({listed}); delete them first, or "
            "confirm with --force"
        )


class VersionInUse(Conflict):
    code = "version_in_use"

    def __init__(self, name: str, version: int, aliases: list[str]) -> None:
        names = ", ".join(repr(a) for a in aliases)
        super().__init__(
            f"model {name!r} version {version} is still the target of alias {names}; "
            "move or delete the alias first"
        )


class ArtifactError(ModelportError):
    """An artifact that cannot be used as it is."""

    code = "artifact_error"
    status = 422
    exit_code = 5


class ArtifactCorrupted(ArtifactError):
    """A file whose bytes do not match the checksum recorded when it was written."""

    code = "artifact_corrupted"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"artifact file {path!r} is corrupted: {reason}")


class UnsafeArtifact(ArtifactError):
    """A pickle that would import something outside the allow-list when loaded."""

    code = "unsafe_artifact"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refusing to load {path!r}: {reason}")


class UntrustedArtifact(UnsafeArtifact):
    """Registration refused an artifact the safe loaders would refuse (a pickle global
    outside the allow-list, dangerous pyfunc code); the message says how to trust it."""

    code = "untrusted_artifact"

    def __init__(self, detail: str) -> None:
        # Skips UnsafeArtifact's (path, reason) message: ``detail`` already is one.
        ArtifactError.__init__(
            self,
            f"{detail}; if you trust where it came from, register it with trust_unsafe=True "
            "(CLI: --trust-unsafe)",
        )


class CodeNotTrusted(UntrustedArtifact):
    """An artifact that is code (a pyfunc model) reached a loader without being trusted."""

    code = "code_not_trusted"

    def __init__(self, name: str, flavor: str, found: str = "") -> None:
        warning = f"; the scan also found: {found}" if found else ""
        ArtifactError.__init__(
            self,
            f"model {name!r} is {flavor} code, which runs with this process's rights when "
            "loaded, so it loads only when trusted: sign it and trust the key "
            "(--trusted-key / MODELPORT_TRUSTED_KEYS), or allow it with --trust-unsafe "
            f"(trust_unsafe=True){warning}",
        )


class UnsafeBundle(ArtifactError):
    """A bundle entry that would land outside the target directory."""

    code = "unsafe_bundle"

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"refusing bundle entry {entry!r}: {reason}")


class SigningError(ArtifactError):
    """An artifact that was required to be signed by a trusted key and is not."""

    code = "signing_error"


class ArtifactUnsigned(SigningError):
    code = "artifact_unsigned"

    def __init__(self, location: str, signature_file: str) -> None:
        super().__init__(f"artifact at {location} is not signed (it has no {signature_file})")


class SignedByOtherKey(SigningError):
    code = "signed_by_other_key"

    def __init__(self, signed_by: str, trusted: str) -> None:
        super().__init__(f"artifact is signed by key {signed_by}, not by the trusted key {trusted}")


class BadArtifactSignature(SigningError):
    """A signature that does not match the manifest: edited after signing, or forged."""

    code = "bad_artifact_signature"

    def __init__(self, reason: str) -> None:
        super().__init__(f"artifact signature is invalid: {reason}")


class FlavorError(ModelportError):
    """A framework-level failure to save or load a model."""

    code = "flavor_error"
    status = 422
    exit_code = 5


class UnsupportedModel(FlavorError):
    code = "unsupported_model"

    def __init__(self, what: str) -> None:
        super().__init__(f"no flavor can handle {what}")


class PredictionFailed(FlavorError):
    """Input that matched the signature but the model still could not use (an unseen
    category, say). A client problem, hence 4xx, but not one the signature could name."""

    code = "prediction_failed"

    def __init__(self, name: str, exc: BaseException) -> None:
        super().__init__(
            f"model {name!r} failed to predict: {type(exc).__name__}: {summarize(exc)}"
        )


class MissingDependency(ModelportError):
    """An optional framework is not installed; the message names the extra to install."""

    code = "missing_dependency"
    status = 500

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'modelport[{extra}]'"
        )


def from_code(code: str, message: str) -> ModelportError:
    """The error a stable ``code`` names, carrying ``message`` (as it crossed the wire), or
    a plain ModelportError for a code this version does not know. Built without the class's
    own constructor, whose arguments the message already spells out."""
    cls = _by_code().get(code, ModelportError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


def _by_code() -> dict[str, type[ModelportError]]:
    found: dict[str, type[ModelportError]] = {}
    pending: list[type[ModelportError]] = [ModelportError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def summarize(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters: libraries
    write paragraphs (scikit-learn's NaN error runs to six sentences and two URLs), and a
    client or a reject file needs the one that names the problem."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


class ServingError(ModelportError):
    """The server cannot answer this request now; the request itself may be fine."""

    code = "serving_error"
    status = 503
    exit_code = 7


class AddressInUse(ServingError):
    """The server cannot listen where it was told to."""

    code = "address_in_use"

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason} (choose another --port)")


class ModelNotReady(ServingError):
    code = "model_not_ready"

    def __init__(self, name: str, state: str) -> None:
        super().__init__(f"model {name!r} is not ready ({state})")


class Overloaded(ServingError):
    """The model's queue is full; clients should retry after ``retry_after`` seconds."""

    code = "overloaded"
    retry_after: int = 1

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(f"model {name!r} has {limit} requests queued; retry later")


class RequestTimeout(ServingError):
    code = "request_timeout"
    status = 504

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"model {name!r} did not answer within {seconds:g} s")


class PayloadTooLarge(ServingError):
    code = "payload_too_large"
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")


class UnsupportedMediaType(ServingError):
    code = "unsupported_media_type"
    status = 415

    def __init__(self, content_type: str, accepted: list[str]) -> None:
        super().__init__(
            f"content type {content_type!r} is not accepted here; use {', '.join(accepted)}"
        )


class UnsupportedContentEncoding(ServingError):
    """Compressed request bodies are refused: decompressing them is how gzip bombs work."""

    code = "unsupported_content_encoding"
    status = 415

    def __init__(self, encoding: str) -> None:
        super().__init__(
            f"Content-Encoding {encoding[:40]!r} is not accepted; send the body uncompressed"
        )


class RateLimited(ServingError):
    """An API key sent more requests than its rate limit allows."""

    code = "rate_limited"
    status = 429

    def __init__(self, key_name: str, per_second: float, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"API key {key_name!r} is limited to {per_second:g} requests per second; "
            f"retry after {retry_after} s"
        )


class StoreError(ModelportError):
    """The registry database or artifact store failed."""

    code = "store_error"
    status = 500
    exit_code = 6


class UnsupportedURI(StoreError):
    code = "unsupported_uri"
    status = 400
    exit_code = 2

    def __init__(self, uri: str, known: list[str]) -> None:
        super().__init__(f"unsupported store URI {uri!r}; known schemes: {', '.join(known)}")


class SchemaOutdated(StoreError):
    """A shared (PostgreSQL) registry database has an older schema than this modelport needs.

    Opening never migrates a shared database that already has a schema; run
    ``modelport db upgrade`` once. An empty database gets its schema on first open.
    """

    code = "schema_outdated"
    status = 503
    exit_code = 6

    def __init__(self, database: str, found: str, needed: str) -> None:
        super().__init__(
            f"registry database {database} has schema revision {found}, this modelport needs "
            f"{needed}; run `modelport db upgrade`"
        )


class SchemaTooNew(StoreError):
    """The registry database was migrated by a newer modelport; it is left untouched."""

    code = "schema_too_new"
    status = 503
    exit_code = 6

    def __init__(self, database: str, found: str, needed: str) -> None:
        super().__init__(
            f"registry database {database} has schema revision {found}, unknown to this "
            f"modelport (which needs {needed}); upgrade modelport"
        )


class RegistryUnavailable(StoreError):
    """The registry database cannot be reached (down, refusing connections, or not answering
    within the connect timeout). A server keeps answering with the models it has loaded; the
    message names no host or database, which stay in the server's log."""

    code = "registry_unavailable"
    status = 503
    exit_code = 6
    retry_after: int = 5

    def __init__(self) -> None:
        super().__init__(
            "the model registry is unreachable (retry later); models already loaded keep serving"
        )
