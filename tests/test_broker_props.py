"""Property tests: policy, capacity and spread always hold; exact beats greedy; LP bounds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.broker import lp_lower_bound, place, place_greedy
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import TAG_KEY, TAG_OWNER, ResourceKey
from reconciler.model.observed import CloudInventory, Inventory, ObservedVM
from reconciler.model.placement import BrokerResult
from reconciler.model.specs import (
    Capacity,
    CloudSelector,
    DesiredState,
    PolicySpec,
    PowerState,
    Resources,
    VMSetSpec,
    VMSpec,
)

NS = "p"
POLICY = ResourceKey("BrokerPolicy", NS, "deny")
SET = ResourceKey("VirtualMachineSet", NS, "web")


@dataclass
class World:
    desired: DesiredState
    clouds: dict[str, CloudInfo]
    offers: dict[str, list[Offer]]
    denied: str


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_clouds = draw(st.integers(2, 4))
    clouds: dict[str, CloudInfo] = {}
    offers: dict[str, list[Offer]] = {}
    for i in range(n_clouds):
        name = f"c{i}"
        cap = None
        if draw(st.booleans()):
            cap = Capacity(
                vcpus=draw(st.one_of(st.none(), st.integers(0, 24))),
                memory_gib=draw(st.one_of(st.none(), st.integers(0, 64))),
                instances=draw(st.one_of(st.none(), st.integers(0, 6))),
            )
        clouds[name] = CloudInfo(name, "sim", "r", {}, frozenset(Capability), capacity=cap)
        rows = []
        for j in range(draw(st.integers(1, 4))):
            vcpus = draw(st.sampled_from([1, 2, 4, 8]))
            mem = float(vcpus * draw(st.sampled_from([1, 2, 4])))
            price = draw(st.integers(1, 100)) / 100
            avail = draw(st.one_of(st.none(), st.integers(0, 4)))
            rows.append(Offer(name, f"{name}.t{j}", vcpus, mem, price, 0, avail))
        offers[name] = rows
    denied = f"c{draw(st.integers(0, n_clouds - 1))}"
    policy = PolicySpec(POLICY, deny=(CloudSelector(name=denied),))
    max_per_cloud = draw(st.one_of(st.none(), st.integers(1, 3)))
    vms: dict[ResourceKey, VMSpec] = {}
    for i in range(draw(st.integers(1, 12))):
        res = Resources(draw(st.sampled_from([1, 2, 4])), float(draw(st.sampled_from([1, 2, 4]))))
        k = ResourceKey("VirtualMachine", NS, f"vm{i:02d}")
        in_set = draw(st.booleans())
        vms[k] = VMSpec(
            k,
            Resources(2, 2.0) if in_set else res,
            policy_ref="deny" if draw(st.booleans()) else None,
            owner_set=SET if in_set else None,
        )
    tmpl = VMSpec(ResourceKey("VirtualMachine", NS, "web"), Resources(2, 2.0))
    sets = {SET: VMSetSpec(SET, 0, tmpl, max_per_cloud=max_per_cloud)}
    desired = DesiredState(policies={POLICY: policy}, vms=vms, vm_sets=sets)
    return World(desired, clouds, offers, denied)


def _run(w: World) -> tuple[BrokerResult, BrokerResult]:
    exact = place(w.desired, w.clouds, w.offers, Inventory())
    greedy = place_greedy(w.desired, w.clouds, w.offers, Inventory())
    return exact, greedy


def _check_limits(w: World, res: BrokerResult) -> None:
    per_offer = Counter((p.cloud, p.offer.name) for p in res.placements.values())
    for (c, name), n in per_offer.items():
        o = next(o for o in w.offers[c] if o.name == name)
        assert o.available is None or n <= o.available
    for c, info in w.clouds.items():
        placed = [p.offer for p in res.placements.values() if p.cloud == c]
        cap = info.capacity
        if cap is None:
            continue
        assert cap.vcpus is None or sum(o.vcpus for o in placed) <= cap.vcpus
        assert cap.memory_gib is None or sum(o.memory_gib for o in placed) <= cap.memory_gib + 1e-9
        assert cap.instances is None or len(placed) <= cap.instances
    limit = w.desired.vm_sets[SET].max_per_cloud
    if limit is not None:
        spread = Counter(
            p.cloud for k, p in res.placements.items() if w.desired.vms[k].owner_set == SET
        )
        assert all(n <= limit for n in spread.values())


def _cost(res: BrokerResult) -> float:
    return sum(p.offer.price_per_hour for p in res.placements.values())


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(worlds())
def test_denied_never_chosen_and_limits_hold(w: World) -> None:
    exact, greedy = _run(w)
    for res in (exact, greedy):
        for k, p in res.placements.items():
            if w.desired.vms[k].policy_ref == "deny":
                assert p.cloud != w.denied
        _check_limits(w, res)
        assert len(res.placements) + len(res.unplaced) == len(w.desired.vms)
        for u in res.unplaced.values():
            assert u.reasons


@SETTINGS
@given(worlds())
def test_exact_dominates_greedy_and_lp_bounds_it(w: World) -> None:
    exact, greedy = _run(w)
    assert len(exact.placements) >= len(greedy.placements)
    if len(exact.placements) == len(greedy.placements):
        assert _cost(exact) <= _cost(greedy) + 1e-6
    bound = lp_lower_bound(w.desired, w.clouds, w.offers, Inventory())
    assert _cost(exact) >= bound - 1e-6
    assert exact.stats is not None
    assert abs(exact.stats.objective_per_hour - _cost(exact)) < 1e-6


@SETTINGS
@given(worlds(), st.data())
def test_sticky_vms_stay_unless_denied(w: World, data: st.DataObject) -> None:
    observed: dict[str, list[ObservedVM]] = {}
    for k in w.desired.vms:
        if data.draw(st.booleans()):
            c = data.draw(st.sampled_from(sorted(w.clouds)))
            o = data.draw(st.sampled_from(w.offers[c]))
            tags = {TAG_OWNER: "reconciler", TAG_KEY: str(k)}
            seen = ObservedVM(
                c,
                f"i-{k.name}",
                o.name,
                o.vcpus,
                o.memory_gib,
                PowerState.RUNNING,
                o.price_per_hour,
                tags,
            )
            observed.setdefault(c, []).append(seen)
    inv = Inventory({c: CloudInventory(c, tuple(v)) for c, v in observed.items()})
    exact = place(w.desired, w.clouds, w.offers, inv)
    greedy = place_greedy(w.desired, w.clouds, w.offers, inv)
    running = {o.key: o for vs in observed.values() for o in vs}
    for k, p in exact.placements.items():
        if w.desired.vms[k].policy_ref == "deny":
            assert p.cloud != w.denied
        obs = running.get(k)
        spec = w.desired.vms[k]
        fits = (
            obs is not None
            and obs.vcpus >= spec.resources.vcpus
            and (obs.memory_gib >= spec.resources.memory_gib)
        )
        allowed = obs is not None and not (spec.policy_ref == "deny" and obs.cloud == w.denied)
        if fits and allowed and spec.owner_set is None:
            assert p.sticky and obs is not None and p.cloud == obs.cloud
    if len(exact.placements) == len(greedy.placements):
        assert _cost(exact) <= _cost(greedy) + 1e-6
    assert len(exact.placements) >= len(greedy.placements)
    assert _cost(exact) >= lp_lower_bound(w.desired, w.clouds, w.offers, inv) - 1e-6
