"""Storage placement: volumes follow their VM, buckets get ``copies`` distinct clouds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.broker.filters import policy_verdict
from reconciler.broker.state import World
from reconciler.model.cloud import Capability
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Inventory
from reconciler.model.placement import Placement, StoragePlacement, Unplaced
from reconciler.model.specs import BucketSpec, PolicySpec, VolumeSpec


@dataclass
class StorageResult:
    placed: dict[ResourceKey, StoragePlacement] = field(default_factory=dict)
    unplaced: dict[ResourceKey, Unplaced] = field(default_factory=dict)

    def record(self, key: ResourceKey, got: StoragePlacement | str) -> None:
        """A placement, or the reason (a string) why there is none."""
        if isinstance(got, str):
            self.unplaced[key] = Unplaced(key, (got,))
        else:
            self.placed[key] = got


def _existing(keys: list[tuple[ResourceKey | None, str]]) -> dict[ResourceKey, list[str]]:
    found: dict[ResourceKey, list[str]] = {}
    for key, cloud in keys:
        if key is not None:
            found.setdefault(key, []).append(cloud)
    return {k: sorted(set(v)) for k, v in found.items()}


def _eligible(
    world: World, policy: PolicySpec | None, cap: Capability
) -> tuple[list[str], list[str]]:
    """Clouds with ``cap`` that the policy allows, and reasons for the others."""
    ok: list[str] = []
    why: list[str] = []
    for name in world.cloud_names():
        if cap not in world.infos[name].capabilities:
            why.append(f"{name}: lacks capability {cap.value}")
            continue
        verdict = policy_verdict(policy, name, world.labels[name])
        if verdict is not None:
            why.append(f"{name}: {verdict[1]}")
            continue
        ok.append(name)
    return ok, why


def _block_price(world: World, cloud: str) -> float:
    return world.infos[cloud].block_storage_per_gib_month


def _object_price(world: World, cloud: str) -> float:
    return world.infos[cloud].object_storage_per_gib_month


def place_volume(
    world: World,
    vol: VolumeSpec,
    vm_placements: Mapping[ResourceKey, Placement],
    vm_keys: Mapping[tuple[str, str], ResourceKey],
    existing: list[str],
) -> StoragePlacement | str:
    """One volume: its VM's cloud, else spec.cloud, else sticky, else cheapest allowed."""
    ns = vol.key.namespace
    if vol.attach_to is not None:
        vm_key = vm_keys.get((ns, vol.attach_to))
        if vm_key is None:
            return f"attachTo VM {ns}/{vol.attach_to} is not declared"
        placement = vm_placements.get(vm_key)
        if placement is None:
            return f"attached VM {ns}/{vol.attach_to} is not placed"
        cloud = placement.cloud
        if cloud not in world.infos:
            return f"attached VM {ns}/{vol.attach_to} is on unreachable cloud {cloud}"
        if Capability.VOLUMES not in world.infos[cloud].capabilities:
            return f"cloud {cloud} of VM {vol.attach_to} lacks capability volumes"
        stay = "already exists there; " if cloud in existing else ""
        reason = f"{stay}follows VM {vol.attach_to} to {cloud}"
        return StoragePlacement(vol.key, (cloud,), reason, {cloud: _block_price(world, cloud)})
    policy = world.policy(ns, vol.policy_ref)
    if vol.policy_ref is not None and policy is None:
        return f"BrokerPolicy {ns}/{vol.policy_ref} not found"
    ok, why = _eligible(world, policy, Capability.VOLUMES)
    if vol.cloud is not None:
        if vol.cloud not in ok:
            detail = next((w for w in why if w.startswith(f"{vol.cloud}:")), "unreachable")
            return f"requested cloud {vol.cloud} is not usable ({detail})"
        chosen, reason = vol.cloud, f"requested cloud {vol.cloud}"
    elif sticky := [c for c in existing if c in ok]:
        chosen, reason = sticky[0], "already exists here; still allowed"
    elif ok:
        chosen = min(ok, key=lambda c: (_block_price(world, c), c))
        reason = f"cheapest allowed block storage (${_block_price(world, chosen):.4f}/GiB-month)"
    else:
        return "no allowed cloud offers volumes" + (f": {'; '.join(why)}" if why else "")
    return StoragePlacement(vol.key, (chosen,), reason, {chosen: _block_price(world, chosen)})


def place_bucket(world: World, bucket: BucketSpec, existing: list[str]) -> StoragePlacement | str:
    """``copies`` distinct clouds: existing copies, then spec.clouds, else cheapest allowed."""
    ns = bucket.key.namespace
    policy = world.policy(ns, bucket.policy_ref)
    if bucket.policy_ref is not None and policy is None:
        return f"BrokerPolicy {ns}/{bucket.policy_ref} not found"
    ok, why = _eligible(world, policy, Capability.BUCKETS)
    if bucket.clouds:
        missing = [c for c in bucket.clouds if c not in ok]
        pool = [c for c in bucket.clouds if c in ok]
        if missing:
            why = [f"requested cloud {c} is not usable" for c in missing] + why
        how = "requested clouds"
    else:
        pool = sorted(ok, key=lambda c: (_object_price(world, c), c))
        how = "cheapest allowed object storage"
    kept = [c for c in existing if c in pool]
    chosen = (kept + [c for c in pool if c not in kept])[: bucket.copies]
    if len(chosen) < bucket.copies:
        reasons = f"needs {bucket.copies} copies on distinct clouds, only {len(pool)} usable"
        return reasons + (f": {'; '.join(why)}" if why else "")
    n_kept = sum(1 for c in chosen if c in kept)
    stay = f"{n_kept} existing cop{'y' if n_kept == 1 else 'ies'} kept; " if n_kept else ""
    reason = stay + how
    prices = {c: _object_price(world, c) for c in chosen}
    return StoragePlacement(bucket.key, tuple(chosen), reason, prices)


def place_storage(
    world: World, inventory: Inventory, vm_placements: Mapping[ResourceKey, Placement]
) -> StorageResult:
    """Volumes (after VMs are placed) and buckets, in key order."""
    result = StorageResult()
    desired = world.desired
    vm_keys = {(k.namespace, k.name): k for k in desired.vms}
    vols = _existing([(v.key, v.cloud) for v in inventory.all_volumes()])
    buckets = _existing([(b.key, b.cloud) for b in inventory.all_buckets()])
    for key in sorted(desired.volumes):
        vol = desired.volumes[key]
        result.record(key, place_volume(world, vol, vm_placements, vm_keys, vols.get(key, [])))
    for key in sorted(desired.buckets):
        result.record(key, place_bucket(world, desired.buckets[key], buckets.get(key, [])))
    return result
