"""The broker's entry points: exact placement, the greedy baseline and the LP bound."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler.broker.explain import (
    candidates,
    placed_reason,
    sticky_candidates,
    unplaced_reasons,
)
from reconciler.broker.filters import Need
from reconciler.broker.groups import Group, Grouper
from reconciler.broker.milp import Counts, build_model, lp_bound, solve
from reconciler.broker.rebalance import RebalanceContext, RebalanceOutcome, Rebalancer
from reconciler.broker.state import Pool, World, offer_order
from reconciler.broker.sticky import StickyResult, sticky_pass
from reconciler.broker.storage import place_storage
from reconciler.model.cloud import CloudInfo, Offer
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Inventory, ObservedVM
from reconciler.model.placement import (
    BrokerResult,
    Candidate,
    Placement,
    SolverStats,
    Unplaced,
)
from reconciler.model.specs import DesiredState

DEFAULT_TIME_LIMIT = 10.0


@dataclass
class _Prepared:
    world: World
    pool: Pool
    sticky: StickyResult
    groups: list[Group]
    inventory: Inventory
    grouper: Grouper
    rebalance: RebalanceContext | None = None

    @property
    def sticky_cost(self) -> float:
        return sum(p.offer.price_per_hour for p in self.sticky.placements.values())


def _prepare(
    desired: DesiredState,
    clouds: Mapping[str, CloudInfo],
    offers: Mapping[str, Sequence[Offer]],
    inventory: Inventory,
    owner: str,
    occupied: Sequence[ObservedVM] = (),
    rebalance: RebalanceContext | None = None,
) -> _Prepared:
    world = World.build(desired, clouds, offers)
    pool = Pool.from_world(world)
    pool.occupy(occupied)
    sticky = sticky_pass(world, pool, inventory, owner)
    grouper = Grouper(world)
    groups = grouper.build(sticky.free)
    return _Prepared(world, pool, sticky, groups, inventory, grouper, rebalance)


def _explain_sticky(prep: _Prepared) -> dict[ResourceKey, Placement]:
    """Sticky placements with the full candidate table, shared per (need, offer)."""
    tables: dict[tuple[Need, str, str], tuple[Candidate, ...]] = {}
    groups: dict[Need, Group] = {g.need: g for g in prep.groups}  # reuse the filters' work
    out: dict[ResourceKey, Placement] = {}
    for key, placement in prep.sticky.placements.items():
        need = prep.sticky.needs[key]
        offer = placement.offer
        table = tables.get((need, offer.cloud, offer.name))
        if table is None:
            group = groups.get(need)
            if group is None:
                group = groups[need] = prep.grouper.describe(need)
            table = sticky_candidates(prep.world, group, offer, prep.pool)
            tables[(need, offer.cloud, offer.name)] = table
        out[key] = replace(placement, candidates=table)
    return out


def _cheapest(group: Group) -> tuple[Counts, int]:
    """Exact for an uncoupled group: all its VMs on its cheapest option."""
    if not group.options:
        return [], group.size
    return [(group.options[0], group.size)], 0


def _greedy(prep: _Prepared, chosen: Sequence[int]) -> dict[int, tuple[Counts, int]]:
    """VMs of the ``chosen`` groups one by one in key order, each on the cheapest
    offer with room left (the naive baseline)."""
    tallies: dict[int, dict[Offer, int]] = {gi: {} for gi in chosen}
    order = sorted((vm.spec.key, gi) for gi in chosen for vm in prep.groups[gi].vms)
    pool = prep.pool
    for _, gi in order:
        need = prep.groups[gi].need
        for offer in prep.groups[gi].fitting:
            if not pool.spread_full(need, offer.cloud) and pool.blocked(offer) is None:
                pool.take(offer)
                pool.add_spread(need.spread_set, offer.cloud)
                tallies[gi][offer] = tallies[gi].get(offer, 0) + 1
                break
    return {
        gi: (list(t.items()), prep.groups[gi].size - sum(t.values())) for gi, t in tallies.items()
    }


def _uncoupled(prep: _Prepared) -> tuple[dict[int, tuple[Counts, int]], list[int], float]:
    """Every uncoupled group on its cheapest option (exact), the indices of the coupled
    groups, and the $/h fixed before any solve: sticky VMs plus those uncoupled groups."""
    results = {gi: _cheapest(g) for gi, g in enumerate(prep.groups) if not g.coupled}
    coupled = [gi for gi in range(len(prep.groups)) if gi not in results]
    fixed = prep.sticky_cost + sum(
        o.price_per_hour * n for counts, _ in results.values() for o, n in counts
    )
    return results, coupled, fixed


def _finish(
    prep: _Prepared,
    results: Mapping[int, tuple[Counts, int]],
    start: float,
    solver: str,
    status: str,
    variables: int = 0,
    lp_bound_per_hour: float | None = None,
) -> BrokerResult:
    """Turn per-group counts into Placements/Unplaced (VMs in key order onto offers in
    price order), rebalance (when given a context), place storage, and attach the
    solver statistics."""
    placements: dict[ResourceKey, Placement] = _explain_sticky(prep)
    unplaced: dict[ResourceKey, Unplaced] = dict(prep.sticky.unplaced)
    for gi, group in enumerate(prep.groups):
        counts, missing = results[gi]
        cands = candidates(prep.world, group, counts, missing, prep.pool)
        slots = [o for o, n in sorted(counts, key=lambda c: offer_order(c[0])) for _ in range(n)]
        reasons: dict[Offer, str] = {}
        for vm, offer in zip(group.vms, slots, strict=False):
            base = reasons.get(offer) or reasons.setdefault(offer, placed_reason(group, offer))
            reason = f"{vm.note}; now: {base}" if vm.note else base
            placements[vm.spec.key] = Placement(vm.spec.key, offer, reason, False, cands)
        if missing > 0:
            why = unplaced_reasons(prep.world, group, prep.pool)
            for vm in group.vms[len(slots) :]:
                extra = (vm.note,) if vm.note else ()
                unplaced[vm.spec.key] = Unplaced(vm.spec.key, extra + why, cands)
    outcome = RebalanceOutcome()
    if prep.rebalance is not None:
        needs = {**prep.sticky.needs, **{vm.spec.key: g.need for g in prep.groups for vm in g.vms}}
        outcome = Rebalancer(
            prep.world,
            prep.pool,
            prep.grouper,
            needs,
            prep.inventory,
            prep.sticky.observed,
            prep.rebalance,
        ).run(placements)
    storage = place_storage(prep.world, prep.inventory, placements)
    stats = SolverStats(
        solver=solver,
        groups=len(prep.groups),
        variables=variables,
        seconds=time.perf_counter() - start,
        objective_per_hour=sum(p.offer.price_per_hour for p in placements.values()),
        lp_bound_per_hour=lp_bound_per_hour,
        status=status,
    )
    return BrokerResult(
        placements,
        unplaced,
        storage.placed,
        storage.unplaced,
        stats,
        outcome.moves,
        outcome.held,
        outcome.notes,
        tuple(outcome.rounds),
    )


def place(
    desired: DesiredState,
    clouds: Mapping[str, CloudInfo],
    offers: Mapping[str, Sequence[Offer]],
    inventory: Inventory,
    owner: str = "reconciler",
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    occupied: Sequence[ObservedVM] = (),
    rebalance: RebalanceContext | None = None,
) -> BrokerResult:
    """Exact min-cost placement of every declared VM (and storage), explained.

    Running VMs stay put while allowed and fitting; the rest are assigned by HiGHS
    (scipy.optimize.milp), placing as many VMs as possible first and then at least cost.
    ``occupied`` are VMs outside ``desired`` that keep running (the operator places a
    few changed objects at a time): they use capacity and spread slots, nothing else.
    With ``rebalance`` (the clock and finished rounds), running VMs are also moved when
    their policy's round is open and a move pays (see rebalance.py), and every move
    waits for its policy's windows and budget.
    """
    start = time.perf_counter()
    prep = _prepare(desired, clouds, offers, inventory, owner, occupied, rebalance)
    results, coupled, fixed = _uncoupled(prep)
    if not coupled:
        return _finish(
            prep, results, start, "cheapest-per-group", "optimal; no coupling constraints", 0, fixed
        )
    model = build_model([prep.groups[gi] for gi in coupled], prep.pool)
    sol = solve(model, time_limit)
    if sol.status == "no-solution":
        results.update(_greedy(prep, coupled))
        return _finish(
            prep, results, start, "highs-milp", "no-solution; greedy fallback", sol.variables
        )
    bound = lp_bound(model, sum(sol.unplaced), time_limit)
    for gi, counts, missing in zip(coupled, sol.counts, sol.unplaced, strict=True):
        results[gi] = (counts, missing)
        for offer, n in counts:
            prep.pool.take(offer, n)
            prep.pool.add_spread(prep.groups[gi].need.spread_set, offer.cloud, n)
    total_bound = None if bound is None else fixed + bound
    return _finish(prep, results, start, "highs-milp", sol.status, sol.variables, total_bound)


def place_greedy(
    desired: DesiredState,
    clouds: Mapping[str, CloudInfo],
    offers: Mapping[str, Sequence[Offer]],
    inventory: Inventory,
    owner: str = "reconciler",
) -> BrokerResult:
    """The naive baseline: same filters and stickiness, then first-fit by price."""
    start = time.perf_counter()
    prep = _prepare(desired, clouds, offers, inventory, owner)
    found = _greedy(prep, range(len(prep.groups)))
    return _finish(prep, found, start, "greedy", "heuristic")


def lp_lower_bound(
    desired: DesiredState,
    clouds: Mapping[str, CloudInfo],
    offers: Mapping[str, Sequence[Offer]],
    inventory: Inventory,
    owner: str = "reconciler",
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> float:
    """A lower bound on place()'s $/h: sticky VMs, plus the LP relaxation of the cost
    phase with the (integer) minimum number of unplaced VMs fixed."""
    prep = _prepare(desired, clouds, offers, inventory, owner)
    _, coupled, total = _uncoupled(prep)
    if coupled:
        model = build_model([prep.groups[gi] for gi in coupled], prep.pool)
        bound = lp_bound(model, None, time_limit)
        total += bound if bound is not None else 0.0
    return total
