"""Bucket actions: copies created and removed, versioning, and copies kept in sync."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from reconciler.model.artifacts import BucketDrift
from reconciler.model.keys import TAG_SYSTEM, ResourceKey, ownership_tags
from reconciler.model.observed import Inventory, ObservedBucket
from reconciler.model.plan import ActionType, FieldChange
from reconciler.model.specs import BucketSpec, DriftPolicy
from reconciler.planner.collect import Collector
from reconciler.planner.diff import field_changes
from reconciler.planner.inputs import PlanInput


def bucket_copies(inventory: Inventory) -> dict[ResourceKey, list[ObservedBucket]]:
    """The observed copies of each Bucket, by its key (our system buckets, such as a
    migration's staging bucket, are no Bucket's copies)."""
    observed: dict[ResourceKey, list[ObservedBucket]] = defaultdict(list)
    for bucket in inventory.all_buckets():
        if bucket.key is not None and not bucket.tags.get(TAG_SYSTEM):
            observed[bucket.key].append(bucket)
    return observed


def plan_buckets(inp: PlanInput, col: Collector) -> None:
    observed = bucket_copies(inp.inventory)
    for key, spec in inp.desired.buckets.items():
        found = observed.pop(key, [])
        _plan_bucket(inp, col, spec, found)
    for key, leftovers in sorted(observed.items()):
        for bucket in leftovers:
            _remove_bucket(col, key, bucket, "no manifest declares it")


def _plan_bucket(
    inp: PlanInput, col: Collector, spec: BucketSpec, found: list[ObservedBucket]
) -> None:
    placed = inp.result.storage.get(spec.key)
    if placed is None:
        return
    by_cloud = {b.cloud: b for b in sorted(found, key=lambda b: b.external_id, reverse=True)}
    for bucket in found:
        if bucket.cloud not in placed.clouds or by_cloud.get(bucket.cloud) is not bucket:
            _remove_bucket(col, spec.key, bucket, f"copies is {spec.copies}; not a chosen copy")
    created: dict[str, tuple[str, str]] = {}  # cloud -> (action id, uid)
    for cloud in placed.clouds:
        have = by_cloud.get(cloud)
        if have is None:
            uid = col.uid(spec.key, cloud)
            created[cloud] = (
                col.add(
                    ActionType.CREATE,
                    spec.key,
                    cloud,
                    f"copy missing; {placed.reason}",
                    params={
                        "name": f"{spec.key.namespace}-{spec.key.name}-{uid[:8]}"[:63],
                        "versioning": spec.versioning,
                        "tags": ownership_tags(
                            col.owner, spec.key, uid, spec.protect, spec.deletion_policy.value
                        ),
                    },
                ),
                uid,
            )
        elif have.versioning != spec.versioning and spec.drift_policy is not DriftPolicy.CORRECT:
            changes = field_changes(
                {"versioning": have.versioning}, {"versioning": spec.versioning}
            )
            col.note_drift(spec.key, cloud, have.external_id, changes, spec.drift_policy)
        elif have.versioning != spec.versioning:
            col.add(
                ActionType.UPDATE,
                spec.key,
                cloud,
                f"spec.versioning is {spec.versioning}",
                external_id=have.external_id,
                changes=field_changes(
                    {"versioning": have.versioning}, {"versioning": spec.versioning}
                ),
                params={"versioning": spec.versioning},
            )
    kept = [b for c, b in by_cloud.items() if c in placed.clouds]
    _plan_sync(col, spec, kept, created, inp.bucket_drift.get(spec.key))


def _plan_sync(
    col: Collector,
    spec: BucketSpec,
    kept: list[ObservedBucket],
    created: dict[str, tuple[str, str]],
    drift: BucketDrift | None,
) -> None:
    """Copy what differs from the source copy to the others (new copies included)."""
    if spec.copies < 2 or spec.drift_policy is DriftPolicy.IGNORE or not kept:
        return
    if drift is None:
        if not created:
            return
        source = min(kept, key=lambda b: (b.cloud not in spec.clouds, b.cloud))
        source_cloud, source_bucket, objects = source.cloud, source.external_id, -1
    else:
        source_cloud, source_bucket, objects = (
            drift.source_cloud,
            drift.source_bucket,
            drift.objects,
        )
    replicas: list[dict[str, Any]] = []
    reasons: list[str] = []
    for rep in drift.replicas if drift is not None else ():
        if rep.error:
            col.warnings.append(
                f"{spec.key}: its copy {rep.bucket} on {rep.cloud} cannot be compared with "
                f"the source copy ({rep.error}); left as it is"
            )
        elif rep.total:
            replicas.append({"cloud": rep.cloud, "bucket": rep.bucket})
            reasons.append(
                f"{rep.cloud}: {rep.missing} missing, {rep.stale} stale, {rep.extra} extra"
            )
    if spec.drift_policy is DriftPolicy.REPORT:
        for rep in drift.replicas if drift is not None else ():
            if rep.total and not rep.error:
                change = FieldChange("objects", f"{rep.total} differ", f"as on {source_cloud}")
                col.note_drift(spec.key, rep.cloud, rep.bucket, (change,), spec.drift_policy)
        return
    deps = tuple(action for action, _ in created.values())
    for cloud, (_, uid) in sorted(created.items()):
        replicas.append({"cloud": cloud, "uid": uid})
        reasons.append(f"{cloud}: new copy")
    if not replicas or (objects == 0 and not any(r.get("bucket") for r in replicas)):
        return
    col.add(
        ActionType.SYNC,
        spec.key,
        source_cloud,
        f"copies differ from the source copy on {source_cloud}: " + "; ".join(reasons),
        external_id=source_bucket,
        depends_on=deps,
        params={"source": {"cloud": source_cloud, "bucket": source_bucket}, "replicas": replicas},
    )


def _remove_bucket(col: Collector, key: ResourceKey, bucket: ObservedBucket, why: str) -> None:
    col.retire(key, bucket.cloud, bucket.external_id, bucket.tags, why)
