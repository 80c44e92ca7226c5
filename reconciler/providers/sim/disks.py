"""Simulated disks, images and volume snapshots, with real (scaled-down) bytes.

A VM's boot disk starts as its image's bytes (an imported image's, or generated content
for a catalog image name) and can be read while the VM is stopped; ``import_image``
stores streamed bytes after checking them against the request. This is what a
simulated migration moves, so its data can be verified end to end.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.artifacts import Chunks, DiskRef, ObservedImage
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.specs import PowerState
from reconciler.providers.base import ImageRequest
from reconciler.providers.sim.records import IMAGE, SNAPSHOT, VM, VOLUME, SimResource
from reconciler.providers.sim.storage import SimStorage


class SimDisks(SimStorage):
    """Disk export, image import and volume snapshots of the simulator."""

    # -- disk content ------------------------------------------------------------------
    def content(self, rec: SimResource) -> tuple[str, int]:
        """(sha256, size) of a record's bytes; records made before disks had content
        get their image's (VMs) or zeros (volumes)."""
        if rec.disk:
            return rec.disk, rec.size_bytes
        if rec.kind == VM:
            return self.world.blobs.base_image(rec.image or "blank")
        return self.world.blobs.zeros(rec.size_gib)

    def initial_disk(self, image: str) -> tuple[str, int]:
        """Content of a new VM's boot disk: an imported image of ours, else the
        generated content of a catalog image name."""
        rec = self.world.get(image)
        if rec is not None and rec.kind == IMAGE and rec.cloud == self.cloud.name:
            return rec.disk, rec.size_bytes
        return self.world.blobs.base_image(image or "blank")

    def _disk_record(self, ref: DiskRef) -> SimResource:
        if ref.kind not in (VM, VOLUME):
            raise PermanentError(
                f"unknown disk kind {ref.kind!r}", cloud=self.cloud.name, reason="BadRequest"
            )
        rec = self._existing(ref.external_id, ref.kind)
        vm = rec if rec.kind == VM else self._ours(rec.attached_to or "", VM)
        if vm is not None and vm.power_state == PowerState.RUNNING.value:
            raise PermanentError(
                f"{ref} is in use by running VM {vm.id}; stop it first",
                cloud=self.cloud.name,
                reason="DiskInUse",
            )
        return rec

    def disk_size(self, ref: DiskRef) -> int:
        self._need(Capability.IMAGE_EXPORT, "reading disks")
        with self.world.reading():
            return self.content(self._existing(ref.external_id, ref.kind))[1]

    def disk_sha256(self, ref: DiskRef) -> str | None:
        with self.world.reading():
            rec = self._ours(ref.external_id, ref.kind)
            return self.content(rec)[0] if rec is not None else None

    def read_disk(self, ref: DiskRef) -> Chunks:
        fault = self.chaos.enter("list")
        self._need(Capability.IMAGE_EXPORT, "reading disks")
        with self.world.reading():
            sha, _ = self.content(self._disk_record(ref))
        self.chaos.leave("list", fault)
        return self.world.blobs.read(sha)

    # -- images --------------------------------------------------------------------------
    def _image(self, rec: SimResource) -> ObservedImage:
        return ObservedImage(rec.cloud, rec.id, rec.name, rec.size_bytes, rec.disk, dict(rec.tags))

    def import_image(self, request: ImageRequest, chunks: Chunks) -> ObservedImage:
        fault = self.chaos.enter("create")
        self._need(Capability.IMAGE_IMPORT, "importing images")
        tags = self.owned_tags(request.tags)
        with self.world.reading():
            done = self._by_uid(tags, IMAGE)
        if done is None:
            sha, size = self.world.blobs.put(chunks)  # outside the lock: bytes take time
            if (sha, size) != (request.sha256, request.size_bytes):
                raise PermanentError(
                    f"image {request.name}: received {size} bytes with sha256 {sha[:12]}..., "
                    f"expected {request.size_bytes} bytes with {request.sha256[:12]}...",
                    cloud=self.cloud.name,
                    reason="ChecksumMismatch",
                )
            with self.world.transaction():
                done = self._by_uid(tags, IMAGE)
                if done is None:
                    done = SimResource(
                        self.world.fresh_id(IMAGE),
                        IMAGE,
                        self.cloud.name,
                        name=request.name,
                        tags=tags,
                        disk=sha,
                        size_bytes=size,
                    )
                    self.world.put(done)
        self.chaos.leave("create", fault)
        return self._image(done)

    def find_image(self, uid: str) -> ObservedImage | None:
        self._need(Capability.IMAGE_IMPORT, "importing images")
        with self.world.reading():
            rec = self.world.by_uid(self.cloud.name, uid)
            if rec is None or rec.kind != IMAGE or rec.owner != self.context.owner:
                return None
            return self._image(rec)

    def list_images(self) -> list[ObservedImage]:
        fault = self.chaos.enter("list")
        self._need(Capability.IMAGE_IMPORT, "importing images")
        with self.world.reading():
            owned = self.world.owned(self.cloud.name, self.context.owner)
            found = [self._image(rec) for rec in owned if rec.kind == IMAGE]
        self.chaos.leave("list", fault)
        return found

    def delete_image(self, external_id: str) -> None:
        fault = self.chaos.enter("delete")
        self._need(Capability.IMAGE_IMPORT, "importing images")
        with self.world.transaction():
            if self._ours(external_id, IMAGE) is not None:
                self.world.remove(external_id)
        self.chaos.leave("delete", fault)

    # -- snapshots -----------------------------------------------------------------------
    def snapshot_volume(self, external_id: str, tags: Mapping[str, str]) -> str:
        fault = self.chaos.enter("create")
        self._need(Capability.VOLUME_SNAPSHOTS, "volume snapshots")
        owned = self.owned_tags(tags)
        with self.world.transaction():
            snap = self._by_uid(owned, SNAPSHOT)
            if snap is None:
                volume = self._existing(external_id, VOLUME)
                sha, size = self.content(volume)
                snap = SimResource(
                    self.world.fresh_id(SNAPSHOT),
                    SNAPSHOT,
                    self.cloud.name,
                    name=f"snapshot of {volume.id}",
                    tags=owned,
                    parent=volume.id,
                    size_gib=volume.size_gib,
                    disk=sha,
                    size_bytes=size,
                )
                self.world.put(snap)
        self.chaos.leave("create", fault)
        return snap.id

    def list_snapshots(self, volume_id: str) -> list[str]:
        self._need(Capability.VOLUME_SNAPSHOTS, "volume snapshots")
        with self.world.reading():
            found = [
                r
                for r in self.world.owned(self.cloud.name, self.context.owner)
                if r.kind == SNAPSHOT and r.parent == volume_id
            ]
        return [r.id for r in found]

    def delete_snapshot(self, snapshot_id: str) -> None:
        fault = self.chaos.enter("delete")
        self._need(Capability.VOLUME_SNAPSHOTS, "volume snapshots")
        with self.world.transaction():
            if self._ours(snapshot_id, SNAPSHOT) is not None:
                self.world.remove(snapshot_id)
        self.chaos.leave("delete", fault)
