"""Explanations: the candidates each group considered and human reasons for the outcome.

Candidates are shared by every VM of a group (one tuple, not one per VM) and capped at
MAX_CANDIDATES: every chosen offer, then cheaper offers the solver could not use
(no capacity, spread limit), then the cheapest dearer offers, one entry per cloud the
filters rejected as a whole (priced at that cloud's cheapest offer, detail counting its
offers), then a sample of offers that are too small or the wrong type.
"""

from __future__ import annotations

from reconciler.broker.filters import Need
from reconciler.broker.groups import Group
from reconciler.broker.milp import Counts
from reconciler.broker.state import Pool, World, offer_order
from reconciler.model.cloud import Offer
from reconciler.model.placement import Candidate, Outcome

MAX_CANDIDATES = 50
MAX_BLOCKED = 30
MAX_DEARER = 10
MAX_REJECTS = 5
MAX_LISTED = 5


def blocked_verdict(offer: Offer, need: Need, pool: Pool) -> tuple[Outcome, str]:
    """Why the solver could not use ``offer`` (more) for this need, after the solve."""
    if pool.spread_full(need, offer.cloud):
        name = need.spread_set.name if need.spread_set else ""
        return (
            Outcome.SPREAD_LIMIT,
            f"spread limit maxPerCloud={need.spread_max} of {name} reached on {offer.cloud}",
        )
    why = pool.blocked(offer)
    if why is not None:
        return Outcome.NO_CAPACITY, why
    return Outcome.NO_CAPACITY, f"capacity on {offer.cloud} went to a cheaper overall assignment"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = f", +{len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return f"{len(names)} cloud{'s' if len(names) != 1 else ''} ({shown}{more})"


def _candidate(o: Offer, outcome: Outcome, detail: str) -> Candidate:
    return Candidate(o.cloud, o.name, o.price_per_hour, outcome, detail)


def _cloud_candidate(world: World, cloud: str, outcome: Outcome, detail: str) -> Candidate:
    offers = world.offers.get(cloud, ())
    n = len(offers)
    if not offers:
        return Candidate(cloud, "", 0.0, outcome, f"{detail} (cloud has no offers)")
    text = f"{detail} (all {n} offer{'s' if n != 1 else ''})"
    return _candidate(offers[0], outcome, text)


def _with_rejects(world: World, group: Group, out: list[Candidate]) -> tuple[Candidate, ...]:
    """``out`` followed by what the filters rejected, capped at MAX_CANDIDATES."""
    out += [_cloud_candidate(world, c, oc, d) for c, oc, d in group.cloud_rejects]
    out += [_candidate(o, oc, d) for o, oc, d in group.offer_rejects[:MAX_REJECTS]]
    return tuple(out[:MAX_CANDIDATES])


def candidates(
    world: World, group: Group, counts: Counts, unplaced: int, pool: Pool
) -> tuple[Candidate, ...]:
    """The shared, capped explanation tuple of one group."""
    chosen = sorted(((o, n) for o, n in counts if n > 0), key=lambda c: offer_order(c[0]))
    used = {(o.cloud, o.name) for o, _ in chosen}
    ref = chosen[0][0].price_per_hour if chosen else 0.0
    top = max((o.price_per_hour for o, _ in chosen), default=0.0)
    out: list[Candidate] = []
    for o, n in chosen:
        detail = f"{n} of {group.size} VMs"
        if unplaced > 0 or o.price_per_hour < top:  # full: say why the rest went elsewhere
            detail += f"; then {blocked_verdict(o, group.need, pool)[1]}"
        out.append(_candidate(o, Outcome.CHOSEN, detail))
    blocked: list[Candidate] = []
    dearer: list[Candidate] = []
    for o in group.fitting:
        if (o.cloud, o.name) in used:
            continue
        if unplaced > 0 or o.price_per_hour < top:
            if len(blocked) < MAX_BLOCKED:
                blocked.append(_candidate(o, *blocked_verdict(o, group.need, pool)))
        elif len(dearer) < MAX_DEARER:
            detail = f"+${o.price_per_hour - ref:.4f}/h vs chosen"
            dearer.append(_candidate(o, Outcome.MORE_EXPENSIVE, detail))
        if len(blocked) >= MAX_BLOCKED and len(dearer) >= MAX_DEARER:
            break
    return _with_rejects(world, group, out + blocked + dearer)


def _not_moved(o: Offer, here: Offer, need: Need, pool: Pool) -> Candidate:
    """A cheaper offer a running VM stays away from: spread, capacity, or no cost moves."""
    if o.cloud != here.cloud and pool.spread_full(need, o.cloud):
        return _candidate(o, *blocked_verdict(o, need, pool))
    blocked = pool.blocked(o)
    if blocked is not None:
        return _candidate(o, Outcome.NO_CAPACITY, blocked)
    saving = here.price_per_hour - o.price_per_hour
    detail = f"-${saving:.4f}/h, but a running VM is not moved for cost (rebalancing decides that)"
    return _candidate(o, Outcome.KEPT_RUNNING, detail)


def sticky_candidates(
    world: World, group: Group, offer: Offer, pool: Pool
) -> tuple[Candidate, ...]:
    """The table for a VM that stays where it runs: the offer it keeps, the cheaper
    offers it is not moved to and why, dearer ones, and what the filters rejected."""
    here = _candidate(offer, Outcome.CHOSEN, "stays where it runs")
    cheaper: list[Candidate] = []
    dearer: list[Candidate] = []
    for o in group.fitting:
        if (o.cloud, o.name) == (offer.cloud, offer.name):
            continue
        delta = o.price_per_hour - offer.price_per_hour
        if delta < 0 and len(cheaper) < MAX_BLOCKED:
            cheaper.append(_not_moved(o, offer, group.need, pool))
        elif delta >= 0 and len(dearer) < MAX_DEARER:
            detail = f"+${delta:.4f}/h vs where it runs"
            dearer.append(_candidate(o, Outcome.MORE_EXPENSIVE, detail))
    return _with_rejects(world, group, [here, *cheaper, *dearer])


def placed_reason(group: Group, offer: Offer) -> str:
    """Why a VM of this group got ``offer``."""
    price = f"{offer.cloud}/{offer.name} at ${offer.price_per_hour:.4f}/h"
    cheaper = sum(1 for o in group.fitting if o.price_per_hour < offer.price_per_hour)
    if cheaper == 0:
        return f"cheapest allowed offer that fits {group.need.resources_text()}: {price}"
    return (
        f"cheapest offer with room: {price}; {cheaper} cheaper offer"
        f"{'s' if cheaper != 1 else ''} blocked by capacity or spread (see candidates)"
    )


def _filter_reasons(world: World, group: Group) -> list[str]:
    need = group.need
    reasons: list[str] = []
    pin_lost = need.pin is not None and need.pin not in world.infos
    if pin_lost:
        where = "unreachable" if need.pin in world.desired.clouds else "not declared"
        reasons.append(f"pinned to cloud {need.pin}, which is {where}")
    by_detail: dict[tuple[Outcome, str], list[str]] = {}
    for cloud, outcome, detail in group.cloud_rejects:
        if outcome == Outcome.PINNED_ELSEWHERE:
            continue
        by_detail.setdefault((outcome, detail), []).append(cloud)
    for (_, detail), clouds in by_detail.items():
        reasons.append(f"{detail} on {_listed(clouds)}")
    return reasons


def _size_reasons(group: Group) -> list[str]:
    need = group.need
    if not group.largest:
        return []
    if need.instance_type is not None and group.largest["vcpus"][0] <= 0:
        return [f"instance type {need.instance_type} is not offered by any allowed cloud"]
    reasons: list[str] = []
    wanted = {"vcpus": need.vcpus, "memory": need.memory_gib, "gpus": need.gpus}
    units = {"vcpus": "vCPUs", "memory": "GiB of memory", "gpus": "GPUs"}
    for dim, value in wanted.items():
        best, where = group.largest[dim]
        if best < value:
            reasons.append(f"no offer has {value:g} {units[dim]} (largest {best:g} on {where})")
    if not reasons:
        reasons.append(f"no single offer has {need.resources_text()} together")
    return reasons


def unplaced_reasons(world: World, group: Group, pool: Pool) -> tuple[str, ...]:
    """Human reasons, aggregated by outcome, why (some) VMs of a group got no offer."""
    if not world.infos:
        return ("no reachable cloud",)
    reasons = _filter_reasons(world, group)
    if not group.fitting:
        reasons += _size_reasons(group)
        return tuple(reasons) or ("no offer passes the filters",)
    spread: list[str] = []
    seen: set[str] = set()
    for o in group.options:
        if o.cloud in seen:
            continue
        seen.add(o.cloud)
        outcome, detail = blocked_verdict(o, group.need, pool)
        if outcome == Outcome.SPREAD_LIMIT:
            spread.append(o.cloud)
        elif len(reasons) < 12:
            reasons.append(detail)
    if spread:
        need = group.need
        reasons.append(
            f"spread limit maxPerCloud={need.spread_max} of "
            f"{need.spread_set.name if need.spread_set else ''} reached on {_listed(spread)}"
        )
    return tuple(reasons)
