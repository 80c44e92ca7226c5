"""Simulated objects in our buckets: real bytes in the blob store, one record each."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.artifacts import META_SHA256, Chunks, ObjectInfo
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.providers.sim.disks import SimDisks
from reconciler.providers.sim.records import BUCKET, OBJECT, SimResource, object_key


class SimObjects(SimDisks):
    """put/get/head/list/delete of objects; only in buckets we own."""

    def _bucket_rec(self, bucket: str) -> SimResource:
        self._need(Capability.BUCKETS, "objects")
        return self._existing(bucket, BUCKET)

    @staticmethod
    def _info(rec: SimResource) -> ObjectInfo:
        return ObjectInfo(rec.name, rec.size_bytes, rec.disk[:32], dict(rec.meta))

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        fault = self.chaos.enter("create")
        with self.world.reading():
            self._bucket_rec(bucket)
        sha, size = self.world.blobs.put(chunks)
        meta = {k.lower(): v for k, v in metadata.items()}
        meta[META_SHA256] = sha
        with self.world.transaction():
            owner = self._bucket_rec(bucket)  # still ours, still there
            rec = SimResource(
                object_key(owner.id, key),
                OBJECT,
                self.cloud.name,
                name=key,
                parent=owner.id,
                disk=sha,
                size_bytes=size,
                meta=meta,
            )
            self.world.put(rec)
        self.chaos.leave("create", fault)
        return self._info(rec)

    def _object(self, bucket: str, key: str) -> SimResource | None:
        owner = self._bucket_rec(bucket)
        return self.world.get(object_key(owner.id, key))

    def get_object(self, bucket: str, key: str) -> Chunks:
        fault = self.chaos.enter("list")
        with self.world.reading():
            rec = self._object(bucket, key)
        if rec is None:
            raise PermanentError(
                f"object {key} not found in bucket {bucket}",
                cloud=self.cloud.name,
                reason="NotFound",
            )
        self.chaos.leave("list", fault)
        return self.world.blobs.read(rec.disk)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        with self.world.reading():
            rec = self._object(bucket, key)
            return self._info(rec) if rec is not None else None

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        fault = self.chaos.enter("list")
        with self.world.reading():
            owner = self._bucket_rec(bucket)
            found = [self._info(r) for r in self.world.objects(owner.id)]
        self.chaos.leave("list", fault)
        return [o for o in found if o.key.startswith(prefix)]

    def delete_object(self, bucket: str, key: str) -> None:
        fault = self.chaos.enter("delete")
        with self.world.transaction():
            rec = self._object(bucket, key)
            if rec is not None:
                self.world.remove(rec.id)
        self.chaos.leave("delete", fault)
