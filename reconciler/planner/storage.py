"""Volume and Bucket actions: create, grow, attach/detach, versioning, delete."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from reconciler.model.keys import HOURS_PER_MONTH, ResourceKey, ownership_tags
from reconciler.model.observed import ObservedVM, ObservedVolume
from reconciler.model.plan import ActionType
from reconciler.model.specs import DriftPolicy, VolumeSpec
from reconciler.planner.collect import Collector, action_id, cloud_name
from reconciler.planner.diff import field_changes
from reconciler.planner.images import volume_source
from reconciler.planner.inputs import PlanInput
from reconciler.planner.migrate import is_retained
from reconciler.planner.vms import VMTarget


def _volume_price(inp: PlanInput, cloud: str, size_gib: int) -> float:
    info = inp.clouds.get(cloud)
    per_month = info.block_storage_per_gib_month if info else 0.0
    return size_gib * per_month / HOURS_PER_MONTH


def plan_volumes(inp: PlanInput, col: Collector, vms: Mapping[ResourceKey, VMTarget]) -> None:
    observed: dict[ResourceKey, list[ObservedVolume]] = defaultdict(list)
    retained = {
        (vm.cloud, vm.external_id): vm for vm in inp.inventory.all_vms() if is_retained(vm.tags)
    }
    for vol in inp.inventory.all_volumes():
        if vol.key is None:
            continue
        source = retained.get((vol.cloud, vol.attached_to or ""))
        if source is not None:  # kept with a migration's source VM, and deleted with it
            _with_retained_source(col, vol, source)
        else:
            observed[vol.key].append(vol)
    for key, spec in inp.desired.volumes.items():
        found = sorted(observed.pop(key, []), key=lambda v: v.external_id)
        vm_target = _vm_of(spec, vms)
        if vm_target is not None and vm_target.migrating:
            for vol in found:  # the migration moves them
                col.cost(vol.cloud, vol.price_per_hour, vol.price_per_hour)
            continue
        _plan_volume(inp, col, spec, found, vm_target)
    for key, leftovers in sorted(observed.items()):
        for vol in leftovers:
            _remove_volume(col, key, vol, "no manifest declares it")


def _with_retained_source(col: Collector, vol: ObservedVolume, source: ObservedVM) -> None:
    """A volume of a migration's retained source VM: kept while the VM is, deleted
    (detached first) when this plan deletes the VM, which then waits for it."""
    assert vol.key is not None and source.key is not None
    vm_delete = action_id(ActionType.DELETE, source.key, source.cloud, source.external_id)
    if not col.has(vm_delete):
        col.cost(vol.cloud, vol.price_per_hour, vol.price_per_hour)
        return
    why = f"attached to {source.external_id}, the migration source deleted in this plan"
    _remove_volume(col, vol.key, vol, why)
    deleted = action_id(ActionType.DELETE, vol.key, vol.cloud, vol.external_id)
    if col.has(deleted):
        col.wait_for(vm_delete, deleted)


def _vm_of(spec: VolumeSpec, vms: Mapping[ResourceKey, VMTarget]) -> VMTarget | None:
    if not spec.attach_to:
        return None
    return vms.get(ResourceKey("VirtualMachine", spec.key.namespace, spec.attach_to))


def _plan_volume(
    inp: PlanInput,
    col: Collector,
    spec: VolumeSpec,
    found: list[ObservedVolume],
    vm_target: VMTarget | None,
) -> None:
    placed = inp.result.storage.get(spec.key)
    if placed is None:
        for vol in found:
            col.cost(vol.cloud, vol.price_per_hour, vol.price_per_hour)
        return
    cloud = placed.clouds[0]
    keep = next((v for v in found if v.cloud == cloud), None)
    for other in found:
        if other is not keep:
            why = (
                f"its VM moved to {cloud}"
                if other.cloud != cloud
                else "duplicate (same reconciler.dev/key)"
            )
            _remove_volume(col, spec.key, other, why)
    price = _volume_price(inp, cloud, spec.size_gib)
    if keep is None:
        uid = col.uid(spec.key, cloud)
        params: dict[str, object] = {
            "name": cloud_name(spec.key),
            "sizeGiB": spec.size_gib,
            "class": spec.volume_class,
            "tags": ownership_tags(
                col.owner, spec.key, uid, spec.protect, spec.deletion_policy.value
            ),
        }
        source = volume_source(inp, col, spec, cloud)
        if source is not None:
            params.update(source.params("sourceImage", "sourceImageFrom"))
        made_from = f" from Image {spec.image}" if source is not None else ""
        create_id = col.add(
            ActionType.CREATE,
            spec.key,
            cloud,
            f"not present{made_from}; {placed.reason}",
            price_after=price,
            depends_on=source.depends_on if source is not None else (),
            params=params,
        )
        col.cost(cloud, 0.0, price)
        if vm_target is not None:
            _attach(col, spec, cloud, None, vm_target, (create_id,))
        return
    if spec.drift_policy is not DriftPolicy.CORRECT:
        _report_volume(col, spec, keep, vm_target)
        return
    col.cost(cloud, keep.price_per_hour, price)
    _converge_volume(col, spec, keep, price, vm_target)


def _report_volume(
    col: Collector, spec: VolumeSpec, vol: ObservedVolume, vm_target: VMTarget | None
) -> None:
    """driftPolicy Report/Ignore: size and attachment differences are not changed."""
    col.cost(vol.cloud, vol.price_per_hour, vol.price_per_hour)
    wanted = vm_target.external_id if vm_target else None
    drift = field_changes(
        {"sizeGiB": vol.size_gib, "attachedTo": vol.attached_to},
        {"sizeGiB": max(spec.size_gib, vol.size_gib), "attachedTo": wanted},
    )
    col.note_drift(spec.key, vol.cloud, vol.external_id, drift, spec.drift_policy)


def _converge_volume(
    col: Collector,
    spec: VolumeSpec,
    vol: ObservedVolume,
    price: float,
    vm_target: VMTarget | None,
) -> None:
    deps: tuple[str, ...] = ()
    if spec.size_gib > vol.size_gib:
        deps = (
            col.add(
                ActionType.UPDATE,
                spec.key,
                vol.cloud,
                f"grow {vol.size_gib} -> {spec.size_gib} GiB",
                external_id=vol.external_id,
                price_before=vol.price_per_hour,
                price_after=price,
                changes=field_changes({"sizeGiB": vol.size_gib}, {"sizeGiB": spec.size_gib}),
                params={"sizeGiB": spec.size_gib},
            ),
        )
    elif spec.size_gib < vol.size_gib:
        col.warnings.append(
            f"{spec.key}: volumes cannot shrink ({vol.size_gib} GiB -> {spec.size_gib} GiB); "
            "left at its current size"
        )
    wanted = vm_target.external_id if vm_target else None
    attached_elsewhere = vol.attached_to is not None and vol.attached_to != wanted
    if attached_elsewhere or (vm_target is None and vol.attached_to):
        deps = (
            col.add(
                ActionType.DETACH,
                spec.key,
                vol.cloud,
                f"attached to {vol.attached_to}, which is not its declared VM",
                external_id=vol.external_id,
                depends_on=deps,
                params={},
            ),
        )
    if vm_target is not None and (vol.attached_to != wanted or wanted is None):
        _attach(col, spec, vol.cloud, vol.external_id, vm_target, deps)


def _attach(
    col: Collector,
    spec: VolumeSpec,
    cloud: str,
    external_id: str | None,
    vm: VMTarget,
    deps: tuple[str, ...],
) -> None:
    vm_key = ResourceKey("VirtualMachine", spec.key.namespace, spec.attach_to or "")
    all_deps = deps + ((vm.action_id,) if vm.action_id else ())
    col.add(
        ActionType.ATTACH,
        spec.key,
        cloud,
        f"attach to {vm_key}",
        external_id=external_id,
        depends_on=all_deps,
        params={"vmKey": str(vm_key), "vmExternalId": vm.external_id},
    )


def _remove_volume(col: Collector, key: ResourceKey, vol: ObservedVolume, why: str) -> None:
    col.retire(
        key,
        vol.cloud,
        vol.external_id,
        vol.tags,
        why,
        price=vol.price_per_hour,
        detach_first=vol.attached_to is not None,
    )
