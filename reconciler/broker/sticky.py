"""Needs per VM and the sticky pass: running VMs stay put while still allowed and fitting."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.broker.filters import Need, cloud_verdict, observed_fits, offer_verdict
from reconciler.broker.state import Pool, World
from reconciler.model.cloud import Capability, Offer
from reconciler.model.keys import (
    TAG_MIGRATION,
    TAG_MIGRATION_TARGET,
    TAG_OWNER,
    TAG_RETAIN_UNTIL,
    ResourceKey,
)
from reconciler.model.observed import Inventory, ObservedVM
from reconciler.model.placement import Placement, Unplaced
from reconciler.model.specs import PolicySpec, PowerState, VMSpec

STICKY_REASON = "already running here; still allowed and fits"


@dataclass(frozen=True, slots=True)
class FreeVM:
    """A VM the solver must place; ``note`` says why an old placement was abandoned."""

    spec: VMSpec
    need: Need
    note: str = ""


@dataclass
class StickyResult:
    placements: dict[ResourceKey, Placement]
    free: list[FreeVM]
    unplaced: dict[ResourceKey, Unplaced]
    needs: dict[ResourceKey, Need] = field(default_factory=dict)
    #: The observed VM of each key (``current_vms``), for the passes that follow.
    observed: dict[ResourceKey, ObservedVM] = field(default_factory=dict)


def make_need(
    world: World, vm: VMSpec, policy: PolicySpec | None, with_volumes: set[tuple[str, str]]
) -> Need | str:
    """The grouping key of a VM (``policy`` is its BrokerPolicy), or a reason string
    when that policy does not exist."""
    ns = vm.key.namespace
    if vm.policy_ref is not None and policy is None:
        return f"BrokerPolicy {ns}/{vm.policy_ref} not found"
    spread_set: ResourceKey | None = None
    spread_max: int | None = None
    if vm.owner_set is not None:
        vm_set = world.desired.vm_sets.get(vm.owner_set)
        spread_max = vm_set.max_per_cloud if vm_set is not None else None
        if spread_max is None and policy is not None:
            spread_max = policy.max_per_cloud
        spread_set = vm.owner_set if spread_max is not None else None
    return Need(
        vcpus=vm.resources.vcpus,
        memory_gib=float(vm.resources.memory_gib),
        gpus=vm.resources.gpus,
        namespace=ns,
        policy_ref=vm.policy_ref,
        pin=vm.pinned_cloud,
        instance_type=vm.instance_type,
        needs_stop=vm.power_state == PowerState.STOPPED,
        needs_volumes=(ns, vm.key.name) in with_volumes,
        spread_set=spread_set,
        spread_max=spread_max if spread_set is not None else None,
    )


def _standing(vm: ObservedVM) -> tuple[bool, bool, str]:
    """Which of a key's VMs *is* the VM (the smallest wins): not the stopped source a
    finished migration keeps for a while, not the target of a migration in flight
    (until the switch its source is the VM), then the lowest external id."""
    retained = bool(vm.tags.get(TAG_RETAIN_UNTIL))
    target = bool(vm.tags.get(TAG_MIGRATION)) and not vm.tags.get(TAG_MIGRATION_TARGET)
    return retained, target, vm.external_id


def current_vms(inventory: Inventory, owner: str) -> dict[ResourceKey, ObservedVM]:
    """The observed VM of each key (see ``_standing``); other owners' VMs are ignored."""
    found: dict[ResourceKey, ObservedVM] = {}
    for obs in inventory.all_vms():
        key = obs.key
        if key is None or obs.tags.get(TAG_OWNER, owner) != owner:
            continue
        best = found.get(key)
        if best is None or _standing(obs) < _standing(best):
            found[key] = obs
    return found


def companions(inventory: Inventory, current: dict[ResourceKey, ObservedVM]) -> list[ObservedVM]:
    """VMs that hold capacity besides the current ones: migration sources kept after the
    switch and targets of migrations in flight (a stopped VM keeps its allocation)."""
    out = []
    for vm in inventory.all_vms():
        if vm.key is None or current.get(vm.key) is vm:
            continue
        if vm.tags.get(TAG_RETAIN_UNTIL) or vm.tags.get(TAG_MIGRATION):
            out.append(vm)
    return out


def observed_offer(obs: ObservedVM) -> Offer:
    """An Offer describing what runs, for types no longer in the catalog."""
    return Offer(
        cloud=obs.cloud,
        name=obs.instance_type,
        vcpus=obs.vcpus,
        memory_gib=obs.memory_gib,
        price_per_hour=obs.price_per_hour,
        gpus=obs.gpus,
        price_source="observed",
    )


class _Sticky:
    """The pass itself. Its placements carry no candidates: the broker adds the full
    table once the groups are known."""

    def __init__(self, world: World, pool: Pool) -> None:
        self.world = world
        self.pool = pool
        self.result = StickyResult({}, [], {})

    def _place(self, vm: VMSpec, need: Need, offer: Offer, reason: str) -> None:
        self.result.placements[vm.key] = Placement(vm.key, offer, reason, True)
        self.result.needs[vm.key] = need
        self.pool.add_spread(need.spread_set, offer.cloud)

    def _spread_full(self, need: Need, cloud: str) -> str | None:
        if self.pool.spread_full(need, cloud):
            return f"spread limit maxPerCloud={need.spread_max} reached on {cloud}"
        return None

    def stick(
        self, vm: VMSpec, need: Need, policy: PolicySpec | None, obs: ObservedVM
    ) -> str | None:
        """Keep ``vm`` where it runs; returns a resize marker or a note why it cannot stay."""
        where = f"{obs.cloud}/{obs.instance_type}"
        info = self.world.infos.get(obs.cloud)
        if info is None:
            if obs.cloud in self.world.desired.clouds:
                reason = f"cloud {obs.cloud} is unreachable; left where it is"
                self._place(vm, need, observed_offer(obs), reason)
                return None
            return f"was on {where}, but cloud {obs.cloud} is no longer declared"
        verdict = cloud_verdict(need, policy, info, self.world.labels[obs.cloud])
        if verdict is not None:
            return f"was on {where}, no longer allowed there: {verdict[1]}"
        full = self._spread_full(need, obs.cloud)
        if full is not None:
            return f"was on {where}, but the {full}"
        return None

    def keep(self, vm: VMSpec, need: Need, obs: ObservedVM) -> None:
        offer = self.world.find_offer(obs.cloud, obs.instance_type) or observed_offer(obs)
        self.pool.consume(obs.cloud, obs.vcpus, obs.memory_gib)
        self._place(vm, need, offer, STICKY_REASON)

    def resize(self, vm: VMSpec, need: Need, obs: ObservedVM, why: str) -> str | None:
        """Cheapest fitting type in the same cloud, or a note why the VM must move."""
        where = f"was on {obs.cloud}/{obs.instance_type}"
        full = self._spread_full(need, obs.cloud)
        if full is not None:
            return f"{where}, but the {full}"
        if Capability.RESIZE not in self.world.infos[obs.cloud].capabilities:
            return f"{where}: {why}, and {obs.cloud} cannot resize in place"
        for offer in self.world.offers[obs.cloud]:
            if offer_verdict(need, offer) is None and self.pool.blocked(offer) is None:
                self.pool.take(offer)
                reason = (
                    f"in-place resize on {obs.cloud}: {why}; {offer.name} is the cheapest "
                    "fitting type there"
                )
                self._place(vm, need, offer, reason)
                return None
        return f"{where}: {why}, and no fitting type with free capacity there"


def sticky_pass(world: World, pool: Pool, inventory: Inventory, owner: str) -> StickyResult:
    """Place running VMs first (they consume capacity and spread slots), in key order."""
    desired = world.desired
    with_volumes = {(v.key.namespace, v.attach_to) for v in desired.volumes.values() if v.attach_to}
    observed = current_vms(inventory, owner)
    for other in companions(inventory, observed):
        pool.consume(other.cloud, other.vcpus, other.memory_gib)
    state = _Sticky(world, pool)
    deferred: list[tuple[VMSpec, Need, ObservedVM, str]] = []
    for vm in sorted(desired.vms.values(), key=lambda v: v.key):
        policy = world.policy(vm.key.namespace, vm.policy_ref)
        need = make_need(world, vm, policy, with_volumes)
        if isinstance(need, str):
            state.result.unplaced[vm.key] = Unplaced(vm.key, (need,))
            continue
        obs = observed.get(vm.key)
        if obs is None:
            state.result.free.append(FreeVM(vm, need))
            continue
        note = state.stick(vm, need, policy, obs)
        if vm.key in state.result.placements:
            continue
        if note is not None:
            state.result.free.append(FreeVM(vm, need, note))
            continue
        why = observed_fits(need, obs.instance_type, obs.vcpus, obs.memory_gib, obs.gpus)
        if why is None:
            state.keep(vm, need, obs)
        else:
            deferred.append((vm, need, obs, why))
    for vm, need, obs, why in deferred:
        note = state.resize(vm, need, obs, why)
        if note is not None:
            state.result.free.append(FreeVM(vm, need, note))
    state.result.free.sort(key=lambda f: f.spec.key)
    state.result.observed = observed
    return state.result
