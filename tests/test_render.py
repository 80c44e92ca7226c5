"""Renderers read only the plan's JSON form."""

from __future__ import annotations

from planner_fixtures import SMALL, make_input, observed, vm_spec

from reconciler.cli.render.markdown import render_markdown
from reconciler.cli.render.text import render_text
from reconciler.model.keys import ResourceKey
from reconciler.model.placement import BrokerResult, Unplaced
from reconciler.planner import build_plan


def test_text_lists_destroys_first_and_ends_with_summary_and_price_age() -> None:
    inp = make_input([vm_spec("new")], {"new": SMALL}, [observed("old", SMALL, "i-1")])
    text = render_text(build_plan(inp).to_json())
    assert text.index("- delete VirtualMachine/default/old") < text.index("+ create")
    assert "Plan: 1 to create, 0 to change, 1 to delete." in text
    assert "aws: prices as of 2024-06-01 (907 days old, simulated)" in text
    assert "\033[" not in text  # no colour unless asked


def test_unplaced_is_not_reported_as_converged() -> None:
    inp = make_input([vm_spec("a")], {}, [])
    key = ResourceKey("VirtualMachine", "default", "a")
    result = BrokerResult(placements={}, unplaced={key: Unplaced(key, ("no capacity",))})
    plan = build_plan(
        type(inp)(inp.desired, inp.inventory, result, inp.clouds, inp.owner, inp.created_at)
    ).to_json()
    for rendered in (render_text(plan), render_markdown(plan)):
        assert "cannot be placed" in rendered and "match the manifests" not in rendered


def test_markdown_has_cost_table() -> None:
    plan = build_plan(make_input([vm_spec("a")], {"a": SMALL}, [])).to_json()
    md = render_markdown(plan)
    assert md.startswith("### reconciler plan") and "| **total** |" in md
    assert "`+` | create | `VirtualMachine/default/a`" in md
