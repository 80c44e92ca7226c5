"""EC2 instances as VMs: create (idempotent by ClientToken and uid tag), resize, power, delete."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedVM
from reconciler.model.specs import PowerState
from reconciler.providers.aws.core import AwsBase, tag_dict, tag_list
from reconciler.providers.base import VMRequest, VMUpdate
from reconciler.providers.botoerrors import error_code, mapped

#: States of an instance that still exists for us (terminated ones are gone).
LIVE_STATES = ("pending", "running", "stopping", "stopped")
_RUNNING = frozenset({"pending", "running"})
_NOT_FOUND = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


def state_of(instance: Mapping[str, Any]) -> str:
    return str(instance["State"]["Name"])


class AwsCompute(AwsBase):
    """VM operations on EC2."""

    # -- reading -------------------------------------------------------------------
    def instances(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Live instances matching ``filters`` (paginated)."""
        flt = [*filters, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        found: list[dict[str, Any]] = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=flt):
            for reservation in page["Reservations"]:
                found.extend(reservation["Instances"])
        return found

    def instance(self, external_id: str) -> dict[str, Any] | None:
        """A live instance by id (ours or not), None if absent or terminated."""
        if not external_id.startswith("i-"):
            return None
        try:
            pages = self.ec2.describe_instances(InstanceIds=[external_id])["Reservations"]
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return None
            raise
        for reservation in pages:
            for inst in reservation["Instances"]:
                if state_of(inst) in LIVE_STATES:
                    return dict(inst)
        return None

    def owned_instance(self, external_id: str) -> dict[str, Any] | None:
        """Our live instance; None if absent; PermanentError(NotManaged) if foreign."""
        inst = self.instance(external_id)
        if inst is not None and not self.owns(tag_dict(inst.get("Tags"))):
            raise self.not_managed("VM", external_id)
        return inst

    def root_sizes(self, instances: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Root (boot) volume size in GiB per instance id."""
        roots = {str(i["InstanceId"]): str(i.get("RootDeviceName", "")) for i in instances}
        if not roots:
            return {}
        sizes: dict[str, int] = {}
        flt = [{"Name": "attachment.instance-id", "Values": sorted(roots)}]
        for page in self.ec2.get_paginator("describe_volumes").paginate(Filters=flt):
            for vol in page["Volumes"]:
                for att in vol.get("Attachments", []):
                    if roots.get(str(att.get("InstanceId"))) == att.get("Device"):
                        sizes[str(att["InstanceId"])] = int(vol["Size"])
        return sizes

    def to_vm(self, inst: Mapping[str, Any], disk_gib: int = 0) -> ObservedVM:
        itype = str(inst["InstanceType"])
        running = state_of(inst) in _RUNNING
        offer = self.offers_by_name().get(itype)
        cpu = inst.get("CpuOptions", {})
        return ObservedVM(
            cloud=self.cloud.name,
            external_id=str(inst["InstanceId"]),
            instance_type=itype,
            vcpus=offer.vcpus
            if offer
            else int(cpu.get("CoreCount", 0)) * int(cpu.get("ThreadsPerCore", 1)),
            memory_gib=offer.memory_gib if offer else 0.0,
            power_state=PowerState.RUNNING if running else PowerState.STOPPED,
            price_per_hour=offer.price_per_hour if (offer and running) else 0.0,
            tags=tag_dict(inst.get("Tags")),
            image=str(inst.get("ImageId", "")),
            disk_gib=disk_gib,
            gpus=offer.gpus if offer else 0,
        )

    def observed(self, inst: Mapping[str, Any]) -> ObservedVM:
        return self.to_vm(inst, self.root_sizes([inst]).get(str(inst["InstanceId"]), 0))

    def observe_vm(self, external_id: str) -> ObservedVM | None:
        with mapped(self.cloud.name, f"observe VM {external_id}"):
            inst = self.instance(external_id)
            if inst is None or not self.owns(tag_dict(inst.get("Tags"))):
                return None
            return self.observed(inst)

    # -- create ----------------------------------------------------------------------
    def _image(self, image: str) -> tuple[str, str]:
        """(AMI id, root device name) of an AMI id or an AMI name (ours or Amazon's)."""
        if image.startswith("ami-"):
            found = self.ec2.describe_images(ImageIds=[image])["Images"]
        else:
            flt = [{"Name": "name", "Values": [image]}]
            found = self.ec2.describe_images(Owners=["self", "amazon"], Filters=flt)["Images"]
        if not found:
            raise PermanentError(
                f"image '{image}' not found in {self.cloud.region} (an AMI id or exact AMI name)",
                cloud=self.cloud.name,
                reason="InvalidAMIID.NotFound",
            )
        newest = max(found, key=lambda i: str(i.get("CreationDate", "")))
        return str(newest["ImageId"]), str(newest.get("RootDeviceName", "/dev/xvda"))

    def _run_params(self, request: VMRequest, tags: dict[str, str]) -> dict[str, Any]:
        ami, root_device = self._image(request.image)
        params: dict[str, Any] = {
            "ImageId": ami,
            "InstanceType": request.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": tags[TAG_UID][:64],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(tags)},
                {"ResourceType": "volume", "Tags": tag_list(tags)},
            ],
        }
        if request.disk_gib > 0:
            ebs = {"VolumeSize": request.disk_gib, "DeleteOnTermination": True}
            params["BlockDeviceMappings"] = [{"DeviceName": root_device, "Ebs": ebs}]
        if self.settings.subnet_id:
            params["SubnetId"] = self.settings.subnet_id
        else:
            params["Placement"] = {"AvailabilityZone": self.zone()}
        if self.settings.security_group_ids:
            params["SecurityGroupIds"] = list(self.settings.security_group_ids)
        if self.settings.key_name:
            params["KeyName"] = self.settings.key_name
        return params

    def _by_uid(self, uid: str) -> dict[str, Any] | None:
        flt = [{"Name": f"tag:{TAG_UID}", "Values": [uid]}]
        for inst in self.instances(flt):
            if self.owns(tag_dict(inst.get("Tags"))):
                return inst
        return None

    def create_vm(self, request: VMRequest) -> ObservedVM:
        """Run one tagged instance; a retry finds it by uid tag (or EC2's ClientToken)."""
        self.offer(request.instance_type)
        tags = self.owned_tags(request.tags)
        with mapped(self.cloud.name, f"create VM {request.name}"):
            inst = self._by_uid(tags[TAG_UID])
            if inst is None:
                params = self._run_params(request, tags)
                inst = self.ec2.run_instances(**params)["Instances"][0]
                if state_of(inst) not in LIVE_STATES:  # the token named a terminated instance
                    salt = hashlib.sha256(str(inst["InstanceId"]).encode()).hexdigest()[:8]
                    params["ClientToken"] = f"{tags[TAG_UID][:55]}-{salt}"
                    inst = self.ec2.run_instances(**params)["Instances"][0]
            instance_id = str(inst["InstanceId"])
            if request.power_state == PowerState.STOPPED and state_of(inst) in _RUNNING:
                self.ec2.stop_instances(InstanceIds=[instance_id])
            return self.observed(self.instance(instance_id) or inst)

    # -- update / delete -----------------------------------------------------------
    def wait(self, waiter: str, resource: str, **ids: list[str]) -> None:
        """Wait with the Cloud's waitDelaySeconds/waitMaxAttempts; TransientError on timeout."""
        config = {"Delay": self.settings.wait_delay, "MaxAttempts": self.settings.wait_max_attempts}
        try:
            self.ec2.get_waiter(waiter).wait(**ids, WaiterConfig=config)
        except WaiterError as exc:
            raise TransientError(
                f"{resource}: gave up waiting ({waiter}); it is still changing state",
                cloud=self.cloud.name,
                retry_after=float(self.settings.wait_delay),
            ) from exc

    def _resize(self, inst: Mapping[str, Any], instance_type: str) -> None:
        """Stop (and wait), change the type; the caller starts it again if wanted."""
        self.offer(instance_type)
        instance_id = str(inst["InstanceId"])
        if state_of(inst) != "stopped":
            if state_of(inst) in _RUNNING:
                self.ec2.stop_instances(InstanceIds=[instance_id])
            self.wait("instance_stopped", f"VM {instance_id}", InstanceIds=[instance_id])
        self.ec2.modify_instance_attribute(
            InstanceId=instance_id, InstanceType={"Value": instance_type}
        )

    def _set_power(self, instance_id: str, state: str, want: PowerState) -> bool:
        """Start or stop the instance if ``state`` is not ``want``; True if it did."""
        if want == PowerState.RUNNING and state not in _RUNNING:
            if state == "stopping":
                self.wait("instance_stopped", f"VM {instance_id}", InstanceIds=[instance_id])
            self.ec2.start_instances(InstanceIds=[instance_id])
            return True
        if want == PowerState.STOPPED and state in _RUNNING:
            self.ec2.stop_instances(InstanceIds=[instance_id])
            return True
        return False

    def _retag(self, inst: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
        """Merge ``tags`` into the instance's; True if any changed."""
        current = tag_dict(inst.get("Tags"))
        merged = {**current, **tags}
        if not self.owns(merged):
            raise PermanentError(
                f"update of VM {inst['InstanceId']} would change its owner tag; use forget()",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        changed = {k: v for k, v in tags.items() if current.get(k) != v}
        if changed:
            self.ec2.create_tags(Resources=[inst["InstanceId"]], Tags=tag_list(changed))
        return bool(changed)

    def update_vm(self, external_id: str, update: VMUpdate) -> ObservedVM:
        """Resize (stop, modify, start again), start/stop, merge tags; converges. The
        instance is described again only if something changed."""
        with mapped(self.cloud.name, f"update VM {external_id}"):
            inst = self.owned_instance(external_id)
            if inst is None:
                raise self.not_found("VM", external_id)
            changed = self._retag(inst, update.tags) if update.tags else False
            state = state_of(inst)
            want = update.power_state or (
                PowerState.RUNNING if state in _RUNNING else PowerState.STOPPED
            )
            if update.instance_type and update.instance_type != inst["InstanceType"]:
                self._resize(inst, update.instance_type)
                state, changed = "stopped", True
            changed = self._set_power(external_id, state, PowerState(want)) or changed
            return self.observed((self.instance(external_id) or inst) if changed else inst)

    def delete_vm(self, external_id: str) -> None:
        """Terminate our instance (absent or terminated is success; data volumes stay)."""
        with mapped(self.cloud.name, f"delete VM {external_id}"):
            if self.owned_instance(external_id) is not None:
                self.ec2.terminate_instances(InstanceIds=[external_id])
