"""SimProvider: a SIMULATED cloud behind the real Provider contract.

It serves the quickstart, benchmarks and chaos tests. Nothing here talks to a real
cloud; every answer says so (``describe().simulated`` is True). The world it
simulates lives in ``<state_dir>/sim-world`` (see world.py and journal.py).
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PermanentError
from reconciler.model.keys import GROUP, TAG_OWNER
from reconciler.model.observed import (
    CloudInventory,
    Observed,
    ObservedBucket,
    ObservedVM,
    ObservedVolume,
)
from reconciler.model.specs import Capacity, PowerState
from reconciler.providers.base import VMRequest, VMUpdate
from reconciler.providers.sim.objects import SimObjects
from reconciler.providers.sim.records import (
    BUCKET,
    MANAGED_KINDS,
    VM,
    VOLUME,
    SimResource,
    bucket_key,
)


class SimProvider(SimObjects):
    """The simulator driver (``spec.provider: sim``); thread-safe, shares one world."""

    # -- read-only -----------------------------------------------------------------
    def describe(self) -> CloudInfo:
        """Capacity reported = total minus what FOREIGN resources use (the broker
        accounts for our own VMs itself)."""
        capacity = None
        cap = self.cloud.capacity
        if cap is not None:
            with self.world.reading():
                total = self.world.usage(self.cloud.name)
                ours = self.world.usage(self.cloud.name, self.context.owner)
            capacity = Capacity(
                vcpus=None if cap.vcpus is None else max(0, cap.vcpus - total.vcpus + ours.vcpus),
                memory_gib=None
                if cap.memory_gib is None
                else max(0.0, cap.memory_gib - total.memory_gib + ours.memory_gib),
                instances=None
                if cap.instances is None
                else max(0, cap.instances - total.instances + ours.instances),
            )
        return self.prices.cloud_info(
            self.cloud,
            self.provider_name,
            self.capabilities,
            capacity,
            simulated=True,
            extra={
                "simulator": "reconciler sim (not a real cloud)",
                "state": str(self.world.directory),
            },
        )

    def offers(self) -> list[Offer]:
        """Catalog + inline offers; ``available`` = declared minus FOREIGN VMs of the type."""
        if all(o.available is None for o in self._offers.values()):
            return list(self._offers.values())
        name, owner = self.cloud.name, self.context.owner
        result = []
        with self.world.reading():
            for offer in self._offers.values():
                if offer.available is not None:
                    foreign = self.world.type_count(name, offer.name) - self.world.type_count(
                        name, offer.name, owner
                    )
                    offer = replace(offer, available=max(0, offer.available - foreign))
                result.append(offer)
        return result

    def list_managed(self) -> CloudInventory:
        fault = self.chaos.enter("list")
        vms: list[ObservedVM] = []
        volumes: list[ObservedVolume] = []
        buckets: list[ObservedBucket] = []
        with self.world.reading():
            for rec in self.world.owned(self.cloud.name, self.context.owner):
                if rec.kind == VM:
                    vms.append(self._vm(rec))
                elif rec.kind == VOLUME:
                    volumes.append(self._volume(rec))
                elif rec.kind == BUCKET:
                    buckets.append(self._bucket(rec))
        self.chaos.leave("list", fault)
        return CloudInventory(self.cloud.name, tuple(vms), tuple(volumes), tuple(buckets))

    def observe_vm(self, external_id: str) -> ObservedVM | None:
        fault = self.chaos.enter("list")
        with self.world.reading():
            rec = self.world.get(external_id)
            mine = (
                rec is not None
                and rec.kind == VM
                and rec.cloud == self.cloud.name
                and rec.owner == self.context.owner
            )
            result = self._vm(rec) if mine and rec is not None else None
        self.chaos.leave("list", fault)
        return result

    def find_by_uid(self, uid: str) -> Observed | None:
        fault = self.chaos.enter("list")
        with self.world.reading():
            rec = self.world.by_uid(self.cloud.name, uid)
            mine = rec is not None and rec.owner == self.context.owner
            mine = mine and rec is not None and rec.kind in MANAGED_KINDS
            result = self._observe(rec) if mine and rec is not None else None
        self.chaos.leave("list", fault)
        return result

    # -- VMs -----------------------------------------------------------------------
    def create_vm(self, request: VMRequest) -> ObservedVM:
        fault = self.chaos.enter("create")
        offer = self._offer(request.instance_type)
        if request.power_state == PowerState.STOPPED:
            self._need(Capability.STOP, "creating a stopped VM")
        tags = self.owned_tags(request.tags)
        with self.world.transaction():
            rec = self._by_uid(tags, VM)
            if rec is None:
                self._check_capacity(offer, None)
                disk, size = self.initial_disk(request.image)
                rec = SimResource(
                    self.world.fresh_id(VM),
                    VM,
                    self.cloud.name,
                    name=request.name,
                    tags=tags,
                    instance_type=offer.name,
                    vcpus=offer.vcpus,
                    memory_gib=offer.memory_gib,
                    gpus=offer.gpus,
                    price_per_hour=offer.price_per_hour,
                    power_state=PowerState(request.power_state).value,
                    image=request.image,
                    disk_gib=request.disk_gib,
                    disk=disk,
                    size_bytes=size,
                )
                self.world.put(rec)
            result = self._vm(rec)
        self.chaos.leave("create", fault)
        return result

    def _updated(self, rec: SimResource, update: VMUpdate) -> SimResource:
        new = rec
        if update.instance_type is not None and update.instance_type != rec.instance_type:
            self._need(Capability.RESIZE, "resizing a VM")
            offer = self._offer(update.instance_type)
            self._check_capacity(offer, rec)
            new = replace(
                new,
                instance_type=offer.name,
                vcpus=offer.vcpus,
                memory_gib=offer.memory_gib,
                gpus=offer.gpus,
                price_per_hour=offer.price_per_hour,
            )
        if update.power_state is not None and update.power_state != rec.power_state:
            self._need(Capability.STOP, "stopping or starting a VM")
            new = replace(new, power_state=PowerState(update.power_state).value)
        if update.tags:
            tags = {**rec.tags, **update.tags}
            if tags.get(TAG_OWNER) != self.context.owner:
                raise PermanentError(
                    f"update of VM {rec.id} would change its owner tag; use forget()",
                    cloud=self.cloud.name,
                    reason="BadRequest",
                )
            new = replace(new, tags=tags)
        return new

    def update_vm(self, external_id: str, update: VMUpdate) -> ObservedVM:
        """Resize (without resize-live a running VM is stopped, resized and started
        again, as on most clouds), stop/start or merge tags; converges when repeated."""
        fault = self.chaos.enter("update")
        with self.world.transaction():
            rec = self._existing(external_id, VM)
            new = self._updated(rec, update)
            if new != rec:
                self.world.put(new)
            result = self._vm(new)
        self.chaos.leave("update", fault)
        return result

    def delete_vm(self, external_id: str) -> None:
        """Delete (absent is success); attached volumes are detached and kept."""
        fault = self.chaos.enter("delete")
        with self.world.transaction():
            rec = self._ours(external_id, VM)
            if rec is not None:
                for volume in self.world.attached_volumes(rec.id):
                    self.world.put(replace(volume, attached_to=None))
                self.world.remove(rec.id)
        self.chaos.leave("delete", fault)

    def forget(self, external_id: str) -> None:
        """Drop our reconciler.dev/* tags; the resource stays and becomes foreign.

        Absent, or already not ours (e.g. a retry after a lost response), is success.
        """
        fault = self.chaos.enter("update")
        with self.world.transaction():
            rec = self.world.get(external_id)
            if rec is None or rec.kind == BUCKET:
                rec = self.world.get(bucket_key(self.cloud.name, external_id))
            if (
                rec is not None
                and rec.cloud == self.cloud.name
                and rec.kind in (VM, VOLUME, BUCKET)
                and rec.owner == self.context.owner
            ):
                kept = {k: v for k, v in rec.tags.items() if not k.startswith(GROUP + "/")}
                self.world.put(replace(rec, tags=kept))
        self.chaos.leave("update", fault)
