"""The resources behind the fake ARM (tests/servers/fake_arm.py): VMs, managed disks,
disk snapshots, NICs.

Validation follows the ARM REST reference closely enough that a malformed request from
the driver fails here the way it would on Azure (400 InvalidParameter, 404 NotFound,
409 OperationNotAllowed for deleting an attached disk, 409 PropertyChangeNotAllowed for
re-pointing a snapshot at another source...). Names are case-insensitive.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VM, DISK, NIC = "Compute/virtualMachines", "Compute/disks", "Network/networkInterfaces"
SNAPSHOT = "Compute/snapshots"
_DISK_SKUS = {"Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "PremiumV2_LRS", "UltraSSD_LRS"}
_SNAPSHOT_SKUS = {"Standard_LRS", "Premium_LRS", "Standard_ZRS"}
_LISTED = {"virtualmachines": VM, "disks": DISK, "snapshots": SNAPSHOT}
_POWER = {
    "deallocate": "deallocated",
    "start": "running",
    "powerOff": "stopped",
    "restart": "running",
}


class ArmError(Exception):
    """An ARM error answer: HTTP status plus the CloudError code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _need(value: Any, what: str) -> Any:
    if value in (None, "", [], {}):
        raise ArmError(400, "InvalidParameter", f"Required parameter '{what}' is missing (null).")
    return value


class ArmState:
    """Thread-safe store of the fake's resources, keyed by (kind, lower-case name)."""

    def __init__(self, subscription: str, resource_group: str, location: str, data: Path) -> None:
        self.subscription, self.resource_group, self.location = (
            subscription,
            resource_group,
            location,
        )
        self._templates = {
            kind: json.loads((data / f"{file}.json").read_text())
            for kind, file in (
                (VM, "virtual_machine"),
                (DISK, "disk"),
                (NIC, "network_interface"),
                (SNAPSHOT, "snapshot"),
            )
        }
        self._iview = json.loads((data / "instance_view.json").read_text())
        self._sizes = json.loads((data / f"vm_sizes_{location}.json").read_text())
        self._lock = threading.RLock()
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._power: dict[str, str] = {}
        self._ops: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def arm_id(self, kind: str, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.{kind}/{name}"
        )

    def _by_id(self, kind: str, arm_id: str) -> dict[str, Any] | None:
        prefix = self.arm_id(kind, "").lower()
        if not arm_id.lower().startswith(prefix):
            return None
        return self._items.get((kind, arm_id[len(prefix) :].lower()))

    def _fresh(self, kind: str, name: str, location: str) -> dict[str, Any]:
        item: dict[str, Any] = copy.deepcopy(self._templates[kind])
        item.pop("_comment", None)
        item.update(id=self.arm_id(kind, name), name=name, location=location)
        return item

    def snapshot(self) -> object:
        with self._lock:
            return copy.deepcopy((sorted(self._items.items()), sorted(self._power.items())))

    def reset(self) -> None:
        with self._lock:
            self._items.clear()
            self._power.clear()

    def new_operation(self) -> str:
        op = str(uuid.uuid4())
        with self._lock:
            self._ops.add(op)
        return op

    def operation(self, op: str) -> dict[str, Any]:
        with self._lock:
            if op not in self._ops:
                raise ArmError(404, "NotFound", f"Operation {op} not found.")
        return {"name": op, "status": "Succeeded", "startTime": _now(), "endTime": _now()}

    def sizes(self, location: str) -> dict[str, Any]:
        if location.lower() != self.location.lower():
            raise ArmError(404, "NoRegisteredProviderFound", f"Location '{location}' not served.")
        return {"value": self._sizes["value"]}

    # -- reads ---------------------------------------------------------------------------
    def _view(self, kind: str, item: dict[str, Any], expand: str) -> dict[str, Any]:
        out = copy.deepcopy(item)
        if kind == VM and expand.lower() == "instanceview":
            out["properties"]["instanceView"] = self._instance_view(item["name"])
        return out

    def _instance_view(self, name: str) -> dict[str, Any]:
        view: dict[str, Any] = copy.deepcopy(self._iview)
        view.pop("_comment", None)
        view["computerName"] = name
        power = self._power[name.lower()]
        view["statuses"][0]["time"] = _now()
        view["statuses"][1] = {
            "code": f"PowerState/{power}",
            "level": "Info",
            "displayStatus": f"VM {power}",
        }
        return view

    def get(self, kind: str, name: str, expand: str = "") -> dict[str, Any]:
        with self._lock:
            item = self._items.get((kind, name.lower()))
            if item is None:
                raise ArmError(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.{kind}/{name}' was not found.",
                )
            return self._view(kind, item, expand)

    def list(self, kind: str, expand: str) -> list[dict[str, Any]]:
        full = _LISTED[kind.lower()]
        with self._lock:
            return [
                self._view(full, i, expand)
                for (k, _), i in sorted(self._items.items())
                if k == full
            ]

    def instance_view(self, name: str) -> dict[str, Any]:
        with self._lock:
            self.get(VM, name)
            return self._instance_view(name)

    # -- writes --------------------------------------------------------------------------
    def put(self, kind: str, name: str, body: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        location = _need(body.get("location"), "location")
        with self._lock:
            old = self._items.get((kind, name.lower()))
            item = copy.deepcopy(old) if old else self._fresh(kind, name, location)
            item["tags"] = dict(body.get("tags") or {})
            props = body.get("properties") or {}
            if kind == VM:
                self._put_vm(item, props, creating=old is None)
            elif kind == DISK:
                self._put_disk(item, body, props, creating=old is None)
            elif kind == SNAPSHOT:
                self._put_snapshot(item, body, props, creating=old is None)
            else:
                configs = _need(props.get("ipConfigurations"), "ipConfigurations")
                for config in configs:
                    _need((config.get("properties") or {}).get("subnet"), "subnet")
                item["properties"]["ipConfigurations"] = configs
                item["properties"]["resourceGuid"] = str(uuid.uuid4())
            self._items[(kind, name.lower())] = item
            return old is None, copy.deepcopy(item)

    def _put_vm(self, item: dict[str, Any], props: dict[str, Any], creating: bool) -> None:
        size = _need((props.get("hardwareProfile") or {}).get("vmSize"), "vmSize")
        if size not in {s["name"] for s in self._sizes["value"]}:
            raise ArmError(
                400, "InvalidParameter", f"The value {size} provided for the VM size is not valid."
            )
        mine = item["properties"]
        mine["hardwareProfile"]["vmSize"] = size
        storage = props.get("storageProfile") or {}
        if creating:
            self._create_vm_parts(item, props, storage)
        self._set_data_disks(item, storage.get("dataDisks", mine["storageProfile"]["dataDisks"]))

    def _create_vm_parts(
        self, item: dict[str, Any], props: dict[str, Any], storage: dict[str, Any]
    ) -> None:
        image = _need(storage.get("imageReference"), "imageReference")
        if "id" not in image:
            for part in ("publisher", "offer", "sku", "version"):
                _need(image.get(part), f"imageReference.{part}")
        os_profile = props.get("osProfile") or {}
        _need(os_profile.get("computerName"), "osProfile.computerName")
        _need(os_profile.get("adminUsername"), "osProfile.adminUsername")
        ssh = ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys")
        _need(ssh or os_profile.get("adminPassword"), "osProfile.linuxConfiguration.ssh")
        nics = _need(
            (props.get("networkProfile") or {}).get("networkInterfaces"),
            "networkProfile.networkInterfaces",
        )
        for ref in nics:
            nic = self._by_id(NIC, ref.get("id", ""))
            if nic is None:
                raise ArmError(400, "InvalidParameter", f"NIC {ref.get('id')} not found.")
            if nic["properties"].get("virtualMachine"):
                raise ArmError(400, "NicInUse", f"NIC {ref['id']} is attached to another VM.")
            nic["properties"]["virtualMachine"] = {"id": item["id"]}
        mine = item["properties"]
        os_disk = dict(mine["storageProfile"]["osDisk"])
        os_disk.update(storage.get("osDisk") or {})
        os_disk["name"] = os_disk.get("name") or f"{item['name']}_OsDisk_1"
        os_disk["diskSizeGB"] = os_disk.get("diskSizeGB") or 30
        sku = (os_disk.get("managedDisk") or {}).get("storageAccountType", "StandardSSD_LRS")
        disk = self._fresh(DISK, os_disk["name"], item["location"])
        disk.update(sku={"name": sku, "tier": "Standard"}, managedBy=item["id"])
        disk["properties"].update(
            diskSizeGB=os_disk["diskSizeGB"],
            diskState="Attached",
            creationData={"createOption": "FromImage"},
        )
        self._items[(DISK, os_disk["name"].lower())] = disk
        os_disk["managedDisk"] = {"storageAccountType": sku, "id": disk["id"]}
        mine["storageProfile"].update(imageReference=image, osDisk=os_disk)
        mine["osProfile"].update({k: v for k, v in os_profile.items() if k != "adminPassword"})
        mine["networkProfile"] = {"networkInterfaces": nics}
        mine.update(vmId=str(uuid.uuid4()), timeCreated=_now())
        self._power[item["name"].lower()] = "running"

    def _set_data_disks(self, item: dict[str, Any], wanted: list[dict[str, Any]]) -> None:
        new_ids = set()
        for ref in wanted:
            disk_id = _need((ref.get("managedDisk") or {}).get("id"), "dataDisks.managedDisk.id")
            disk = self._by_id(DISK, disk_id)
            if disk is None:
                raise ArmError(404, "NotFound", f"Disk {disk_id} not found.")
            if disk.get("managedBy") not in (None, item["id"]):
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Disk {disk['name']} is attached to VM {disk['managedBy']}.",
                )
            new_ids.add(disk["id"].lower())
        for ref in item["properties"]["storageProfile"]["dataDisks"]:
            disk = self._by_id(DISK, ref["managedDisk"]["id"])
            if disk is not None and disk["id"].lower() not in new_ids:
                disk.pop("managedBy", None)
                disk["properties"]["diskState"] = "Unattached"
        for ref in wanted:
            disk = self._by_id(DISK, ref["managedDisk"]["id"])
            assert disk is not None
            disk["managedBy"] = item["id"]
            disk["properties"]["diskState"] = "Attached"
            ref["managedDisk"]["id"] = disk["id"]
            ref.setdefault("name", disk["name"])
            ref["diskSizeGB"] = disk["properties"]["diskSizeGB"]
        item["properties"]["storageProfile"]["dataDisks"] = wanted

    def _put_disk(
        self, item: dict[str, Any], body: dict[str, Any], props: dict[str, Any], creating: bool
    ) -> None:
        sku = (body.get("sku") or {}).get("name", item["sku"]["name"])
        if sku not in _DISK_SKUS:
            raise ArmError(400, "InvalidParameter", f"The value '{sku}' of sku.name is invalid.")
        item["sku"] = {"name": sku, "tier": "Premium" if "Premium" in sku else "Standard"}
        size = props.get("diskSizeGB", item["properties"]["diskSizeGB"])
        self._resize_disk(item, size, creating)
        if creating:
            option = _need((props.get("creationData") or {}).get("createOption"), "createOption")
            item["properties"].update(
                creationData={"createOption": option},
                uniqueId=str(uuid.uuid4()),
                timeCreated=_now(),
            )

    def _put_snapshot(
        self, item: dict[str, Any], body: dict[str, Any], props: dict[str, Any], creating: bool
    ) -> None:
        """A full or incremental copy of a managed disk (createOption Copy, the only
        option modelled); its size and sourceUniqueId come from the source disk."""
        sku = (body.get("sku") or {}).get("name", item["sku"]["name"])
        if sku not in _SNAPSHOT_SKUS:
            raise ArmError(400, "InvalidParameter", f"The value '{sku}' of sku.name is invalid.")
        item["sku"] = {"name": sku, "tier": "Premium" if "Premium" in sku else "Standard"}
        wanted = props.get("creationData") or {}
        mine = item["properties"]
        if not creating:
            source = wanted.get("sourceResourceId")
            if source and source.lower() != mine["creationData"]["sourceResourceId"].lower():
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'creationData.sourceResourceId' is not allowed.",
                )
            return
        option = _need(wanted.get("createOption"), "createOption")
        if option != "Copy":
            raise ArmError(
                400, "InvalidParameter", f"createOption '{option}' is not supported here."
            )
        source_id = _need(wanted.get("sourceResourceId"), "creationData.sourceResourceId")
        disk = self._by_id(DISK, source_id)
        if disk is None:
            raise ArmError(404, "NotFound", f"Resource {source_id} not found.")
        size = disk["properties"]["diskSizeGB"]
        mine.update(
            creationData={
                "createOption": "Copy",
                "sourceResourceId": disk["id"],
                "sourceUniqueId": disk["properties"]["uniqueId"],
            },
            diskSizeGB=size,
            diskSizeBytes=size << 30,
            incremental=bool(props.get("incremental", False)),
            uniqueId=str(uuid.uuid4()),
            timeCreated=_now(),
        )

    @staticmethod
    def _resize_disk(item: dict[str, Any], size: Any, creating: bool) -> None:
        if not isinstance(size, int) or size < 1:
            raise ArmError(400, "InvalidParameter", "diskSizeGB must be a positive integer.")
        if not creating and size < item["properties"]["diskSizeGB"]:
            raise ArmError(400, "BadRequest", "Disk size may only be increased.")
        item["properties"].update(diskSizeGB=size, diskSizeBytes=size << 30)

    def patch(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            item = self._items.get((kind, name.lower()))
            if item is None:
                raise ArmError(404, "ResourceNotFound", f"'Microsoft.{kind}/{name}' not found.")
            if "tags" in body:
                item["tags"] = dict(body["tags"] or {})
            props = body.get("properties") or {}
            if kind == VM and props.get("hardwareProfile"):
                self._put_vm(item, {"hardwareProfile": props["hardwareProfile"]}, False)
            if kind == VM and "dataDisks" in (props.get("storageProfile") or {}):
                self._set_data_disks(item, copy.deepcopy(props["storageProfile"]["dataDisks"]))
            if kind == DISK and "diskSizeGB" in props:
                self._resize_disk(item, props["diskSizeGB"], False)
            return copy.deepcopy(item)

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            item = self._items.get((kind, name.lower()))
            if item is None:
                return False
            if kind == DISK and item.get("managedBy"):
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Disk {name} is attached to VM {item['managedBy']}.",
                )
            if kind == NIC and item["properties"].get("virtualMachine"):
                raise ArmError(400, "NicInUse", f"NIC {name} is used by a VM.")
            if kind == VM:
                self._delete_vm_parts(item)
            del self._items[(kind, name.lower())]
            return True

    def _delete_vm_parts(self, item: dict[str, Any]) -> None:
        profile = item["properties"]
        self._set_data_disks(item, [])
        os_disk = profile["storageProfile"]["osDisk"]
        disk = self._by_id(DISK, os_disk["managedDisk"]["id"])
        if disk is not None:
            disk.pop("managedBy", None)
            disk["properties"]["diskState"] = "Unattached"
            if os_disk.get("deleteOption") == "Delete":
                del self._items[(DISK, disk["name"].lower())]
        for ref in profile["networkProfile"]["networkInterfaces"]:
            nic = self._by_id(NIC, ref["id"])
            if nic is not None:
                nic["properties"].pop("virtualMachine", None)
                if (ref.get("properties") or {}).get("deleteOption") == "Delete":
                    del self._items[(NIC, nic["name"].lower())]
        self._power.pop(item["name"].lower(), None)

    def action(self, name: str, action: str) -> None:
        if action not in _POWER:
            raise ArmError(404, "NotFound", f"Unknown action {action}.")
        with self._lock:
            self.get(VM, name)
            self._power[name.lower()] = _POWER[action]
