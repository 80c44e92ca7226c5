"""Planner unit tests on hand-built inputs."""

from __future__ import annotations

import json

import pytest
from planner_fixtures import LARGE, PRIV, SMALL, make_input, observed, vm_spec

from reconciler.model.errors import PlanError
from reconciler.model.plan import ActionType, Plan
from reconciler.model.specs import DeletionPolicy, MigrationStrategy, PowerState
from reconciler.planner import build_plan


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return sorted((a.type.value, a.key.name) for a in plan.actions)


def test_create_when_nothing_runs() -> None:
    plan = build_plan(make_input([vm_spec("a")], {"a": SMALL}, []))
    assert kinds(plan) == [("create", "a")]
    action = plan.actions[0]
    assert action.cloud == "aws" and action.instance_type == "m.small"
    assert action.params["tags"]["reconciler.dev/key"] == "VirtualMachine/default/a"
    assert "not running anywhere" in action.reason
    assert plan.current_per_hour == 0 and plan.planned_per_hour == pytest.approx(0.05)


def test_no_changes_when_converged() -> None:
    plan = build_plan(make_input([vm_spec("a")], {"a": SMALL}, [observed("a", SMALL, "i-1")]))
    assert plan.actions == ()
    assert plan.current_per_hour == plan.planned_per_hour == pytest.approx(0.05)


def test_resize_has_field_diff() -> None:
    plan = build_plan(make_input([vm_spec("a")], {"a": LARGE}, [observed("a", SMALL, "i-1")]))
    (action,) = plan.actions
    assert action.type is ActionType.UPDATE and action.external_id == "i-1"
    assert [(c.path, c.before, c.after) for c in action.changes] == [
        ("instanceType", "m.small", "m.large")
    ]
    assert action.price_before == 0.05 and action.price_after == 0.10


def test_stop_and_start() -> None:
    spec = vm_spec("a", power_state=PowerState.STOPPED)
    plan = build_plan(make_input([spec], {"a": SMALL}, [observed("a", SMALL, "i-1")]))
    assert kinds(plan) == [("stop", "a")]
    assert plan.planned_per_hour == 0
    stopped = observed("a", SMALL, "i-1", PowerState.STOPPED)
    plan = build_plan(make_input([vm_spec("a")], {"a": SMALL}, [stopped]))
    assert kinds(plan) == [("start", "a")]


def test_undeclared_deleted_orphan_forgotten_protect_errors() -> None:
    running = [
        observed("gone", SMALL, "i-1"),
        observed("kept", SMALL, "i-2", policy=DeletionPolicy.ORPHAN.value),
    ]
    plan = build_plan(make_input([], {}, running))
    assert kinds(plan) == [("delete", "gone"), ("forget", "kept")]
    assert plan.forgotten and "i-2" in plan.forgotten[0]
    with pytest.raises(PlanError, match="protected") as err:
        build_plan(make_input([], {}, [observed("vault", SMALL, "i-3", protect=True)]))
    assert "VirtualMachine/default/vault" in str(err.value)


def test_duplicates_are_deleted_keeping_one() -> None:
    running = [observed("a", SMALL, "i-2"), observed("a", SMALL, "i-1")]
    plan = build_plan(make_input([vm_spec("a")], {"a": SMALL}, running))
    assert kinds(plan) == [("delete", "a")]
    assert plan.actions[0].external_id == "i-2"
    assert "duplicate of i-1" in plan.actions[0].reason


def test_a_move_migrates_with_data_or_replaces_unless_protected() -> None:
    plan = build_plan(make_input([vm_spec("a")], {"a": PRIV}, [observed("a", SMALL, "i-1")]))
    (action,) = plan.actions
    assert action.type is ActionType.MIGRATE and action.cloud == "priv"
    assert action.params["source"] == {"cloud": "aws", "externalId": "i-1", "powerState": "Running"}
    assert action.params["mode"] == "start" and action.params["strategy"] == "Cold"
    assert action.params["target"]["instanceType"] == "p.small"
    assert (
        action.params["target"]["tags"]["reconciler.dev/migration"] == action.params["migrationId"]
    )
    replace = vm_spec("a", migration_strategy=MigrationStrategy.REPLACE)
    plan = build_plan(make_input([replace], {"a": PRIV}, [observed("a", SMALL, "i-1")]))
    (action,) = plan.actions
    assert action.type is ActionType.REPLACE and action.params["fromExternalId"] == "i-1"
    with pytest.raises(PlanError, match="protected"):
        build_plan(
            make_input([vm_spec("a", protect=True)], {"a": PRIV}, [observed("a", SMALL, "i-1")])
        )


def test_protect_change_is_recorded_as_tag_update() -> None:
    plan = build_plan(
        make_input([vm_spec("a", protect=True)], {"a": SMALL}, [observed("a", SMALL, "i-1")])
    )
    (action,) = plan.actions
    assert action.type is ActionType.UPDATE
    assert action.changes[0].path == "tags.reconciler.dev/protect"


def test_json_round_trip_and_stable_ids() -> None:
    inp = make_input(
        [vm_spec("a"), vm_spec("b")], {"a": SMALL, "b": PRIV}, [observed("c", SMALL, "i-9")]
    )
    plan = build_plan(inp)
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again.to_json() == plan.to_json()
    assert build_plan(inp).to_json() == plan.to_json()  # deterministic
    cost = plan.to_json()["cost"]
    assert cost["deltaPerMonth"] == pytest.approx((0.07 - 0.05) * 730, abs=0.01)
