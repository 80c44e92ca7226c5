"""Swift containers as buckets; ownership in container metadata, versioning via
``X-Versions-Enabled`` (Swift >= 2.24 object versioning, detected from ``/info``).

Also what object calls need of containers: the "is it ours" check (trusted for
``OWNER_TTL`` seconds), one request on an object, paginated listings, and the segments
container ``<bucket>+reconciler-segments`` that large objects' segments live in (marked
with our owner in ``reconciler.dev/segments-owner``, not the owner tag, so it is never
listed as a bucket; deleting the bucket deletes it). Objects themselves: ``objects``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from openstack import exceptions as sdk

from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.keys import GROUP, TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.providers.base import BucketRequest
from reconciler.providers.openstack.tags import decode_swift, encode_swift, swift_removal
from reconciler.providers.openstack.volumes import VolumeMixin

_MAX_NAME = 256
#: Objects up to this size are one PUT; beyond, segments of this size, doubling every
#: SEGMENT_GROWTH segments up to MAX_SEGMENT (under Swift's 5 GiB max_file_size).
SEGMENT_SIZE = 8 * 2**20
SEGMENTS_SUFFIX = "+reconciler-segments"
SEGMENTS_OWNER = f"{GROUP}/segments-owner"
#: How long (seconds) object calls trust a positive "this container is ours" answer.
OWNER_TTL = 15.0


class ContainerMixin(VolumeMixin):
    """Bucket (container) operations on the object-store endpoint of the Keystone catalog."""

    _swift_lock = threading.Lock()
    _swift_caps: frozenset[Capability] | None = None
    #: container -> (monotonic expiry, versioned), for object calls (see OWNER_TTL).
    _containers: dict[str, tuple[float, bool]] | None = None

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
            self._forget_container(external_id)
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
        """DELETE the container, then its segments container; absent is success; objects
        in it -> BucketNotEmpty."""
        bucket = self._bucket(external_id)
        if bucket is not None:
            if not self.owns(bucket.tags):
                raise self.not_managed("bucket", external_id)
            what = f"deleting container {external_id} (it must be empty of objects and versions)"
            self._forget_container(external_id)
            self._request("DELETE", external_id, what, conflict="BucketNotEmpty")
        self._delete_segments_container(external_id)

    def forget_bucket(self, name: str) -> None:
        """Remove our metadata from container ``name``; absent or not ours is success."""
        self._forget_container(name)
        bucket = self._bucket(name)
        if bucket is not None and self.owns(bucket.tags):
            self._request("POST", name, f"forgetting container {name}", swift_removal(bucket.tags))

    def _forget_container(self, name: str) -> None:
        with self._swift_lock:
            if self._containers is not None:
                self._containers.pop(name, None)

    def _object_container(self, name: str) -> bool:
        """Refuse an object call unless container ``name`` is ours (NotSupported without
        Swift, else NotFound or NotManaged); True if it is versioned. A yes is trusted
        for OWNER_TTL seconds, so streaming many objects costs one HEAD."""
        if Capability.BUCKETS not in self.swift_capabilities():
            raise self.unsupported("objects", Capability.BUCKETS)
        now = time.monotonic()
        with self._swift_lock:
            if self._containers is None:
                self._containers = {}
            known = self._containers.get(name)
        if known is not None and known[0] > now:
            return known[1]
        versioned = self._own_bucket(name).versioning
        with self._swift_lock:
            if self._containers is not None:
                self._containers[name] = (now + OWNER_TTL, versioned)
        return versioned

    def _object_call(self, method: str, container: str, key: str, what: str, **kw: Any) -> Any:
        """One request on object ``key`` of ``container``: the response, None for a 404."""
        path = f"{quote(container, safe='')}/{quote(key, safe='/')}"

        def send() -> Any:
            response = self.swift().request(path, method, **kw)
            if response.status_code == 404:
                response.close()
                return None
            sdk.raise_from_response(response)
            return response

        return self.call(what, send)

    def _segments_container(self, bucket: str) -> str:
        """``<bucket>+reconciler-segments``, made (with our marker) if absent."""
        name = bucket + SEGMENTS_SUFFIX
        if len(name.encode()) > _MAX_NAME:
            raise PermanentError(
                f"container {bucket!r} has too long a name for a segments container: objects "
                f"over {SEGMENT_SIZE} bytes cannot be stored in it",
                cloud=self.name,
                reason="BadRequest",
            )
        current = self._request("HEAD", name, f"reading container {name}")
        if current is None:
            marker = encode_swift({SEGMENTS_OWNER: self.context.owner}, self.name)
            self._request("PUT", name, f"creating segments container {name}", marker)
        elif decode_swift(dict(current.headers)).get(SEGMENTS_OWNER) != self.context.owner:
            raise self.not_managed("segments container", name, f"{SEGMENTS_OWNER} metadata")
        return name

    def _delete_segments_container(self, bucket: str) -> None:
        """Delete our segments container of ``bucket`` and what is left in it."""
        name = bucket + SEGMENTS_SUFFIX
        if "/" in name or len(name.encode()) > _MAX_NAME:
            return
        current = self._request("HEAD", name, f"reading container {name}")
        if current is None:
            return
        if decode_swift(dict(current.headers)).get(SEGMENTS_OWNER) != self.context.owner:
            return
        for entry in self._listing(name):
            what = f"deleting segment {entry['name']} of container {name}"
            self._object_call("DELETE", name, str(entry["name"]), what)
        self._request("DELETE", name, f"deleting container {name}", conflict="BucketNotEmpty")

    def _listing(self, container: str, prefix: str = "") -> list[dict[str, Any]]:
        """Every entry of a container listing (JSON, paginated by marker)."""
        entries: list[dict[str, Any]] = []
        while True:
            marker = str(entries[-1]["name"]) if entries else ""
            page = functools.partial(self._page, container, prefix, marker)
            found = self.call(f"listing container {container}", page)
            if not found:
                return entries
            entries.extend(found)

    def _page(self, container: str, prefix: str, marker: str) -> list[dict[str, Any]]:
        params = {"format": "json", "prefix": prefix, "marker": marker}
        response = self.swift().request(quote(container, safe=""), "GET", params=params)
        if response.status_code == 404:
            raise self.not_found("bucket", container)
        sdk.raise_from_response(response)
        page: list[dict[str, Any]] = response.json() if response.content else []
        return page
