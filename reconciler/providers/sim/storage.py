"""Simulated block volumes and object-storage buckets."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.observed import ObservedBucket, ObservedVolume
from reconciler.providers.base import BucketRequest, VolumeRequest
from reconciler.providers.sim.core import SimBase
from reconciler.providers.sim.records import BUCKET, IMAGE, VM, VOLUME, SimResource, bucket_key


class SimStorage(SimBase):
    """Volume and bucket operations (priced: volumes per GiB-month, buckets by usage)."""

    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        fault = self.chaos.enter("create")
        self._need(Capability.VOLUMES, "a volume")
        if request.size_gib < 1:
            raise PermanentError(
                f"volume size must be >= 1 GiB, got {request.size_gib}",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        tags = self.owned_tags(request.tags)
        with self.world.transaction():
            rec = self._by_uid(tags, VOLUME)
            if rec is None:
                disk, size = self._volume_content(request)
                rec = SimResource(
                    self.world.fresh_id(VOLUME),
                    VOLUME,
                    self.cloud.name,
                    name=request.name,
                    tags=tags,
                    size_gib=request.size_gib,
                    volume_class=request.volume_class,
                    disk=disk,
                    size_bytes=size,
                )
                self.world.put(rec)
            result = self._volume(rec)
        self.chaos.leave("create", fault)
        return result

    def _volume_content(self, request: VolumeRequest) -> tuple[str, int]:
        """A new volume's bytes: zeros, or a copy of one of our imported images."""
        if request.source_image is None:
            return self.world.blobs.zeros(request.size_gib)
        self._need(Capability.IMAGE_IMPORT, "volumes from images")
        image = self._existing(request.source_image, IMAGE)
        return image.disk, image.size_bytes

    def _attach(self, rec: SimResource, attach_to: str) -> SimResource:
        if rec.attached_to == attach_to:
            return rec
        if rec.attached_to is not None:
            raise PermanentError(
                f"volume {rec.id} is attached to {rec.attached_to}; detach it first",
                cloud=self.cloud.name,
                reason="VolumeInUse",
            )
        if self._ours(attach_to, VM) is None:
            raise PermanentError(
                f"cannot attach volume {rec.id}: VM {attach_to} not found",
                cloud=self.cloud.name,
                reason="NotFound",
            )
        return replace(rec, attached_to=attach_to)

    def update_volume(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        fault = self.chaos.enter("update")
        self._need(Capability.VOLUMES, "a volume")
        with self.world.transaction():
            rec = self._existing(external_id, VOLUME)
            new = rec
            if size_gib is not None and size_gib != rec.size_gib:
                if size_gib < rec.size_gib:
                    raise PermanentError(
                        f"volume {rec.id} cannot shrink from {rec.size_gib} to {size_gib} GiB",
                        cloud=self.cloud.name,
                        reason="VolumeShrink",
                    )
                new = replace(new, size_gib=size_gib)
            if detach:
                new = replace(new, attached_to=None)
            if attach_to is not None:
                new = self._attach(new, attach_to)
            if new != rec:
                self.world.put(new)
            result = self._volume(new)
        self.chaos.leave("update", fault)
        return result

    def delete_volume(self, external_id: str) -> None:
        fault = self.chaos.enter("delete")
        with self.world.transaction():
            rec = self._ours(external_id, VOLUME)
            if rec is not None:
                if rec.attached_to is not None:
                    raise PermanentError(
                        f"volume {rec.id} is attached to {rec.attached_to}; detach it first",
                        cloud=self.cloud.name,
                        reason="VolumeInUse",
                    )
                self.world.remove(rec.id)
        self.chaos.leave("delete", fault)

    def create_bucket(self, request: BucketRequest) -> ObservedBucket:
        fault = self.chaos.enter("create")
        self._need(Capability.BUCKETS, "a bucket")
        if request.versioning:
            self._need(Capability.BUCKET_VERSIONING, "bucket versioning")
        if not request.name:
            raise PermanentError("bucket name is empty", cloud=self.cloud.name, reason="BadRequest")
        tags = self.owned_tags(request.tags)
        with self.world.transaction():
            rec = self._by_uid(tags, BUCKET)
            if rec is None:
                key = bucket_key(self.cloud.name, request.name)
                if self.world.get(key) is not None:
                    raise PermanentError(
                        f"bucket name '{request.name}' is already taken",
                        cloud=self.cloud.name,
                        reason="BucketAlreadyExists",
                    )
                rec = SimResource(
                    key,
                    BUCKET,
                    self.cloud.name,
                    name=request.name,
                    tags=tags,
                    versioning=request.versioning,
                )
                self.world.put(rec)
            result = self._bucket(rec)
        self.chaos.leave("create", fault)
        return result

    def update_bucket(self, external_id: str, versioning: bool) -> ObservedBucket:
        fault = self.chaos.enter("update")
        self._need(Capability.BUCKETS, "a bucket")
        if versioning:
            self._need(Capability.BUCKET_VERSIONING, "bucket versioning")
        with self.world.transaction():
            rec = self._existing(external_id, BUCKET)
            if rec.versioning != versioning:
                rec = replace(rec, versioning=versioning)
                self.world.put(rec)
            result = self._bucket(rec)
        self.chaos.leave("update", fault)
        return result

    def delete_bucket(self, external_id: str) -> None:
        fault = self.chaos.enter("delete")
        with self.world.transaction():
            rec = self._ours(external_id, BUCKET)
            if rec is not None:
                if self.world.objects(rec.id):
                    raise PermanentError(
                        f"bucket {external_id} is not empty",
                        cloud=self.cloud.name,
                        reason="BucketNotEmpty",
                    )
                self.world.remove(rec.id)
        self.chaos.leave("delete", fault)
