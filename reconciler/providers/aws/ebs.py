"""EBS volumes: create (idempotent by uid tag and ClientToken), grow, attach, detach.
Snapshots and disk reads are in snapshots.py, volumes from images in images.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_KEY, TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.providers.aws.core import tag_dict, tag_list
from reconciler.providers.aws.ec2 import AwsCompute
from reconciler.providers.base import VolumeRequest
from reconciler.providers.botoerrors import error_code, mapped

_NOT_FOUND = frozenset({"InvalidVolume.NotFound", "InvalidVolume.Malformed"})
_GONE_STATES = frozenset({"deleting", "deleted", "error"})
#: Device names tried, in order, when attaching a data volume.
DEVICES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")


def is_root_disk(tags: Mapping[str, str]) -> bool:
    """A boot volume made with a VM carries the VM's key; it is part of the VM, not a Volume."""
    return tags.get(TAG_KEY, "").startswith("VirtualMachine/")


def attached_to(vol: Mapping[str, Any]) -> str | None:
    """The instance an EBS volume is attached (or attaching) to, if any."""
    for att in vol.get("Attachments", []):
        if att.get("State") in ("attaching", "attached"):
            return str(att["InstanceId"])
    return None


class AwsVolumes(AwsCompute):
    """Block-volume operations on EBS."""

    def volume(self, external_id: str) -> dict[str, Any] | None:
        """A volume by id (ours or not); None if absent or being deleted."""
        if not external_id.startswith("vol-"):
            return None
        try:
            found = self.ec2.describe_volumes(VolumeIds=[external_id])["Volumes"]
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise
        live = [v for v in found if v.get("State") not in _GONE_STATES]
        return dict(live[0]) if live else None

    def owned_volume(self, external_id: str) -> dict[str, Any] | None:
        """Our data volume; None if absent; PermanentError(NotManaged) if foreign."""
        vol = self.volume(external_id)
        if vol is not None:
            tags = tag_dict(vol.get("Tags"))
            if not self.owns(tags) or is_root_disk(tags):
                raise self.not_managed("volume", external_id)
        return vol

    def volumes(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Our data volumes matching ``filters`` (boot disks excluded)."""
        found = []
        for page in self.ec2.get_paginator("describe_volumes").paginate(Filters=filters):
            for vol in page["Volumes"]:
                tags = tag_dict(vol.get("Tags"))
                if (
                    vol.get("State") not in _GONE_STATES
                    and self.owns(tags)
                    and not is_root_disk(tags)
                ):
                    found.append(vol)
        return found

    def to_volume(self, vol: Mapping[str, Any]) -> ObservedVolume:
        return ObservedVolume(
            cloud=self.cloud.name,
            external_id=str(vol["VolumeId"]),
            size_gib=int(vol["Size"]),
            volume_class=str(vol.get("VolumeType", "")),
            attached_to=attached_to(vol),
            price_per_hour=self.volume_price(int(vol["Size"])),
            tags=tag_dict(vol.get("Tags")),
        )

    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        """Create a tagged, empty EBS volume in the Cloud's zone; a retry finds it by uid."""
        return self._create_volume(request, None)

    def _create_volume(
        self, request: VolumeRequest, snapshot: tuple[str, int] | None
    ) -> ObservedVolume:
        """Create a tagged EBS volume, empty or from ``snapshot`` (id, GiB: the volume is
        at least that large); a retry finds it by uid tag (or EC2's ClientToken)."""
        if request.size_gib < 1:
            raise PermanentError(
                f"volume size must be >= 1 GiB, got {request.size_gib}",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        tags = self.owned_tags(request.tags)
        with mapped(self.cloud.name, f"create volume {request.name}"):
            found = self.volumes([{"Name": f"tag:{TAG_UID}", "Values": [tags[TAG_UID]]}])
            if found:
                return self.to_volume(found[0])
            params: dict[str, Any] = {
                "AvailabilityZone": self.zone(),
                "Size": request.size_gib,
                "VolumeType": request.volume_class,
                "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(tags)}],
                "ClientToken": tags[TAG_UID][:64],
            }
            if snapshot is not None:
                params.update(SnapshotId=snapshot[0], Size=max(request.size_gib, snapshot[1]))
            return self.to_volume(self.ec2.create_volume(**params))

    def _free_device(self, instance: Mapping[str, Any]) -> str:
        used = {str(m.get("DeviceName", "")) for m in instance.get("BlockDeviceMappings", [])}
        used |= {u.replace("/dev/xvd", "/dev/sd") for u in used}
        for device in DEVICES:
            if device not in used:
                return device
        raise PermanentError(
            f"VM {instance['InstanceId']} has no free device name for another volume",
            cloud=self.cloud.name,
            reason="NoFreeDevice",
        )

    def _attach(self, vol: Mapping[str, Any], attach_to: str) -> bool:
        """Attach to ``attach_to`` unless it already is; True if it attached."""
        current = attached_to(vol)
        if current == attach_to:
            return False
        if current is not None:
            raise PermanentError(
                f"volume {vol['VolumeId']} is attached to {current}; detach it first",
                cloud=self.cloud.name,
                reason="VolumeInUse",
            )
        instance = self.owned_instance(attach_to)
        if instance is None:
            raise PermanentError(
                f"cannot attach volume {vol['VolumeId']}: VM {attach_to} not found",
                cloud=self.cloud.name,
                reason="NotFound",
            )
        self.ec2.attach_volume(
            VolumeId=vol["VolumeId"], InstanceId=attach_to, Device=self._free_device(instance)
        )
        return True

    def _detach(self, vol: Mapping[str, Any]) -> bool:
        """Detach (and wait until available) if attached; True if it detached."""
        instance_id = attached_to(vol)
        if instance_id is None:
            return False
        volume_id = str(vol["VolumeId"])
        self.ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
        self.wait("volume_available", f"volume {volume_id}", VolumeIds=[volume_id])
        return True

    def update_volume(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        """Grow (ModifyVolume), detach, then attach; converges when repeated. The volume
        is described again only after a change."""
        with mapped(self.cloud.name, f"update volume {external_id}"):
            vol = self.owned_volume(external_id)
            if vol is None:
                raise self.not_found("volume", external_id)
            changed = False
            if size_gib is not None and size_gib != int(vol["Size"]):
                if size_gib < int(vol["Size"]):
                    raise PermanentError(
                        f"volume {external_id} cannot shrink from {vol['Size']} to {size_gib} GiB",
                        cloud=self.cloud.name,
                        reason="VolumeShrink",
                    )
                self.ec2.modify_volume(VolumeId=external_id, Size=size_gib)
                changed = True
            if detach and self._detach(vol):
                vol, changed = self.volume(external_id) or vol, False
            if attach_to is not None and self._attach(vol, attach_to):
                changed = True
            return self.to_volume((self.volume(external_id) or vol) if changed else vol)

    def delete_volume(self, external_id: str) -> None:
        """Delete our detached volume; absent is success, attached is VolumeInUse."""
        with mapped(self.cloud.name, f"delete volume {external_id}"):
            vol = self.owned_volume(external_id)
            if vol is None:
                return
            attached = attached_to(vol)
            if attached is not None:
                raise PermanentError(
                    f"volume {external_id} is attached to {attached}; detach it first",
                    cloud=self.cloud.name,
                    reason="VolumeInUse",
                )
            try:
                self.ec2.delete_volume(VolumeId=external_id)
            except ClientError as exc:
                if error_code(exc) not in _NOT_FOUND:
                    raise

    def root_volume_id(self, instance: Mapping[str, Any]) -> str | None:
        root = instance.get("RootDeviceName")
        for mapping in instance.get("BlockDeviceMappings", []):
            if mapping.get("DeviceName") == root and "Ebs" in mapping:
                return str(mapping["Ebs"]["VolumeId"])
        return None
