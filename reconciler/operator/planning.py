"""One planning step shared by the controller and ``reconciler plan --cluster``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from reconciler.executor.copies import with_bucket_drift
from reconciler.executor.engine import plan_world
from reconciler.executor.world import World, observe
from reconciler.model.errors import PlanError
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import ObservedVM
from reconciler.model.plan import Plan
from reconciler.operator.clouds import CloudProviders
from reconciler.operator.desired import ClusterDesired
from reconciler.operator.informer import CachedObject
from reconciler.operator.migrations import effective_abort
from reconciler.operator.report import PassReport

log = logging.getLogger(__name__)


def block_cloud_deletion(
    clouds: list[CachedObject], cluster: ClusterDesired, report: PassReport
) -> None:
    """A Cloud being deleted stays declared while it still holds our resources."""
    for obj in clouds:
        if not obj.deletion_timestamp:
            continue
        count = report.resources_on(obj.name)
        if count:
            report.blocked[obj.key] = (
                f"deletion waits: {count} managed resources still live on this cloud; "
                "delete them or move them (deny this cloud in their policy) first"
            )
        else:
            cluster.deleting[obj.key] = obj


def plan_cluster(
    cluster: ClusterDesired,
    cloud_objects: list[CachedObject],
    clouds: CloudProviders,
    owner: str,
    report: PassReport,
    checkpoint: Callable[[], None] = lambda: None,
    rounds: Mapping[ResourceKey, str] | None = None,
    migrating: frozenset[ResourceKey] = frozenset(),
) -> tuple[Plan, World]:
    """Credentials, observe, place and plan; fills ``report`` with what was seen.
    ``rounds`` and ``migrating``: see ``plan_for_operator``.

    Raises PlanError when a cloud cannot be used or observed (nothing may change
    then: an unobservable cloud's VMs would look missing) or a budget is exceeded.
    ``checkpoint`` runs between the steps; it may raise to abandon the pass.
    """
    desired = cluster.desired
    creds, errors = clouds.credentials(desired.clouds)
    report.cloud_errors = errors
    if errors:
        raise PlanError(
            "cannot use these clouds, so nothing is changed:\n  - "
            + "\n  - ".join(f"{name}: {why}" for name, why in sorted(errors.items()))
        )
    world = with_bucket_drift(desired, observe(clouds.providers(desired.clouds, creds)))
    checkpoint()
    report.saw(world)
    block_cloud_deletion(cloud_objects, cluster, report)
    plan = plan_for_operator(
        cluster, world, owner, report, checkpoint=checkpoint, rounds=rounds, migrating=migrating
    )
    return plan, world


def plan_for_operator(
    cluster: ClusterDesired,
    world: World,
    owner: str,
    report: PassReport,
    *,
    occupied: Sequence[ObservedVM] = (),
    checkpoint: Callable[[], None] = lambda: None,
    rounds: Mapping[ResourceKey, str] | None = None,
    migrating: frozenset[ResourceKey] = frozenset(),
) -> Plan:
    """Place and plan with the operator's rules: protected resources are kept with a
    warning (never a refused plan), invalid objects are held, deletions follow the
    object's current spec, migrations of VMs annotated to abort are rolled back
    (unless already switched: those finish). ``rounds`` are the completed rebalancing
    rounds; None (a scoped pass, which does not see everything) moves nothing for
    cost. ``migrating``: VMs being migrated in the background (they count against
    the disruption budget even before the clouds show it). Sets ``report.result``."""
    abort, late = effective_abort(cluster.abort, world.inventory)
    for key in late:
        log.warning(
            "migration abort requested too late: the migration already switched; finishing it",
            extra={"key": str(key)},
        )
    planned = plan_world(
        cluster.desired,
        world,
        owner,
        refuse_protected=False,
        hold=cluster.hold,
        retire_as=cluster.retire_as,
        occupied=occupied,
        checkpoint=checkpoint,
        rounds=rounds,
        abort=abort,
        migrating=migrating,
    )
    report.result = planned.result
    return planned.plan
