"""Rebalancing and migration driven by the operator against a real API server.

Two simulated clouds with inline prices, a BrokerPolicy with a Daily rebalance, a VM
with a Volume. The operator places them on the cheap cloud; the test writes bytes to
both simulated disks, then raises that cloud's price. With its clock on the next day
(a new round) the operator migrates the VM and its volume, and the bytes arrive intact
(SHA-256 of the simulated disks). The migration-abort annotation rolls a migration
back: one stopped between two steps of a live operator, one left half done by a
SIGKILLed operator. State (rounds, migration records) lives in a ConfigMap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import pytest

from kube.ophelp import (
    OPERATOR_NS,
    Env,
    cond,
    create,
    events_for,
    get,
    image_body,
    policy_body,
    sim_all,
    sim_write_disk,
    wait_condition,
    wait_for,
)
from reconciler.executor.migration import STEPS
from reconciler.model.errors import TransientError
from reconciler.model.keys import (
    TAG_KEY,
    TAG_MIGRATION,
    TAG_MIGRATION_TARGET,
    TAG_RETAIN_UNTIL,
    ResourceKey,
)
from reconciler.operator.kube import NotFound, resource_path
from reconciler.operator.state_store import KEEP_FINISHED, ClusterState
from reconciler.providers.sim.records import IMAGE, OBJECT, VM, VOLUME, SimResource

pytestmark = pytest.mark.timeout(240)

DAY1, DAY2 = "2026-12-03T10:00:00Z", "2026-12-04T10:00:00Z"
ABORT = "reconciler.dev/migration-abort"


def cloud_body(name: str, price: float, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "Cloud",
        "metadata": {"name": name},
        "spec": {
            "provider": "sim",
            "region": name[-1],
            "pricing": {
                "mode": "Replace",
                "egressPerGiB": 0.02,
                "offers": [offer(price)],
            },
            **spec,
        },
    }


def offer(price: float) -> dict[str, Any]:
    return {"name": "std.small", "vcpus": 2, "memoryGiB": 4, "pricePerHour": price}


class Scene:
    """Clouds a (cheap at first) and b, policy ``cheap``, VM ``app`` with Volume ``data``."""

    def __init__(self, env: Env, latency_b: float = 0.0) -> None:
        self.env, self.ns = env, env.ns
        base = env.cloud[:60]
        self.a, self.b = f"{base}-a", f"{base}-b"
        env.clouds += [self.a, self.b]
        create(env.admin, cloud_body(self.a, 0.20))
        extra = {"simulation": {"latencyMs": latency_b}} if latency_b else {}
        create(env.admin, cloud_body(self.b, 0.30, **extra))
        rebalance = {
            "interval": "Daily",
            "minSavingsPercent": 10,
            "minSavingsPerMonth": 5,
            "horizonDays": 30,
            "cooldownHours": 0,
            "maxConcurrentMigrations": 1,
        }
        create(env.admin, policy_body(self.ns, "cheap", rebalance=rebalance))
        create(env.admin, image_body(self.ns))
        env.vm(
            "app",
            policyRef={"name": "cheap"},
            migration={"strategy": "Cold", "retainSourceFor": "24h"},
        )
        volume = {
            "apiVersion": "reconciler.dev/v1alpha1",
            "kind": "Volume",
            "metadata": {"name": "data", "namespace": self.ns},
            "spec": {"sizeGiB": 10, "attachTo": "app"},
        }
        create(env.admin, volume)
        self.vm_key = f"VirtualMachine/{self.ns}/app"
        self.vol_key = f"Volume/{self.ns}/data"
        self.shas: dict[str, str] = {}

    def ours(self, kind: str, key: str) -> list[SimResource]:
        return [r for r in sim_all(self.env.state) if r.kind == kind and r.tags.get(TAG_KEY) == key]

    def place(self) -> None:
        """Run an operator on DAY1 until the VM and volume run on a; write their disks;
        stop it; raise a's price so that moving to b pays."""
        op = self.env.operator(env={"RECONCILER_NOW": DAY1})
        vm = wait_condition(self.env.admin, "VirtualMachine", self.ns, "app", "Ready", "True")
        assert vm["status"]["placement"]["cloud"] == self.a
        wait_condition(self.env.admin, "Volume", self.ns, "data", "Ready", "True")
        policy = wait_for(lambda: self.rebalance(state="done"), 30, "the DAY1 round done")
        assert policy["period"] == "2026-12-03" and policy["nextRound"].startswith("2026-12-04")
        (source,) = self.ours(VM, self.vm_key)
        (volume,) = self.ours(VOLUME, self.vol_key)
        assert volume.attached_to == source.id
        self.shas = {
            "vm": sim_write_disk(self.env.state, source.id, b"guest wrote this " * 4000),
            "volume": sim_write_disk(self.env.state, volume.id, b"database page " * 9000),
        }
        assert op.terminate() == 0
        path = resource_path("Cloud", "", self.a)
        self.env.admin.merge_patch(path, {"spec": {"pricing": {"offers": [offer(0.40)]}}})

    def rebalance(self, **want: Any) -> dict[str, Any] | None:
        obj = get(self.env.admin, "BrokerPolicy", self.ns, "cheap") or {}
        found = (obj.get("status") or {}).get("rebalance") or {}
        return found if found and all(found.get(k) == v for k, v in want.items()) else None

    def vm_status(self) -> dict[str, Any]:
        obj = get(self.env.admin, "VirtualMachine", self.ns, "app") or {}
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def state(self) -> dict[str, Any]:
        """The operator's state ConfigMap, decoded."""
        name = f"journal-{self.ns}-state"
        raw = self.env.admin.get(resource_path("ConfigMap", OPERATOR_NS, name))
        return {k: json.loads(v) for k, v in raw["data"].items()}

    def check_moved(self) -> None:
        """One live VM, on b, with the source's bytes; the source kept stopped (retained);
        the volume moved with its bytes; nothing staged or imported left behind."""
        vms = self.ours(VM, self.vm_key)
        live = [v for v in vms if not v.tags.get(TAG_RETAIN_UNTIL)]
        assert len(live) == 1, [(v.cloud, v.tags) for v in vms]
        (target,) = live
        assert (target.cloud, target.power_state) == (self.b, "Running")
        assert target.disk == self.shas["vm"] and not target.tags.get(TAG_MIGRATION)
        retained = [(v.cloud, v.power_state, v.disk) for v in vms if v.tags.get(TAG_RETAIN_UNTIL)]
        assert retained == [(self.a, "Stopped", self.shas["vm"])]
        volumes = {v.cloud: v for v in self.ours(VOLUME, self.vol_key)}
        assert volumes[self.b].attached_to == target.id
        assert volumes[self.b].disk == self.shas["volume"]
        assert [r for r in sim_all(self.env.state) if r.kind in (IMAGE, OBJECT)] == []

    def check_not_moved(self) -> None:
        """Exactly the original VM and volume, on a, running, bytes intact, untagged;
        nothing left on b."""
        (vm,) = self.ours(VM, self.vm_key)
        assert (vm.cloud, vm.power_state, vm.disk) == (self.a, "Running", self.shas["vm"])
        assert not vm.tags.get(TAG_MIGRATION) and not vm.tags.get(TAG_MIGRATION_TARGET)
        (vol,) = self.ours(VOLUME, self.vol_key)
        assert (vol.cloud, vol.attached_to, vol.disk) == (self.a, vm.id, self.shas["volume"])
        assert [r for r in sim_all(self.env.state) if r.kind in (IMAGE, OBJECT)] == []

    def reasons(self) -> list[str]:
        return [e["reason"] for e in events_for(self.env.admin, self.ns, "app")]

    def wait_past_first_step(self) -> dict[str, Any]:
        """status.migration once the source is marked (stopped before "mark", a
        migration has begun nowhere: the next leader starts it anew)."""

        def past() -> dict[str, Any] | None:
            found: dict[str, Any] | None = self.vm_status().get("migration")
            return found if found and found["phase"] != "pending" else None

        seen: dict[str, Any] = wait_for(past, 60, "status.migration past its first step", 0.05)
        return seen

    def wait_moved(self, seconds: float, what: str) -> None:
        """Until status says the VM is Ready on b; then check_moved."""
        wait_for(
            lambda: (
                self.vm_status().get("placement", {}).get("cloud") == self.b
                and cond({"status": self.vm_status()}, "Ready").get("status") == "True"
            ),
            seconds,
            what,
        )
        self.check_moved()

    def annotate_abort(self, value: str | None = "true") -> None:
        path = resource_path("VirtualMachine", self.ns, "app")
        self.env.admin.merge_patch(path, {"metadata": {"annotations": {ABORT: value}}})


def test_a_cheaper_cloud_migrates_the_vm_and_its_volume_with_their_bytes(env: Env) -> None:
    scene = Scene(env)
    scene.place()
    env.operator(env={"RECONCILER_NOW": DAY2})
    phases: list[str] = []

    def moved() -> bool:
        status = scene.vm_status()
        if "migration" in status:
            phases.append(status["migration"]["phase"])
            assert status["migration"]["targetCloud"] == scene.b
            assert cond({"status": status}, "Synced")["reason"] == "Migrating"
        ready = cond({"status": status}, "Ready").get("status") == "True"
        return ready and status.get("placement", {}).get("cloud") == scene.b

    wait_for(moved, 90, "the VM Ready on the cheaper cloud", every=0.05)
    scene.check_moved()
    status = scene.vm_status()
    assert "migration" not in status  # gone once the migration finished
    assert cond({"status": status}, "Synced")["reason"] == "UpToDate"
    vol = wait_condition(env.admin, "Volume", env.ns, "data", "Ready", "True")
    assert vol["status"]["cloud"] == scene.b
    wait_for(lambda: {"MigrationStarted", "Migrated"} <= set(scene.reasons()), 20, "Events")
    assert scene.reasons().count("MigrationStarted") == 1
    assert "ActionFailed" not in scene.reasons()
    # The round: open while moving, then nothing more worth moving -> done (recorded).
    policy = wait_for(lambda: scene.rebalance(period="2026-12-04", state="done"), 30, "round")
    assert policy["interval"] == "Daily" and policy["inFlight"] == 0
    state = scene.state()
    assert state["rounds.json"] == {f"BrokerPolicy/{env.ns}/cheap": "2026-12-04"}
    (record,) = state["migrations.json"].values()
    assert record["step"] == "finish" and record["key"] == scene.vm_key
    assert record["startedAt"] == DAY2
    assert set(phases) <= {"pending", *STEPS[:-1]}  # the last step completed, until finish


def test_the_loop_goes_on_while_a_migration_runs(env: Env) -> None:
    """A migration runs beside the reconcile loop: a VM declared while it copies disks
    is placed and Ready before the migration ends; the migration then finishes."""
    scene = Scene(env, latency_b=1000)
    scene.place()
    env.operator(env={"RECONCILER_NOW": DAY2})
    scene.wait_past_first_step()
    env.vm("other", policyRef={"name": "cheap"}, placement={"cloud": scene.a})
    other = wait_condition(env.admin, "VirtualMachine", env.ns, "other", "Ready", "True")
    assert other["status"]["placement"]["cloud"] == scene.a
    still = scene.vm_status().get("migration")
    assert still is not None, "the migration ended before the other VM was served"
    assert cond({"status": scene.vm_status()}, "Synced")["reason"] == "Migrating"
    scene.wait_moved(120, "the migration done")
    assert scene.reasons().count("MigrationStarted") == 1 and "Migrated" in scene.reasons()


def test_abort_annotation_stops_a_running_migration_and_rolls_it_back(env: Env) -> None:
    scene = Scene(env, latency_b=400)
    scene.place()
    env.operator(env={"RECONCILER_NOW": DAY2})
    seen = scene.wait_past_first_step()
    assert seen["sourceCloud"] == scene.a and seen["targetCloud"] == scene.b
    assert seen["id"].startswith("m-") and seen["startedAt"] == DAY2
    scene.annotate_abort()

    def rolled_back() -> dict[str, Any] | None:
        obj = get(env.admin, "VirtualMachine", env.ns, "app")
        return (
            obj
            if "MigrationAborted" in scene.reasons()
            and cond(obj, "Synced").get("reason") == "MigrationHeld"
            else None
        )

    obj = wait_for(rolled_back, 90, "the rollback, then the migration held")
    scene.check_not_moved()
    assert obj["status"]["placement"]["cloud"] == scene.a
    assert "migration" not in obj["status"]
    assert cond(obj, "Ready")["status"] == "True"  # running where it was
    assert ABORT in cond(obj, "Synced")["message"]
    assert "Migrated" not in scene.reasons() and "ActionFailed" not in scene.reasons()
    assert scene.rebalance(period="2026-12-04", state="open")  # a move is still worth it
    # Without the annotation the held migration goes ahead.
    scene.annotate_abort(None)
    scene.wait_moved(90, "the migration after the annotation went")


def test_abort_annotation_rolls_back_a_migration_a_killed_operator_left(env: Env) -> None:
    scene = Scene(env)
    scene.place()
    # The 10th cloud mutation of the migration creates its volume in b (after mark,
    # stop, staging, export, import and the target VM): SIGKILL the operator there.
    crashing = env.operator(env={"RECONCILER_NOW": DAY2, "RECONCILER_SIM_CRASH": "enter:10"},
                            wait=False)  # fmt: skip
    assert crashing.proc is not None
    assert crashing.proc.wait(90) == -9
    (source,) = [v for v in scene.ours(VM, scene.vm_key) if v.cloud == scene.a]
    assert source.tags[TAG_MIGRATION_TARGET].startswith(scene.b)
    assert source.power_state == "Stopped"
    assert [v.cloud for v in scene.ours(VM, scene.vm_key) if v.cloud == scene.b] == [scene.b]
    (record,) = scene.state()["migrations.json"].values()
    assert record["step"] == "import"  # the last step finished before the kill
    scene.annotate_abort()
    env.operator(env={"RECONCILER_NOW": DAY2})
    wait_for(lambda: "MigrationAborted" in scene.reasons(), 90, "the rollback")
    wait_condition(env.admin, "VirtualMachine", env.ns, "app", "Synced", "False", "MigrationHeld")
    scene.check_not_moved()
    assert scene.vm_status()["placement"]["cloud"] == scene.a
    (record,) = scene.state()["migrations.json"].values()
    assert record["step"] == "aborted"


def test_sigterm_stops_a_migration_between_steps_and_the_next_leader_resumes_it(
    env: Env,
) -> None:
    scene = Scene(env, latency_b=400)
    scene.place()
    op = env.operator(env={"RECONCILER_NOW": DAY2})
    scene.wait_past_first_step()  # stopped before it, the next leader starts it anew
    assert op.terminate(timeout=20) == 0  # does not wait for the whole migration
    assert "shutting down; the next leader resumes it" in op.logs()
    (source,) = [v for v in scene.ours(VM, scene.vm_key) if v.cloud == scene.a]
    assert source.tags.get(TAG_MIGRATION_TARGET, "").startswith(scene.b)  # still in flight
    env.operator(env={"RECONCILER_NOW": DAY2})
    scene.wait_moved(90, "the resumed migration done")
    reasons = scene.reasons()
    assert reasons.count("MigrationStarted") == 1 and "Migrated" in reasons
    assert "ActionFailed" not in reasons


def test_state_configmap_is_checked_pruned_and_made_only_when_written(env: Env) -> None:
    """The store as the RBAC-limited operator user: created on the first write, a stale
    writer refused, rolled-back records not resumed, finished records pruned."""
    client = env.kube.operator_client()
    name, path = f"state-{env.ns}", resource_path("ConfigMap", OPERATOR_NS, f"state-{env.ns}")
    clock = [dt.datetime(2026, 12, 3, tzinfo=dt.UTC)]

    def stamp(**delta: float) -> str:
        return (clock[0] + dt.timedelta(**delta)).isoformat().replace("+00:00", "Z")

    state = ClusterState(client, OPERATOR_NS, name, clock=lambda: clock[0])
    try:
        assert state.rounds() == {} and state.load("m-1") is None
        with pytest.raises(NotFound):
            env.admin.get(path)  # reading creates nothing
        state.save("m-1", {"key": "VirtualMachine/ns/a", "step": "mark", "updatedAt": stamp()})
        policy = ResourceKey("BrokerPolicy", "ns", "p")
        state.complete_rounds({policy: "2026-12-03"})
        other = ClusterState(client, OPERATOR_NS, name, clock=lambda: clock[0])
        assert other.rounds() == {policy: "2026-12-03"}
        assert other.load("m-1") == {
            "id": "m-1", "key": "VirtualMachine/ns/a", "step": "mark", "updatedAt": stamp(),
            "startedAt": stamp(),
        }  # fmt: skip
        other.save("m-2", {"step": "mark", "updatedAt": stamp(hours=1)})
        with pytest.raises(TransientError, match="another writer"):
            state.save("m-1", {"step": "stop", "updatedAt": stamp(hours=2)})  # stale copy
        state.save("m-1", {"step": "stop", "updatedAt": stamp(hours=2)})  # after a re-read
        assert state.load("m-2") is not None and state.load("m-1")["startedAt"] == stamp()
        state.save("m-3", {"step": "aborted", "updatedAt": stamp(hours=3)})
        assert state.load("m-3") is None  # the same move later starts afresh
        for i in range(KEEP_FINISHED + 5):
            state.save(f"f-{i}", {"step": "finish", "updatedAt": stamp(minutes=i)})
        finished = {r["id"] for r in state.all() if r["step"] in ("finish", "aborted")}
        assert len(finished) == KEEP_FINISHED and "f-0" not in finished
        clock[0] += dt.timedelta(days=8)
        state.save("m-1", {"step": "export", "updatedAt": stamp()})
        assert sorted(r["id"] for r in state.all()) == ["m-1", "m-2"]  # finished ones gone
        clock[0] += dt.timedelta(days=25)
        state.complete_rounds({policy: "2027-01-05"})
        assert [r["id"] for r in state.all()] == ["m-1"]  # untouched for 30 days: gone
        raw = env.admin.get(path)
        assert json.loads(raw["data"]["rounds.json"]) == {"BrokerPolicy/ns/p": "2027-01-05"}
    finally:
        client.close()
        with contextlib.suppress(NotFound):
            env.admin.delete(path)
