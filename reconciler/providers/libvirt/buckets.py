"""Buckets of a libvirt cloud: served by its S3-compatible ``spec.objectStorage``
(SeaweedFS, MinIO, Ceph RGW) through the shared S3BucketStore. Without object storage
the cloud declares no BUCKETS capability: bucket calls are refused as Unsupported, object
calls as NotSupported (the Provider contract's word for a missing capability).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.model.artifacts import Chunks, ObjectInfo
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.observed import ObservedBucket
from reconciler.providers.base import BucketRequest
from reconciler.providers.libvirt.volumes import LibvirtVolumes

if TYPE_CHECKING:
    from reconciler.providers.s3store import S3BucketStore


class LibvirtBuckets(LibvirtVolumes):
    """Bucket operations, delegated to S3BucketStore. It is imported only when a bucket
    call needs it: boto3 is the optional ``aws`` extra, so a libvirt Cloud without
    ``spec.objectStorage`` runs without boto3 installed."""

    _store: S3BucketStore | None = None
    _store_lock = threading.Lock()

    def _buckets(self) -> S3BucketStore:
        storage = self.cloud.object_storage
        if storage is None:
            raise PermanentError(
                f"Cloud {self.cloud.name} has no spec.objectStorage, so it has no buckets",
                cloud=self.cloud.name,
                reason="Unsupported",
            )
        with self._store_lock:
            if self._store is None:
                from reconciler.providers.s3store import S3BucketStore

                self._store = S3BucketStore.connect(
                    self.cloud,
                    self.context.owner,
                    storage.endpoint,
                    storage.region,
                    self.context.credentials,
                    self.prices.object_per_gib_month,
                )
            return self._store

    def _list_buckets(self) -> tuple[ObservedBucket, ...]:
        if self.cloud.object_storage is None:
            return ()
        return tuple(self._buckets().list_managed())

    def _find_bucket(self, uid: str) -> ObservedBucket | None:
        if self.cloud.object_storage is None:
            return None
        return self._buckets().find_by_uid(uid)

    def _forget_bucket(self, external_id: str) -> None:
        if self.cloud.object_storage is not None:
            self._buckets().forget(external_id)

    def create_bucket(self, request: BucketRequest) -> ObservedBucket:
        return self._buckets().create(request)

    def update_bucket(self, external_id: str, versioning: bool) -> ObservedBucket:
        return self._buckets().update(external_id, versioning)

    def delete_bucket(self, external_id: str) -> None:
        self._buckets().delete(external_id)

    # -- objects -----------------------------------------------------------------------
    def _objects(self) -> S3BucketStore:
        if self.cloud.object_storage is None:
            raise self.unsupported("objects", Capability.BUCKETS)
        return self._buckets()

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        return self._objects().objects.put_object(bucket, key, chunks, metadata)

    def get_object(self, bucket: str, key: str) -> Chunks:
        return self._objects().objects.get_object(bucket, key)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._objects().objects.head_object(bucket, key)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        return self._objects().objects.list_objects(bucket, prefix)

    def delete_object(self, bucket: str, key: str) -> None:
        self._objects().objects.delete_object(bucket, key)
