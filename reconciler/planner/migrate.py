"""Moving a VM to another cloud with its data: start, resume or abort a migration, and
retire the source it leaves behind.

A migration is one MIGRATE action whose params hold everything the executor's state
machine needs (executor/migration.py). While it runs, the source VM carries
``reconciler.dev/migration`` (its id) and ``reconciler.dev/migration-target``
(``<cloud>/<instance type>``), and everything made for the target carries the id: a plan
made after a crash recognises the migration from the clouds alone and resumes it with
the same id, uids and action id. After the switch the source stays, stopped, tagged
``reconciler.dev/retain-until``; a plan made after that time deletes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.broker.schedule import parse_time
from reconciler.model.cloud import Capability
from reconciler.model.keys import (
    TAG_MIGRATED_TO,
    TAG_MIGRATION,
    TAG_MIGRATION_TARGET,
    TAG_PLACED_AT,
    TAG_RETAIN_UNTIL,
    ResourceKey,
    ownership_tags,
)
from reconciler.model.observed import ObservedVM
from reconciler.model.plan import ActionType
from reconciler.model.specs import PowerState, Resources, VMSpec
from reconciler.planner.collect import Collector, cloud_name, resource_uid
from reconciler.planner.inputs import PlanInput

STAGING_PREFIX = "reconciler-staging-"


def migration_id(owner: str, key: ResourceKey, source_id: str, target_cloud: str) -> str:
    raw = f"{owner}|{key}|{source_id}|{target_cloud}".encode()
    return "m-" + hashlib.sha256(raw).hexdigest()[:14]


def staging_bucket(owner: str, cloud: str) -> str:
    """The name of the bucket migrations stage disks in on ``cloud`` (ours, tagged
    ``reconciler.dev/system: staging``)."""
    return STAGING_PREFIX + hashlib.sha256(f"{owner}|{cloud}".encode()).hexdigest()[:12]


def is_retained(tags: Mapping[str, str]) -> bool:
    """Whether a resource is the stopped source a finished migration keeps a while."""
    return bool(tags.get(TAG_RETAIN_UNTIL))


@dataclass(frozen=True)
class Flight:
    """A migration in flight, read from the tags of a key's VMs."""

    id: str
    source: ObservedVM
    target_cloud: str
    instance_type: str


def find_flight(vms: Sequence[ObservedVM]) -> Flight | None:
    """The migration in flight among one key's VMs, if any. The source is the VM
    tagged with its target; once switched (the source then names its successor) only
    the target's leftover id tag remains, and resuming finishes the switch."""
    for vm in vms:
        target = vm.tags.get(TAG_MIGRATION_TARGET, "")
        if vm.tags.get(TAG_MIGRATION) and "/" in target:
            cloud, _, itype = target.partition("/")
            return Flight(vm.tags[TAG_MIGRATION], vm, cloud, itype)
    for vm in vms:
        ident = vm.tags.get(TAG_MIGRATION, "")
        if not ident or is_retained(vm.tags):
            continue
        source = next(
            (s for s in vms if s.tags.get(TAG_MIGRATED_TO, "").endswith(vm.external_id)), None
        )
        if source is not None:
            return Flight(ident, source, vm.cloud, vm.instance_type)
    return None


class MigrationPlanner:
    """Adds MIGRATE actions (and retires expired sources) for one plan."""

    def __init__(self, inp: PlanInput, col: Collector) -> None:
        self.inp, self.col = inp, col
        self.now = parse_time(inp.created_at)

    def missing_capabilities(self, spec: VMSpec, source: str, target: str) -> str:
        """What the two clouds lack for a Cold migration of ``spec`` ("" if nothing)."""
        need = [
            (source, Capability.STOP),
            (source, Capability.IMAGE_EXPORT),
            (target, Capability.IMAGE_IMPORT),
        ]
        if any(
            v.attach_to == spec.key.name and v.key.namespace == spec.key.namespace
            for v in self.inp.desired.volumes.values()
        ):
            need.append((target, Capability.VOLUMES))
        missing = []
        for cloud, capability in need:
            info = self.inp.clouds.get(cloud)
            if info is None or capability not in info.capabilities:
                missing.append(f"{cloud} has no '{capability.value}'")
        return ", ".join(missing)

    def staging(self, source: str, target: str) -> dict[str, str] | None:
        """Where the disks pass through: object storage on the target, else on the
        source; None when neither has buckets (bytes then stream straight across)."""
        for cloud in (target, source):
            info = self.inp.clouds.get(cloud)
            if info is not None and Capability.BUCKETS in info.capabilities:
                return {"cloud": cloud, "bucket": staging_bucket(self.col.owner, cloud)}
        return None

    def _volumes(
        self, spec: VMSpec, source: ObservedVM, target: str, ident: str
    ) -> list[dict[str, Any]]:
        out = []
        ns, owner = spec.key.namespace, self.col.owner
        inventory = self.inp.inventory.clouds.get(source.cloud)
        for vol in inventory.volumes if inventory is not None else ():
            key = vol.key
            if key is None or vol.attached_to != source.external_id or is_retained(vol.tags):
                continue
            declared = self.inp.desired.volumes.get(key)
            if declared is None or key.namespace != ns:
                continue
            uid = resource_uid(owner, key, target, ident)
            tags = ownership_tags(owner, key, uid, declared.protect, declared.deletion_policy.value)
            tags[TAG_MIGRATION] = ident
            out.append(
                {
                    "key": str(key),
                    "externalId": vol.external_id,
                    "sizeGiB": max(declared.size_gib, vol.size_gib),
                    "class": declared.volume_class,
                    "name": cloud_name(key),
                    "imageUid": resource_uid(owner, key, target, ident + "/image"),
                    "tags": tags,
                }
            )
        return out

    def params(
        self, spec: VMSpec, source: ObservedVM, target: str, itype: str, ident: str, mode: str
    ) -> dict[str, Any]:
        owner, key = self.col.owner, spec.key
        uid = resource_uid(owner, key, target, ident)
        tags = ownership_tags(owner, key, uid, spec.protect, spec.deletion_policy.value)
        tags.update({TAG_PLACED_AT: self.inp.created_at, TAG_MIGRATION: ident})
        return {
            "mode": mode,
            "migrationId": ident,
            "strategy": spec.migration_strategy.value,
            "source": {
                "cloud": source.cloud,
                "externalId": source.external_id,
                "powerState": source.power_state.value,
            },
            "target": {
                "cloud": target,
                "name": cloud_name(key),
                "instanceType": itype,
                "powerState": spec.power_state.value,
                "diskGiB": max(spec.resources.disk_gib, source.disk_gib),
                "imageUid": resource_uid(owner, key, target, ident + "/image"),
                "tags": tags,
            },
            "volumes": self._volumes(spec, source, target, ident),
            "staging": self.staging(source.cloud, target),
            "retainSeconds": spec.retain_source_seconds,
        }

    def start(
        self, spec: VMSpec, source: ObservedVM, target: str, itype: str, price: float, why: str
    ) -> str:
        """A new migration of ``source`` to ``target``; returns the action id."""
        ident = migration_id(self.col.owner, spec.key, source.external_id, target)
        params = self.params(spec, source, target, itype, ident, "start")
        economics = self.inp.result.moves.get(spec.key)
        if economics is not None:
            params["economics"] = economics.to_json()
        return self._add(spec, source, target, itype, price, why, params)

    def resume(self, spec: VMSpec | None, flight: Flight, price: float, abort: bool) -> str:
        """Continue (or roll back) a migration in flight."""
        source, mode = flight.source, "abort" if abort else "resume"
        key = source.key
        assert key is not None
        if spec is None:  # the manifest was removed mid-migration: roll back, then delete
            spec, mode = VMSpec(key=key, resources=Resources(0, 0.0)), "abort"
        params = self.params(
            spec, source, flight.target_cloud, flight.instance_type, flight.id, mode
        )
        why = (
            "abort requested: roll back to the source"
            if mode == "abort"
            else f"migration {flight.id} to {flight.target_cloud} was interrupted; resume it"
        )
        return self._add(
            spec, source, flight.target_cloud, flight.instance_type, price, why, params
        )

    def _add(
        self,
        spec: VMSpec,
        source: ObservedVM,
        target: str,
        itype: str,
        price: float,
        why: str,
        params: dict[str, Any],
    ) -> str:
        abort = params["mode"] == "abort"
        running = spec.power_state is PowerState.RUNNING
        restarted = self.inp.running_price(
            source.cloud, source.instance_type, source.price_per_hour
        )
        after = (restarted if running else 0.0) if abort else price
        self.col.cost(source.cloud, source.price_per_hour, after if abort else 0.0)
        if not abort:
            self.col.cost(target, 0.0, price if running else 0.0)
        return self.col.add(
            ActionType.MIGRATE,
            spec.key,
            target,
            why,
            external_id=source.external_id,
            instance_type=itype,
            price_before=source.price_per_hour,
            price_after=after,
            params=params,
        )

    def retire_if_expired(self, key: ResourceKey, vm: ObservedVM) -> None:
        """Keep a migration's retained source until its time, then delete it (its
        volumes stay attached to it until then; ``storage`` deletes them first)."""
        until = parse_time(vm.tags.get(TAG_RETAIN_UNTIL, ""))
        successor = vm.tags.get(TAG_MIGRATED_TO, "") or "its successor"
        if until is not None and self.now is not None and self.now < until:
            self.col.cost(vm.cloud, vm.price_per_hour, vm.price_per_hour)
            return
        self.col.retire(
            key,
            vm.cloud,
            vm.external_id,
            vm.tags,
            f"source of a finished migration to {successor}, kept until "
            f"{vm.tags.get(TAG_RETAIN_UNTIL)}",
            price=vm.price_per_hour,
            instance_type=vm.instance_type,
            orphan_allowed=False,
        )
