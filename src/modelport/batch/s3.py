"""Batch sources and sinks in S3 or an S3-compatible store (MinIO, Ceph, R2): ``s3://BUCKET/KEY``.

- **A source** is one object (``s3://data/customers.csv``) or a prefix read as a folder
  (``s3://data/customers/``: the objects directly under it, in name order, names starting
  with ``_`` or ``.`` skipped, as for a local folder). It is staged: each object is downloaded
  into a temporary folder (``TMPDIR``), pinned to the ETag it was listed with and checked
  against the listed size, and the job reads that copy, which is deleted when the job ends.
  The job records each object's name, size and ETag, so a rerun resumes only against the
  same objects.
- **A sink** is a prefix holding the same layout as a local output folder (see
  :mod:`modelport.batch.job`). Each part is written to a local file first, then uploaded
  whole (one PUT, or a multipart upload for a large part), so it appears complete or not at
  all; the rejects and stats of a part go up before the part itself. On resume the listing of
  the prefix says which parts are done; multipart uploads a killed run left unfinished under
  the prefix are aborted.

Credentials, region and endpoint come from boto3's usual chain (environment, shared files,
instance roles) and ``AWS_ENDPOINT_URL``; retries, timeouts and the checksum mode from the
``s3`` settings (``MODELPORT_S3__*``), through the artifact store's own client. Failures
name the bucket and the endpoint, never a credential: a missing bucket, object or prefix
is :class:`~modelport.errors.InvalidInput` (exit 2, as a missing local file); access
denied, missing credentials, an unreachable endpoint or any other failed request are
:class:`~modelport.errors.StoreError` (exit 6).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from modelport.batch import formats
from modelport.config import Settings
from modelport.errors import InvalidInput, ModelportError, StoreError
from modelport.registry.s3_store import (
    client,
    delete_objects,
    list_objects,
    multipart_uploads,
    shown_endpoint,
)

if TYPE_CHECKING:
    from modelport.batch.job import JobSpec, ScoredPart

SCHEME = "s3://"
_COPY_BLOCK = 8 << 20  # bytes per read while staging an object
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "Forbidden",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}


def is_s3(location: str | Path) -> bool:
    """Whether ``location`` is an ``s3://`` URI (only a string can be: a Path drops a slash)."""
    return isinstance(location, str) and location.startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class S3Location:
    """``s3://bucket/key``; a key ending in ``/`` (or none) is a prefix."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        bucket, _, key = uri.removeprefix(SCHEME).partition("/")
        if not bucket:
            raise InvalidInput(f"{uri!r} names no bucket (s3://BUCKET/KEY)")
        return cls(bucket, key.lstrip("/"))

    @property
    def prefix(self) -> str:
        """The key as a folder: ``customers/`` (empty for the whole bucket)."""
        key = self.key.strip("/")
        return f"{key}/" if key else ""

    @property
    def name(self) -> str:
        """The last part of the key (the bucket's name for the whole bucket)."""
        return self.key.strip("/").rpartition("/")[2] or self.bucket

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key.strip('/')}".rstrip("/")


def endpoint(s3: Any) -> str:
    """The client's endpoint for messages, never a user or password."""
    return shown_endpoint(s3.meta.endpoint_url)


def translate(exc: BaseException, bucket: str, where: str) -> ModelportError:
    """One botocore/boto3 failure as a ModelportError naming ``bucket`` and the endpoint
    ``where``; its message carries the error code, never the text of a response."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    cause = exc
    while not isinstance(cause, ClientError) and isinstance(cause.__context__, ClientError):
        cause = cause.__context__  # boto3's S3UploadFailedError wraps the ClientError
    if isinstance(cause, ClientError):
        code = str(cause.response.get("Error", {}).get("Code", "")) or "unknown"
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404", "NotFound") or (code == "unknown" and status == 404):
            return InvalidInput(f"bucket {bucket!r} does not exist at {where}")
        if code in _DENIED or status == 403:
            return StoreError(
                f"access to bucket {bucket!r} at {where} was denied ({code}); check the "
                "credentials and the bucket's policy"
            )
        return StoreError(f"S3 request to bucket {bucket!r} at {where} failed: {code} ({status})")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StoreError(
            f"no AWS credentials for bucket {bucket!r} at {where}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role"
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StoreError(
            f"cannot reach the S3 endpoint {where} (bucket {bucket!r}): {type(exc).__name__}"
        )
    return StoreError(f"S3 request to bucket {bucket!r} at {where} failed: {type(exc).__name__}")


@contextmanager
def _requests(s3: Any, bucket: str) -> Iterator[None]:
    """Turn what boto3 raises into :func:`translate`'s errors."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise translate(exc, bucket, endpoint(s3)) from None


def _not_found(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


# -- sources -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    name: str
    size: int
    etag: str


@contextmanager
def staged_source(
    uri: str, given: str | None, settings: Settings
) -> Iterator[tuple[formats.Source, list[list[object]]]]:
    """The object or prefix ``uri`` downloaded to a temporary folder, as a Source, and its
    fingerprint for the job record (name, size and ETag of each object). The copy is
    deleted on exit."""
    location = S3Location.parse(uri)
    s3 = client(settings)
    with _requests(s3, location.bucket):
        s3.head_bucket(Bucket=location.bucket)
        single, objects = _source_objects(s3, location)
    with tempfile.TemporaryDirectory(prefix="modelport-batch-") as tmp:
        root = Path(tmp) / location.name
        if not single:
            root.mkdir()
        for obj in objects:
            _download(s3, location.bucket, obj, root if single else root / obj.name)
        source = formats.Source.open(root, given)
        yield source, [[o.name, o.size, o.etag] for o in objects]


def _source_objects(s3: Any, location: S3Location) -> tuple[bool, list[_Object]]:
    """``(True, [the object])`` for an object's key, else the data objects directly under
    the prefix, in name order."""
    from botocore.exceptions import ClientError

    if location.key and not location.key.endswith("/"):
        try:
            head = s3.head_object(Bucket=location.bucket, Key=location.key)
            etag = str(head["ETag"]).strip('"')
            return True, [_Object(location.key, location.name, int(head["ContentLength"]), etag)]
        except ClientError as exc:
            if not _not_found(exc):
                raise
    prefix, objects, anything = location.prefix, [], False
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        anything = anything or bool(page.get("Contents") or page.get("CommonPrefixes"))
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :]
            if name and not name.startswith(("_", ".")):
                etag = str(item["ETag"]).strip('"')
                objects.append(_Object(item["Key"], name, int(item["Size"]), etag))
    if not objects:
        if anything:
            raise InvalidInput(f"prefix {str(location)!r} holds no data objects")
        raise InvalidInput(f"no such object or prefix: {str(location)!r}")
    return False, sorted(objects, key=lambda o: o.name)


def _download(s3: Any, bucket: str, obj: _Object, dest: Path) -> None:
    """``obj`` into ``dest``, as listed: refused if it changed since (another ETag, another
    size)."""
    with _requests(s3, bucket):
        response = s3.get_object(Bucket=bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
        with dest.open("wb") as out:
            shutil.copyfileobj(response["Body"], out, _COPY_BLOCK)
    got = dest.stat().st_size
    if got != obj.size:
        raise StoreError(
            f"s3://{bucket}/{obj.key} gave {got} bytes, not the {obj.size} listed; "
            "was it replaced while the job read it? Run the job again"
        )


# -- sinks -------------------------------------------------------------------------------


class S3Sink:
    """A job's output under an S3 prefix (a :class:`modelport.batch.job.Sink`). Opening it
    checks that the bucket can be reached; use it as a context manager (it holds a
    temporary folder for the part being uploaded)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        self.where = S3Location.parse(uri)
        self.s3 = client(settings)
        with self._requests():
            self.s3.head_bucket(Bucket=self.where.bucket)
        self._staging = Path(tempfile.mkdtemp(prefix="modelport-batch-sink-"))
        self._keys: set[str] = set()

    def __enter__(self) -> S3Sink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    def __str__(self) -> str:
        return str(self.where)

    @property
    def name(self) -> str:
        return self.where.name

    def location(self, name: str) -> str:
        return f"{self}/{name}"

    def prepare(self, spec: JobSpec, overwrite: bool) -> None:
        from modelport.batch.job import job_document

        job = job_document(spec)
        with self._requests():
            self._keys = self._list()
            if self._keys:
                found = self._key("_job.json")
                same = found in self._keys and orjson.loads(self._get(found)) == job
                if not same:
                    if not overwrite:
                        what = "another job's output" if found in self._keys else "other objects"
                        raise InvalidInput(
                            f"output {str(self)!r} holds {what}; choose another prefix or "
                            "pass --overwrite (a rerun of the same job resumes instead)"
                        )
                    delete_objects(self.s3, self.where.bucket, sorted(self._keys))
                    self._keys = set()
            self._abort_uploads()
            if self._key("_job.json") not in self._keys:
                self._put("_job.json", formats.json_bytes(job))

    def done_part(self, index: int, fmt: formats.Format) -> dict[str, int] | None:
        stats_key = self._key(f"_stats/part-{index:05d}.json")
        if self._key(formats.part_name(index, fmt)) in self._keys and stats_key in self._keys:
            with self._requests():
                stats: dict[str, int] = orjson.loads(self._get(stats_key))
            return stats
        return None

    def write_part(self, index: int, part: ScoredPart, fmt: formats.Format) -> None:
        name = formats.part_name(index, fmt)
        local = self._staging / name
        formats.write_part(part.table, local, fmt)  # the bytes a local sink would hold
        try:
            with self._requests():
                self._put(f"_rejects/part-{index:05d}.jsonl", part.rejects)
                self._put(f"_stats/part-{index:05d}.json", formats.json_bytes(part.stats))
                # One PUT, or a multipart upload over 8 MB: visible only once complete.
                self.s3.upload_file(str(local), self.where.bucket, self._key(name))
        finally:
            local.unlink(missing_ok=True)

    def write_summary(self, summary: Mapping[str, object]) -> None:
        with self._requests():
            self._put("_SUCCESS", formats.json_bytes(summary))

    # -- requests --

    def _requests(self) -> Any:  # Any: a context manager
        return _requests(self.s3, self.where.bucket)

    def _key(self, name: str) -> str:
        return self.where.prefix + name

    def _list(self) -> set[str]:
        return {item["Key"] for item in list_objects(self.s3, self.where.bucket, self.where.prefix)}

    def _get(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.where.bucket, Key=key)["Body"].read()
        return body

    def _put(self, name: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.where.bucket, Key=self._key(name), Body=data)

    def _abort_uploads(self) -> None:
        """Multipart uploads of parts a killed run did not finish (they cost storage)."""
        for upload in multipart_uploads(self.s3, self.where.bucket, self.where.prefix):
            self.s3.abort_multipart_upload(
                Bucket=self.where.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
