"""Artifacts in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, GCS's S3 API).

An artifact at key ``models/17/v3`` is one object per file under
``{prefix}/models/17/v3/``, then a completion marker, ``.modelport-complete``, listing the
files and their sizes. Keys are built by the registry from database ids only. Every object,
marker included, is created with ``If-None-Match: *``: a second writer can never replace an
object, only fail. An artifact counts as stored once its marker exists, and the marker goes
up last, so a register killed mid-upload leaves objects no load will use and that
``modelport cleanup`` removes. Files at or over the multipart threshold go up in parts.

Loads read through the host's :class:`~modelport.registry.artifact_cache.ArtifactCache`.
This store checks sizes only: the load path verifies every file against the SHA-256 the
registry recorded (S3 emulators and some stores do not check upload checksums), so a changed
object is refused by name, and its cached copy is evicted.

Errors name the bucket and endpoint and never a credential: a missing bucket, access denied,
no credentials and an unreachable endpoint are each a one-line :class:`StoreError`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from modelport._extras import require
from modelport.config import Settings
from modelport.errors import ArtifactNotFound, StoreError
from modelport.registry.artifact_cache import ArtifactCache

logger = logging.getLogger(__name__)

MARKER = ".modelport-complete"
"""The object that makes an artifact visible; written last, read first."""

_WORKERS = 8
"""Files (and parts of one large file) moved at once."""

T = TypeVar("T")


class S3ArtifactStore:
    """Artifact folders as objects under ``s3://bucket/prefix``, loaded through a host cache.

    >>> store = S3ArtifactStore("s3://ml-models/prod")   # AWS_ENDPOINT_URL for MinIO etc.
    """

    def __init__(self, uri: str, settings: Settings | None = None) -> None:
        require("s3")
        settings = settings or Settings()
        self.bucket, self.prefix = _parse(uri)
        self._settings = settings.s3
        self._client = client(settings)
        self.endpoint = shown_endpoint(self._client.meta.endpoint_url)
        cache_root = settings.resolved_cache_dir() / "s3" / self.bucket / (self.prefix or "_")
        self.cache = ArtifactCache(cache_root, settings.cache_max_bytes)

    # -- the ArtifactStore protocol -------------------------------------------------------

    def put_dir(self, key: str, src: Path) -> None:
        """Upload every file of ``src`` under ``key``, then the marker; on any failure remove
        what was uploaded. A taken key fails with "already taken" and is left as it was."""
        base = self._base(key)
        files = sorted(p for p in src.rglob("*") if p.is_file())
        listing = [{"path": p.relative_to(src).as_posix(), "size": p.stat().st_size} for p in files]
        with ThreadPoolExecutor(_WORKERS) as pool:
            futures = [
                pool.submit(self._upload, f"{base}/{entry['path']}", file)
                for file, entry in zip(files, listing, strict=True)
            ]
        uploaded = [f.result() for f in futures if f.exception() is None]
        failures = [e for f in futures if (e := f.exception()) is not None]
        try:
            if failures:
                raise failures[0]
            self._call(
                self._client.put_object,
                Bucket=self.bucket,
                Key=f"{base}/{MARKER}",
                Body=json.dumps({"files": listing}).encode(),
                IfNoneMatch="*",
            )
        except BaseException as exc:
            self._remove(uploaded)
            if isinstance(exc, _Taken):
                raise StoreError(f"artifact key {key!r} is already taken") from None
            raise
        logger.debug("stored artifact %s in s3://%s/%s", key, self.bucket, base)

    def local_path(self, key: str) -> Path:
        """The artifact's folder in the host cache, downloaded on first use."""
        return self.cache.get(key, lambda into: self._download(key, into))

    def delete(self, key: str) -> None:
        """Remove the marker first (the artifact stops existing at once), then the rest,
        then any unfinished multipart upload under the key, then the cached copy."""
        base = self._base(key)
        self._call(self._client.delete_object, Bucket=self.bucket, Key=f"{base}/{MARKER}")
        self._remove([obj["Key"] for obj in self._objects(f"{base}/")])
        for upload in self._uploads(f"{base}/"):
            self._abort(upload)
        self.cache.evict(key)
        logger.debug("deleted artifact %s", key)

    def exists(self, key: str) -> bool:
        """True if the key's marker exists (every file was uploaded)."""
        try:
            self._call(
                self._client.head_object, Bucket=self.bucket, Key=f"{self._base(key)}/{MARKER}"
            )
        except _Missing:
            return False
        return True

    def purge_partial(self, older_than: timedelta) -> int:
        """Remove artifacts without a marker whose newest object is older than the cutoff,
        multipart uploads started before it, and interrupted downloads in the cache."""
        cutoff = datetime.now(UTC) - older_than
        groups: dict[str, list[dict[str, Any]]] = {}
        root = self._base("models")
        for obj in self._objects(f"{root}/"):
            parts = obj["Key"][len(root) + 1 :].split("/")
            if len(parts) >= 3:
                groups.setdefault("/".join(parts[:2]), []).append(obj)
        removed = 0
        for objects in groups.values():
            complete = any(o["Key"].endswith(f"/{MARKER}") for o in objects)
            if not complete and max(o["LastModified"] for o in objects) < cutoff:
                self._remove([o["Key"] for o in objects])
                removed += 1
        for upload in self._uploads(f"{root}/"):
            if upload["Initiated"] < cutoff:
                self._abort(upload)
                removed += 1
        return removed + self.cache.purge_partial(older_than)

    def __repr__(self) -> str:
        return f"S3ArtifactStore('s3://{self.bucket}/{self.prefix}', endpoint={self.endpoint!r})"

    # -- uploads and downloads ------------------------------------------------------------

    def _upload(self, name: str, file: Path) -> str:
        """Create one object from ``file``, never replacing one; returns its name."""
        size = file.stat().st_size
        part = self._settings.multipart_threshold_bytes
        if size < part:
            with file.open("rb") as body:
                self._call(
                    self._client.put_object,
                    Bucket=self.bucket,
                    Key=name,
                    Body=body,
                    IfNoneMatch="*",
                )
            return name
        upload = self._call(self._client.create_multipart_upload, Bucket=self.bucket, Key=name)
        upload_id = upload["UploadId"]

        def send(number: int) -> dict[str, Any]:
            with file.open("rb") as handle:
                handle.seek((number - 1) * part)
                body = handle.read(part)
            sent = self._call(
                self._client.upload_part,
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
            return {"ETag": sent["ETag"], "PartNumber": number}

        try:
            # the parts run beside the other files' uploads; a separate pool avoids waiting
            # on a pool whose workers are all busy waiting for parts
            with ThreadPoolExecutor(_WORKERS) as parts_pool:
                parts = list(parts_pool.map(send, range(1, -(-size // part) + 1)))
            self._call(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            self._abort({"Key": name, "UploadId": upload_id})
            raise
        return name

    def _download(self, key: str, into: Path) -> None:
        """Fetch the files the key's marker lists into ``into``, checking each size."""
        base = self._base(key)
        try:
            marker = self._call(self._client.get_object, Bucket=self.bucket, Key=f"{base}/{MARKER}")
        except _Missing:
            raise ArtifactNotFound(f"s3://{self.bucket}/{base}") from None
        try:
            listing = json.loads(marker["Body"].read())["files"]
            entries = [(str(f["path"]), int(f["size"])) for f in listing]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"the completion marker of s3://{self.bucket}/{base} is unreadable"
            ) from exc
        checked = LocalPaths(into)
        targets = [(checked.file(path), f"{base}/{path}", size) for path, size in entries]

        def fetch(target: tuple[Path, str, int]) -> None:
            file, name, size = target
            file.parent.mkdir(parents=True, exist_ok=True)
            self._call(self._client.download_file, self.bucket, name, str(file))
            os.chmod(file, 0o600)
            if file.stat().st_size != size:
                raise StoreError(
                    f"s3://{self.bucket}/{name} is {file.stat().st_size} bytes; "
                    f"{size} were uploaded"
                )

        with ThreadPoolExecutor(_WORKERS) as pool:
            list(pool.map(fetch, targets))

    # -- listing and removal --------------------------------------------------------------

    def _objects(self, prefix: str) -> list[dict[str, Any]]:
        return self._call(list_objects, self._client, self.bucket, prefix)

    def _uploads(self, prefix: str) -> list[dict[str, Any]]:
        return self._call(multipart_uploads, self._client, self.bucket, prefix)

    def _abort(self, upload: dict[str, Any]) -> None:
        try:
            self._call(
                self._client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
        except (StoreError, _Missing):
            logger.warning("could not abort multipart upload of %s", upload["Key"])

    def _remove(self, names: list[str]) -> None:
        self._call(delete_objects, self._client, self.bucket, names)

    def _base(self, key: str) -> str:
        if not key or key.startswith(("/", ".")) or ".." in key.split("/") or "\x00" in key:
            raise StoreError(f"invalid artifact key {key[:80]!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call boto3, turning its errors into one line that names the bucket and endpoint."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        where = f"s3://{self.bucket} at {getattr(self, 'endpoint', 'its endpoint')}"
        try:
            return function(*args, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412") or status == 412:
                raise _Taken() from None
            if code == "NoSuchBucket":
                raise StoreError(f"bucket {self.bucket!r} does not exist ({where})") from None
            if code in ("NoSuchKey", "404", "NoSuchUpload", "NotFound"):
                raise _Missing() from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreError(
                    f"access denied to {where} ({code}): check the credentials' permissions"
                ) from None
            raise StoreError(
                f"{where} answered {code or status}: {error.get('Message', '')}"
            ) from None
        except NoCredentialsError:
            raise StoreError(
                f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role"
            ) from None
        except EndpointConnectionError:
            raise StoreError(f"cannot reach {where}: is AWS_ENDPOINT_URL right?") from None
        except BotoCoreError as exc:
            raise StoreError(f"{where} failed: {type(exc).__name__}: {exc}") from None


class LocalPaths:
    """Files named by a marker, kept inside the download folder (a marker is not trusted to
    name ``../`` paths)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def file(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not relative or path == self.root or not path.is_relative_to(self.root):
            raise StoreError(f"artifact file name {relative[:80]!r} escapes its folder")
        return path


class _Taken(Exception):
    """An If-None-Match create met an existing object."""


class _Missing(Exception):
    """The object (or upload) is not there."""


def _parse(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreError(f"an S3 artifact URI looks like s3://bucket/prefix, not {uri[:80]!r}")
    return parts.netloc, parts.path.strip("/")


def list_objects(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under ``prefix`` (all pages). boto3's errors pass through: each caller
    says them in its own terms."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item for page in pages for item in page.get("Contents", [])]


def multipart_uploads(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """The unfinished multipart uploads under ``prefix`` (all pages)."""
    pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    return [upload for page in pages for upload in page.get("Uploads", [])]


def delete_objects(s3: Any, bucket: str, keys: list[str]) -> None:
    """Delete ``keys``, 1,000 per request (S3's limit)."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def client(settings: Settings) -> Any:  # Any: boto3 ships no type stubs
    """An S3 client from boto3's chain (credentials, region, ``AWS_ENDPOINT_URL``) with the
    retries, timeouts and checksum mode of ``settings.s3``; batch jobs use the same one."""
    require("s3")
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"max_attempts": settings.s3.max_attempts, "mode": "standard"},
        "connect_timeout": settings.s3.connect_timeout_s,
        "max_pool_connections": 2 * _WORKERS,
    }
    if settings.s3.checksum is not None:
        options["request_checksum_calculation"] = settings.s3.checksum
        options["response_checksum_validation"] = settings.s3.checksum
    return boto3.session.Session().client("s3", config=Config(**options))


def shown_endpoint(url: str | None) -> str:
    """The endpoint for messages: scheme, host and port, never a user or password."""
    if not url:
        return "the default AWS endpoint"
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
