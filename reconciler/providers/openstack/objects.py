"""Objects in our Swift containers (the containers themselves: ``containers``).

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
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reconciler.model.artifacts import META_SHA256, Chunks, ObjectInfo
from reconciler.model.errors import PermanentError, ProviderError, TransientError
from reconciler.providers.openstack.containers import (
    SEGMENT_SIZE,
    SEGMENTS_SUFFIX,
    ContainerMixin,
)
from reconciler.providers.openstack.errors import edge

#: Segments double every SEGMENT_GROWTH segments up to MAX_SEGMENT (under Swift's 5 GiB
#: max_file_size); Swift's manifest holds MAX_SEGMENTS.
SEGMENT_GROWTH = 100
MAX_SEGMENT = 4 * 2**30
MAX_SEGMENTS = 1000
#: Chunk size of object downloads.
READ_CHUNK = 8 * 2**20
_META = "x-object-meta-"
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9.-]{0,127}$")


class ObjectMixin(ContainerMixin):
    """Object operations in our containers on the object-store endpoint."""

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
