"""The ``Registry`` facade: register, look up, alias, load and delete model versions.

It joins the metadata store (which versions exist, which are ready, where aliases point) to
the artifact store (the files), and keeps them consistent with a two-phase registration:

1. ``create_version`` allocates the number and records a *pending* row;
2. the artifact is built in a temporary folder with :mod:`modelport.packaging`;
3. the artifact store copies it into place under the version's key (atomically);
4. ``mark_version_ready`` publishes it together with the manifest's SHA-256.

Only ready versions are ever resolved, loaded or aliased, so readers never see half a
version. If step 2-4 fails the version is marked failed and its files removed; if the
process dies instead, the row stays pending and :meth:`Registry.cleanup_stale` finishes the job.

Before step 3, the artifact is checked as it will be loaded: a pickle global outside the
allow-list, plainly dangerous pyfunc code, or any pyfunc code from a file, folder or bundle
refuses the registration unless it is trusted: ``trust_unsafe=True``, or (for a folder or
bundle) a signature by one of the registry's trusted keys. The version then records who (or
which key) trusted it and when, and only such a version loads as it is. A ``PythonModel``
object registered from the caller's own process is trusted by that caller: its code already
runs there.

The trust checks are in :mod:`modelport.registry._trust`, the load path in
:mod:`modelport.registry.loading`. What else the metadata store holds is reached through the
facade's parts, each typed as the protocol it needs: ``registry.keys`` (the server's API keys,
:class:`~modelport.registry.keys.ApiKeys`), ``registry.predictions`` (the prediction log and
feedback) and ``registry.runs`` (batch runs).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from modelport import packaging
from modelport.artifact import files
from modelport.artifact.manifest import Manifest, read_manifest
from modelport.config import Settings
from modelport.errors import (
    Conflict,
    InvalidInput,
    InvalidRef,
    ModelInUse,
    ModelNotFound,
    ModelportError,
    NoReadyVersion,
    NotFound,
    UnsafeArtifact,
    UntrustedArtifact,
    VersionNotReady,
)
from modelport.packaging import LoadedModel
from modelport.ref import ModelRef, validate_name
from modelport.registry import _trust
from modelport.registry._backends import open_artifact_store, open_metadata_store
from modelport.registry._names import closest_name
from modelport.registry.artifact_store import ArtifactStore
from modelport.registry.entities import AliasChange, ModelInfo, ModelVersion, Page
from modelport.registry.keys import ApiKeys
from modelport.registry.loading import checked_manifest, load_version

# Re-exported: _load.py and serving/manager.py import load_local from here.
from modelport.registry.loading import load_local as load_local
from modelport.registry.metadata_store import MetadataStore, PredictionLog, RunLog

logger = logging.getLogger(__name__)


class Registry:
    """Versioned models with aliases, backed by a metadata store and an artifact store.

    >>> registry = Registry(registry_uri="sqlite:////tmp/mp/registry.db", artifact_uri="/tmp/mp/a")
    >>> registry.register("churn", clf, input_example=X[:5]).version
    1
    >>> registry.set_alias("churn", "production", 1)
    >>> registry.load("churn@production").predict(X)
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry_uri: str | None = None,
        artifact_uri: str | None = None,
    ) -> None:
        settings = settings or Settings()
        self._settings = settings
        self._cache_dir = settings.resolved_cache_dir()
        self._trusted_keys = tuple(settings.trusted_keys)
        self._bundle_limits = settings.bundle
        self._artifacts: ArtifactStore = open_artifact_store(
            artifact_uri or settings.resolved_artifact_uri(), settings
        )
        self._store: MetadataStore = open_metadata_store(
            registry_uri or settings.resolved_registry_uri()
        )
        self._keys = ApiKeys(self._store, self._store)

    @property
    def keys(self) -> ApiKeys:
        """The server's API keys: create, list, revoke, authenticate."""
        return self._keys

    @property
    def predictions(self) -> PredictionLog:
        """The prediction log servers write sampled requests to, and their feedback labels."""
        return self._store

    @property
    def runs(self) -> RunLog:
        """The record of batch runs."""
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        return self._artifacts

    def close(self) -> None:
        """Release database connections."""
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- registration -------------------------------------------------------------------

    def register(
        self,
        name: str,
        model_or_path: object,
        *,
        input_example: object = None,
        reference_data: object = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        flavor: str | None = None,
        flavor_options: Mapping[str, Any] | None = None,
        trust_unsafe: bool = False,
        trusted_by: str | None = None,
        trusted_keys: Sequence[Path] = (),
        source: str | None = None,
    ) -> ModelVersion:
        """Store a model object, or the artifact/bundle/model file at a path, as a new version.

        ``flavor`` and ``flavor_options`` apply to model objects; a file's flavor comes from
        the file. Returns the ready version; on failure the version is left ``failed``.

        A model whose pickle names a global outside the allow-list, or whose pyfunc code makes
        plainly dangerous calls, is refused (UntrustedArtifact, naming the global or the file
        and line); so is any pyfunc artifact from a folder or bundle (CodeNotTrusted). Trust
        lets them in: ``trust_unsafe`` (the version records ``trusted_by``, default the OS
        user, and the time), or a signature on the folder or bundle by one of
        ``trusted_keys`` or the settings' ``trusted_keys`` (recorded as that key). Such a
        version loads as it is. Trust only models whose origin you know: loading them can run
        any code. A ``PythonModel`` object is code already running in this process: it is
        recorded as trusted by ``trusted_by`` (default the OS user).

        ``source`` is where the version's record says it came from (default: the path, or
        the model's class), e.g. ``modelport convert churn/3`` for a conversion.
        """
        validate_name(name)
        is_path = isinstance(model_or_path, str | Path)
        code_object = not is_path and _trust.is_code(model_or_path, flavor)
        if trusted_by is not None and not (trust_unsafe or code_object):
            raise InvalidInput("trusted_by is recorded only with trust_unsafe=True")
        kind = type(model_or_path)
        if source is None:
            source = str(model_or_path) if is_path else f"{kind.__module__}.{kind.__qualname__}"
        with tempfile.TemporaryDirectory(prefix="modelport-register-") as tmp:
            origin, signer = (
                _trust.signed_source(
                    Path(str(model_or_path)),
                    Path(tmp),
                    (*self._trusted_keys, *trusted_keys),
                    self._bundle_limits,
                )
                if is_path
                else (model_or_path, None)
            )
            trusted = _trust.truster(trusted_by) if trust_unsafe or code_object else signer
            pending = self._store.create_version(
                name,
                flavor=flavor,
                source=source,
                metrics=metrics,
                tags=tags,
                description=description,
                trusted_unsafe_by=trusted,
            )
            try:
                path = Path(tmp) / "artifact" / name
                if is_path:
                    manifest = packaging.import_artifact(
                        Path(str(origin)),
                        path,
                        name=name,
                        input_example=input_example,
                        reference_data=reference_data,
                        metrics=metrics,
                        tags=tags,
                        description=description,
                        trust_unsafe=trust_unsafe,
                        limits=self._bundle_limits,
                    )
                else:
                    manifest = packaging.save(
                        model_or_path,
                        path,
                        name=name,
                        input_example=input_example,
                        reference_data=reference_data,
                        metrics=metrics,
                        tags=tags,
                        description=description,
                        flavor=flavor,
                        flavor_options=flavor_options,
                        trust_unsafe=trust_unsafe,
                    )
                if not trust_unsafe and signer is None:
                    _trust.refuse_unsafe(path, code_trusted=code_object)
                sha = files.manifest_sha256(path)
                self._artifacts.put_dir(pending.artifact_key, path)
                return self._store.mark_version_ready(
                    name,
                    pending.version,
                    artifact_key=pending.artifact_key,
                    manifest_sha256=sha,
                    flavor=manifest.flavor,
                )
            except UnsafeArtifact as exc:
                if trust_unsafe or isinstance(exc, UntrustedArtifact):
                    self._abandon(pending, exc)
                    raise
                refused = UntrustedArtifact(str(exc))  # the same refusal, saying how to trust it
                self._abandon(pending, refused)
                raise refused from exc
            except BaseException as exc:
                self._abandon(pending, exc)
                raise

    def _abandon(self, pending: ModelVersion, exc: BaseException) -> None:
        """Mark a registration failed, then remove its files.

        Files go only once the row is failed (or gone): if marking fails we cannot tell
        whether ``mark_version_ready`` committed, and deleting a ready version's files would
        lose it. A row left pending is picked up by :meth:`cleanup_stale`.
        """
        name, version = pending.name, pending.version
        try:
            self._store.mark_version_failed(name, version, _describe(exc))
        except NotFound:
            pass
        except Exception:
            logger.warning("could not mark %s/%d failed", name, version, exc_info=True)
            return
        try:
            self._artifacts.delete(pending.artifact_key)
        except Exception:
            logger.warning("could not remove files of %s/%d", name, version, exc_info=True)

    def cleanup_stale(self, older_than: timedelta) -> list[ModelVersion]:
        """Fail pending versions older than ``older_than`` (their process died) and remove
        their files, and any half-copied folder the store was left with. Returns the versions
        marked failed."""
        failed: list[ModelVersion] = []
        for stale in self._store.find_stale_pending(older_than):
            try:
                marked = self._store.mark_version_failed(
                    stale.name, stale.version, f"registration did not finish within {older_than}"
                )
            except (Conflict, NotFound):
                continue  # it finished (or was deleted) since we looked
            self._artifacts.delete(stale.artifact_key)
            logger.info("marked stale %s/%d failed", stale.name, stale.version)
            failed.append(marked)
        purged = self._artifacts.purge_partial(older_than)
        if purged:
            logger.info("removed %d interrupted artifact copies", purged)
        return failed

    # -- lookup ---------------------------------------------------------------------------

    def get_model(self, name: str) -> ModelInfo:
        """A model with its newest ready version and aliases."""
        return self._store.get_model(name)

    def list_models(self, page_token: str | None = None, max_results: int = 100) -> Page[ModelInfo]:
        """Models in name order, one page at a time."""
        return self._store.list_models(page_token, max_results)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version, whatever its status."""
        return self._store.get_version(name, version)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
        description: str | None = None,
    ) -> ModelVersion:
        """Edit a version's tags and description in the registry after registering (the
        artifact's manifest is immutable and keeps what it was saved with).

        >>> registry.update_version("churn", 3, tags={"owner": "risk"}, description="Q4 retrain")
        """
        return self._store.update_version(
            name, version, tags=tags, remove_tags=remove_tags, description=description
        )

    def list_versions(
        self, name: str, page_token: str | None = None, max_results: int = 100
    ) -> Page[ModelVersion]:
        """Versions of a model, newest first."""
        return self._store.list_versions(name, page_token, max_results)

    def resolve(self, ref: str | Path | ModelRef) -> ModelVersion:
        """The ready version a registry ref names: ``name``, ``name/3`` or ``name@alias``."""
        parsed = ModelRef.parse(ref)
        if parsed.name is None:
            raise InvalidRef(str(ref), "a path is not a registry ref")
        try:
            if parsed.alias is not None:
                found = self._store.get_alias(parsed.name, parsed.alias)
            elif parsed.version is not None:
                found = self._store.get_version(parsed.name, parsed.version)
            else:
                latest = self._store.latest_ready_version(parsed.name)
                if latest is None:
                    self._store.get_model(parsed.name)  # ModelNotFound for an unknown name
                    raise NoReadyVersion(parsed.name)
                found = latest
        except ModelNotFound:
            raise ModelNotFound(parsed.name, closest_name(self._store, parsed.name)) from None
        if not found.is_ready:
            raise VersionNotReady(found.name, found.version, found.status)
        return found

    def artifact_path(self, ref: str | Path | ModelRef) -> Path:
        """A local folder holding the artifact a ref names (a path ref is returned as is)."""
        parsed = ModelRef.parse(ref)
        if parsed.path is not None:
            return files.local_artifact(parsed.path, self._cache_dir, self._bundle_limits)
        return self._artifacts.local_path(self.resolve(parsed).artifact_key)

    def load(
        self,
        ref: str | Path | ModelRef | ModelVersion,
        *,
        require_signed: str | Path | None = None,
        trust_unsafe: bool = False,
        trusted_by: str | None = None,
        device: str = "cpu",
    ) -> LoadedModel:
        """Resolve a ref once, verify and load the model it names: every load goes through
        here (or, for a path without a registry, :func:`load_local`).

        A registry ref (``churn@production``, ``churn/3``, ``churn``) resolves to one ready
        version; a :class:`ModelVersion` is taken as already resolved. Its files are checked
        against the manifest SHA-256 the registry recorded, and it loads with the trust its
        record carries (or a signature by one of the trusted keys). The model says which
        version it is (``.version``, ``.manifest_sha256``): read them there, never by
        resolving the ref again, which may name another version once an alias has moved.

        ``require_signed`` (a PEM Ed25519 public key file) refuses, before anything is
        deserialized, an artifact not signed by that key or changed since it was signed.
        ``trust_unsafe`` applies to a path only (see :func:`load_local`). ``device``
        (``cpu``, ``cuda``, ``cuda:N``) is where a torch or ONNX model runs.

        >>> model = registry.load("churn@production", require_signed="signing.pub")
        >>> model.version, model.predict(rows)
        """
        if isinstance(ref, ModelVersion):
            version = ref
        else:
            parsed = ModelRef.parse(ref)
            if parsed.path is not None:
                return load_local(
                    parsed.path,
                    self._settings,
                    require_signed=require_signed,
                    trust_unsafe=trust_unsafe,
                    trusted_by=trusted_by,
                    device=device,
                )
            version = self.resolve(parsed)
        return load_version(
            self._artifacts,
            version,
            require_signed=require_signed,
            trusted_keys=self._trusted_keys,
            device=device,
        )

    def manifest(self, ref: str | Path | ModelRef) -> Manifest:
        """The manifest of the artifact a ref names, checked against the registry's hash."""
        parsed = ModelRef.parse(ref)
        if parsed.path is not None:
            folder = files.local_artifact(parsed.path, self._cache_dir, self._bundle_limits)
            return read_manifest(folder)
        return checked_manifest(self._artifacts, self.resolve(parsed))

    # -- aliases and deletion ---------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``name@alias`` at a ready version."""
        return self._store.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        """Remove an alias (its history remains)."""
        return self._store.delete_alias(name, alias)

    def list_aliases(self, name: str) -> dict[str, int]:
        """Current aliases of a model."""
        return self._store.list_aliases(name)

    def alias_history(self, name: str, alias: str) -> list[AliasChange]:
        """Every change of an alias, newest first."""
        return self._store.alias_history(name, alias)

    def delete_version(self, name_or_ref: str, version: int | None = None) -> ModelVersion:
        """Delete a version and its files: ``delete_version("churn", 3)`` or ``("churn/3")``.

        VersionInUse while an alias points at it. Returns the version as it was.
        """
        if version is None:
            parsed = ModelRef.parse(name_or_ref)
            if parsed.name is None or parsed.version is None:
                raise InvalidRef(name_or_ref, "name a version to delete, like 'churn/3'")
            name_or_ref, version = parsed.name, parsed.version
        deleted = self._store.get_version(name_or_ref, version)
        key = self._store.delete_version(name_or_ref, version)
        self._artifacts.delete(key)
        return deleted

    def delete_model(self, name: str, *, with_aliases: bool = False) -> ModelInfo:
        """Delete a model, all its versions (failed ones included) and their files; returns
        the model as it was. While aliases point at it this is refused (VersionInUse) unless
        ``with_aliases``: deleting what ``name@production`` serves should be a decision."""
        model = self._store.get_model(name)
        if model.aliases and not with_aliases:
            raise ModelInUse(name, model.aliases)
        for key in self._store.delete_model(name):
            self._artifacts.delete(key)
        return model

    # -- API keys (moving to ``keys``) ---------------------------------------------------


def _describe(exc: BaseException) -> str:
    """The error text recorded on a failed version (no traceback: it may reach clients)."""
    if isinstance(exc, ModelportError):
        return f"{exc.code}: {exc}"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "registration interrupted"
    return f"{type(exc).__name__}: {exc}"
