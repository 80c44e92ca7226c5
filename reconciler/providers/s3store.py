"""Buckets on any S3-compatible store (AWS S3, SeaweedFS, MinIO, Ceph RGW) for one Cloud.

Ownership lives in the bucket's tag set (``reconciler.dev/*``, via Put/GetBucketTagging),
so a bucket without our owner tag is never listed, changed or deleted. Creation is two
calls (CreateBucket, then PutBucketTagging); a retry after a lost response adopts the
bucket the first attempt made only if our account owns it, it is untagged, empty and was
created in the last few minutes. Anything else under that name is ``NameTaken``.

Objects, only in buckets carrying our owner tag, are ``self.objects`` (``s3objects``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from reconciler.model.errors import PermanentError
from reconciler.model.keys import GROUP, HOURS_PER_MONTH, TAG_OWNER, TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import BucketRequest
from reconciler.providers.botoerrors import error_code, mapped
from reconciler.providers.s3objects import S3Objects

#: An untagged empty bucket younger than this is taken as our own half-finished create.
ADOPT_WINDOW = timedelta(minutes=10)
_GONE = frozenset({"NoSuchBucket", "404"})
_NOT_READABLE = frozenset({"AccessDenied", "AllAccessDisabled", "403"})
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
        #: Object calls (put, get, head, list, delete) in our buckets.
        self.objects = S3Objects(cloud, client, self._object_bucket)

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
