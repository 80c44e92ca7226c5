"""Buckets on any S3-compatible store (AWS S3, SeaweedFS, MinIO, Ceph RGW) for one Cloud.

Ownership lives in the bucket's tag set (``reconciler.dev/*``, via Put/GetBucketTagging),
so a bucket without our owner tag is never listed, changed or deleted. Creation is two
calls (CreateBucket, then PutBucketTagging); a retry after a lost response adopts the
bucket the first attempt made only if our account owns it, it is untagged, empty and was
created in the last few minutes. Anything else under that name is ``NameTaken``.

Objects (only in buckets carrying our owner tag) go up in one PutObject up to
``PART_SIZE`` and as a multipart upload beyond it (aborted on any failure). S3 takes user
metadata only when an object is created, and the SHA-256 of a multipart object is known
only after its last part, so the parts are assembled without user metadata and the
object is then copied onto itself (CopyObject with ``MetadataDirective=REPLACE``, pinned
to the assembled version and ETag; UploadPartCopy beyond CopyObject's 5 GiB) with the
caller's metadata plus ``META_SHA256``. In a versioned bucket the assembled version that
copy superseded is deleted, so one put leaves one version. If that stamping fails, the
assembled object is removed again (best effort): nobody reads bytes without their digest.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError

from reconciler.model.artifacts import META_SHA256, Chunks, ObjectInfo
from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import GROUP, HOURS_PER_MONTH, TAG_OWNER, TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import BucketRequest
from reconciler.providers.botoerrors import error_code, mapped
from reconciler.providers.streams import HashedParts, rejoin

#: An untagged empty bucket younger than this is taken as our own half-finished create.
ADOPT_WINDOW = timedelta(minutes=10)
_GONE = frozenset({"NoSuchBucket", "404"})
_NOT_READABLE = frozenset({"AccessDenied", "AllAccessDisabled", "403"})
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
#: How long (seconds) object calls trust a positive "this bucket is ours" answer.
OWNER_TTL = 15.0


def bucket_name(name: str) -> str:
    """A DNS-valid S3 bucket name derived from a per-cloud resource name (deterministic)."""
    text = re.sub(r"[^a-z0-9.-]+", "-", name.lower())
    text = re.sub(r"[.-]{2,}", "-", text).strip(".-")[:63].strip(".-")
    return text if len(text) >= 3 else f"{text}-bucket".strip(".-")


def client_config() -> Config:
    """The botocore settings every reconciler S3/EC2 client uses (the executor retries)."""
    return Config(
        retries={"mode": "standard", "max_attempts": 2},
        connect_timeout=10,
        read_timeout=10,
        max_pool_connections=16,
    )


def boto_session(credentials: Mapping[str, str], region: str) -> boto3.session.Session:
    """A boto3 session from accessKeyId/secretAccessKey[/sessionToken]; the default
    credential chain for whatever is not given."""
    return boto3.session.Session(
        aws_access_key_id=credentials.get("accessKeyId") or None,
        aws_secret_access_key=credentials.get("secretAccessKey") or None,
        aws_session_token=credentials.get("sessionToken") or None,
        region_name=region,
    )


def s3_client(session: boto3.session.Session, endpoint: str | None) -> Any:
    """An S3 client on ``endpoint`` (None: AWS S3); other endpoints get path-style
    addressing (S3-compatible stores rarely serve bucket subdomains)."""
    config = client_config()
    if endpoint:
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return session.client("s3", endpoint_url=endpoint or None, config=config)


class S3BucketStore:
    """Managed buckets of one Cloud on one S3 endpoint; thread-safe (boto3 clients are)."""

    def __init__(
        self,
        cloud: str,
        owner: str,
        client: Any,
        price_per_gib_month: float = 0.0,
        region: str | None = None,
    ) -> None:
        self.cloud = cloud
        self.owner = owner
        self.client = client
        self.price_per_gib_month = price_per_gib_month
        #: When set (AWS), only buckets of this region are listed.
        self.region = region
        #: bucket -> monotonic time until which object calls take it as ours.
        self._owned: dict[str, float] = {}
        self._owned_lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        cloud: CloudSpec,
        owner: str,
        endpoint: str | None,
        region: str,
        credentials: Mapping[str, str],
        price_per_gib_month: float = 0.0,
    ) -> S3BucketStore:
        """A store on ``endpoint`` (None: AWS S3) with accessKeyId/secretAccessKey."""
        key, secret = credentials.get("accessKeyId", ""), credentials.get("secretAccessKey", "")
        if bool(key) != bool(secret) or (endpoint and not key):
            missing = "secretAccessKey" if key else "accessKeyId"
            raise PermanentError(
                f"object storage of Cloud {cloud.name} needs credential '{missing}'",
                cloud=cloud.name,
                reason="MissingCredentials",
            )
        client = s3_client(boto_session(credentials, region), endpoint)
        return cls(cloud.name, owner, client, price_per_gib_month, None if endpoint else region)

    # -- reading -------------------------------------------------------------------
    def _tags(self, name: str) -> dict[str, str] | None:
        """The bucket's tags ({} if none); None if there is no such bucket."""
        try:
            tag_set = self.client.get_bucket_tagging(Bucket=name)["TagSet"]
        except ClientError as exc:
            code = error_code(exc)
            if code in _GONE:
                return None
            if code == "NoSuchTagSet":
                return {}
            raise
        return {str(t["Key"]): str(t["Value"]) for t in tag_set}

    def _mine(self, tags: Mapping[str, str] | None) -> bool:
        return tags is not None and tags.get(TAG_OWNER) == self.owner

    def _versioning(self, name: str) -> bool:
        status = self.client.get_bucket_versioning(Bucket=name).get("Status")
        return bool(status == "Enabled")

    def _price(self, name: str) -> float:
        """$/hour for what the bucket stores now (listing is skipped when storage is free)."""
        if self.price_per_gib_month <= 0:
            return 0.0
        total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=name):
            total += sum(int(o.get("Size", 0)) for o in page.get("Contents", []))
        return total / 2**30 * self.price_per_gib_month / HOURS_PER_MONTH

    def _observe(
        self, name: str, tags: Mapping[str, str], versioning: bool | None = None
    ) -> ObservedBucket:
        """The bucket as observed (``versioning``: already known, else read)."""
        return ObservedBucket(
            cloud=self.cloud,
            external_id=name,
            versioning=self._versioning(name) if versioning is None else versioning,
            price_per_hour=self._price(name),
            tags=dict(tags),
        )

    def _names(self) -> list[str]:
        kwargs = {"BucketRegion": self.region} if self.region else {}
        return [str(b["Name"]) for b in self.client.list_buckets(**kwargs).get("Buckets", [])]

    def _readable_tags(self, name: str) -> dict[str, str] | None:
        try:
            return self._tags(name)
        except ClientError as exc:
            if error_code(exc) in _NOT_READABLE or error_code(exc) == "PermanentRedirect":
                return None
            raise

    def _managed(self) -> Iterator[tuple[str, dict[str, str]]]:
        """(name, tags) of every bucket whose tags carry our owner."""
        for name in self._names():
            tags = self._readable_tags(name)
            if tags is not None and self._mine(tags):
                yield name, tags

    def list_managed(self) -> list[ObservedBucket]:
        """Every bucket whose tags carry our owner. Never mutates."""
        with mapped(self.cloud, "list buckets"):
            return [self._observe(name, tags) for name, tags in self._managed()]

    def find_by_uid(self, uid: str) -> ObservedBucket | None:
        """Our bucket tagged with ``uid``, if any. Never mutates."""
        with mapped(self.cloud, "find bucket"):
            for name, tags in self._managed():
                if tags.get(TAG_UID) == uid:
                    return self._observe(name, tags)
        return None

    def observe(self, external_id: str) -> ObservedBucket | None:
        """Our bucket called ``external_id``, or None if absent or not ours."""
        with mapped(self.cloud, f"observe bucket {external_id}"):
            tags = self._readable_tags(external_id)
            return self._observe(external_id, tags) if self._mine(tags) and tags else None

    # -- writing -------------------------------------------------------------------
    def _checked_tags(self, tags: Mapping[str, str]) -> dict[str, str]:
        result = dict(tags)
        if result.setdefault(TAG_OWNER, self.owner) != self.owner or not result.get(TAG_UID):
            raise PermanentError(
                f"a bucket create needs our owner tag '{self.owner}' and a '{TAG_UID}' tag",
                cloud=self.cloud,
                reason="BadRequest",
            )
        return result

    def _make(self, name: str) -> bool:
        """Create the bucket; False if our account already had it (a racing retry)."""
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "BucketAlreadyOwnedByYou":
                return False
            if error_code(exc) == "BucketAlreadyExists":
                raise self._taken(name) from None
            raise
        return True

    def _taken(self, name: str) -> PermanentError:
        return PermanentError(
            f"bucket name '{name}' is taken by a bucket reconciler does not manage "
            "(another owner, or no reconciler.dev tags); refusing to adopt it",
            cloud=self.cloud,
            reason="NameTaken",
        )

    def _is_empty(self, name: str) -> bool:
        listing = self.client.list_object_versions(Bucket=name, MaxKeys=1)
        return not listing.get("Versions") and not listing.get("DeleteMarkers")

    def _recent(self, name: str) -> bool:
        for entry in self.client.list_buckets().get("Buckets", []):
            if entry["Name"] == name:
                created: datetime = entry["CreationDate"]
                return datetime.now(UTC) - created.astimezone(UTC) < ADOPT_WINDOW
        return False

    def _claimable(self, name: str, current: Mapping[str, str], uid: str) -> bool:
        if current:
            return self._mine(current) and current.get(TAG_UID) == uid
        return self._is_empty(name) and self._recent(name)

    def create(self, request: BucketRequest) -> ObservedBucket:
        """Create (idempotently, by name and uid tag) a tagged bucket."""
        tags = self._checked_tags(request.tags)
        name = bucket_name(request.name)
        with mapped(self.cloud, f"create bucket {name}"):
            current = self._readable_tags(name)
            fresh = current is None and self._make(name)
            if not fresh:
                current = self._readable_tags(name)
                if current is None or not self._claimable(name, current, tags[TAG_UID]):
                    raise self._taken(name)
            if current != tags:
                self._put_tags(name, tags)
            self._set_versioning(name, request.versioning)
            return self._observe(name, tags, request.versioning)

    def _put_tags(self, name: str, tags: Mapping[str, str]) -> None:
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        self.client.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_set})

    def _set_versioning(self, name: str, enabled: bool) -> None:
        """Enable, or suspend, versioning unless it already is; afterwards
        ``_versioning(name) == enabled``."""
        if self._versioning(name) != enabled:
            status = "Enabled" if enabled else "Suspended"
            self.client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": status}
            )

    def _ours(self, name: str) -> dict[str, str] | None:
        """Our bucket's tags; None if absent; PermanentError(NotManaged) if foreign."""
        tags = self._tags(name)
        if tags is not None and not self._mine(tags):
            raise PermanentError(
                f"bucket {name} is not managed by '{self.owner}'; refusing to touch it",
                cloud=self.cloud,
                reason="NotManaged",
            )
        return tags

    def update(self, external_id: str, versioning: bool) -> ObservedBucket:
        """Turn versioning on (Enabled) or off (Suspended: S3 cannot un-version)."""
        with mapped(self.cloud, f"update bucket {external_id}"):
            tags = self._ours(external_id)
            if tags is None:
                raise PermanentError(
                    f"bucket {external_id} not found", cloud=self.cloud, reason="NotFound"
                )
            self._set_versioning(external_id, versioning)
            return self._observe(external_id, tags, versioning)

    def delete(self, external_id: str) -> None:
        """Delete our empty bucket; absent is success; user data is never deleted."""
        self._disown(external_id)
        with mapped(self.cloud, f"delete bucket {external_id}"):
            if self._ours(external_id) is None:
                return
            if not self._is_empty(external_id):
                raise PermanentError(
                    f"bucket {external_id} is not empty; reconciler never deletes stored "
                    "objects: empty it first (or set deletionPolicy: Orphan)",
                    cloud=self.cloud,
                    reason="BucketNotEmpty",
                )
            try:
                self.client.delete_bucket(Bucket=external_id)
            except ClientError as exc:
                if error_code(exc) not in _GONE:
                    raise

    def forget(self, external_id: str) -> bool:
        """Remove our reconciler.dev/* tags; True if the bucket was ours."""
        self._disown(external_id)
        with mapped(self.cloud, f"forget bucket {external_id}"):
            tags = self._readable_tags(external_id)
            if not self._mine(tags) or tags is None:
                return False
            kept = {k: v for k, v in tags.items() if not k.startswith(GROUP + "/")}
            if kept:
                self._put_tags(external_id, kept)
            else:
                self.client.delete_bucket_tagging(Bucket=external_id)
            return True

    # -- objects -------------------------------------------------------------------
    def _disown(self, name: str) -> None:
        with self._owned_lock:
            self._owned.pop(name, None)

    def _object_bucket(self, name: str) -> None:
        """Refuse an object call unless ``name`` is our bucket: NotFound if absent,
        NotManaged if it is another owner's (or its tags are unreadable to us). A yes is
        remembered for OWNER_TTL seconds, so streaming many objects costs one check."""
        now = time.monotonic()
        with self._owned_lock:
            if self._owned.get(name, 0.0) > now:
                return
        try:
            tags = self._ours(name)
        except ClientError as exc:
            if error_code(exc) not in _NOT_READABLE:
                raise
            tags = {}
        if tags is None:
            raise PermanentError(f"bucket {name} not found", cloud=self.cloud, reason="NotFound")
        if not self._mine(tags):
            raise PermanentError(
                f"bucket {name} is not managed by '{self.owner}'; refusing to touch it",
                cloud=self.cloud,
                reason="NotManaged",
            )
        with self._owned_lock:
            self._owned[name] = now + OWNER_TTL

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """Write ``key`` (replacing it): one PutObject up to PART_SIZE, else multipart;
        ``META_SHA256`` is always the digest of the bytes that arrived."""
        action = f"put object {key} into bucket {bucket}"
        with mapped(self.cloud, action):
            self._object_bucket(bucket)
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

    def _multipart(self, bucket: str, key: str, blocks: Iterator[bytes]) -> dict[str, Any]:
        """Upload ``blocks`` as the parts of one object; abort the upload on any failure
        (a failing source stream included). CompleteMultipartUpload's answer."""
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            done = []
            for number, block in enumerate(blocks, start=1):
                if number > MAX_PARTS:
                    raise PermanentError(
                        f"object {key} needs more than {MAX_PARTS} parts",
                        cloud=self.cloud,
                        reason="ObjectTooLarge",
                    )
                part = self.client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=block
                )
                done.append({"PartNumber": number, "ETag": part["ETag"]})
            made: dict[str, Any] = self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
            )
        except BaseException:
            self._abort(bucket, key, upload)
            raise
        return made

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
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta)
        upload_id = upload["UploadId"]
        try:
            done = []
            for number, start in enumerate(range(0, size, COPY_PART), start=1):
                end = min(size, start + COPY_PART) - 1
                part = self.client.upload_part_copy(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=dict(source),
                    CopySourceIfMatch=etag,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                done.append({"PartNumber": number, "ETag": part["CopyPartResult"]["ETag"]})
            made: dict[str, Any] = self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            self._abort(bucket, key, upload_id)
            raise
        return made

    def _discard(self, bucket: str, key: str, source: Mapping[str, str]) -> None:
        """Remove an assembled but unstamped object, best effort: its own version in a
        versioned bucket (the previous one is current again), else the key."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.delete_object(Bucket=bucket, Key=key, **_version_of(source))

    def get_object(self, bucket: str, key: str) -> Chunks:
        """The object's bytes, streamed (NotFound now, not at the first read, if absent)."""
        action = f"get object {key} from bucket {bucket}"
        with mapped(self.cloud, action):
            self._object_bucket(bucket)
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
            self._object_bucket(bucket)
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
            self._object_bucket(bucket)
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
            self._object_bucket(bucket)
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
