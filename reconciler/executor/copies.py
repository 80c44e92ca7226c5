"""Bucket copies before planning: which copy is the source, and how the others differ.

For every declared Bucket with ``copies`` > 1 that has at least two copies, the source
is the copy on the first of ``spec.clouds`` that holds one, else the copy on the
alphabetically first cloud; each other copy is compared with it (executor.bucketsync,
one listing per copy). The planner turns drift into a ``sync`` action (or, with
driftPolicy Report, into a report).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from reconciler.executor.bucketsync import BucketRef, SyncReport, drift
from reconciler.executor.world import World
from reconciler.model.artifacts import BucketDrift, ReplicaDrift
from reconciler.model.cloud import Capability
from reconciler.model.errors import PlanError, ProviderError
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import ObservedBucket
from reconciler.model.specs import BucketSpec, DesiredState, DriftPolicy


def source_copy(spec: BucketSpec, copies: list[ObservedBucket]) -> ObservedBucket:
    by_cloud = {b.cloud: b for b in copies}
    for cloud in spec.clouds:
        if cloud in by_cloud:
            return by_cloud[cloud]
    return by_cloud[min(by_cloud)]


def _summary(
    report: SyncReport, source: ObservedBucket, replicas: list[ObservedBucket]
) -> BucketDrift:
    """The planner's view of a drift report (its replicas come in the order given)."""
    found = tuple(
        ReplicaDrift(
            bucket.cloud,
            bucket.external_id,
            r.missing,
            r.stale,
            r.extra,
            (*r.missing_keys, *r.stale_keys, *r.extra_keys)[:5],
            "; ".join(r.errors[:2]) if r.failed or r.errors else "",
        )
        for r, bucket in zip(report.replicas, replicas, strict=True)
    )
    return BucketDrift(source.cloud, source.external_id, report.objects, found)


def bucket_drift(desired: DesiredState, world: World) -> dict[ResourceKey, BucketDrift]:
    """Drift of every replicated Bucket (not looked at with driftPolicy Ignore)."""
    found: dict[ResourceKey, list[ObservedBucket]] = defaultdict(list)
    for bucket in world.inventory.all_buckets():
        if bucket.key is not None:
            found[bucket.key].append(bucket)
    out: dict[ResourceKey, BucketDrift] = {}
    for key, spec in sorted(desired.buckets.items()):
        copies = [b for b in found.get(key, []) if _has_objects(world, b.cloud)]
        if spec.copies < 2 or spec.drift_policy is DriftPolicy.IGNORE:
            continue
        if len({b.cloud for b in copies}) < 2:
            continue
        source = source_copy(spec, copies)
        replicas = [b for b in copies if b.cloud != source.cloud]
        refs = [BucketRef(world.providers[b.cloud], b.external_id) for b in replicas]
        try:
            report = drift(BucketRef(world.providers[source.cloud], source.external_id), refs)
        except ProviderError as exc:
            raise PlanError(f"{key}: cannot compare its copies: {exc}") from exc
        out[key] = _summary(report, source, replicas)
    return out


def _has_objects(world: World, cloud: str) -> bool:
    info = world.clouds.get(cloud)
    return info is not None and Capability.BUCKETS in info.capabilities


def with_bucket_drift(desired: DesiredState, world: World) -> World:
    """``world`` with the drift of every replicated Bucket's copies attached."""
    found = bucket_drift(desired, world)
    return dataclasses.replace(world, bucket_drift=found) if found else world
