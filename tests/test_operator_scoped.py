"""Scoped passes: planning only changed objects against the baseline must decide what a
full pass would decide for them, and keep every constraint (capacity, spread)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from reconciler.executor.engine import Settings, apply
from reconciler.executor.runner import ActionEvent
from reconciler.executor.world import World
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Inventory
from reconciler.model.plan import Action, ActionType, Plan
from reconciler.operator.baseline import Baseline
from reconciler.operator.clouds import CloudProviders
from reconciler.operator.desired import FINALIZER, build_desired
from reconciler.operator.informer import Cache, CachedObject
from reconciler.operator.planning import plan_cluster
from reconciler.operator.report import PassReport
from reconciler.operator.scoped import MAX_SCOPE, plan_scoped, scope_for

NS = "team"
VERSIONS = itertools.count(1)


def obj(kind: str, name: str, spec: dict[str, Any], ns: str = NS, **meta: Any) -> CachedObject:
    metadata = {
        "name": name,
        "uid": f"uid-{kind}-{name}",
        "generation": 1,
        "resourceVersion": str(next(VERSIONS)),
        **meta,
    }
    if ns:
        metadata["namespace"] = ns
    metadata.setdefault("finalizers", [FINALIZER])
    return CachedObject.from_raw(kind, {"metadata": metadata, "spec": spec})


def vm(name: str, vcpus: int = 2, **spec: Any) -> CachedObject:
    return obj(
        "VirtualMachine",
        name,
        {
            "image": "ubuntu",
            "resources": {"vcpus": vcpus, "memoryGiB": 4, "diskGiB": 20},
            "policyRef": {"name": "default"},
            **spec,
        },
    )


def cloud(**spec: Any) -> CachedObject:
    base = {"provider": "sim", "region": "eu-west-1", "pricing": {"catalog": "aws-eu-west-1"}}
    return obj("Cloud", "sim1", {**base, **spec}, ns="")


class Rig:
    """A cache, sim clouds and the helpers a controller would use, without Kubernetes."""

    def __init__(self, tmp: Path, *objects: CachedObject) -> None:
        self.cache = Cache()
        self.settings = Settings(tmp)
        self.clouds = CloudProviders(None, "reconciler-system", self.settings.context)  # type: ignore[arg-type]
        shared = [
            obj("BrokerPolicy", "default", {"objective": "Cost"}),
            obj("Image", "ubuntu", {"format": "qcow2"}),
        ]
        for item in (*shared, *objects):
            self.cache.upsert(item)

    def full(self) -> tuple[Plan, World]:
        cluster = build_desired(self.cache.objects())
        return plan_cluster(
            cluster, self.cache.objects("Cloud"), self.clouds, "reconciler", PassReport()
        )

    def apply(self, plan: Plan, world: World, baseline: Baseline | None = None) -> None:
        def fold(event: ActionEvent) -> None:
            if baseline is not None and event.phase == "done":
                baseline.record(event.action, event.observed)

        desired = build_desired(self.cache.objects()).desired
        result = apply(plan, world, desired, self.settings, fold)
        assert result.ok, result.failed

    def converged_baseline(self) -> Baseline:
        plan, world = self.full()
        self.apply(plan, world)
        plan, world = self.full()
        assert plan.actions == ()
        return Baseline(world)

    def scoped(self, baseline: Baseline, *dirty: ResourceKey) -> tuple[Plan, PassReport]:
        scope = scope_for(dirty, self.cache, baseline)
        assert scope is not None
        planned = plan_scoped(scope, self.cache, baseline, "reconciler")
        assert planned is not None
        return planned[0], planned[3]


def summary(actions: tuple[Action, ...]) -> list[tuple[str, str, str, object]]:
    return sorted(
        (a.type.value, str(a.key), a.cloud, a.params.get("instanceType")) for a in actions
    )


def test_a_resize_plans_what_a_full_pass_plans(tmp_path: Path) -> None:
    rig = Rig(tmp_path, cloud(), *(vm(f"vm-{i}") for i in range(20)))
    baseline = rig.converged_baseline()
    rig.cache.upsert(vm("vm-7", vcpus=8))
    scoped, _ = rig.scoped(baseline, ResourceKey("VirtualMachine", NS, "vm-7"))
    full, _world = rig.full()
    assert summary(scoped.actions) == summary(full.actions)
    assert [a.type for a in scoped.actions] == [ActionType.UPDATE]


def test_outcomes_fold_into_the_baseline_so_the_next_scoped_pass_is_converged(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, cloud(), *(vm(f"vm-{i}") for i in range(5)))
    baseline = rig.converged_baseline()
    rig.cache.upsert(vm("vm-1", vcpus=8))
    rig.cache.upsert(vm("vm-new"))
    rig.cache.remove(ResourceKey("VirtualMachine", NS, "vm-2"))
    dirty = [ResourceKey("VirtualMachine", NS, n) for n in ("vm-1", "vm-new", "vm-2")]
    plan, report = rig.scoped(baseline, *dirty)
    assert sorted(a.type.value for a in plan.actions) == ["create", "delete", "update"]
    world = World(baseline.providers, baseline.clouds, baseline.offers, report.inventory)
    rig.apply(plan, world, baseline)
    again, _ = rig.scoped(baseline, *dirty)
    assert again.actions == ()
    fresh, _world = rig.full()
    assert fresh.actions == ()  # the baseline matches a fresh observation


def test_capacity_used_by_other_vms_is_respected(tmp_path: Path) -> None:
    rig = Rig(tmp_path, cloud(capacity={"vcpus": 10}), *(vm(f"vm-{i}") for i in range(4)))
    baseline = rig.converged_baseline()
    rig.cache.upsert(vm("big", vcpus=4))
    plan, report = rig.scoped(baseline, ResourceKey("VirtualMachine", NS, "big"))
    assert plan.actions == ()
    assert report.result is not None
    assert ResourceKey("VirtualMachine", NS, "big") in report.result.unplaced
    full, _world = rig.full()
    assert full.actions == ()


def test_spread_counts_replicas_outside_the_scope(tmp_path: Path) -> None:
    spec = {"replicas": 3, "spread": {"maxPerCloud": 3}, "template": {"spec": vm("t").spec}}
    vm_set = obj("VirtualMachineSet", "web", spec)
    rig = Rig(tmp_path, cloud(), vm_set)
    baseline = rig.converged_baseline()
    rig.cache.upsert(obj("VirtualMachineSet", "web", {**spec, "replicas": 4}))
    plan, report = rig.scoped(baseline, vm_set.key)
    assert plan.actions == ()  # a fourth replica would break maxPerCloud on the only cloud
    assert report.result is not None and len(report.result.unplaced) == 1
    assert summary(rig.full()[0].actions) == []


def test_scope_closes_over_sets_and_volumes(tmp_path: Path) -> None:
    vol = obj("Volume", "data", {"sizeGiB": 10, "attachTo": "db"})
    spec = {"replicas": 2, "template": {"spec": vm("t").spec}}
    rig = Rig(tmp_path, cloud(), vm("db"), vol, obj("VirtualMachineSet", "web", spec))
    baseline = rig.converged_baseline()
    scope = scope_for([ResourceKey("Volume", NS, "data")], rig.cache, baseline)
    assert scope is not None
    assert {str(k) for k in scope.keys} == {"Volume/team/data", "VirtualMachine/team/db"}
    scope = scope_for([ResourceKey("VirtualMachine", NS, "web-1")], rig.cache, baseline)
    assert scope is not None
    assert ResourceKey("VirtualMachineSet", NS, "web") in scope.keys
    assert ResourceKey("VirtualMachine", NS, "web-0") in scope.keys
    assert scope_for([cloud().key], rig.cache, baseline) is None


def test_scope_follows_the_volumes_a_vm_lists(tmp_path: Path) -> None:
    data = obj("Volume", "data", {"sizeGiB": 10})
    rig = Rig(tmp_path, cloud(), vm("db", volumes=["data"]), vm("other"), data)
    baseline = Baseline(World({}, {}, {}, Inventory()))
    expected = {"Volume/team/data", "VirtualMachine/team/db"}
    for dirty in (ResourceKey("VirtualMachine", NS, "db"), data.key):
        scope = scope_for([dirty], rig.cache, baseline)
        assert scope is not None and {str(k) for k in scope.keys} == expected


def test_too_large_a_scope_needs_a_full_pass(tmp_path: Path) -> None:
    rig = Rig(tmp_path, cloud())
    baseline = rig.converged_baseline()
    many = [ResourceKey("VirtualMachine", NS, f"x-{i}") for i in range(MAX_SCOPE + 1)]
    assert scope_for(many, rig.cache, baseline) is None


def test_a_budgeted_policy_needs_a_full_pass(tmp_path: Path) -> None:
    rig = Rig(tmp_path, cloud(), vm("a"))
    baseline = rig.converged_baseline()
    rig.cache.upsert(
        obj("BrokerPolicy", "default", {"objective": "Cost", "budget": {"maxMonthly": 900}})
    )
    scope = scope_for([ResourceKey("VirtualMachine", NS, "a")], rig.cache, baseline)
    assert scope is not None
    assert plan_scoped(scope, rig.cache, baseline, "reconciler") is None


@pytest.mark.parametrize("phase", ["delete", "replace"])
def test_baseline_drops_what_an_action_removed(tmp_path: Path, phase: str) -> None:
    rig = Rig(tmp_path, cloud(), vm("a"))
    baseline = rig.converged_baseline()
    key = ResourceKey("VirtualMachine", NS, "a")
    [record] = baseline.inventory([key]).all_vms()
    if phase == "delete":
        action = Action(
            "d", ActionType.DELETE, key, record.cloud, "gone", external_id=record.external_id
        )
        baseline.record(action, None)
        assert baseline.inventory([key]).all_vms() == []
    else:
        params = {"fromCloud": record.cloud, "fromExternalId": record.external_id}
        action = Action("r", ActionType.REPLACE, key, record.cloud, "moved", params=params)
        baseline.record(action, None)
        assert not baseline.valid  # a replace that reports nothing: observe again
    assert baseline.occupied({key}) == []
