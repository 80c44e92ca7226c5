"""VM actions: create, resize, start/stop, replace, delete duplicates and undeclared."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from reconciler.broker.sticky import observed_offer
from reconciler.model.keys import TAG_DELETION_POLICY, TAG_PROTECT, ResourceKey, ownership_tags
from reconciler.model.observed import ObservedVM
from reconciler.model.placement import Placement
from reconciler.model.plan import ActionType
from reconciler.model.specs import DriftPolicy, MigrationStrategy, PowerState, VMSpec
from reconciler.planner.collect import Collector, cloud_name, is_protected
from reconciler.planner.diff import field_changes
from reconciler.planner.images import import_for
from reconciler.planner.inputs import PlanInput
from reconciler.planner.migrate import MigrationPlanner, find_flight, is_retained


@dataclass(frozen=True, slots=True)
class VMTarget:
    """Where a VM will be after the plan: its cloud, its id if it already exists, and
    the action that brings it there (for volumes to depend on)."""

    cloud: str
    external_id: str | None
    action_id: str | None
    #: A migration moves it (with its volumes): volume actions are the migration's.
    migrating: bool = False


def _running_price(vm: VMSpec, placement: Placement) -> float:
    return placement.offer.price_per_hour if vm.power_state is PowerState.RUNNING else 0.0


def plan_vms(inp: PlanInput, col: Collector) -> dict[ResourceKey, VMTarget]:
    """Add every VM action to ``col``; return where each declared VM will live."""
    observed: dict[ResourceKey, list[ObservedVM]] = defaultdict(list)
    for vm in inp.inventory.all_vms():
        key = vm.key
        if key is None:
            col.warnings.append(
                f"{vm.cloud}: VM {vm.external_id} carries our owner tag but no valid key; "
                "left alone"
            )
            continue
        observed[key].append(vm)
    targets: dict[ResourceKey, VMTarget] = {}
    mig = MigrationPlanner(inp, col)
    for key, spec in inp.desired.vms.items():
        found = sorted(observed.pop(key, []), key=lambda o: o.external_id)
        target = _plan_key(inp, col, mig, spec, found)
        if target is not None:
            targets[key] = target
    for _key, leftovers in sorted(observed.items()):
        flight = find_flight(leftovers)
        if flight is not None:  # roll the migration back first; the next plan deletes
            mig.resume(None, flight, 0.0, abort=True)
            continue
        for vm in leftovers:
            _delete(col, vm, "no manifest declares it")
    return targets


def _plan_key(
    inp: PlanInput, col: Collector, mig: MigrationPlanner, spec: VMSpec, found: list[ObservedVM]
) -> VMTarget | None:
    """One declared VM: retained migration sources, a migration in flight, or the rest."""
    for vm in found:
        if is_retained(vm.tags):
            mig.retire_if_expired(spec.key, vm)
    flight = find_flight(found)
    if flight is not None:
        placement = inp.result.placements.get(spec.key)
        same = placement is not None and placement.cloud == flight.target_cloud
        price = placement.offer.price_per_hour if placement is not None and same else 0.0
        action = mig.resume(spec, flight, price, abort=spec.key in inp.abort)
        return VMTarget(flight.target_cloud, None, action, migrating=True)
    active = [vm for vm in found if not is_retained(vm.tags)]
    return _plan_declared(inp, col, mig, spec, active)


def _plan_declared(
    inp: PlanInput, col: Collector, mig: MigrationPlanner, spec: VMSpec, found: list[ObservedVM]
) -> VMTarget | None:
    placement = inp.result.placements.get(spec.key)
    if placement is None:
        for vm in found:
            col.cost(vm.cloud, vm.price_per_hour, vm.price_per_hour)
            col.warnings.append(
                f"{spec.key} cannot be placed any more; left running on {vm.cloud} "
                f"({vm.external_id})"
            )
        return VMTarget(found[0].cloud, found[0].external_id, None) if found else None
    same_cloud = [o for o in found if o.cloud == placement.cloud]
    same_cloud.sort(key=lambda o: (o.instance_type != placement.offer.name, o.external_id))
    keep = same_cloud[0] if same_cloud else None
    extras = [o for o in found if o is not keep]
    if keep is not None:
        target = _converge(inp, col, spec, placement, keep)
    elif extras:
        target = _move(inp, col, mig, spec, placement, extras.pop(0))
    else:
        target = _create(inp, col, spec, placement, "not running anywhere")
    for dup in extras:
        _delete(
            col,
            dup,
            f"duplicate of {target.external_id or 'the VM being created'} "
            "(same reconciler.dev/key)",
            orphan_allowed=False,
        )
    return target


def _create(
    inp: PlanInput, col: Collector, spec: VMSpec, placement: Placement, why: str
) -> VMTarget:
    uid = col.uid(spec.key, placement.cloud)
    price = _running_price(spec, placement)
    params = _create_params(col, spec, placement, uid)
    image = import_for(inp, col, spec, placement.cloud)
    if image is not None:
        params.update(image.params("image", "imageFrom"))
    ident = col.add(
        ActionType.CREATE,
        spec.key,
        placement.cloud,
        f"{why}; {placement.reason}",
        instance_type=placement.offer.name,
        price_after=price,
        depends_on=image.depends_on if image else (),
        params=params,
    )
    col.cost(placement.cloud, 0.0, price)
    return VMTarget(placement.cloud, None, ident)


def _create_params(
    col: Collector, spec: VMSpec, placement: Placement, uid: str
) -> dict[str, object]:
    return {
        "name": cloud_name(spec.key),
        "instanceType": placement.offer.name,
        "image": spec.image or "",
        "powerState": spec.power_state.value,
        "diskGiB": spec.resources.disk_gib,
        "tags": ownership_tags(col.owner, spec.key, uid, spec.protect, spec.deletion_policy.value),
    }


def _move(
    inp: PlanInput,
    col: Collector,
    mig: MigrationPlanner,
    spec: VMSpec,
    placement: Placement,
    old: ObservedVM,
) -> VMTarget:
    """Move a running VM: migrate it with its data (Cold), or replace it (Replace)."""
    if spec.migration_strategy is MigrationStrategy.REPLACE:
        return _replace(col, spec, placement, old)
    if is_protected(old.tags) or spec.protect:
        col.protected.append(
            f"{spec.key} ({old.external_id} on {old.cloud}) should move to {placement.cloud} "
            "but is protected (a migration deletes its source)"
        )
        col.cost(old.cloud, old.price_per_hour, old.price_per_hour)
        return VMTarget(old.cloud, old.external_id, None)
    missing = mig.missing_capabilities(spec, old.cloud, placement.cloud)
    if missing:
        col.warnings.append(
            f"{spec.key} should move from {old.cloud} to {placement.cloud} but cannot be "
            f"migrated: {missing}; left where it is (migration.strategy Replace recreates it "
            "from its image instead, without its disk contents)"
        )
        col.cost(old.cloud, old.price_per_hour, old.price_per_hour)
        return VMTarget(old.cloud, old.external_id, None)
    price = _running_price(spec, placement)
    ident = mig.start(spec, old, placement.cloud, placement.offer.name, price, placement.reason)
    return VMTarget(placement.cloud, None, ident, migrating=True)


def _replace(col: Collector, spec: VMSpec, placement: Placement, old: ObservedVM) -> VMTarget:
    if is_protected(old.tags) or spec.protect:
        col.protected.append(
            f"{spec.key} ({old.external_id} on {old.cloud}) must move to {placement.cloud} "
            "but is protected"
        )
        col.cost(old.cloud, old.price_per_hour, old.price_per_hour)
        return VMTarget(old.cloud, old.external_id, None)
    uid = col.uid(spec.key, placement.cloud)
    price = _running_price(spec, placement)
    params = _create_params(col, spec, placement, uid)
    params.update({"fromCloud": old.cloud, "fromExternalId": old.external_id})
    ident = col.add(
        ActionType.REPLACE,
        spec.key,
        placement.cloud,
        f"moves from {old.cloud}: {placement.reason}. migration.strategy is Replace: the new "
        "VM starts from its image and the old one's disk contents are not copied",
        external_id=old.external_id,
        instance_type=placement.offer.name,
        price_before=old.price_per_hour,
        price_after=price,
        params=params,
    )
    col.cost(old.cloud, old.price_per_hour, 0.0)
    col.cost(placement.cloud, 0.0, price)
    return VMTarget(placement.cloud, None, ident)


def _converge(
    inp: PlanInput, col: Collector, spec: VMSpec, placement: Placement, vm: ObservedVM
) -> VMTarget:
    """Resize, retag, start or stop a VM that stays where it is (with driftPolicy Report
    or Ignore, differences in size and power are reported or passed over, not changed)."""
    if spec.drift_policy is not DriftPolicy.CORRECT:
        drift = field_changes(
            {"instanceType": vm.instance_type, "powerState": vm.power_state.value},
            {"instanceType": placement.offer.name, "powerState": spec.power_state.value},
        )
        col.note_drift(spec.key, vm.cloud, vm.external_id, drift, spec.drift_policy)
        placement = replace(placement, offer=observed_offer(vm))
        spec = replace(spec, power_state=vm.power_state)
    new_price = _running_price(spec, placement)
    col.cost(vm.cloud, vm.price_per_hour, new_price)
    wanted_tags = {
        TAG_PROTECT: "true" if spec.protect else "false",
        TAG_DELETION_POLICY: spec.deletion_policy.value,
    }
    have_tags = {k: vm.tags.get(k, "") for k in wanted_tags}
    before = {"instanceType": vm.instance_type, "tags": have_tags}
    after = {"instanceType": placement.offer.name, "tags": wanted_tags}
    last: str | None = None
    changes = field_changes(before, after)
    if changes:
        resize = vm.instance_type != placement.offer.name
        reason = (
            f"resize {vm.instance_type} -> {placement.offer.name}: {placement.reason}"
            if resize
            else "protect/deletionPolicy changed; recorded on the resource"
        )
        last = col.add(
            ActionType.UPDATE,
            spec.key,
            vm.cloud,
            reason,
            external_id=vm.external_id,
            instance_type=placement.offer.name,
            price_before=vm.price_per_hour,
            price_after=new_price if not resize or vm.power_state is PowerState.RUNNING else 0.0,
            changes=changes,
            params={
                "instanceType": placement.offer.name if resize else None,
                "tags": {**dict(vm.tags), **wanted_tags},
            },
        )
    if vm.power_state is not spec.power_state:
        kind = ActionType.START if spec.power_state is PowerState.RUNNING else ActionType.STOP
        last = col.add(
            kind,
            spec.key,
            vm.cloud,
            f"spec.powerState is {spec.power_state.value}; it is {vm.power_state.value}",
            external_id=vm.external_id,
            instance_type=placement.offer.name,
            price_before=vm.price_per_hour,
            price_after=new_price,
            depends_on=(last,) if last else (),
            changes=field_changes(
                {"powerState": vm.power_state.value}, {"powerState": spec.power_state.value}
            ),
            params={"powerState": spec.power_state.value},
        )
    return VMTarget(vm.cloud, vm.external_id, last)


def _delete(col: Collector, vm: ObservedVM, reason: str, orphan_allowed: bool = True) -> None:
    key = vm.key
    assert key is not None
    col.retire(
        key,
        vm.cloud,
        vm.external_id,
        vm.tags,
        reason,
        price=vm.price_per_hour,
        instance_type=vm.instance_type,
        orphan_allowed=orphan_allowed,
    )
