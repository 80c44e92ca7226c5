"""Volume snapshots on demand (``reconciler snapshot``): the cloud calls with the same
retries as an apply, and a uid so a retried create makes one snapshot."""

from __future__ import annotations

import hashlib

from reconciler.executor.clock import now_iso
from reconciler.executor.retry import RetryPolicy, call_with_retry
from reconciler.executor.world import World
from reconciler.model.errors import PlanError
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.observed import ObservedVolume

RETRY = RetryPolicy(attempts=4)


def find_volume(world: World, key: ResourceKey) -> ObservedVolume:
    """The cloud volume of a declared Volume (the lowest id if there are several)."""
    found = [v for v in world.inventory.all_volumes() if v.key == key]
    if not found:
        raise PlanError(f"{key} does not exist in any cloud yet (apply first)")
    return min(found, key=lambda v: v.external_id)


def create_snapshot(world: World, volume: ObservedVolume, owner: str) -> tuple[str, str]:
    """Snapshot ``volume`` now; returns (snapshot id, time)."""
    assert volume.key is not None
    stamp = now_iso()
    uid = hashlib.sha256(f"{owner}|{volume.external_id}|{stamp}".encode()).hexdigest()[:20]
    tags = ownership_tags(owner, volume.key, uid)
    tags["reconciler.dev/snapshot-of"] = volume.external_id
    provider = world.providers[volume.cloud]
    snap = call_with_retry(lambda: provider.snapshot_volume(volume.external_id, tags), RETRY)
    return snap, stamp


def list_snapshots(world: World, volume: ObservedVolume) -> list[str]:
    provider = world.providers[volume.cloud]
    return call_with_retry(lambda: provider.list_snapshots(volume.external_id), RETRY)


def delete_snapshot(world: World, volume: ObservedVolume, snapshot_id: str) -> None:
    """Delete one of our snapshots of ``volume`` (refused for any other id)."""
    if snapshot_id not in list_snapshots(world, volume):
        raise PlanError(f"{snapshot_id} is not one of our snapshots of {volume.key}")
    provider = world.providers[volume.cloud]
    call_with_retry(lambda: provider.delete_snapshot(snapshot_id), RETRY)
