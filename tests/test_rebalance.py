"""Rebalancing: unit checks of rounds and windows, and property tests of what must
always hold (hypothesis): every move pays for itself plus the thresholds; the budget
and the windows are never exceeded; applying the moves and planning again moves
nothing; prices oscillating inside the thresholds never move anything."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.broker import RebalanceContext, place
from reconciler.broker.schedule import in_window, next_round, period_of
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import TAG_KEY, TAG_OWNER, TAG_PLACED_AT, ResourceKey
from reconciler.model.moves import MoveEconomics, RoundState
from reconciler.model.observed import CloudInventory, Inventory, ObservedVM
from reconciler.model.placement import BrokerResult
from reconciler.model.specs import (
    Capacity,
    DesiredState,
    PolicySpec,
    PowerState,
    Rebalance,
    Resources,
    VMSpec,
    Window,
)

NS = "r"
POLICY = ResourceKey("BrokerPolicy", NS, "p")
NOW = dt.datetime(2026, 12, 5, 3, 30, tzinfo=dt.UTC)  # a Saturday


def test_periods_and_next_rounds() -> None:
    assert period_of("Daily", NOW) == "2026-12-05"
    assert period_of("Weekly", NOW) == "2026-W49"
    assert period_of("Monthly", NOW) == "2026-12"
    assert period_of("Never", NOW) == ""
    assert next_round("Daily", NOW) == dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    assert next_round("Weekly", NOW) == dt.datetime(2026, 12, 7, tzinfo=dt.UTC)  # Monday
    assert next_round("Monthly", NOW) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_windows_include_ones_that_pass_midnight() -> None:
    late_friday = Window(("Fri",), 22 * 60, 6)  # Fri 22:00 - Sat 04:00
    assert in_window([late_friday], NOW)
    assert not in_window([late_friday], NOW + dt.timedelta(hours=1))
    assert not in_window([Window(("Sun",), 0, 24)], NOW)
    assert in_window([Window((), 3 * 60, 1)], NOW)  # every day 03:00-04:00
    assert in_window([], NOW)


def test_economics_arithmetic() -> None:
    econ = MoveEconomics(0.40, 0.30, 30, 30.0, 0.02, 1.0, 2.0, 5.0, 10.0)
    assert round(econ.savings_per_month, 2) == 73.0
    assert round(econ.savings_over_horizon, 2) == 72.0
    assert round(econ.migration_cost, 2) == 3.6  # 0.60 egress + 1 + 2
    assert round(econ.threshold, 2) == 4.93  # $5/mo over 30 of 30.4 days
    assert econ.verdict() is None
    assert "below minSavingsPercent" in (replace(econ, min_savings_percent=30).verdict() or "")
    assert "not more than" in (replace(econ, conversion_cost=70).verdict() or "")


# -- a small world of clouds, each with one instance type of a random price -----------
@dataclass
class Case:
    desired: DesiredState
    clouds: dict[str, CloudInfo]
    offers: dict[str, list[Offer]]
    inventory: Inventory
    policy: PolicySpec


def vm_key(i: int) -> ResourceKey:
    return ResourceKey("VirtualMachine", NS, f"vm{i:02d}")


def observed(key: ResourceKey, offer: Offer, placed_at: dt.datetime) -> ObservedVM:
    tags = {TAG_OWNER: "reconciler", TAG_KEY: str(key), TAG_PLACED_AT: placed_at.isoformat()}
    return ObservedVM(offer.cloud, f"i-{key.name}", offer.name, offer.vcpus, offer.memory_gib,
                      PowerState.RUNNING, offer.price_per_hour, tags, disk_gib=20)  # fmt: skip


def inventory_of(vms: list[ObservedVM], clouds: dict[str, CloudInfo]) -> Inventory:
    return Inventory({c: CloudInventory(c, tuple(v for v in vms if v.cloud == c)) for c in clouds})


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_clouds = draw(st.integers(2, 4))
    clouds, offers = {}, {}
    for i in range(n_clouds):
        name = f"c{i}"
        cap = Capacity(instances=draw(st.integers(1, 8))) if draw(st.booleans()) else None
        egress = draw(st.sampled_from([0.0, 0.01, 0.09]))
        caps = frozenset(Capability)
        clouds[name] = CloudInfo(name, "sim", "r", {}, caps, capacity=cap, egress_per_gib=egress)
        price = draw(st.integers(5, 100)) / 100
        offers[name] = [Offer(name, f"{name}.std", 2, 4.0, price)]
    windows = (Window((), 3 * 60, 2),) if draw(st.booleans()) else ()
    outside = draw(st.booleans()) and bool(windows)
    reb = Rebalance(
        interval="Daily",
        min_savings_percent=draw(st.sampled_from([0.0, 5.0, 20.0])),
        min_savings_per_month=draw(st.sampled_from([0.0, 1.0, 10.0])),
        horizon_days=draw(st.sampled_from([7, 30, 90])),
        cooldown_hours=draw(st.sampled_from([0, 24])),
        max_concurrent_migrations=draw(st.integers(0, 6)),
        windows=(Window((), 12 * 60, 1),) if outside else windows,
        conversion_cost=draw(st.sampled_from([0.0, 2.0])),
    )
    policy = PolicySpec(POLICY, rebalance=reb)
    n_vms = draw(st.integers(1, 10))
    specs, running = {}, []
    for i in range(n_vms):
        key = vm_key(i)
        specs[key] = VMSpec(key, Resources(2, 4.0, 20), policy_ref="p")
        home = offers[f"c{draw(st.integers(0, n_clouds - 1))}"][0]
        age = dt.timedelta(hours=draw(st.sampled_from([1, 100])))
        running.append(observed(key, home, NOW - age))
    desired = DesiredState(policies={POLICY: policy}, vms=specs)
    return Case(desired, clouds, offers, inventory_of(running, clouds), policy)


def plan(case: Case, completed: dict[ResourceKey, str] | None = None) -> BrokerResult:
    ctx = RebalanceContext(NOW, completed or {})
    return place(case.desired, case.clouds, case.offers, case.inventory, rebalance=ctx)


def moved(case: Case, result: BrokerResult) -> dict[ResourceKey, str]:
    current = {vm.key: vm.cloud for vm in case.inventory.all_vms()}
    return {k: p.cloud for k, p in result.placements.items() if current.get(k) != p.cloud}


def applied(case: Case, result: BrokerResult) -> Case:
    """The world after the moves: each moved VM runs on its target, placed now."""
    vms = []
    for vm in case.inventory.all_vms():
        assert vm.key is not None
        target = result.placements[vm.key].offer
        vms.append(vm if target.cloud == vm.cloud else observed(vm.key, target, NOW))
    return replace(case, inventory=inventory_of(vms, case.clouds))


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(cases())
def test_every_move_pays_for_itself_plus_the_thresholds(case: Case) -> None:
    result = plan(case)
    for key in moved(case, result):
        econ = result.moves[key]
        assert econ.verdict() is None
        assert econ.savings_over_horizon > econ.migration_cost + econ.threshold
        assert econ.savings_percent >= case.policy.rebalance.min_savings_percent
        assert econ.target_per_hour < econ.current_per_hour


@PROPS
@given(cases())
def test_budget_windows_and_capacity_are_never_exceeded(case: Case) -> None:
    result = plan(case)
    reb = case.policy.rebalance
    moves = moved(case, result)
    assert len(moves) <= reb.max_concurrent_migrations
    if not in_window(reb.windows, NOW):
        assert moves == {}
        assert result.rounds[0].state is RoundState.WAITING_WINDOW
    for key in moves:  # cooldown
        vm = next(v for v in case.inventory.all_vms() if v.key == key)
        placed = dt.datetime.fromisoformat(vm.tags[TAG_PLACED_AT])
        assert NOW - placed >= dt.timedelta(hours=reb.cooldown_hours)
    per_cloud = Counter(p.cloud for p in result.placements.values())
    for name, info in case.clouds.items():
        if info.capacity is not None and info.capacity.instances is not None:
            before = sum(1 for v in case.inventory.all_vms() if v.cloud == name)
            assert per_cloud[name] <= max(before, info.capacity.instances)


@PROPS
@given(cases())
def test_planning_again_after_the_moves_moves_nothing(case: Case) -> None:
    case = replace(
        case,
        desired=replace(
            case.desired,
            policies={
                POLICY: replace(
                    case.policy,
                    rebalance=replace(case.policy.rebalance, max_concurrent_migrations=100),
                )
            },
        ),
    )
    after = applied(case, plan(case))
    assert moved(after, plan(after)) == {}


@PROPS
@given(cases(), st.data())
def test_migrations_the_caller_knows_of_count_against_the_budget(
    case: Case, data: st.DataObject
) -> None:
    """VMs being migrated that the clouds do not show yet (the operator's background
    migrations before their first step) take budget slots and are not moved again."""
    keys = sorted(case.desired.vms)
    migrating = frozenset(data.draw(st.lists(st.sampled_from(keys), unique=True)))
    ctx = RebalanceContext(NOW, {}, migrating)
    result = place(case.desired, case.clouds, case.offers, case.inventory, rebalance=ctx)
    moves = moved(case, result)
    assert not moves.keys() & migrating
    assert len(moves) <= max(0, case.policy.rebalance.max_concurrent_migrations - len(migrating))


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(20, 100),
    wiggles=st.lists(st.floats(-0.99, 0.99), min_size=5, max_size=30),
    min_percent=st.sampled_from([5.0, 10.0, 25.0]),
)
def test_prices_oscillating_inside_the_thresholds_never_move_anything(
    base: int, wiggles: list[float], min_percent: float
) -> None:
    """Day after day cloud c1's price moves around c0's within minSavingsPercent: the
    VM on c0 never moves, whichever way the difference goes."""
    price = base / 100
    reb = Rebalance(interval="Daily", min_savings_percent=min_percent, cooldown_hours=0,
                    max_concurrent_migrations=5)  # fmt: skip
    policy = PolicySpec(POLICY, rebalance=reb)
    key = vm_key(0)
    clouds = {n: CloudInfo(n, "sim", "r", {}, frozenset(Capability)) for n in ("c0", "c1")}
    home = Offer("c0", "c0.std", 2, 4.0, price)
    desired = DesiredState(
        policies={POLICY: policy}, vms={key: VMSpec(key, Resources(2, 4.0), policy_ref="p")}
    )
    inventory = inventory_of([observed(key, home, NOW - dt.timedelta(days=9))], clouds)
    for day, wiggle in enumerate(wiggles):
        other = price * (1 - wiggle * min_percent / 100)
        offers = {"c0": [home], "c1": [Offer("c1", "c1.std", 2, 4.0, round(other, 6))]}
        ctx = RebalanceContext(NOW + dt.timedelta(days=day))
        result = place(desired, clouds, offers, inventory, rebalance=ctx)
        assert result.placements[key].cloud == "c0", (day, other, price)
        assert result.moves == {}


def test_a_move_that_must_happen_waits_for_window_and_budget() -> None:
    """A VM whose cloud is no longer allowed is held where it runs outside the windows."""
    from reconciler.model.specs import CloudSelector

    key = vm_key(0)
    clouds = {n: CloudInfo(n, "sim", "r", {}, frozenset(Capability)) for n in ("c0", "c1")}
    offers = {n: [Offer(n, f"{n}.std", 2, 4.0, 0.1)] for n in clouds}
    reb = Rebalance(windows=(Window(("Sun",), 0, 4),), max_concurrent_migrations=1)
    policy = PolicySpec(POLICY, deny=(CloudSelector(name="c0"),), rebalance=reb)
    desired = DesiredState(
        policies={POLICY: policy}, vms={key: VMSpec(key, Resources(2, 4.0), policy_ref="p")}
    )
    inventory = inventory_of([observed(key, offers["c0"][0], NOW)], clouds)
    held = place(desired, clouds, offers, inventory, rebalance=RebalanceContext(NOW))
    assert held.placements[key].cloud == "c0" and "maintenance windows" in held.held[key]
    sunday = NOW + dt.timedelta(days=1)
    moving = place(desired, clouds, offers, inventory, rebalance=RebalanceContext(sunday))
    assert moving.placements[key].cloud == "c1" and key not in moving.held


def test_the_retained_source_of_a_migration_is_not_the_vm() -> None:
    """After the switch the stopped source (kept for retainSourceFor) holds capacity but
    is not where the VM runs, whatever the order of the external ids."""
    from reconciler.model.keys import TAG_MIGRATED_TO, TAG_RETAIN_UNTIL

    key = vm_key(0)
    clouds = {n: CloudInfo(n, "sim", "r", {}, frozenset(Capability)) for n in ("c0", "c1")}
    offers = {
        "c0": [Offer("c0", "c0.std", 2, 4.0, 0.2)],
        "c1": [Offer("c1", "c1.std", 2, 4.0, 0.1)],
    }
    source = observed(key, offers["c0"][0], NOW - dt.timedelta(days=3))
    source = replace(
        source,
        external_id="i-000",
        power_state=PowerState.STOPPED,
        tags={**source.tags, TAG_RETAIN_UNTIL: "2026-12-06T00:00:00Z", TAG_MIGRATED_TO: "c1/i-zzz"},
    )
    target = replace(observed(key, offers["c1"][0], NOW), external_id="i-zzz")
    desired = DesiredState(vms={key: VMSpec(key, Resources(2, 4.0))})
    result = place(desired, clouds, offers, inventory_of([source, target], clouds))
    assert result.placements[key].cloud == "c1" and result.placements[key].sticky
