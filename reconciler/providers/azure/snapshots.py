"""Volume snapshots = Azure managed-disk snapshots (``Microsoft.Compute/snapshots``).

A snapshot is a full copy (``creationData.createOption: Copy`` from the disk's id, not
incremental) in the Cloud's resource group, tagged like every resource we make. Its
name is deterministic (a slug of the disk's name plus a digest of the uid), so a PUT
retried after a lost response is the same snapshot; the uid tag is looked up first.
Azure copies an attached disk too (crash-consistent), so no detach is needed.
"""

from __future__ import annotations

from collections.abc import Mapping

from azure.mgmt.compute.models import Snapshot

from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.providers.azure.arm import Arm
from reconciler.providers.azure.disks import Disks
from reconciler.providers.azure.errors import azure_errors, or_none
from reconciler.providers.azure.names import decode_map, encode_map, encode_tag_key, resource_name

#: Full (not incremental) snapshots on standard HDD storage: the cheapest kind.
SNAPSHOT_SKU = "Standard_LRS"


class Snapshots:
    """Managed-disk snapshots of one Cloud's resource group."""

    def __init__(self, arm: Arm, disks: Disks) -> None:
        self.arm = arm
        self.disks = disks

    def list_owned(self) -> list[Snapshot]:
        with azure_errors(self.arm.cloud, "listing snapshots"):
            listed = list(self.arm.compute.snapshots.list_by_resource_group(self.arm.group))
        return [s for s in listed if self.arm.owns(s.tags)]

    def get(self, name: str) -> Snapshot | None:
        return or_none(
            self.arm.cloud,
            f"reading snapshot {name}",
            lambda: self.arm.compute.snapshots.get(self.arm.group, name),
        )

    def create(self, volume_id: str, tags: Mapping[str, str]) -> str:
        """Snapshot our disk ``volume_id``; idempotent by the uid in ``tags`` (which
        already carry our owner). Returns the snapshot's ARM id."""
        disk = self.disks.ours(volume_id)
        if disk is None:
            raise self.arm.not_found("volume", volume_id)
        uid = tags[TAG_UID]
        found = next((s for s in self.list_owned() if decode_map(s.tags).get(TAG_UID) == uid), None)
        if found is not None:
            return str(found.id)
        name = resource_name(f"{disk.name}-snap", uid, limit=80)
        if self.get(name) is not None:
            raise PermanentError(
                f"a snapshot named {name} exists and is not ours", self.arm.cloud, "AlreadyExists"
            )
        body = {
            "location": self.arm.settings.location,
            "tags": encode_map(tags, encode_tag_key),
            "sku": {"name": SNAPSHOT_SKU},
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": str(disk.id)},
                "incremental": False,
            },
        }
        with azure_errors(self.arm.cloud, f"creating snapshot {name} of disk {disk.name}"):
            made = self.arm.compute.snapshots.begin_create_or_update(
                self.arm.group, name, Snapshot(body)
            ).result()
        return str(made.id)

    def of_volume(self, volume_id: str) -> list[str]:
        """Ids of our snapshots copied from the disk ``volume_id``."""
        wanted = volume_id.lower()
        return [
            str(s.id)
            for s in self.list_owned()
            if s.creation_data is not None
            and str(s.creation_data.source_resource_id or "").lower() == wanted
        ]

    def delete(self, snapshot_id: str) -> None:
        """Delete our snapshot; absent (or not ours, hence absent to us) is success."""
        name = self.arm.name_of(snapshot_id, "snapshots")
        snap = self.get(name) if name else None
        if snap is None or not self.arm.owns(snap.tags):
            return
        with azure_errors(self.arm.cloud, f"deleting snapshot {name}"):
            self.arm.compute.snapshots.begin_delete(self.arm.group, str(snap.name)).result()
