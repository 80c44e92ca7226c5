"""Swift containers as buckets; ownership in container metadata, versioning via
``X-Versions-Enabled`` (Swift >= 2.24 object versioning, detected from ``/info``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from openstack import exceptions as sdk

from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.providers.base import BucketRequest
from reconciler.providers.openstack.tags import decode_swift, encode_swift, swift_removal
from reconciler.providers.openstack.volumes import VolumeMixin

_MAX_NAME = 256


class ObjectMixin(VolumeMixin):
    """Bucket operations on the object-store endpoint of the Keystone catalog."""

    _swift_lock = threading.Lock()
    _swift_caps: frozenset[Capability] | None = None

    def swift(self) -> Any:
        return self.conn.proxy("object_store")

    def _request(
        self,
        method: str,
        name: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        conflict: str = "",
    ) -> Any:
        """One request on container ``name``; None for 404, mapped errors otherwise
        (a 409 is PermanentError(reason=conflict) when ``conflict`` is given)."""

        def send() -> Any:
            path = quote(name, safe="")
            response = self.swift().request(path, method, headers=dict(headers or {}))
            if response.status_code == 404:
                return None
            if response.status_code == 409 and conflict:
                raise PermanentError(f"{what}: HTTP 409", cloud=self.name, reason=conflict)
            sdk.raise_from_response(response)
            return response

        return self.call(what, send)

    def swift_capabilities(self) -> frozenset[Capability]:
        """BUCKETS if the catalog has object-store; BUCKET_VERSIONING if /info says so."""
        if self._swift_caps is not None:
            return self._swift_caps
        with self._swift_lock:
            caps: set[Capability] = set()
            if self.conn.has_service("object-store"):
                caps.add(Capability.BUCKETS)
                info = self.call("reading Swift /info", self._swift_info)
                if "object_versioning" in info:
                    caps.add(Capability.BUCKET_VERSIONING)
            self._swift_caps = frozenset(caps)
            return self._swift_caps

    def _swift_info(self) -> dict[str, Any]:
        endpoint = str(self.swift().get_endpoint())
        base = endpoint.split("/v1/", 1)[0] if "/v1/" in endpoint else endpoint.rstrip("/")
        response = self.swift().get(f"{base}/info")
        sdk.raise_from_response(response)
        info: dict[str, Any] = response.json()
        return info

    def _need_versioning(self) -> None:
        if Capability.BUCKET_VERSIONING not in self.swift_capabilities():
            raise PermanentError(
                "bucket versioning needs Swift object versioning (X-Versions-Enabled), which "
                "this cluster's /info does not announce",
                cloud=self.name,
                reason="MissingCapability",
            )

    def bucket_of(self, name: str, headers: Mapping[str, str]) -> ObservedBucket:
        lowered = {k.lower(): v for k, v in headers.items()}
        return ObservedBucket(
            cloud=self.name,
            external_id=name,
            versioning=lowered.get("x-versions-enabled", "").lower() == "true",
            price_per_hour=0.0,
            tags=decode_swift(headers),
        )

    def _bucket(self, name: str) -> ObservedBucket | None:
        """Container ``name`` as read by a HEAD (any owner), or None if absent."""
        response = self._request("HEAD", name, f"reading container {name}")
        return None if response is None else self.bucket_of(name, dict(response.headers))

    def owned_buckets(self) -> list[ObservedBucket]:
        """Our containers: the account listing has no metadata, so one HEAD each."""
        if Capability.BUCKETS not in self.swift_capabilities():
            return []
        names = self.call(
            "listing Swift containers", lambda: [c.name for c in self.swift().containers()]
        )
        buckets = (self._bucket(name) for name in names)
        return [b for b in buckets if b is not None and self.owns(b.tags)]

    def _own_bucket(self, name: str) -> ObservedBucket:
        bucket = self._bucket(name)
        if bucket is None:
            raise self.not_found("bucket", name)
        if not self.owns(bucket.tags):
            raise self.not_managed("bucket", name)
        return bucket

    def create_bucket(self, request: BucketRequest) -> ObservedBucket:
        """PUT the container with our metadata; an existing one with our uid is returned."""
        tags = self.owned_tags(request.tags)
        if not request.name or "/" in request.name or len(request.name) > _MAX_NAME:
            raise PermanentError(
                f"invalid Swift container name {request.name!r}",
                cloud=self.name,
                reason="BadRequest",
            )
        if request.versioning:
            self._need_versioning()
        existing = self._bucket(request.name)
        if existing is not None:
            if existing.tags.get(TAG_UID) != tags[TAG_UID] or not self.owns(existing.tags):
                raise PermanentError(
                    f"bucket name '{request.name}' is already taken",
                    cloud=self.name,
                    reason="BucketAlreadyExists",
                )
            return existing
        put = encode_swift(tags, self.name)
        if request.versioning:
            put["X-Versions-Enabled"] = "true"
        self._request("PUT", request.name, f"creating container {request.name}", put)
        return self._own_bucket(request.name)

    def update_bucket(self, external_id: str, versioning: bool) -> ObservedBucket:
        bucket = self._own_bucket(external_id)
        if versioning:
            self._need_versioning()
        if bucket.versioning != versioning:
            value = "true" if versioning else "false"
            self._request(
                "POST",
                external_id,
                f"setting versioning on {external_id}",
                {"X-Versions-Enabled": value},
            )
            bucket = self._own_bucket(external_id)
        return bucket

    def delete_bucket(self, external_id: str) -> None:
        """DELETE the container; absent is success; objects in it -> BucketNotEmpty."""
        bucket = self._bucket(external_id)
        if bucket is None:
            return
        if not self.owns(bucket.tags):
            raise self.not_managed("bucket", external_id)
        what = f"deleting container {external_id} (it must be empty of objects and versions)"
        self._request("DELETE", external_id, what, conflict="BucketNotEmpty")

    def forget_bucket(self, name: str) -> None:
        """Remove our metadata from container ``name``; absent or not ours is success."""
        bucket = self._bucket(name)
        if bucket is not None and self.owns(bucket.tags):
            self._request("POST", name, f"forgetting container {name}", swift_removal(bucket.tags))
