"""Rebalancing: cost-driven moves with hysteresis, and the budget every move obeys.

Runs after placement. Running VMs stay where they are (the sticky pass) unless:
* they must move (no longer allowed or fitting there): the solver placed them
  elsewhere; such a move still waits for its policy's maintenance window and
  disruption budget (``maxConcurrentMigrations``), staying put meanwhile;
* their policy's rebalancing round is open and moving is worth it: the cheapest
  allowed offer with room saves more over the horizon than the move costs plus the
  thresholds (``MoveEconomics``), the VM is past its cooldown, and the budget allows.
Candidates are taken by net gain, best first. Pure: the clock comes in the context.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.broker.filters import Need
from reconciler.broker.groups import Grouper
from reconciler.broker.schedule import in_window, iso, next_round, parse_time, period_of
from reconciler.broker.state import Pool, World
from reconciler.broker.sticky import observed_offer
from reconciler.model.cloud import Capability, Offer
from reconciler.model.keys import TAG_MIGRATION_TARGET, TAG_PLACED_AT, ResourceKey
from reconciler.model.moves import MoveEconomics, RebalanceRound, RoundState
from reconciler.model.observed import Inventory, ObservedVM
from reconciler.model.placement import Placement
from reconciler.model.specs import MigrationStrategy, PolicySpec, PowerState, VMSpec


@dataclass(frozen=True)
class RebalanceContext:
    """The clock, per BrokerPolicy the period of its last completed round, and the VMs
    the caller knows are being migrated though the clouds may not show it yet (the
    operator's background migrations before their first step): they count against
    ``maxConcurrentMigrations`` like the migrations the clouds show."""

    now: dt.datetime
    completed: Mapping[ResourceKey, str] = field(default_factory=dict)
    migrating: frozenset[ResourceKey] = frozenset()


@dataclass
class RebalanceOutcome:
    moves: dict[ResourceKey, MoveEconomics] = field(default_factory=dict)
    held: dict[ResourceKey, str] = field(default_factory=dict)
    notes: dict[ResourceKey, str] = field(default_factory=dict)
    rounds: list[RebalanceRound] = field(default_factory=list)


class _Budget:
    """One policy's round and disruption budget during one pass."""

    def __init__(self, policy: PolicySpec, ctx: RebalanceContext, in_flight: int) -> None:
        reb = policy.rebalance
        self.policy = policy
        self.period = period_of(reb.interval, ctx.now)
        self.done = bool(self.period) and ctx.completed.get(policy.key) == self.period
        self.window = in_window(reb.windows, ctx.now)
        self.in_flight = in_flight
        self.slots = reb.max_concurrent_migrations - in_flight
        self.moves = 0
        self.held = 0
        nxt = next_round(reb.interval, ctx.now)
        self.next_round = iso(nxt) if nxt is not None else ""

    @property
    def open_for_cost(self) -> bool:
        return bool(self.period) and not self.done and self.window

    def refusal(self) -> str | None:
        """Why one more migration may not start now, or None (and count it)."""
        if not self.window:
            self.held += 1
            return "outside the policy's maintenance windows"
        if self.slots <= 0:
            self.held += 1
            return (
                f"maxConcurrentMigrations={self.policy.rebalance.max_concurrent_migrations} reached"
            )
        self.slots -= 1
        self.moves += 1
        return None

    def round(self) -> RebalanceRound:
        reb = self.policy.rebalance
        if not self.period:
            state = RoundState.NEVER
        elif self.done:
            state = RoundState.DONE
        elif not self.window:
            state = RoundState.WAITING_WINDOW
        elif self.moves or self.in_flight or self.held:
            state = RoundState.OPEN
        else:
            state = RoundState.COMPLETES
        return RebalanceRound(
            self.policy.key,
            reb.interval,
            self.period,
            state,
            self.moves,
            self.in_flight,
            reb.max_concurrent_migrations,
            self.held,
            self.next_round if state in (RoundState.DONE, RoundState.COMPLETES) else "",
        )


@dataclass(frozen=True)
class _Candidate:
    key: ResourceKey
    obs: ObservedVM
    offer: Offer
    econ: MoveEconomics


class Rebalancer:
    """One pass over the placements (mutated in place) of one ``place`` call."""

    def __init__(
        self,
        world: World,
        pool: Pool,
        grouper: Grouper,
        needs: Mapping[ResourceKey, Need],
        inventory: Inventory,
        observed: Mapping[ResourceKey, ObservedVM],
        ctx: RebalanceContext,
    ) -> None:
        """``observed``: the VM of each key, as the sticky pass found it (current_vms)."""
        self.world, self.pool, self.grouper, self.needs, self.ctx = world, pool, grouper, needs, ctx
        self.observed = observed
        self.in_flight = {
            vm.key for vm in inventory.all_vms() if vm.key and vm.tags.get(TAG_MIGRATION_TARGET)
        } | (ctx.migrating & world.desired.vms.keys())
        self.out = RebalanceOutcome()
        self.budgets: dict[ResourceKey, _Budget] = {}
        self._fitting: dict[Need, list[Offer]] = {}
        self._data_gib = self._volume_gib()
        counts: dict[ResourceKey, int] = defaultdict(int)
        for key in self.in_flight:
            spec = world.desired.vms.get(key)
            policy = self._policy(spec) if spec is not None else None
            if policy is not None:
                counts[policy.key] += 1
        for policy in world.desired.policies.values():
            self.budgets[policy.key] = _Budget(policy, ctx, counts[policy.key])

    def _policy(self, spec: VMSpec) -> PolicySpec | None:
        return self.world.policy(spec.key.namespace, spec.policy_ref)

    def _volume_gib(self) -> dict[tuple[str, str], int]:
        sizes: dict[tuple[str, str], int] = defaultdict(int)
        for vol in self.world.desired.volumes.values():
            if vol.attach_to:
                sizes[(vol.key.namespace, vol.attach_to)] += vol.size_gib
        return sizes

    def run(self, placements: dict[ResourceKey, Placement]) -> RebalanceOutcome:
        self._forced(placements)
        self._cost(placements)
        self.out.rounds = [b.round() for _, b in sorted(self.budgets.items())]
        return self.out

    # -- moves the solver made (the VM cannot stay) ------------------------------------
    def _forced(self, placements: dict[ResourceKey, Placement]) -> None:
        for key in sorted(placements):
            placement, obs = placements[key], self.observed.get(key)
            if obs is None or key in self.in_flight or placement.cloud == obs.cloud:
                continue
            spec = self.world.desired.vms[key]
            policy = self._policy(spec)
            budget = self.budgets.get(policy.key) if policy is not None else None
            why = budget.refusal() if budget is not None else None
            if why is None:
                continue
            self.pool.release(placement.offer)
            self.pool.consume(obs.cloud, obs.vcpus, obs.memory_gib)
            here = self.world.find_offer(obs.cloud, obs.instance_type) or observed_offer(obs)
            reason = f"must move to {placement.cloud} ({placement.reason}); held: {why}"
            placements[key] = Placement(key, here, reason, True, placement.candidates)
            self.out.held[key] = why

    # -- moves worth making --------------------------------------------------------------
    def _cost(self, placements: dict[ResourceKey, Placement]) -> None:
        """Best net gain first, until nothing more is worth moving: a move frees room
        that may make another worthwhile, so candidates are found again after each
        batch (each VM moves or is refused at most once per pass)."""
        settled: set[ResourceKey] = set()
        while True:
            found = [
                cand
                for key in sorted(placements)
                if key not in settled and (cand := self._consider(key, placements[key]))
            ]
            found.sort(key=lambda c: (-c.econ.net_over_horizon, c.key))
            moved = 0
            for cand in found:
                if not self._fits(cand.key, cand.offer):
                    again = self._consider(cand.key, placements[cand.key])
                    if again is None:
                        continue
                    cand = again
                settled.add(cand.key)
                policy = self._policy(self.world.desired.vms[cand.key])
                assert policy is not None
                why = self.budgets[policy.key].refusal()
                if why is not None:
                    self.out.notes[cand.key] = (
                        f"a move is worth it ({cand.econ.arithmetic()}); {why}"
                    )
                    continue
                self._take(cand, placements)
                moved += 1
            if not moved:
                return

    def _eligible(self, key: ResourceKey, placement: Placement) -> tuple[ObservedVM, VMSpec] | None:
        obs, spec = self.observed.get(key), self.world.desired.vms.get(key)
        if obs is None or spec is None or key in self.in_flight or placement.cloud != obs.cloud:
            return None
        policy = self._policy(spec)
        budget = self.budgets.get(policy.key) if policy is not None else None
        if budget is None or not budget.open_for_cost or key not in self.needs:
            return None
        if spec.power_state is not PowerState.RUNNING or spec.pinned_cloud or spec.protect:
            return None
        placed = parse_time(obs.tags.get(TAG_PLACED_AT, ""))
        cooldown = dt.timedelta(hours=budget.policy.rebalance.cooldown_hours)
        if placed is not None and self.ctx.now - placed < cooldown:
            self.out.notes[key] = f"in cooldown until {iso(placed + cooldown)}"
            return None
        return obs, spec

    def _consider(self, key: ResourceKey, placement: Placement) -> _Candidate | None:
        eligible = self._eligible(key, placement)
        if eligible is None:
            return None
        obs, spec = eligible
        policy = self._policy(spec)
        assert policy is not None
        for offer in self._fitting_offers(self.needs[key]):
            if offer.price_per_hour >= placement.offer.price_per_hour:
                break
            if offer.cloud == obs.cloud or not self._can_migrate(spec, obs.cloud, offer.cloud):
                continue
            if not self._fits(key, offer):
                continue
            econ = self._economics(spec, obs, placement.offer, offer, policy)
            why = econ.verdict()
            if why is None:
                return _Candidate(key, obs, offer, econ)
            self.out.notes[key] = f"stays on {obs.cloud}: {offer.cloud}/{offer.name} {why}"
            return None
        return None

    def _fitting_offers(self, need: Need) -> list[Offer]:
        found = self._fitting.get(need)
        if found is None:
            found = self._fitting[need] = self.grouper.describe(need).fitting
        return found

    def _fits(self, key: ResourceKey, offer: Offer) -> bool:
        need = self.needs[key]
        return self.pool.blocked(offer) is None and not self.pool.spread_full(need, offer.cloud)

    def _can_migrate(self, spec: VMSpec, source: str, target: str) -> bool:
        if spec.migration_strategy is MigrationStrategy.REPLACE:
            return True
        src, dst = self.world.infos[source].capabilities, self.world.infos[target].capabilities
        return (
            Capability.IMAGE_EXPORT in src
            and Capability.STOP in src
            and Capability.IMAGE_IMPORT in dst
        )

    def _economics(
        self, spec: VMSpec, obs: ObservedVM, here: Offer, there: Offer, policy: PolicySpec
    ) -> MoveEconomics:
        reb = policy.rebalance
        disk = max(spec.resources.disk_gib, obs.disk_gib)
        data = disk + self._data_gib.get((spec.key.namespace, spec.key.name), 0)
        return MoveEconomics(
            current_per_hour=here.price_per_hour,
            target_per_hour=there.price_per_hour,
            horizon_days=reb.horizon_days,
            data_gib=float(data),
            egress_per_gib=self.world.infos[obs.cloud].egress_per_gib,
            conversion_cost=reb.conversion_cost,
            downtime_cost=reb.downtime_cost,
            min_savings_per_month=reb.min_savings_per_month,
            min_savings_percent=reb.min_savings_percent,
        )

    def _take(self, cand: _Candidate, placements: dict[ResourceKey, Placement]) -> None:
        need, obs = self.needs[cand.key], cand.obs
        self.pool.take(cand.offer)
        self.pool.give_back(obs.cloud, obs.vcpus, obs.memory_gib)
        self.pool.add_spread(need.spread_set, obs.cloud, -1)
        self.pool.add_spread(need.spread_set, cand.offer.cloud, 1)
        old = placements[cand.key]
        reason = f"rebalance: {cand.econ.arithmetic()}"
        placements[cand.key] = Placement(cand.key, cand.offer, reason, False, old.candidates)
        self.out.moves[cand.key] = cand.econ
        self.out.notes.pop(cand.key, None)
