"""Volumes = Azure managed disks; attach/detach edit the VM's ``storageProfile.dataDisks``.

Volume classes are disk SKUs (Standard_LRS, StandardSSD_LRS, Premium_LRS) or the aliases
standard/premium/hdd. A disk attached to a VM reports ``managedBy`` = the VM's id. Azure
grows an attached disk only while its VM is deallocated (or with live resize on some
SKUs); the driver sends the PATCH and maps Azure's refusal like any other error.
"""

from __future__ import annotations

from azure.mgmt.compute.models import Disk, DiskUpdate, VirtualMachineUpdate

from reconciler.model.errors import PermanentError
from reconciler.model.keys import HOURS_PER_MONTH, TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.providers.azure.arm import Arm, text, without_ours
from reconciler.providers.azure.compute import VMs
from reconciler.providers.azure.errors import azure_errors, or_none
from reconciler.providers.azure.names import decode_map, encode_map, encode_tag_key, resource_name
from reconciler.providers.base import VolumeRequest

SKUS = {"Standard_LRS", "StandardSSD_LRS", "Premium_LRS"}
ALIASES = {"standard": "StandardSSD_LRS", "premium": "Premium_LRS", "hdd": "Standard_LRS"}


class Disks:
    """Managed-disk operations of one Cloud; ``per_gib_month`` prices block storage."""

    def __init__(self, arm: Arm, vms: VMs, per_gib_month: float) -> None:
        self.arm = arm
        self.vms = vms
        self.per_gib_month = per_gib_month

    def observed(self, disk: Disk) -> ObservedVolume:
        size = int(disk.disk_size_gb or 0)
        return ObservedVolume(
            cloud=self.arm.cloud,
            external_id=str(disk.id),
            size_gib=size,
            volume_class=text(disk.sku.name) if disk.sku else "",
            attached_to=disk.managed_by or None,
            price_per_hour=round(size * self.per_gib_month / HOURS_PER_MONTH, 6),
            tags=decode_map(disk.tags),
        )

    def list_owned(self) -> list[Disk]:
        with azure_errors(self.arm.cloud, "listing managed disks"):
            listed = list(self.arm.compute.disks.list_by_resource_group(self.arm.group))
        return [d for d in listed if self.arm.owns(d.tags)]

    def get(self, name: str) -> Disk | None:
        return or_none(
            self.arm.cloud,
            f"reading disk {name}",
            lambda: self.arm.compute.disks.get(self.arm.group, name),
        )

    def ours(self, external_id: str) -> Disk | None:
        name = self.arm.name_of(external_id, "disks")
        disk = self.get(name) if name else None
        return disk if disk is not None and self.arm.owns(disk.tags) else None

    def by_uid(self, uid: str) -> Disk | None:
        return next((d for d in self.list_owned() if decode_map(d.tags).get(TAG_UID) == uid), None)

    def create(self, request: VolumeRequest) -> ObservedVolume:
        uid = request.tags.get(TAG_UID, "")
        found = self.by_uid(uid) if uid else None
        if found is not None:
            return self.observed(found)
        sku = ALIASES.get(request.volume_class, request.volume_class)
        if sku not in SKUS:
            raise PermanentError(
                f"volume class {request.volume_class!r} is not a disk SKU "
                f"({', '.join(sorted(SKUS))}) or alias ({', '.join(ALIASES)})",
                self.arm.cloud,
                "InvalidVolumeClass",
            )
        name = resource_name(request.name, uid or request.name, limit=80)
        if self.get(name) is not None:
            raise PermanentError(
                f"a disk named {name} exists and is not ours", self.arm.cloud, "AlreadyExists"
            )
        body = {
            "location": self.arm.settings.location,
            "tags": encode_map(request.tags, encode_tag_key),
            "sku": {"name": sku},
            "properties": {
                "creationData": {"createOption": "Empty"},
                "diskSizeGB": request.size_gib,
            },
        }
        with azure_errors(self.arm.cloud, f"creating disk {name}"):
            disk = self.arm.compute.disks.begin_create_or_update(
                self.arm.group, name, Disk(body)
            ).result()
        return self.observed(disk)

    def update(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        disk = self.ours(external_id)
        if disk is None:
            raise self.arm.not_found("volume", external_id)
        name = str(disk.name)
        current = int(disk.disk_size_gb or 0)
        if size_gib is not None and size_gib < current:
            raise PermanentError(
                f"disk {name} cannot shrink from {current} to {size_gib} GiB",
                self.arm.cloud,
                "BadRequest",
            )
        if size_gib is not None and size_gib > current:
            with azure_errors(self.arm.cloud, f"growing disk {name}"):
                self.arm.compute.disks.begin_update(
                    self.arm.group, name, DiskUpdate({"properties": {"diskSizeGB": size_gib}})
                ).result()
        holder = disk.managed_by or ""
        if detach and holder:
            self._set_attached(holder, str(disk.id), attach=False)
            holder = ""
        if attach_to and holder.lower() != attach_to.lower():
            if holder:
                raise PermanentError(
                    f"disk {name} is attached to {holder}; detach it first",
                    self.arm.cloud,
                    "VolumeInUse",
                )
            self._set_attached(attach_to, str(disk.id), attach=True)
        fresh = self.get(name)
        if fresh is None:
            raise self.arm.not_found("volume", external_id)
        return self.observed(fresh)

    def _set_attached(self, vm_id: str, disk_id: str, attach: bool) -> None:
        vm = (
            self.vms.ours(vm_id)
            if attach
            else self.vms.get(self.arm.name_of(vm_id, "virtualMachines") or "")
        )
        if vm is None:
            raise self.arm.not_found("VM", vm_id)
        existing = vm.storage_profile.data_disks if vm.storage_profile else None
        disks = [
            {"lun": d.lun, "createOption": "Attach", "managedDisk": {"id": str(d.managed_disk.id)}}
            for d in (existing or [])
            if d.managed_disk and str(d.managed_disk.id).lower() != disk_id.lower()
        ]
        if attach:
            used = {int(str(d["lun"])) for d in disks}
            lun = next(n for n in range(64) if n not in used)
            disks.append({"lun": lun, "createOption": "Attach", "managedDisk": {"id": disk_id}})
        patch = VirtualMachineUpdate({"properties": {"storageProfile": {"dataDisks": disks}}})
        verb = "attaching" if attach else "detaching"
        with azure_errors(self.arm.cloud, f"{verb} disk on VM {vm.name}"):
            self.arm.compute.virtual_machines.begin_update(
                self.arm.group, str(vm.name), patch
            ).result()

    def delete(self, external_id: str) -> None:
        disk = self.ours(external_id)
        if disk is None:
            return
        if disk.managed_by:
            raise PermanentError(
                f"volume {disk.name} is attached to {disk.managed_by}; detach it first",
                self.arm.cloud,
                "VolumeInUse",
            )
        with azure_errors(self.arm.cloud, f"deleting disk {disk.name}"):
            self.arm.compute.disks.begin_delete(self.arm.group, str(disk.name)).result()

    def forget(self, disk: Disk) -> None:
        with azure_errors(self.arm.cloud, f"forgetting disk {disk.name}"):
            self.arm.compute.disks.begin_update(
                self.arm.group, str(disk.name), DiskUpdate({"tags": without_ours(disk.tags)})
            ).result()
