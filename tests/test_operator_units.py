"""Pure parts of the operator: desired-state split, gating, backoff, status merging."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from planner_fixtures import SMALL, make_input, observed, vm_key

from reconciler.manifest import load_objects
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import CloudInventory, Inventory, ObservedVolume
from reconciler.model.plan import Action, ActionType
from reconciler.model.specs import DesiredState, VolumeSpec
from reconciler.operator.background import BackgroundMigrations
from reconciler.operator.desired import build_desired
from reconciler.operator.gating import Backoff, FullPassClock, paused_filter, split_plan
from reconciler.operator.informer import CachedObject, status_digest
from reconciler.operator.report import PassReport
from reconciler.operator.status import merge_conditions
from reconciler.planner import build_plan

NS = "default"


def _obj(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> CachedObject:
    raw = {"metadata": {"name": name, "namespace": NS, "uid": name, "generation": 1, **meta},
           "spec": spec}  # fmt: skip
    return CachedObject.from_raw(kind, raw)


def _world() -> list[CachedObject]:
    cloud_obj = CachedObject.from_raw(
        "Cloud", {"metadata": {"name": "c1"}, "spec": {"provider": "sim", "region": "r"}}
    )
    vm_spec = {"resources": {"vcpus": 2, "memoryGiB": 4}}
    return [
        cloud_obj,
        _obj("VirtualMachine", "live", vm_spec),
        _obj("VirtualMachine", "gone", {**vm_spec, "deletionPolicy": "Orphan"},
             deletionTimestamp="2026-01-01T00:00:00Z"),
        _obj("VirtualMachine", "safe", {**vm_spec, "protect": True},
             deletionTimestamp="2026-01-01T00:00:00Z"),
        _obj("VirtualMachine", "held", {**vm_spec, "policyRef": {"name": "missing"}}),
        _obj("VirtualMachine", "still", vm_spec, annotations={"reconciler.dev/paused": "true"}),
    ]  # fmt: skip


def test_build_desired_splits_deleting_protected_invalid_and_paused() -> None:
    cluster = build_desired(_world())
    names = {k.name for k in cluster.desired.vms}
    assert names == {"live", "safe", "still"}
    key = ResourceKey("VirtualMachine", NS, "gone")
    assert cluster.retire_as == {key: "Orphan"} and key in cluster.deleting
    assert "protect: true" in cluster.blocked[ResourceKey("VirtualMachine", NS, "safe")]
    assert cluster.hold == frozenset({ResourceKey("VirtualMachine", NS, "held")})
    assert "BrokerPolicy 'missing'" in cluster.invalid["VirtualMachine/default/held"][0].message
    assert cluster.paused == frozenset({ResourceKey("VirtualMachine", NS, "still")})


def test_load_objects_leaves_out_what_depends_on_an_invalid_object() -> None:
    vm_obj = {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "VirtualMachine",
        "metadata": {"name": "db", "namespace": NS},
        "spec": {"resources": {"vcpus": 1, "memoryGiB": 1}, "policyRef": {"name": "x"}},
    }
    vol = {"apiVersion": "reconciler.dev/v1alpha1", "kind": "Volume",
           "metadata": {"name": "data", "namespace": NS},
           "spec": {"sizeGiB": 10, "attachTo": "db"}}  # fmt: skip
    desired, problems = load_objects([vm_obj, vol])
    assert not desired.vms and not desired.volumes
    assert set(problems) == {"VirtualMachine/default/db", "Volume/default/data"}


def test_planner_holds_and_retires_as_the_spec_says() -> None:
    running = [
        observed("held", SMALL, "i-1"),
        observed("safe-once", SMALL, "i-2", protect=True),
        observed("was-orphan", SMALL, "i-3", policy="Orphan"),
    ]
    base = make_input([], {}, running)
    inp = dataclasses.replace(
        base,
        refuse_protected=False,
        hold=frozenset({vm_key("held")}),
        retire_as={vm_key("safe-once"): "Delete", vm_key("was-orphan"): "Delete"},
    )
    kinds = {(a.type, a.external_id) for a in build_plan(inp).actions}
    assert kinds == {(ActionType.DELETE, "i-2"), (ActionType.DELETE, "i-3")}
    kept = build_plan(dataclasses.replace(base, refuse_protected=False))
    assert any("protect: true" in w for w in kept.warnings)
    assert (ActionType.DELETE, "i-2") not in {(a.type, a.external_id) for a in kept.actions}


def test_split_plan_holds_paused_actions_and_their_dependents() -> None:
    running = [observed("a", SMALL, "i-1"), observed("b", SMALL, "i-2")]
    plan = build_plan(make_input([], {}, running))
    runnable, held = split_plan(plan, paused_filter(frozenset({vm_key("a")})))
    assert [a.external_id for a in runnable.actions] == ["i-2"]
    assert [a.external_id for a in held] == ["i-1"]
    assert split_plan(plan, lambda _a: False)[0] is plan


def test_backoff_doubles_and_clears() -> None:
    now = [100.0]
    backoff = Backoff(base=1.0, cap=5.0, clock=lambda: now[0], wall=lambda: 1_800_000_000.0)
    key = vm_key("x")
    assert [backoff.failed(key) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert backoff.failed(key, "quota exceeded") == 5.0
    assert backoff.waiting(key) and backoff.next_due() == 5.0
    assert backoff.why_waiting(key) == "quota exceeded (failure 4; tried again at 08:00:05Z)"
    now[0] += 5.0
    assert not backoff.waiting(key) and backoff.why_waiting(key) is None
    backoff.succeeded(key)
    assert backoff.next_due() is None


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]
    same = merge_conditions(old, [{"type": "Ready", "status": "True"}], "t1")
    flipped = merge_conditions(old, [{"type": "Ready", "status": "False"}], "t1")
    assert same[0]["lastTransitionTime"] == "t0"
    assert flipped[0]["lastTransitionTime"] == "t1"


def test_report_index_is_never_read_half_built() -> None:
    """Status writers share one PassReport across threads: a reader that arrives
    while another thread builds the index must not see it half-filled (this made
    one VM of 10k show Ready=False "not found" although it ran)."""
    main = threading.current_thread()
    building, read = threading.Event(), threading.Event()

    class SlowInventory(Inventory):
        def all_volumes(self) -> list[ObservedVolume]:
            if threading.current_thread() is main:  # the first builder pauses mid-build
                building.set()
                read.wait(5)
            return []

    vms = tuple(observed(f"vm-{i}", SMALL, f"i-{i}") for i in range(3))
    rep = PassReport(inventory=SlowInventory({"c": CloudInventory("c", vms)}))
    found: list[int] = []

    def reader() -> None:
        building.wait(5)
        found.append(len(rep.vms(vm_key("vm-2"))))
        read.set()

    thread = threading.Thread(target=reader)
    thread.start()
    assert len(rep.vms(vm_key("vm-2"))) == 1
    thread.join(5)
    assert found == [1]


def test_full_pass_clock_bounds_how_long_a_due_pass_gives_way() -> None:
    now = [100.0]
    clock = FullPassClock(max_postpone=30.0, clock=lambda: now[0])
    assert clock.due()  # nothing observed yet: the first pass is full
    clock.finished(resync=60.0, backoff_due=None)
    assert not clock.due() and clock.seconds_left() == 60.0
    clock.finished(resync=60.0, backoff_due=5.0)
    assert clock.seconds_left() == 5.0
    now[0] = 106.0
    assert clock.due() and clock.may_postpone()
    clock.postpone()
    now[0] = 130.0
    assert clock.due() and clock.may_postpone()  # 24 s of giving way so far
    now[0] = 136.5
    assert not clock.may_postpone()  # past 30 s: the full pass must run now
    clock.planned()
    assert clock.may_postpone()
    clock.finished(resync=60.0, backoff_due=None)
    clock.due_within(0.0)
    assert clock.due()


def test_cached_status_keeps_conditions_and_a_digest_of_the_rest() -> None:
    status = {
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "True"}],
        "placement": {"cloud": "a", "pricePerHour": 0.0},
        "candidates": [{"cloud": "a", "offer": "t3.small", "pricePerHour": 0.02}],
    }
    raw = {"metadata": {"name": "x", "namespace": "n"}, "spec": {}, "status": status}
    obj = CachedObject.from_raw("VirtualMachine", raw)
    assert obj.status == {"conditions": [{"type": "Ready", "status": "True"}]}
    as_server_wrote_it = {
        **status,
        "observedGeneration": 2.0,
        "placement": {"cloud": "a", "pricePerHour": 0},
    }
    assert obj.status_digest == status_digest(as_server_wrote_it)
    assert obj.status_digest != status_digest({**status, "observedGeneration": 3})


def test_allocator_controls_work_on_this_libc() -> None:
    from reconciler.operator import memory

    assert memory.limit_arenas(2) is True  # glibc on the machines we run on
    assert isinstance(memory.trim(), bool)


def test_full_pass_clock_with_no_postponing_never_gives_way() -> None:
    clock = FullPassClock(max_postpone=0.0, clock=lambda: 100.0)
    assert clock.due() and not clock.may_postpone()
    clock.planned()
    assert not clock.may_postpone()


def _migrate(name: str) -> Action:
    key = ResourceKey("VirtualMachine", NS, name)
    return Action(f"migrate:{key}@b", ActionType.MIGRATE, key, "b", "cheaper on b")


def test_background_migrations_run_beside_the_loop_one_per_key_within_the_limit() -> None:
    ended: list[ResourceKey] = []
    runner = BackgroundMigrations(ended.append, limit=2)
    gate = threading.Event()
    assert runner.start(_migrate("a"), gate.wait)
    assert not runner.start(_migrate("a"), gate.wait)  # one per VM
    assert runner.start(_migrate("b"), gate.wait)
    assert not runner.start(_migrate("c"), gate.wait)  # the limit: left for a later pass
    desired = DesiredState(
        volumes={
            ResourceKey("Volume", NS, "data"): VolumeSpec(
                ResourceKey("Volume", NS, "data"), 1, attach_to="a"
            ),
            ResourceKey("Volume", NS, "free"): VolumeSpec(ResourceKey("Volume", NS, "free"), 1),
        }
    )
    moving = runner.holds(desired)
    assert moving(ResourceKey("VirtualMachine", NS, "a")) and moving(
        ResourceKey("Volume", NS, "data")
    )
    assert not moving(ResourceKey("Volume", NS, "free"))
    assert not moving(ResourceKey("VirtualMachine", NS, "c"))
    gate.set()
    runner.stop()  # waits for both
    assert sorted(k.name for k in ended) == ["a", "b"] and runner.running() == frozenset()
    assert not runner.start(_migrate("c"), gate.wait)  # halted until resumed
    runner.resume()
    assert runner.start(_migrate("c"), lambda: None)
    runner.stop()
    assert [k.name for k in ended][-1] == "c"


def test_backoff_is_safe_from_several_threads() -> None:
    backoff = Backoff()
    keys = [ResourceKey("VirtualMachine", NS, f"vm-{i}") for i in range(200)]

    def churn() -> None:
        for key in keys:
            backoff.failed(key)
            backoff.next_due()
            backoff.succeeded(key)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backoff.next_due() is None
