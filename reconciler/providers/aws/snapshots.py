"""EBS snapshots of our volumes, and disk reads through snapshots (EBS direct API).

``snapshot_volume`` is CreateSnapshot with the caller's tags (our owner added), found
again by its uid tag, so a retry returns the snapshot already made. Snapshots made for
images (tagged ``reconciler.dev/sha256``, see images.py) and for disk reads (tagged
``reconciler.dev/system``) are not volume snapshots and are never listed as such.

``read_disk`` (IMAGE_EXPORT, only with ``settings.imageExport: "true"``): the disk's EBS
volume is snapshotted, the snapshot's blocks are read with ListSnapshotBlocks and
GetSnapshotBlock (blocks.py), and the snapshot is deleted when the stream ends or is
abandoned. The disk must not be in use: a VM's root volume only while the VM is
stopped, a volume only while detached or its VM stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reconciler.model.artifacts import Chunks, DiskRef
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError, ProviderError
from reconciler.model.keys import GROUP, TAG_OWNER, TAG_SYSTEM, TAG_UID
from reconciler.providers.aws import blocks
from reconciler.providers.aws.core import tag_dict, tag_list
from reconciler.providers.aws.ebs import AwsVolumes, attached_to
from reconciler.providers.aws.ec2 import state_of
from reconciler.providers.botoerrors import error_code, mapped

GIB = 2**30
#: On an image's snapshot and AMI: the SHA-256 and size of the bytes imported.
TAG_SHA256 = f"{GROUP}/sha256"
TAG_SIZE = f"{GROUP}/size-bytes"
#: ``reconciler.dev/system`` value of the temporary snapshot a disk read makes.
EXPORT = "disk-export"
_SNAP_GONE = frozenset({"InvalidSnapshot.NotFound", "InvalidSnapshot.Malformed"})


def is_volume_snapshot(tags: Mapping[str, str]) -> bool:
    return TAG_SHA256 not in tags and TAG_SYSTEM not in tags


class AwsSnapshots(AwsVolumes):
    """Volume snapshots and disk export on EBS."""

    def snapshots(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Our snapshots (owner tag) in this account matching ``filters``."""
        owner = {"Name": f"tag:{TAG_OWNER}", "Values": [self.context.owner]}
        paginator = self.ec2.get_paginator("describe_snapshots")
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(OwnerIds=["self"], Filters=[owner, *filters]):
            found.extend(s for s in page["Snapshots"] if self.owns(tag_dict(s.get("Tags"))))
        return found

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        """A snapshot by id (ours or not); None if absent."""
        if not snapshot_id.startswith("snap-"):
            return None
        try:
            found = self.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        except ClientError as exc:
            if error_code(exc) in _SNAP_GONE:
                return None
            raise
        return dict(found[0]) if found else None

    def discard_snapshot(self, snapshot_id: str, blocks_written: int = 0) -> None:
        """Delete a snapshot, best effort (cleanup after another failure). One still
        pending (an EBS direct upload cut short) that AWS refuses to delete is completed
        first, with the blocks written to it. If even that fails, it stays (tagged with
        its uid: the next import of that uid deletes it) and errors out after
        StartSnapshot's timeout."""
        with contextlib.suppress(ClientError, BotoCoreError, ProviderError):
            try:
                self.ec2.delete_snapshot(SnapshotId=snapshot_id)
            except ClientError as exc:
                if error_code(exc) in _SNAP_GONE:
                    return
                self.ebs.complete_snapshot(
                    SnapshotId=snapshot_id, ChangedBlocksCount=blocks_written
                )
                self.wait("snapshot_completed", snapshot_id, SnapshotIds=[snapshot_id])
                self.ec2.delete_snapshot(SnapshotId=snapshot_id)

    # -- volume snapshots ------------------------------------------------------------
    def snapshot_volume(self, external_id: str, tags: Mapping[str, str]) -> str:
        """Snapshot our volume (or a VM's root volume, by the VM's id); a retry with the
        same uid returns the snapshot already made."""
        owned = self.owned_tags(tags)
        with mapped(self.cloud.name, f"snapshot {external_id}"):
            uid = [{"Name": f"tag:{TAG_UID}", "Values": [owned[TAG_UID]]}]
            for snap in self.snapshots(uid):
                if is_volume_snapshot(tag_dict(snap.get("Tags"))):
                    return str(snap["SnapshotId"])
            made = self.ec2.create_snapshot(
                VolumeId=self._snapshot_source(external_id),
                Description=f"reconciler snapshot of {external_id}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(owned)}],
            )
            return str(made["SnapshotId"])

    def _snapshot_source(self, external_id: str) -> str:
        if external_id.startswith("i-"):
            inst = self.owned_instance(external_id)
            root = self.root_volume_id(inst) if inst is not None else None
            if root is None:
                raise self.not_found("VM boot disk of", external_id)
            return root
        vol = self.volume(external_id)
        if vol is None:
            raise self.not_found("volume", external_id)
        if not self.owns(tag_dict(vol.get("Tags"))):
            raise self.not_managed("volume", external_id)
        return external_id

    def list_snapshots(self, volume_id: str) -> list[str]:
        with mapped(self.cloud.name, f"list snapshots of {volume_id}"):
            found = self.snapshots([{"Name": "volume-id", "Values": [volume_id]}])
        return sorted(
            str(s["SnapshotId"])
            for s in found
            if s.get("VolumeId") == volume_id and is_volume_snapshot(tag_dict(s.get("Tags")))
        )

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete our snapshot; absent is success, another owner's is NotManaged."""
        with mapped(self.cloud.name, f"delete snapshot {snapshot_id}"):
            snap = self.snapshot(snapshot_id)
            if snap is None:
                return
            if not self.owns(tag_dict(snap.get("Tags"))):
                raise self.not_managed("snapshot", snapshot_id)
            try:
                self.ec2.delete_snapshot(SnapshotId=snapshot_id)
            except ClientError as exc:
                if error_code(exc) not in _SNAP_GONE:
                    raise

    # -- disk export -----------------------------------------------------------------
    def _need_export(self) -> None:
        if Capability.IMAGE_EXPORT not in self.capabilities():
            raise self.unsupported("reading disks", Capability.IMAGE_EXPORT)

    def _in_use(self, ref: DiskRef, instance_id: str) -> PermanentError:
        return PermanentError(
            f"{ref} is in use by VM {instance_id}, which is not stopped; stop it first",
            cloud=self.cloud.name,
            reason="DiskInUse",
        )

    def _readable(self, ref: DiskRef) -> tuple[str, int]:
        """(volume id, size in bytes) of a disk that may be read now."""
        if ref.kind == "vm":
            inst = self.owned_instance(ref.external_id)
            if inst is None:
                raise self.not_found("VM", ref.external_id)
            if state_of(inst) != "stopped":
                raise self._in_use(ref, ref.external_id)
            root = self.root_volume_id(inst)
            vol = self.volume(root) if root is not None else None
            if vol is None:
                raise PermanentError(
                    f"VM {ref.external_id} has no EBS root volume",
                    cloud=self.cloud.name,
                    reason="NoDisk",
                )
        elif ref.kind == "volume":
            vol = self.owned_volume(ref.external_id)
            if vol is None:
                raise self.not_found("volume", ref.external_id)
            user = attached_to(vol)
            inst = self.instance(user) if user is not None else None
            if user is not None and inst is not None and state_of(inst) != "stopped":
                raise self._in_use(ref, user)
        else:
            raise PermanentError(
                f"unknown disk kind {ref.kind!r} (vm or volume)",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        return str(vol["VolumeId"]), int(vol["Size"]) * GIB

    def disk_size(self, ref: DiskRef) -> int:
        """The EBS volume's size (whole GiB), in bytes."""
        self._need_export()
        with mapped(self.cloud.name, f"read the size of {ref}"):
            return self._readable(ref)[1]

    def read_disk(self, ref: DiskRef) -> Chunks:
        """The disk's bytes through a temporary snapshot (see the module docstring);
        checked now, the snapshot is made when the stream is first read."""
        self._need_export()
        with mapped(self.cloud.name, f"read {ref}"):
            volume_id, size = self._readable(ref)
        return self._export(ref, volume_id, size)

    def _export(self, ref: DiskRef, volume_id: str, size: int) -> Iterator[bytes]:
        action = f"read {ref}"
        tags = {TAG_OWNER: self.context.owner, TAG_SYSTEM: EXPORT}
        with mapped(self.cloud.name, action):
            snap = self.ec2.create_snapshot(
                VolumeId=volume_id,
                Description=f"reconciler: reading {ref}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
            )
        snapshot_id = str(snap["SnapshotId"])
        try:
            with mapped(self.cloud.name, action):
                self.wait("snapshot_completed", snapshot_id, SnapshotIds=[snapshot_id])
                yield from blocks.read_blocks(self.ebs, snapshot_id, size, self.cloud.name)
        finally:
            self.discard_snapshot(snapshot_id)
