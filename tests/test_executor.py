"""Executor against the simulator: retries, permanent failures, waves, journal, limits."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.executor.engine import Settings, apply, make_plan, providers_for, recover
from reconciler.executor.journal import read_in_flight
from reconciler.executor.runner import split_waves
from reconciler.model.keys import ResourceKey
from reconciler.model.plan import Action, ActionType
from reconciler.model.specs import (
    CloudSpec,
    DesiredState,
    FaultInjection,
    Pricing,
    RateLimit,
    Resources,
    Simulation,
    VMSpec,
    VolumeSpec,
)
from reconciler.providers.sim.world import drop_worlds


@pytest.fixture(autouse=True)
def _fresh_worlds() -> None:
    drop_worlds()


def cloud(name: str, **kw: object) -> CloudSpec:
    return CloudSpec(name=name, provider="sim", pricing=Pricing(catalog="aws-eu-west-1"), **kw)  # type: ignore[arg-type]


def vms(count: int, **kw: object) -> dict[ResourceKey, VMSpec]:
    keys = [ResourceKey("VirtualMachine", "default", f"vm-{i}") for i in range(count)]
    return {k: VMSpec(key=k, resources=Resources(2, 4.0), **kw) for k in keys}  # type: ignore[arg-type]


def keys_running(settings: Settings, desired: DesiredState) -> Counter[str]:
    providers = providers_for(desired, settings)
    return Counter(str(vm.key) for p in providers.values() for vm in p.list_managed().vms)


def test_transient_faults_are_retried_without_duplicates(tmp_path: Path) -> None:
    faults = Simulation(faults=FaultInjection(transient_rate=0.4, seed=5))
    desired = DesiredState(clouds={"c": cloud("c", simulation=faults)}, vms=vms(30))
    settings = Settings(state_dir=tmp_path, parallelism=4)
    planned = make_plan(desired, settings)
    events: list[str] = []
    result = apply(planned.plan, planned.world, desired, settings, lambda e: events.append(e.phase))
    assert result.ok, result.failed
    assert "retry" in events
    running = keys_running(settings, desired)
    assert len(running) == 30 and set(running.values()) == {1}
    assert make_plan(desired, settings).plan.actions == ()


def test_permanent_failure_skips_dependents(tmp_path: Path) -> None:
    broken = Simulation(faults=FaultInjection(permanent_rate=1.0, operations=("create",)))
    desired = DesiredState(
        clouds={"c": cloud("c", simulation=broken)},
        vms=vms(1),
        volumes={
            ResourceKey("Volume", "default", "d"): VolumeSpec(
                key=ResourceKey("Volume", "default", "d"), size_gib=10, attach_to="vm-0"
            )
        },
    )
    settings = Settings(state_dir=tmp_path)
    planned = make_plan(desired, settings)
    result = apply(planned.plan, planned.world, desired, settings)
    assert not result.ok
    assert any(i.startswith("create:VirtualMachine") for i in result.failed)
    assert any(i.startswith("attach:Volume") for i in result.skipped)


def test_client_side_rate_limit(tmp_path: Path) -> None:
    desired = DesiredState(
        clouds={"c": cloud("c", rate_limit=RateLimit(requests_per_second=20, burst=1))},
        vms=vms(11),
    )
    settings = Settings(state_dir=tmp_path, parallelism=8)
    planned = make_plan(desired, settings)
    start = time.monotonic()
    assert apply(planned.plan, planned.world, desired, settings).ok
    assert time.monotonic() - start >= 0.45  # 10 waits of 1/20 s after the first token


def test_destroys_run_in_the_first_wave() -> None:
    key = ResourceKey("VirtualMachine", "default", "a")
    create = Action("create:a", ActionType.CREATE, key, "c", "r")
    delete = Action("delete:b", ActionType.DELETE, key, "c", "r")
    detach = Action("detach:v", ActionType.DETACH, key, "c", "r", depends_on=("create:a",))
    first, second = split_waves([create, delete, detach])
    assert [a.id for a in first] == ["delete:b"]
    assert [a.id for a in second] == ["create:a", "detach:v"]


def test_interrupted_apply_is_recovered_from_the_journal(tmp_path: Path) -> None:
    desired = DesiredState(clouds={"c": cloud("c")}, vms=vms(2))
    settings = Settings(state_dir=tmp_path)
    planned = make_plan(desired, settings)
    assert apply(planned.plan, planned.world, desired, settings).ok
    made = planned.plan.actions[0]
    uid = made.params["tags"]["reconciler.dev/uid"]
    journal = settings.journal_path
    with journal.open("a") as handle:  # what a SIGKILL between intent and outcome leaves
        handle.write(json.dumps({"phase": "begin", "plan": "p2"}) + "\n")
        handle.write(
            json.dumps({"phase": "intent", "plan": "p2", "id": made.id, "cloud": "c", "uid": uid})
            + "\n"
        )
        handle.write(
            json.dumps(
                {
                    "phase": "intent",
                    "plan": "p2",
                    "id": "create:x@c",
                    "cloud": "c",
                    "uid": "never-made",
                }
            )
            + "\n"
        )
        handle.write('{"phase": "done", "pla')  # torn last line
    assert len(read_in_flight(journal)) == 2
    notes = recover(settings, providers_for(desired, settings))
    assert any("completed" in n and made.id in n for n in notes)
    assert any("did not happen" in n for n in notes)
    assert read_in_flight(journal) == []
