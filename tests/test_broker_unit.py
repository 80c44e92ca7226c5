"""Unit tests of the broker: each filter outcome, stickiness, spread, capacity, reasons."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.broker import lp_lower_bound, place, place_greedy, selector_matches
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import TAG_KEY, TAG_OWNER, ResourceKey
from reconciler.model.observed import CloudInventory, Inventory, ObservedVM
from reconciler.model.placement import BrokerResult, Outcome
from reconciler.model.specs import (
    Capacity,
    CloudSelector,
    CloudSpec,
    DesiredState,
    LabelRequirement,
    PolicySpec,
    PowerState,
    Resources,
    VMSetSpec,
    VMSpec,
    VolumeSpec,
)

ALL = frozenset(Capability)
NS = "team"


def cloud(
    name: str,
    caps: Iterable[Capability] = ALL,
    capacity: Capacity | None = None,
    **labels: str,
) -> CloudInfo:
    return CloudInfo(name, "sim", "r1", labels, frozenset(caps), capacity=capacity)


def offer(c: str, name: str, vcpus: int, mem: float, price: float, **kw: int) -> Offer:
    return Offer(c, name, vcpus, mem, price, kw.get("gpus", 0), kw.get("available"))


def vm(name: str, vcpus: int = 2, mem: float = 4.0, **kw: object) -> VMSpec:
    return VMSpec(ResourceKey("VirtualMachine", NS, name), Resources(vcpus, mem), **kw)  # type: ignore[arg-type]


def pol(name: str, **kw: object) -> PolicySpec:
    return PolicySpec(ResourceKey("BrokerPolicy", NS, name), **kw)  # type: ignore[arg-type]


def state(vms: Iterable[VMSpec], *policies: PolicySpec, **kw: object) -> DesiredState:
    return DesiredState(
        clouds={},
        policies={p.key: p for p in policies},
        vms={v.key: v for v in vms},
        **kw,  # type: ignore[arg-type]
    )


def observed(c: str, name: str, itype: str, vcpus: int, mem: float, price: float) -> ObservedVM:
    tags = {TAG_OWNER: "reconciler", TAG_KEY: f"VirtualMachine/{NS}/{name}"}
    return ObservedVM(c, f"i-{name}", itype, vcpus, mem, PowerState.RUNNING, price, tags)


def inventory(*vms: ObservedVM) -> Inventory:
    by: dict[str, list[ObservedVM]] = {}
    for v in vms:
        by.setdefault(v.cloud, []).append(v)
    return Inventory({c: CloudInventory(c, tuple(v)) for c, v in by.items()})


def run(
    desired: DesiredState,
    clouds: Iterable[CloudInfo],
    offers: Iterable[Offer],
    inv: Inventory | None = None,
) -> BrokerResult:
    cl = {c.name: c for c in clouds}
    by: dict[str, list[Offer]] = {c: [] for c in cl}
    for o in offers:
        by[o.cloud].append(o)
    return place(desired, cl, by, inv or Inventory())


def key(name: str) -> ResourceKey:
    return ResourceKey("VirtualMachine", NS, name)


def outcomes(res: BrokerResult, name: str) -> dict[str, Outcome]:
    p = res.placements.get(key(name)) or res.unplaced[key(name)]
    return {c.cloud: c.outcome for c in p.candidates}


TWO = [cloud("a", jurisdiction="eu"), cloud("b", jurisdiction="us")]
CHEAP_B = [offer("a", "a.m", 2, 4, 0.10), offer("b", "b.m", 2, 4, 0.05)]


def test_cheapest_offer_wins_with_explanation() -> None:
    res = run(state([vm("x")]), TWO, CHEAP_B)
    p = res.placements[key("x")]
    assert p.offer.name == "b.m" and not p.sticky
    assert "cheapest allowed offer" in p.reason
    assert outcomes(res, "x") == {"b": Outcome.CHOSEN, "a": Outcome.MORE_EXPENSIVE}
    dearer = next(c for c in p.candidates if c.outcome == Outcome.MORE_EXPENSIVE)
    assert dearer.detail == "+$0.0500/h vs chosen"
    assert res.stats is not None and res.stats.solver == "cheapest-per-group"


def test_deny_by_label_and_name() -> None:
    p1 = pol("p", deny=(CloudSelector(match_labels={"jurisdiction": "us"}),))
    res = run(state([vm("x", policy_ref="p")], p1), TWO, CHEAP_B)
    assert res.placements[key("x")].cloud == "a"
    assert outcomes(res, "x")["b"] == Outcome.DENIED
    p2 = pol("p", deny=(CloudSelector(name="a"), CloudSelector(name="b")))
    res = run(state([vm("x", policy_ref="p")], p2), TWO, CHEAP_B)
    reasons = res.unplaced[key("x")].reasons
    assert any("denied by policy p" in r and "1 cloud (a)" in r for r in reasons)


def test_allow_list_and_jurisdiction() -> None:
    p = pol("p", allow=(CloudSelector(name="a"),))
    res = run(state([vm("x", policy_ref="p")], p), TWO, CHEAP_B)
    assert res.placements[key("x")].cloud == "a"
    assert outcomes(res, "x")["b"] == Outcome.NOT_ALLOWED
    j = pol("j", jurisdictions=("us",))
    clouds = [*TWO, cloud("c")]  # no jurisdiction label: fails
    offers = [*CHEAP_B, offer("c", "c.m", 2, 4, 0.01)]
    res = run(state([vm("x", policy_ref="j")], j), clouds, offers)
    assert res.placements[key("x")].cloud == "b"
    assert outcomes(res, "x")["c"] == Outcome.JURISDICTION


def test_label_selector_expressions() -> None:
    labels = {"tier": "private", "jurisdiction": "eu"}
    expr = LabelRequirement
    assert selector_matches(CloudSelector(), "x", labels)
    assert selector_matches(
        CloudSelector(match_expressions=(expr("tier", "In", ("private",)),)), "x", labels
    )
    assert not selector_matches(
        CloudSelector(match_expressions=(expr("tier", "NotIn", ("private",)),)), "x", labels
    )
    assert selector_matches(
        CloudSelector(match_expressions=(expr("zone", "NotIn", ("a",)),)), "x", labels
    )
    assert selector_matches(CloudSelector(match_expressions=(expr("tier", "Exists"),)), "x", labels)
    assert selector_matches(
        CloudSelector(match_expressions=(expr("gpu", "DoesNotExist"),)), "x", labels
    )
    assert not selector_matches(
        CloudSelector(name="y", match_labels={"tier": "private"}), "x", labels
    )


def test_pin_type_size_and_capability_outcomes() -> None:
    res = run(state([vm("x", pinned_cloud="a")]), TWO, CHEAP_B)
    assert res.placements[key("x")].cloud == "a"
    assert outcomes(res, "x")["b"] == Outcome.PINNED_ELSEWHERE
    offers = [*CHEAP_B, offer("a", "a.big", 8, 32, 0.4)]
    res = run(state([vm("x", instance_type="a.big")]), TWO, offers)
    assert res.placements[key("x")].offer.name == "a.big"
    assert Outcome.INSTANCE_TYPE in {c.outcome for c in res.placements[key("x")].candidates}
    res = run(state([vm("x", vcpus=4)]), TWO, offers)
    assert res.placements[key("x")].offer.name == "a.big"
    small = [c for c in res.placements[key("x")].candidates if c.outcome == Outcome.TOO_SMALL]
    assert small and "2 vCPU < 4" in small[0].detail
    clouds = [cloud("a", caps=[Capability.RESIZE]), TWO[1]]
    res = run(state([vm("x", power_state=PowerState.STOPPED)]), clouds, offers)
    assert res.placements[key("x")].cloud == "b"
    res = run(state([vm("x", power_state=PowerState.STOPPED, pinned_cloud="a")]), clouds, offers)
    assert outcomes(res, "x")["a"] == Outcome.MISSING_CAPABILITY
    assert any("lacks capability stop" in r for r in res.unplaced[key("x")].reasons)


def test_gpu_and_volume_capabilities() -> None:
    clouds = [cloud("a"), cloud("b", caps=[Capability.STOP])]
    offers = [offer("a", "g", 4, 16, 2.0, gpus=1), offer("b", "g", 4, 16, 1.0, gpus=1)]
    res = run(state([vm("x", vcpus=4, mem=16)]), clouds, offers)
    assert res.placements[key("x")].cloud == "b"
    gpu_vm = VMSpec(key("g"), Resources(4, 16, gpus=1))
    res = run(state([gpu_vm]), clouds, offers)
    assert res.placements[key("g")].cloud == "a"
    vol = VolumeSpec(ResourceKey("Volume", NS, "d"), 10, attach_to="x")
    res = run(state([vm("x", vcpus=4, mem=16)], volumes={vol.key: vol}), clouds, offers)
    assert res.placements[key("x")].cloud == "a"
    assert res.storage[vol.key].clouds == ("a",)


def test_unplaceable_reasons() -> None:
    res = run(state([vm("x", vcpus=128)]), TWO, [*CHEAP_B, offer("a", "a.xl", 96, 384, 4.0)])
    assert res.unplaced[key("x")].reasons == ("no offer has 128 vCPUs (largest 96 on a)",)
    res = run(state([vm("x", instance_type="zz")]), TWO, CHEAP_B)
    assert "instance type zz is not offered" in res.unplaced[key("x")].reasons[0]
    res = run(state([vm("x", policy_ref="nope")]), TWO, CHEAP_B)
    assert res.unplaced[key("x")].reasons == ("BrokerPolicy team/nope not found",)
    d = DesiredState(
        clouds={"gone": CloudSpec("gone", "sim")}, vms={key("x"): vm("x", pinned_cloud="gone")}
    )
    res = run(d, TWO, CHEAP_B)
    assert "pinned to cloud gone, which is unreachable" in res.unplaced[key("x")].reasons


def test_capacity_and_availability_are_respected() -> None:
    clouds = [cloud("a", capacity=Capacity(vcpus=8)), cloud("b")]
    offers = [offer("a", "a.m", 2, 4, 0.01), offer("b", "b.m", 2, 4, 0.05, available=2)]
    vms = [vm(f"v{i}") for i in range(7)]
    res = run(state(vms), clouds, offers)
    clouds_used = [p.cloud for p in res.placements.values()]
    assert clouds_used.count("a") == 4 and clouds_used.count("b") == 2
    assert len(res.unplaced) == 1
    reasons = next(iter(res.unplaced.values())).reasons
    assert any("no capacity left on a (needs 2 vCPU, 0 free)" in r for r in reasons)
    assert any("no b.m left on b" in r for r in reasons)
    assert res.stats is not None and res.stats.solver == "highs-milp"


def test_milp_beats_greedy_on_a_capacity_trap() -> None:
    # Small VMs sorted first grab the cheap private cloud; big ones then pay a lot.
    clouds = [cloud("priv", capacity=Capacity(vcpus=8)), cloud("pub")]
    offers = [
        offer("priv", "p.s", 2, 4, 0.01),
        offer("priv", "p.l", 8, 16, 0.04),
        offer("pub", "q.s", 2, 4, 0.02),
        offer("pub", "q.l", 8, 16, 1.00),
    ]
    vms = [vm("a1"), vm("a2"), vm("z", vcpus=8, mem=16)]
    d = state(vms)
    cl = {c.name: c for c in clouds}
    by = {c: [o for o in offers if o.cloud == c] for c in cl}
    exact = place(d, cl, by, Inventory())
    greedy = place_greedy(d, cl, by, Inventory())
    assert exact.stats and greedy.stats
    assert exact.stats.objective_per_hour == 0.08
    assert greedy.stats.objective_per_hour > 1.0
    assert exact.placements[key("a1")].offer.name == "q.s"
    blocked = [
        c for c in exact.placements[key("a1")].candidates if c.outcome == Outcome.NO_CAPACITY
    ]
    assert blocked and blocked[0].offer == "p.s"
    assert "blocked by capacity or spread" in exact.placements[key("a1")].reason
    assert lp_lower_bound(d, cl, by, Inventory()) <= 0.08 + 1e-9


def test_spread_limit_and_sticky_replicas_count() -> None:
    set_key = ResourceKey("VirtualMachineSet", NS, "web")
    tmpl = vm("web")
    reps = [VMSpec(key(f"web-{i}"), tmpl.resources, owner_set=set_key) for i in range(3)]
    vmset = VMSetSpec(set_key, 3, tmpl, max_per_cloud=2)
    d = state(reps, vm_sets={set_key: vmset})
    inv = inventory(observed("b", "web-0", "b.m", 2, 4, 0.05))
    res = run(d, TWO, CHEAP_B, inv)
    assert res.placements[key("web-0")].sticky
    per = [p.cloud for p in res.placements.values()]
    assert per.count("b") == 2 and per.count("a") == 1
    moved = next(p for p in res.placements.values() if p.cloud == "a")
    chosen_b = next(c for c in moved.candidates if c.cloud == "b")
    assert chosen_b.outcome == Outcome.CHOSEN
    assert "spread limit maxPerCloud=2 of web reached on b" in chosen_b.detail
    assert "blocked by capacity or spread" in moved.reason


def test_sticky_stays_even_if_cheaper_elsewhere() -> None:
    inv = inventory(observed("a", "x", "a.m", 2, 4, 0.10))
    res = run(state([vm("x")]), TWO, CHEAP_B, inv)
    p = res.placements[key("x")]
    assert (
        p.sticky and p.cloud == "a" and p.reason == "already running here; still allowed and fits"
    )


def test_sticky_lost_when_denied_or_too_small() -> None:
    inv = inventory(observed("a", "x", "a.m", 2, 4, 0.10))
    p = pol("p", deny=(CloudSelector(name="a"),))
    res = run(state([vm("x", policy_ref="p")], p), TWO, CHEAP_B, inv)
    got = res.placements[key("x")]
    assert got.cloud == "b" and not got.sticky and "no longer allowed there" in got.reason
    clouds = [cloud("a", caps=[Capability.STOP]), TWO[1]]  # no RESIZE
    offers = [*CHEAP_B, offer("a", "a.l", 4, 8, 0.2), offer("b", "b.l", 4, 8, 0.3)]
    res = run(state([vm("x", vcpus=4)]), clouds, offers, inv)
    got = res.placements[key("x")]
    assert got.offer.name == "a.l" and "cannot resize in place" in got.reason


def test_in_place_resize_preferred() -> None:
    inv = inventory(observed("a", "x", "a.m", 2, 4, 0.10))
    offers = [*CHEAP_B, offer("a", "a.l", 4, 8, 0.5), offer("b", "b.l", 4, 8, 0.2)]
    res = run(state([vm("x", vcpus=4)]), TWO, offers, inv)
    got = res.placements[key("x")]
    assert got.cloud == "a" and got.offer.name == "a.l" and got.sticky
    assert got.reason.startswith("in-place resize on a")


def test_unreachable_cloud_keeps_vm() -> None:
    inv = inventory(observed("gone", "x", "g.m", 2, 4, 0.10))
    d = DesiredState(clouds={"gone": CloudSpec("gone", "sim")}, vms={key("x"): vm("x")})
    res = run(d, TWO, CHEAP_B, inv)
    got = res.placements[key("x")]
    assert got.sticky and got.cloud == "gone" and "unreachable" in got.reason


def test_candidates_shared_within_group() -> None:
    res = run(state([vm(f"v{i}") for i in range(5)]), TWO, CHEAP_B)
    tuples = {id(p.candidates) for p in res.placements.values()}
    assert len(tuples) == 1
