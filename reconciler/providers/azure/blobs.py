"""Buckets = Blob containers (azure-storage-blob); ownership in container metadata.

Metadata keys must be C# identifiers, so tag keys are encoded (names.encode_meta_key).
Blob versioning is a storage-ACCOUNT setting made through the management plane, not a
container property: the driver reports every container's versioning as the Cloud's
``settings.blobVersioning`` says, and refuses to change it per container.

Objects are block blobs: one Put Blob up to ``BLOCK_SIZE``, else Put Block per block (each
MD5-checked in transit) and one Put Block List that commits them with the metadata and
the SHA-256, both known by then. A failed upload commits nothing; its staged blocks are
invisible and Azure discards them (a week later, or at the blob's next commit). Metadata
keys are encoded like container metadata (names.encode_meta_key) and decoded on reads;
listings include metadata, so the bucket sync reads a copy's source ETag without a HEAD.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContainerClient

from reconciler.model.artifacts import META_SHA256, Chunks, ObjectInfo
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.providers.azure.arm import Arm, without_ours
from reconciler.providers.azure.errors import azure_errors, or_none
from reconciler.providers.azure.names import (
    container_name,
    decode_key,
    decode_map,
    encode_map,
    encode_meta_key,
)
from reconciler.providers.base import BucketRequest
from reconciler.providers.streams import HashedParts, rejoin

#: Blobs up to this size are one Put Blob; larger ones are staged in blocks of this size,
#: growing by this much every BLOCK_GROWTH blocks (Azure allows 50,000 blocks: about
#: 2 TiB, holding one block, at most 80 MiB, in memory).
BLOCK_SIZE = 8 * 2**20
BLOCK_GROWTH = 5000
MAX_BLOCKS = 50_000
#: How long (seconds) object calls trust a positive "this container is ours" answer.
OWNER_TTL = 15.0


class Blobs:
    """Container operations of one storage account (one Cloud); versioning is the
    account's, as ``settings.blobVersioning`` declares it."""

    def __init__(self, arm: Arm, service: BlobServiceClient) -> None:
        self.arm = arm
        self.cloud = arm.cloud
        self.service = service
        self.versioning = arm.settings.blob_versioning
        #: container -> monotonic time until which object calls take it as ours.
        self._owned: dict[str, float] = {}
        self._owned_lock = threading.Lock()

    def _observed(self, name: str, metadata: Mapping[str, str] | None) -> ObservedBucket:
        return ObservedBucket(self.cloud, name, self.versioning, 0.0, decode_map(metadata))

    def list_owned(self) -> list[ObservedBucket]:
        with azure_errors(self.cloud, "listing blob containers"):
            listed = list(self.service.list_containers(include_metadata=True))
        return [self._observed(c.name, c.metadata) for c in listed if self.arm.owns(c.metadata)]

    def metadata(self, name: str) -> dict[str, str] | None:
        """The container's raw metadata, or None if it does not exist."""
        props = or_none(
            self.cloud,
            f"reading container {name}",
            lambda: self.service.get_container_client(name).get_container_properties(),
        )
        return None if props is None else dict(props.metadata or {})

    def ours(self, name: str) -> dict[str, str] | None:
        meta = self.metadata(name) if container_name(name) == name else None
        return meta if meta is not None and self.arm.owns(meta) else None

    def by_uid(self, uid: str) -> ObservedBucket | None:
        return next((b for b in self.list_owned() if b.tags.get(TAG_UID) == uid), None)

    def create(self, request: BucketRequest) -> ObservedBucket:
        self._check_versioning(request.versioning)
        name = container_name(request.name)
        if name is None:
            raise PermanentError(
                f"{request.name!r} cannot be a blob container name", self.cloud, "InvalidName"
            )
        meta = encode_map(request.tags, encode_meta_key)
        try:
            with azure_errors(self.cloud, f"creating container {name}"):
                self.service.create_container(name, metadata=meta)
        except PermanentError as exc:
            if not isinstance(exc.__cause__, ResourceExistsError):
                raise
            existing = self.metadata(name) or {}
            uid = request.tags.get(TAG_UID)
            if decode_map(existing).get(TAG_UID) != uid or not self.arm.owns(existing):
                raise PermanentError(
                    f"container {name} exists and is not this bucket", self.cloud, "AlreadyExists"
                ) from None
            return self._observed(name, existing)
        return self._observed(name, meta)

    def update(self, external_id: str, versioning: bool) -> ObservedBucket:
        meta = self.ours(external_id)
        if meta is None:
            raise self.arm.not_found("bucket", external_id)
        self._check_versioning(versioning)
        return self._observed(external_id, meta)

    def _check_versioning(self, wanted: bool) -> None:
        if wanted != self.versioning:
            state = "enabled" if self.versioning else "disabled"
            raise PermanentError(
                f"blob versioning is an account setting, {state} for this storage account "
                "(settings.blobVersioning); it cannot be changed per container",
                self.cloud,
                "Unsupported",
            )

    def delete(self, external_id: str) -> None:
        """Delete our empty container; absent is success. Azure deletes a container with
        everything in it, so a container holding any blob (or, with account versioning,
        any version) is refused with BucketNotEmpty: stored data is never deleted."""
        self._disown(external_id)
        if self.ours(external_id) is not None:
            self._refuse_unless_empty(external_id)
            or_none(
                self.cloud,
                f"deleting container {external_id}",
                lambda: self.service.delete_container(external_id),
            )

    def _refuse_unless_empty(self, name: str) -> None:
        include = ["versions"] if self.versioning else None
        doing = f"checking container {name} is empty"
        with azure_errors(self.cloud, doing):
            listed = self.service.get_container_client(name).list_blobs(
                include=include, results_per_page=1
            )
            first = next(iter(listed), None)
        if first is not None:
            raise PermanentError(
                f"bucket {name} is not empty; reconciler never deletes stored objects: empty "
                "it first (or set deletionPolicy: Orphan)",
                self.cloud,
                "BucketNotEmpty",
            )

    def forget(self, external_id: str) -> None:
        """Drop our metadata; absent or not ours is success."""
        self._disown(external_id)
        meta = self.ours(external_id)
        if meta is None:
            return
        with azure_errors(self.cloud, f"forgetting container {external_id}"):
            self.service.get_container_client(external_id).set_container_metadata(
                without_ours(meta)
            )

    # -- objects (block blobs) -----------------------------------------------------------
    def _disown(self, name: str) -> None:
        with self._owned_lock:
            self._owned.pop(name, None)

    def _container(self, name: str) -> ContainerClient:
        """The client of our container ``name``: NotFound if absent, NotManaged if not
        ours. A yes is trusted for OWNER_TTL seconds."""
        now = time.monotonic()
        with self._owned_lock:
            known = self._owned.get(name, 0.0) > now
        if not known:
            meta = self.metadata(name) if container_name(name) == name else None
            if meta is None:
                raise PermanentError(f"bucket {name} not found", self.cloud, "NotFound")
            if not self.arm.owns(meta):
                raise PermanentError(
                    f"bucket {name} is not managed by '{self.arm.owner}' (no matching "
                    "reconciler.dev/owner metadata); refusing to touch it",
                    self.cloud,
                    "NotManaged",
                )
            with self._owned_lock:
                self._owned[name] = now + OWNER_TTL
        return self.service.get_container_client(name)

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """One Put Blob up to BLOCK_SIZE, else staged blocks and one commit."""
        blob = self._container(bucket).get_blob_client(key)
        size = 0
        parts = HashedParts(chunks, block_size)
        blocks = iter(parts)
        first = next(blocks)
        second = next(blocks, None)
        doing = f"writing blob {key} to container {bucket}"
        with azure_errors(self.cloud, doing):
            if second is None:
                meta = _user_metadata(metadata, parts.sha256)
                made = blob.upload_blob(
                    first,
                    blob_type="BlockBlob",
                    overwrite=True,
                    metadata=encode_map(meta, encode_meta_key),
                    validate_content=True,
                )
                size = len(first)
            else:
                upload, ids = uuid.uuid4().hex, []
                for index, block in enumerate(rejoin(first, second, blocks)):
                    if index >= MAX_BLOCKS:
                        raise PermanentError(
                            f"blob {key} needs more than {MAX_BLOCKS} blocks",
                            self.cloud,
                            "ObjectTooLarge",
                        )
                    ids.append(f"{upload}-{index:06d}")
                    blob.stage_block(ids[-1], block, validate_content=True)
                    size += len(block)
                meta = _user_metadata(metadata, parts.sha256)
                made = blob.commit_block_list(
                    [BlobBlock(block_id=i) for i in ids], metadata=encode_map(meta, encode_meta_key)
                )
        return ObjectInfo(key, size, _unquote(made.get("etag")), meta)

    def get_object(self, bucket: str, key: str) -> Chunks:
        """The blob's bytes, streamed (NotFound now, not at the first read, if absent)."""
        container = self._container(bucket)
        doing = f"reading blob {key} from container {bucket}"
        download = or_none(self.cloud, doing, lambda: container.download_blob(key))
        if download is None:
            raise PermanentError(
                f"object {key} not found in bucket {bucket}", self.cloud, "NotFound"
            )
        return self._stream(download.chunks(), doing)

    def _stream(self, chunks: Iterator[bytes], doing: str) -> Iterator[bytes]:
        with azure_errors(self.cloud, doing):
            yield from chunks

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        blob = self._container(bucket).get_blob_client(key)
        props = or_none(self.cloud, f"reading blob {key} in {bucket}", blob.get_blob_properties)
        return None if props is None else _info(props)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every blob under ``prefix``, sorted by name, with its metadata."""
        container = self._container(bucket)
        with azure_errors(self.cloud, f"listing blobs in container {bucket}"):
            listed = container.list_blobs(name_starts_with=prefix or None, include=["metadata"])
            found = [_info(props) for props in listed]
        return sorted(found, key=lambda info: info.key)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete the blob (its current version); absent is success."""
        container = self._container(bucket)
        or_none(
            self.cloud, f"deleting blob {key} from {bucket}", lambda: container.delete_blob(key)
        )


def _unquote(etag: object) -> str:
    return str(etag or "").strip('"')


def _user_metadata(metadata: Mapping[str, str], sha256: str) -> dict[str, str]:
    result = {k.lower(): v for k, v in metadata.items()}
    result[META_SHA256] = sha256
    return result


def _info(props: Any) -> ObjectInfo:
    """An ObjectInfo from BlobProperties (metadata keys decoded, lower-case)."""
    meta = {decode_key(k).lower(): str(v) for k, v in (props.metadata or {}).items()}
    return ObjectInfo(str(props.name), int(props.size or 0), _unquote(props.etag), meta)


def block_size(index: int) -> int:
    """Size of block ``index`` (0-based): BLOCK_SIZE, growing every BLOCK_GROWTH."""
    return BLOCK_SIZE * (1 + index // BLOCK_GROWTH)
