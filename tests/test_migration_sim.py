"""Migration on the simulator, end to end through the CLI: a cost-driven move of a VM
and its volume with their bytes, a SIGKILL at every step of it, and abort.

The simulator keeps real (scaled-down) disk bytes, so "data intact" is a SHA-256
comparison of the disks before the move and after.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clirun import run

from reconciler.model.keys import (
    TAG_KEY,
    TAG_MIGRATION,
    TAG_MIGRATION_TARGET,
    TAG_RETAIN_UNTIL,
)
from reconciler.providers.sim import drop_worlds, get_world
from reconciler.providers.sim.records import IMAGE, OBJECT, VM, VOLUME, SimResource

DAY1, DAY2, DAY3 = "2026-12-03T10:00:00Z", "2026-12-04T10:00:00Z", "2026-12-05T11:00:00Z"
VM_KEY, VOL_KEY = "VirtualMachine/default/app", "Volume/default/data"

MANIFESTS = """\
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {{name: dc-a}}
spec:
  provider: sim
  region: a
  pricing:
    mode: Replace
    egressPerGiB: 0.02
    offers:
    - {{name: std.small, vcpus: 2, memoryGiB: 4, pricePerHour: {price_a}}}
---
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {{name: dc-b}}
spec:
  provider: sim
  region: b
  pricing:
    mode: Replace
    egressPerGiB: 0.02
    offers:
    - {{name: std.small, vcpus: 2, memoryGiB: 4, pricePerHour: 0.30}}
---
apiVersion: reconciler.dev/v1alpha1
kind: BrokerPolicy
metadata: {{name: cheap, namespace: default}}
spec:
  rebalance:
    interval: Daily
    minSavingsPercent: 10
    minSavingsPerMonth: 5
    horizonDays: 30
    cooldownHours: 0
    maxConcurrentMigrations: 1
---
apiVersion: reconciler.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: app, namespace: default}}
spec:
  image: ubuntu
  resources: {{vcpus: 2, memoryGiB: 4, diskGiB: 20}}
  policyRef: {{name: cheap}}
  migration: {{strategy: Cold, retainSourceFor: 24h}}
---
apiVersion: reconciler.dev/v1alpha1
kind: Volume
metadata: {{name: data, namespace: default}}
spec:
  sizeGiB: 10
  attachTo: app
---
apiVersion: reconciler.dev/v1alpha1
kind: Image
metadata: {{name: ubuntu, namespace: default}}
spec: {{format: qcow2}}
"""


def write(path: Path, price_a: float) -> None:
    (path / "app.yaml").write_text(MANIFESTS.format(price_a=price_a))


def resources(state: Path) -> list[SimResource]:
    world = get_world(state)
    with world.reading():
        return list(world.resources())


def ours(state: Path, kind: str, key: str) -> list[SimResource]:
    return [r for r in resources(state) if r.kind == kind and r.tags.get(TAG_KEY) == key]


def apply(manifests: Path, state: Path, now: str, **env: str) -> int:
    result = run(
        "apply", str(manifests), "--auto-approve", state=state, env={"RECONCILER_NOW": now, **env}
    )
    return result.code


@pytest.fixture
def placed(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """VM app and its volume running on dc-a with data written by the "guest"; then
    dc-a's price rises so moving to dc-b pays. Returns (manifests, state, shas)."""
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    write(manifests, 0.20)
    assert apply(manifests, state, DAY1) == 0
    (vm,) = ours(state, VM, VM_KEY)
    (vol,) = ours(state, VOLUME, VOL_KEY)
    world = get_world(state)
    shas = {
        "vm": world.write_disk(vm.id, b"guest wrote this " * 4000),
        "volume": world.write_disk(vol.id, b"database page " * 9000),
    }
    drop_worlds()
    write(manifests, 0.40)
    return manifests, state, shas


def check_moved(state: Path, shas: dict[str, str]) -> None:
    """Exactly one live VM for the key, on dc-b, with the source's bytes; the source is
    kept stopped until its retention ends; the volume moved with its bytes."""
    vms = ours(state, VM, VM_KEY)
    live = [v for v in vms if not v.tags.get(TAG_RETAIN_UNTIL)]
    assert len(live) == 1, [(v.cloud, v.tags) for v in vms]
    (target,) = live
    assert target.cloud == "dc-b" and target.power_state == "Running"
    assert target.disk == shas["vm"] and not target.tags.get(TAG_MIGRATION)
    retained = [v for v in vms if v.tags.get(TAG_RETAIN_UNTIL)]
    assert [(v.cloud, v.power_state, v.disk) for v in retained] == [("dc-a", "Stopped", shas["vm"])]
    volumes = {v.cloud: v for v in ours(state, VOLUME, VOL_KEY)}
    assert volumes["dc-b"].attached_to == target.id and volumes["dc-b"].disk == shas["volume"]
    assert volumes["dc-a"].disk == shas["volume"]  # untouched, with its source VM
    leftovers = [r for r in resources(state) if r.kind in (IMAGE, OBJECT)]
    assert leftovers == []  # staged objects and imported images cleaned up
    drop_worlds()


def check_not_moved(state: Path, shas: dict[str, str]) -> None:
    (vm,) = ours(state, VM, VM_KEY)
    assert vm.cloud == "dc-a" and vm.power_state == "Running" and vm.disk == shas["vm"]
    assert not vm.tags.get(TAG_MIGRATION) and not vm.tags.get(TAG_MIGRATION_TARGET)
    (vol,) = ours(state, VOLUME, VOL_KEY)
    assert vol.cloud == "dc-a" and vol.attached_to == vm.id and vol.disk == shas["volume"]
    assert [r for r in resources(state) if r.kind in (IMAGE, OBJECT)] == []
    drop_worlds()


def test_cost_move_carries_vm_and_volume_with_their_bytes(
    placed: tuple[Path, Path, dict[str, str]],
) -> None:
    manifests, state, shas = placed
    shown = run("plan", str(manifests), "-o", "json", state=state, env={"RECONCILER_NOW": DAY2})
    plan = json.loads(shown.out)
    (action,) = plan["actions"]
    assert action["action"] == "migrate" and action["cloud"] == "dc-b"
    econ = action["params"]["economics"]
    assert econ["savingsPerMonth"] == 73.0 and econ["egressCost"] == 0.6  # 30 GiB x $0.02
    assert econ["netOverHorizon"] > econ["threshold"] > 0
    assert [v["key"] for v in action["params"]["volumes"]] == [VOL_KEY]
    assert plan["rebalance"][0]["state"] == "open"
    assert apply(manifests, state, DAY2) == 0
    check_moved(state, shas)
    again = run(
        "plan", str(manifests), "--detailed-exitcode", state=state, env={"RECONCILER_NOW": DAY2}
    )
    assert again.code == 0, again.out  # no churn: nothing more to do
    # After retainSourceFor (24h) the source goes with its volume: detached, deleted,
    # then the VM.
    expired = run("plan", str(manifests), "-o", "json", state=state, env={"RECONCILER_NOW": DAY3})
    actions = {a["id"]: a for a in json.loads(expired.out)["actions"]}
    assert sorted((a["action"], a["kind"], a["cloud"]) for a in actions.values()) == [
        ("delete", "VirtualMachine", "dc-a"), ("delete", "Volume", "dc-a"),
        ("detach", "Volume", "dc-a"),
    ]  # fmt: skip
    vm_delete = next(a for a in actions.values() if a["kind"] == "VirtualMachine")
    (first,) = vm_delete["dependsOn"]
    assert actions[first]["action"] == "delete" and actions[first]["kind"] == "Volume"
    assert apply(manifests, state, DAY3) == 0
    assert {
        (r.cloud, r.kind) for r in resources(state) if r.tags.get(TAG_KEY) in (VM_KEY, VOL_KEY)
    } == {
        ("dc-b", VM),
        ("dc-b", VOLUME),
    }
    final = run(
        "plan", str(manifests), "--detailed-exitcode", state=state, env={"RECONCILER_NOW": DAY3}
    )
    assert final.code == 0, final.out


@pytest.mark.parametrize("phase", ["enter", "leave"])
def test_sigkill_at_every_step_resumes_and_loses_nothing(
    placed: tuple[Path, Path, dict[str, str]], tmp_path: Path, phase: str
) -> None:
    manifests, base, shas = placed
    crashes = 0
    for n in range(1, 60):
        state = tmp_path / f"{phase}-{n}"
        shutil.copytree(base, state)
        code = apply(manifests, state, DAY2, RECONCILER_SIM_CRASH=f"{phase}:{n}")
        if code != -9:
            assert code == 0
            check_moved(state, shas)
            break
        crashes += 1
        assert apply(manifests, state, DAY2) == 0, f"resume after a kill at {phase}:{n}"
        check_moved(state, shas)
    else:
        pytest.fail("the migration never completed without a kill")
    assert crashes >= 12  # every step of the state machine was interrupted at least once


def test_abort_rolls_back_to_the_source(placed: tuple[Path, Path, dict[str, str]]) -> None:
    manifests, state, shas = placed
    # Kill the apply as the target VM is being created (after export and import).
    for n in range(1, 40):
        trial = state.parent / f"abort-{n}"
        shutil.copytree(state, trial)
        assert apply(manifests, trial, DAY2, RECONCILER_SIM_CRASH=f"enter:{n}") == -9
        if any(r.cloud == "dc-b" for r in ours(trial, VM, VM_KEY)):
            break
        drop_worlds()
    listed = run("migrate", "list", str(manifests), state=trial, env={"RECONCILER_NOW": DAY2})
    assert "VirtualMachine/default/app: m-" in listed.out and "to dc-b" in listed.out
    aborted = run(
        "migrate",
        "abort",
        "vm/default/app",
        str(manifests),
        "--auto-approve",
        state=trial,
        env={"RECONCILER_NOW": DAY2},
    )
    assert aborted.code == 0, aborted.out + aborted.err
    assert "roll back" in aborted.out
    # The cost line is the rollback's own: the stopped source runs again on dc-a at
    # $0.40/h (the whole plan would count the move to dc-b the rollback undoes).
    cost = next(line for line in aborted.out.splitlines() if "Cost:" in line)
    assert cost.endswith("Cost: $0.00/mo -> $292.00/mo (+$292.00/mo)"), cost
    check_not_moved(trial, shas)
    assert ours(trial, VM, VM_KEY)[0].power_state == "Running"
    drop_worlds()
    listed = run("migrate", "list", str(manifests), state=trial, env={"RECONCILER_NOW": DAY2})
    assert "No migrations in flight." in listed.out
    nothing = run("migrate", "abort", "vm/default/app", str(manifests), state=trial)
    assert nothing.code == 1 and "no migration in flight" in nothing.err
    # The same move (same source, same target: same migration id) can run again later.
    assert apply(manifests, trial, DAY3) == 0
    check_moved(trial, shas)
