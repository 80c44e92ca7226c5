"""Swift containers as buckets; ownership in container metadata, versioning via
``X-Versions-Enabled`` (Swift >= 2.24 object versioning, detected from ``/info``).

Objects: up to ``SEGMENT_SIZE`` one PUT; larger ones a Static Large Object whose segments
live in the container ``<bucket>+reconciler-segments`` (marked with our owner in
``reconciler.dev/segments-owner``, not the owner tag, so it is never listed as a bucket).
Segments after the first are streamed with chunked transfer encoding, so only the first
is ever held in memory; they double in size every ``SEGMENT_GROWTH`` segments, so Swift's
1,000-segment manifest holds about 800 GiB. The manifest PUT carries the metadata and
the SHA-256, both known by then. Segments a put or delete orphans (the replaced object's,
in an unversioned container) are deleted; a versioned container keeps them for its
versions. Metadata is ``X-Object-Meta-<key>``: keys of lower-case letters, digits, ``-``
and ``.`` (Swift's WSGI stack drops ``_``; header names cannot hold ``/``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from openstack import exceptions as sdk

from reconciler.model.artifacts import META_SHA256, Chunks, ObjectInfo
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError, ProviderError, TransientError
from reconciler.model.keys import GROUP, TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.providers.base import BucketRequest
from reconciler.providers.openstack.errors import edge
from reconciler.providers.openstack.tags import decode_swift, encode_swift, swift_removal
from reconciler.providers.openstack.volumes import VolumeMixin

_MAX_NAME = 256
#: Objects up to this size are one PUT; beyond, segments of this size, doubling every
#: SEGMENT_GROWTH segments up to MAX_SEGMENT (under Swift's 5 GiB max_file_size).
SEGMENT_SIZE = 8 * 2**20
SEGMENT_GROWTH = 100
MAX_SEGMENT = 4 * 2**30
MAX_SEGMENTS = 1000
SEGMENTS_SUFFIX = "+reconciler-segments"
SEGMENTS_OWNER = f"{GROUP}/segments-owner"
#: Chunk size of object downloads.
READ_CHUNK = 8 * 2**20
#: How long (seconds) object calls trust a positive "this container is ours" answer.
OWNER_TTL = 15.0
_META = "x-object-meta-"
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9.-]{0,127}$")


class ObjectMixin(VolumeMixin):
    """Bucket operations on the object-store endpoint of the Keystone catalog."""

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

    # -- objects ------------------------------------------------------------------------
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

    def _meta_headers(self, metadata: Mapping[str, str]) -> dict[str, str]:
        headers = {}
        for key, value in metadata.items():
            name = key.lower()
            if not _META_KEY.match(name) or not (value.isascii() and value.isprintable()):
                raise PermanentError(
                    f"metadata {key!r} cannot be stored on a Swift object (keys: lower-case "
                    "letters, digits, '-' and '.'; values: printable ASCII)",
                    cloud=self.name,
                    reason="BadRequest",
                )
            headers[f"X-Object-Meta-{name}"] = value
        return headers

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """One PUT up to SEGMENT_SIZE, else a Static Large Object (module docstring)."""
        versioned = self._object_container(bucket)
        headers = self._meta_headers(metadata)
        replaced = [] if versioned else self._our_segments(bucket, key)
        stream = _Stream(chunks)
        first = stream.read(SEGMENT_SIZE)
        if stream.at_end():
            headers[f"X-Object-Meta-{META_SHA256}"] = stream.sha256
            headers["ETag"] = hashlib.md5(first, usedforsecurity=False).hexdigest()
            what = f"writing object {key} to container {bucket}"
            response = self._object_call("PUT", bucket, key, what, headers=headers, data=first)
            if response is None:
                raise self.not_found("bucket", bucket)
        else:
            response = self._put_large(bucket, key, stream, first, headers)
        self._delete_paths(replaced)
        meta = {k.lower(): v for k, v in metadata.items()}
        meta[META_SHA256] = stream.sha256
        return ObjectInfo(key, stream.size, unquote(response.headers.get("Etag", "")), meta)

    def _put_large(
        self, bucket: str, key: str, stream: _Stream, first: bytes, headers: dict[str, str]
    ) -> Any:
        """Stream the segments, then PUT the manifest with the metadata and SHA-256;
        on any failure delete the segments already written."""
        segments = self._segments_container(bucket)
        base = f"{hashlib.sha256(key.encode()).hexdigest()[:32]}/{uuid.uuid4().hex}"
        manifest: list[dict[str, Any]] = []
        try:
            manifest.append(self._put_segment(segments, f"{base}/{0:06d}", [first]))
            while not stream.at_end():
                index = len(manifest)
                if index >= MAX_SEGMENTS:
                    raise PermanentError(
                        f"object {key} needs more than {MAX_SEGMENTS} segments",
                        cloud=self.name,
                        reason="ObjectTooLarge",
                    )
                pieces = stream.take(segment_size(index))
                manifest.append(self._put_segment(segments, f"{base}/{index:06d}", pieces))
            headers = {**headers, f"X-Object-Meta-{META_SHA256}": stream.sha256}
            what = f"writing the manifest of object {key} to container {bucket}"
            params = {"multipart-manifest": "put"}
            data = json.dumps(manifest)
            response = self._object_call(
                "PUT", bucket, key, what, headers=headers, data=data, params=params
            )
            if response is None:
                raise self.not_found("bucket", bucket)
        except BaseException:
            self._delete_paths([str(entry["path"]) for entry in manifest])
            raise
        return response

    def _put_segment(self, container: str, name: str, pieces: Iterable[bytes]) -> dict[str, Any]:
        """PUT one segment, streamed (chunked), and check Swift stored the bytes sent."""
        md5, size = hashlib.md5(usedforsecurity=False), 0

        def body() -> Iterator[bytes]:
            nonlocal size
            for piece in pieces:
                md5.update(piece)
                size += len(piece)
                yield piece

        what = f"writing segment {name} to container {container}"
        response = self._object_call("PUT", container, name, what, data=body())
        if response is None:
            raise self.not_found("bucket", container)
        path = f"/{container}/{name}"
        etag = unquote(response.headers.get("Etag", ""))
        if etag != md5.hexdigest():
            self._delete_paths([path])
            raise TransientError(f"{what}: stored ETag {etag} is not the MD5 sent", self.name)
        return {"path": path, "etag": etag, "size_bytes": size}

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

    def _our_segments(self, bucket: str, key: str) -> list[str]:
        """Paths of the segments in our segments container that overwriting or deleting
        ``key`` orphans: those of an SLO that is not kept as a version."""
        head = self._object_call("HEAD", bucket, key, f"reading object {key} in {bucket}")
        if head is None:
            return []
        lowered = {k.lower(): v for k, v in head.headers.items()}
        if lowered.get("x-static-large-object", "").lower() != "true":
            return []
        if lowered.get("x-object-version-id", "null") != "null":
            return []
        what = f"reading the manifest of object {key} in {bucket}"
        params = {"multipart-manifest": "get"}
        got = self._object_call("GET", bucket, key, what, params=params)
        prefix = f"/{bucket}{SEGMENTS_SUFFIX}/"
        entries = got.json() if got is not None else []
        return [str(e["name"]) for e in entries if str(e.get("name", "")).startswith(prefix)]

    def _delete_paths(self, paths: list[str]) -> None:
        """Delete segments by their ``/container/object`` paths, best effort (a failure
        leaves garbage in our segments container, which delete_bucket removes)."""
        for path in paths:
            container, _, name = path.lstrip("/").partition("/")
            with contextlib.suppress(ProviderError):
                self._object_call("DELETE", container, name, f"deleting segment {path}")

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

    def get_object(self, bucket: str, key: str) -> Chunks:
        """The object's bytes, streamed (NotFound now, not at the first read, if absent)."""
        self._object_container(bucket)
        what = f"reading object {key} from container {bucket}"
        response = self._object_call("GET", bucket, key, what, stream=True)
        if response is None:
            raise PermanentError(
                f"object {key} not found in container {bucket}", cloud=self.name, reason="NotFound"
            )
        return self._download(response, what)

    def _download(self, response: Any, what: str) -> Iterator[bytes]:
        try:
            with edge(self.name, what):
                yield from response.iter_content(READ_CHUNK)
        finally:
            response.close()

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        self._object_container(bucket)
        response = self._object_call("HEAD", bucket, key, f"reading object {key} in {bucket}")
        return None if response is None else object_info(key, response.headers)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix``, sorted by key. Swift listings carry no user
        metadata (``metadata`` is empty: head_object reads it); a large object's etag is
        its ``slo_etag``, the one HEAD returns."""
        self._object_container(bucket)
        found = [
            ObjectInfo(str(e["name"]), int(e["bytes"]), unquote(e.get("slo_etag") or e["hash"]))
            for e in self._listing(bucket, prefix)
            if "name" in e
        ]
        return sorted(found, key=lambda info: info.key)

    def delete_object(self, bucket: str, key: str) -> None:
        """DELETE the object (and, unversioned, the segments it orphans); absent is
        success."""
        versioned = self._object_container(bucket)
        orphans = [] if versioned else self._our_segments(bucket, key)
        self._object_call("DELETE", bucket, key, f"deleting object {key} from {bucket}")
        self._delete_paths(orphans)


def segment_size(index: int) -> int:
    """Size of large-object segment ``index`` (0-based), see SEGMENT_GROWTH."""
    return min(MAX_SEGMENT, SEGMENT_SIZE << (index // SEGMENT_GROWTH))


def unquote(etag: object) -> str:
    return str(etag).strip('"')


def object_info(key: str, headers: Mapping[str, str]) -> ObjectInfo:
    """An object's record from its HEAD/GET headers (metadata keys lower-case)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    meta = {k[len(_META) :]: v for k, v in lowered.items() if k.startswith(_META)}
    size = int(lowered.get("content-length", "0") or 0)
    return ObjectInfo(key, size, unquote(lowered.get("etag", "")), meta)


class _Stream:
    """A chunk stream read in measured pieces; ``sha256`` and ``size`` of what was read."""

    def __init__(self, chunks: Chunks) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self._sha = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def at_end(self) -> bool:
        """True when every byte has been taken (reads ahead one chunk to know)."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return True
            self._pending = bytes(chunk)
        return False

    def take(self, limit: int) -> Iterator[bytes]:
        """The next bytes, at most ``limit`` of them, as they arrive."""
        left = limit
        while left > 0 and not self.at_end():
            piece, self._pending = self._pending[:left], self._pending[left:]
            self._sha.update(piece)
            self.size += len(piece)
            left -= len(piece)
            yield piece

    def read(self, limit: int) -> bytes:
        return b"".join(self.take(limit))
