"""Virtual machines through azure-mgmt-compute (and their NICs through azure-mgmt-network).

A VM is named deterministically from the request name and its uid (names.resource_name),
so a PUT retried after a lost response addresses the same VM; create also looks the uid
up first. Stop is ``deallocate`` (compute billing stops), start is ``start``; resize is a
PATCH of ``hardwareProfile.vmSize`` (Azure restarts a running VM to resize it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from azure.mgmt.compute.models import VirtualMachine, VirtualMachineUpdate
from azure.mgmt.network.models import NetworkInterface

from reconciler.model.cloud import Offer
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedVM
from reconciler.model.specs import PowerState
from reconciler.providers.azure.arm import Arm, merged_tags, text, without_ours
from reconciler.providers.azure.errors import azure_errors, or_none
from reconciler.providers.azure.names import decode_map, encode_map, encode_tag_key, resource_name
from reconciler.providers.base import VMRequest, VMUpdate
from reconciler.providers.catalog import require_offer


def image_reference(image: str, cloud: str) -> dict[str, str]:
    """An ARM imageReference from a "publisher:offer:sku:version" URN or an image id."""
    if image.lower().startswith("/subscriptions/"):
        return {"id": image}
    parts = image.split(":")
    if len(parts) == 4 and all(parts):
        return dict(zip(("publisher", "offer", "sku", "version"), parts, strict=True))
    raise PermanentError(
        f"image {image!r} is neither a publisher:offer:sku:version URN nor an image id",
        cloud,
        "InvalidImage",
    )


def _power(vm: VirtualMachine) -> PowerState:
    view = vm.instance_view
    for status in view.statuses if view and view.statuses else []:
        code = text(status.code)
        if code.startswith("PowerState/"):
            running = code in ("PowerState/running", "PowerState/starting")
            return PowerState.RUNNING if running else PowerState.STOPPED
    return PowerState.RUNNING


def _image(vm: VirtualMachine) -> str:
    ref = vm.storage_profile.image_reference if vm.storage_profile else None
    if ref is None:
        return ""
    if ref.id:
        return str(ref.id)
    return ":".join(text(p) for p in (ref.publisher, ref.offer, ref.sku, ref.version))


class VMs:
    """VM operations of one Cloud; ``offers`` gives the priced sizes by name."""

    def __init__(self, arm: Arm, offers: Callable[[], Mapping[str, Offer]]) -> None:
        self.arm = arm
        self.offers = offers

    def observed(self, vm: VirtualMachine) -> ObservedVM:
        size = text(vm.hardware_profile.vm_size if vm.hardware_profile else "")
        offer = self.offers().get(size)
        os_disk = vm.storage_profile.os_disk if vm.storage_profile else None
        return ObservedVM(
            cloud=self.arm.cloud,
            external_id=str(vm.id),
            instance_type=size,
            vcpus=offer.vcpus if offer else 0,
            memory_gib=offer.memory_gib if offer else 0.0,
            power_state=_power(vm),
            price_per_hour=offer.price_per_hour if offer else 0.0,
            tags=decode_map(vm.tags),
            image=_image(vm),
            disk_gib=int(os_disk.disk_size_gb or 0) if os_disk else 0,
            gpus=offer.gpus if offer else 0,
        )

    def list_owned(self) -> list[VirtualMachine]:
        """Our VMs, with their instance view (power state) in the same call."""
        with azure_errors(self.arm.cloud, "listing virtual machines"):
            listed = list(
                self.arm.compute.virtual_machines.list(self.arm.group, expand="instanceView")
            )
        return [vm for vm in listed if self.arm.owns(vm.tags)]

    def get(self, name: str) -> VirtualMachine | None:
        """The VM called ``name`` (any owner), or None."""
        return or_none(
            self.arm.cloud,
            f"reading VM {name}",
            lambda: self.arm.compute.virtual_machines.get(
                self.arm.group, name, expand="instanceView"
            ),
        )

    def ours(self, external_id: str) -> VirtualMachine | None:
        name = self.arm.name_of(external_id, "virtualMachines")
        vm = self.get(name) if name else None
        return vm if vm is not None and self.arm.owns(vm.tags) else None

    def by_uid(self, uid: str) -> VirtualMachine | None:
        return next(
            (vm for vm in self.list_owned() if decode_map(vm.tags).get(TAG_UID) == uid), None
        )

    # -- create --------------------------------------------------------------------------
    def create(self, request: VMRequest) -> ObservedVM:
        uid = request.tags.get(TAG_UID, "")
        found = self.by_uid(uid) if uid else None
        if found is not None:
            return self.observed(found)
        settings = self.arm.settings
        require_offer(self.offers(), request.instance_type, self.arm.cloud)
        if not settings.subnet_id or not settings.ssh_public_key:
            raise PermanentError(
                "creating a VM needs settings.subnetId and settings.sshPublicKey",
                self.arm.cloud,
                "InvalidCloud",
            )
        image = image_reference(request.image, self.arm.cloud)
        name = resource_name(request.name, uid or request.name)
        clash = self.get(name)
        if clash is not None:
            raise PermanentError(
                f"a VM named {name} exists and is not ours", self.arm.cloud, "AlreadyExists"
            )
        tags = encode_map(request.tags, encode_tag_key)
        nic_id = self._nic(name, tags)
        body = self._body(name, request, image, tags, nic_id)
        with azure_errors(self.arm.cloud, f"creating VM {name}"):
            self.arm.compute.virtual_machines.begin_create_or_update(
                self.arm.group, name, VirtualMachine(body)
            ).result()
        if request.power_state == PowerState.STOPPED:
            with azure_errors(self.arm.cloud, f"deallocating VM {name}"):
                self.arm.compute.virtual_machines.begin_deallocate(self.arm.group, name).result()
        vm = self.get(name)
        if vm is None:
            raise PermanentError(f"VM {name} vanished after create", self.arm.cloud, "NotFound")
        return self.observed(vm)

    def _nic(self, name: str, tags: dict[str, str]) -> str:
        nic = NetworkInterface(
            {
                "location": self.arm.settings.location,
                "tags": tags,
                "properties": {
                    "ipConfigurations": [
                        {
                            "name": "ipconfig1",
                            "properties": {
                                "subnet": {"id": self.arm.settings.subnet_id},
                                "privateIPAllocationMethod": "Dynamic",
                            },
                        }
                    ]
                },
            }
        )
        with azure_errors(self.arm.cloud, f"creating NIC {name}-nic"):
            made = self.arm.network.network_interfaces.begin_create_or_update(
                self.arm.group, f"{name}-nic", nic
            ).result()
        return str(made.id)

    def _body(
        self, name: str, request: VMRequest, image: dict[str, str], tags: dict[str, str], nic: str
    ) -> dict[str, object]:
        settings = self.arm.settings
        os_disk: dict[str, object] = {
            "name": f"{name}-osdisk",
            "createOption": "FromImage",
            "deleteOption": "Delete",
            "managedDisk": {"storageAccountType": settings.os_disk_type},
        }
        if request.disk_gib:
            os_disk["diskSizeGB"] = request.disk_gib
        user = settings.admin_username
        return {
            "location": settings.location,
            "tags": tags,
            "properties": {
                "hardwareProfile": {"vmSize": request.instance_type},
                "storageProfile": {"imageReference": image, "osDisk": os_disk},
                "osProfile": {
                    "computerName": name,
                    "adminUsername": user,
                    "linuxConfiguration": {
                        "disablePasswordAuthentication": True,
                        "ssh": {
                            "publicKeys": [
                                {
                                    "path": f"/home/{user}/.ssh/authorized_keys",
                                    "keyData": settings.ssh_public_key,
                                }
                            ]
                        },
                    },
                },
                "networkProfile": {
                    "networkInterfaces": [
                        {"id": nic, "properties": {"primary": True, "deleteOption": "Delete"}}
                    ]
                },
            },
        }

    # -- update, delete, forget ------------------------------------------------------------
    def update(self, external_id: str, update: VMUpdate) -> ObservedVM:
        vm = self.ours(external_id)
        if vm is None:
            raise self.arm.not_found("VM", external_id)
        name, ops, group = str(vm.name), self.arm.compute.virtual_machines, self.arm.group
        patch: dict[str, object] = {}
        current = self.observed(vm)
        if update.instance_type and update.instance_type != current.instance_type:
            require_offer(self.offers(), update.instance_type, self.arm.cloud)
            patch["properties"] = {"hardwareProfile": {"vmSize": update.instance_type}}
        if update.tags:
            tags = merged_tags(vm.tags, update.tags, self.arm.owner, self.arm.cloud)
            if tags != dict(vm.tags or {}):
                patch["tags"] = tags
        with azure_errors(self.arm.cloud, f"updating VM {name}"):
            if patch:
                ops.begin_update(group, name, VirtualMachineUpdate(patch)).result()
            wanted = update.power_state
            if wanted is not None and wanted != current.power_state:
                if wanted == PowerState.STOPPED:
                    ops.begin_deallocate(group, name).result()
                else:
                    ops.begin_start(group, name).result()
        fresh = self.get(name)
        if fresh is None:
            raise self.arm.not_found("VM", external_id)
        return self.observed(fresh)

    def delete(self, external_id: str) -> None:
        """Delete the VM, then its NIC and OS disk (404s are success)."""
        vm = self.ours(external_id)
        if vm is None:
            return
        name = str(vm.name)
        nics = (
            [str(n.id) for n in (vm.network_profile.network_interfaces or [])]
            if (vm.network_profile)
            else []
        )
        os_disk = vm.storage_profile.os_disk if vm.storage_profile else None
        disk_name = str(os_disk.name) if os_disk and os_disk.name else ""
        with azure_errors(self.arm.cloud, f"deleting VM {name}"):
            self.arm.compute.virtual_machines.begin_delete(self.arm.group, name).result()
            for nic in nics:
                nic_name = self.arm.name_of(nic, "networkInterfaces")
                if nic_name:
                    self.arm.network.network_interfaces.begin_delete(
                        self.arm.group, nic_name
                    ).result()
            if disk_name:
                self.arm.compute.disks.begin_delete(self.arm.group, disk_name).result()

    def forget(self, vm: VirtualMachine) -> None:
        with azure_errors(self.arm.cloud, f"forgetting VM {vm.name}"):
            self.arm.compute.virtual_machines.begin_update(
                self.arm.group, str(vm.name), VirtualMachineUpdate({"tags": without_ours(vm.tags)})
            ).result()
