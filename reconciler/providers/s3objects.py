"""Objects in our buckets on any S3-compatible store (see ``s3store`` for the buckets).

Every call first asks the bucket store whether the bucket is ours (``check_bucket``).
Objects go up in one PutObject up to ``PART_SIZE`` and as a multipart upload beyond it
(aborted on any failure). S3 takes user metadata only when an object is created, and the
SHA-256 of a multipart object is known only after its last part, so the parts are
assembled without user metadata and the object is then copied onto itself (CopyObject
with ``MetadataDirective=REPLACE``, pinned to the assembled version and ETag;
UploadPartCopy beyond CopyObject's 5 GiB) with the caller's metadata plus
``META_SHA256``. In a versioned bucket the assembled version that copy superseded is
deleted, so one put leaves one version. If that stamping fails, the assembled object is
removed again (best effort): nobody reads bytes without their digest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError

from reconciler.model.artifacts import META_SHA256, Chunks, ObjectInfo
from reconciler.model.errors import PermanentError, TransientError
from reconciler.providers.botoerrors import error_code, mapped
from reconciler.providers.streams import HashedParts, rejoin

_NO_KEY = frozenset({"NoSuchKey", "404"})
#: Objects up to this size are one PutObject; larger ones go up in parts of this size,
#: growing by this much every ``PART_GROWTH`` parts (S3 allows 10,000 parts: about
#: 430 GiB, while holding one part, at most 80 MiB, in memory).
PART_SIZE = 8 * 2**20
PART_GROWTH = 1000
MAX_PARTS = 10_000
#: CopyObject's size limit; a larger object is re-stamped by UploadPartCopy in COPY_PARTs.
COPY_LIMIT = 5 * 2**30
COPY_PART = 2**30


class S3Objects:
    """Object calls on one S3 endpoint for one Cloud; thread-safe (boto3 clients are).
    ``check_bucket`` raises unless a bucket is ours (NotFound, NotManaged)."""

    def __init__(self, cloud: str, client: Any, check_bucket: Callable[[str], None]) -> None:
        self.cloud = cloud
        self.client = client
        self._check_bucket = check_bucket

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """Write ``key`` (replacing it): one PutObject up to PART_SIZE, else multipart;
        ``META_SHA256`` is always the digest of the bytes that arrived."""
        action = f"put object {key} into bucket {bucket}"
        with mapped(self.cloud, action):
            self._check_bucket(bucket)
        parts = HashedParts(chunks, part_size)
        blocks = iter(parts)
        first = next(blocks)
        second = next(blocks, None)
        if second is None:
            meta = user_metadata(metadata, parts.sha256)
            with mapped(self.cloud, action):
                put = self.client.put_object(Bucket=bucket, Key=key, Body=first, Metadata=meta)
            return ObjectInfo(key, len(first), unquote(put["ETag"]), meta)
        with mapped(self.cloud, action):
            made = self._multipart(bucket, key, rejoin(first, second, blocks))
        meta = user_metadata(metadata, parts.sha256)
        with mapped(self.cloud, f"set the metadata of object {key} in bucket {bucket}"):
            etag = self._stamp(bucket, key, made, parts.size, meta)
        return ObjectInfo(key, parts.size, unquote(etag), meta)

    def _in_parts(
        self, bucket: str, key: str, parts: Callable[[str], Iterator[str]], **create: Any
    ) -> dict[str, Any]:
        """One multipart upload: ``parts(upload_id)`` sends the parts in order, yielding
        each one's ETag; completed at the end, aborted on any failure (a failing source
        stream included). CompleteMultipartUpload's answer."""
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key, **create)
        upload_id = upload["UploadId"]
        try:
            done = [
                {"PartNumber": number, "ETag": etag}
                for number, etag in enumerate(parts(upload_id), start=1)
            ]
            made: dict[str, Any] = self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            self._abort(bucket, key, upload_id)
            raise
        return made

    def _multipart(self, bucket: str, key: str, blocks: Iterator[bytes]) -> dict[str, Any]:
        """Upload ``blocks`` as the parts of one object."""

        def send(upload: str) -> Iterator[str]:
            for number, block in enumerate(blocks, start=1):
                if number > MAX_PARTS:
                    raise PermanentError(
                        f"object {key} needs more than {MAX_PARTS} parts",
                        cloud=self.cloud,
                        reason="ObjectTooLarge",
                    )
                yield self.client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=block
                )["ETag"]

        return self._in_parts(bucket, key, send)

    def _abort(self, bucket: str, key: str, upload: str) -> None:
        """Abort a multipart upload, best effort (the original failure is what matters)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)

    def _stamp(
        self, bucket: str, key: str, made: Mapping[str, Any], size: int, meta: dict[str, str]
    ) -> str:
        """Copy the just-assembled object onto itself with ``meta`` (see the module
        docstring); returns the final ETag."""
        source: dict[str, str] = {"Bucket": bucket, "Key": key}
        version = str(made.get("VersionId") or "null")
        if version != "null":
            source["VersionId"] = version
        try:
            if size <= COPY_LIMIT:
                copied = self.client.copy_object(
                    Bucket=bucket,
                    Key=key,
                    CopySource=source,
                    CopySourceIfMatch=made["ETag"],
                    MetadataDirective="REPLACE",
                    Metadata=meta,
                )
                etag, final = copied["CopyObjectResult"]["ETag"], copied.get("VersionId")
            else:
                redone = self._copy_in_parts(bucket, key, source, made["ETag"], size, meta)
                etag, final = redone["ETag"], redone.get("VersionId")
        except BaseException as exc:
            if error_code(exc) != "PreconditionFailed":  # else: someone wrote after us
                self._discard(bucket, key, source)
            raise
        if "VersionId" in source and final != version:
            self.client.delete_object(Bucket=bucket, Key=key, VersionId=version)
        return str(etag)

    def _copy_in_parts(
        self,
        bucket: str,
        key: str,
        source: Mapping[str, str],
        etag: str,
        size: int,
        meta: dict[str, str],
    ) -> dict[str, Any]:
        """CopyObject beyond COPY_LIMIT: a multipart upload of UploadPartCopy ranges."""

        def send(upload: str) -> Iterator[str]:
            for number, start in enumerate(range(0, size, COPY_PART), start=1):
                end = min(size, start + COPY_PART) - 1
                part = self.client.upload_part_copy(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource=dict(source),
                    CopySourceIfMatch=etag,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                yield part["CopyPartResult"]["ETag"]

        return self._in_parts(bucket, key, send, Metadata=meta)

    def _discard(self, bucket: str, key: str, source: Mapping[str, str]) -> None:
        """Remove an assembled but unstamped object, best effort: its own version in a
        versioned bucket (the previous one is current again), else the key."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.delete_object(Bucket=bucket, Key=key, **_version_of(source))

    def get_object(self, bucket: str, key: str) -> Chunks:
        """The object's bytes, streamed (NotFound now, not at the first read, if absent)."""
        action = f"get object {key} from bucket {bucket}"
        with mapped(self.cloud, action):
            self._check_bucket(bucket)
            try:
                body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            except ClientError as exc:
                if error_code(exc) in _NO_KEY:
                    raise self._no_object(bucket, key) from None
                raise
        return self._stream(body, action)

    def _stream(self, body: Any, action: str) -> Iterator[bytes]:
        try:
            with mapped(self.cloud, action):
                try:
                    yield from body.iter_chunks(PART_SIZE)
                except IncompleteReadError as exc:
                    raise TransientError(f"{action}: {exc}", self.cloud, 1.0) from exc
        finally:
            body.close()

    def _no_object(self, bucket: str, key: str) -> PermanentError:
        return PermanentError(
            f"object {key} not found in bucket {bucket}", cloud=self.cloud, reason="NotFound"
        )

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        with mapped(self.cloud, f"head object {key} in bucket {bucket}"):
            self._check_bucket(bucket)
            try:
                head = self.client.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) in _NO_KEY:
                    return None
                raise
        meta = {str(k).lower(): str(v) for k, v in head.get("Metadata", {}).items()}
        return ObjectInfo(key, int(head["ContentLength"]), unquote(head["ETag"]), meta)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix``, sorted by key; S3 listings carry no user
        metadata (``metadata`` is empty: head_object reads it)."""
        found = []
        with mapped(self.cloud, f"list objects in bucket {bucket}"):
            self._check_bucket(bucket)
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(str(item["Key"]), int(item["Size"]), unquote(item["ETag"]))
                    )
        return sorted(found, key=lambda info: info.key)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete ``key`` (a delete marker in a versioned bucket); absent is success."""
        with mapped(self.cloud, f"delete object {key} from bucket {bucket}"):
            self._check_bucket(bucket)
            try:
                self.client.delete_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) not in _NO_KEY:
                    raise


def unquote(etag: str) -> str:
    """An ETag without its quotes (S3 quotes them; some stores do not)."""
    return str(etag).strip('"')


def user_metadata(metadata: Mapping[str, str], sha256: str) -> dict[str, str]:
    """The caller's metadata, keys lower-cased (as S3 returns them), plus our digest."""
    result = {k.lower(): v for k, v in metadata.items()}
    result[META_SHA256] = sha256
    return result


def part_size(index: int) -> int:
    """Size of upload part ``index`` (0-based): PART_SIZE, growing every PART_GROWTH."""
    return PART_SIZE * (1 + index // PART_GROWTH)


def _version_of(source: Mapping[str, str]) -> dict[str, str]:
    return {"VersionId": source["VersionId"]} if "VersionId" in source else {}
