"""Terraform-like text rendering of a plan (colour only on a terminal)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.cli.render.common import (
    SYMBOL,
    VERB,
    change_lines,
    drift_lines,
    hourly,
    migrate_lines,
    no_changes_line,
    price_age,
    rebalance_lines,
    sorted_actions,
    summary_line,
)

COLOURS = {
    "+": "32",
    "-": "31",
    "-/+": "35",
    "=>": "35",
    "<>": "36",
    "~": "33",
    ">": "32",
    "||": "33",
    "!": "36",
    "&": "34",
    "x": "34",
}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def _action_block(action: Mapping[str, Any], colour: bool) -> list[str]:
    symbol = SYMBOL[action["action"]]
    where = action["cloud"]
    if action.get("externalId"):
        where += f" ({action['externalId']})"
    itype = f"  {action['instanceType']}" if action.get("instanceType") else ""
    prices = action["pricePerHour"]
    cost = ""
    if prices["before"] or prices["after"]:
        cost = f"  {hourly(prices['before'])} -> {hourly(prices['after'])}"
    head = f"  # {action['key']} {VERB[action['action']]}"
    line = f"  {symbol} {action['action']} {action['key']} on {where}{itype}{cost}"
    lines = [_paint(head, "1", colour), _paint(line, COLOURS[symbol], colour)]
    lines.extend(f"      {c}" for c in change_lines(action))
    lines.extend(f"      {m}" for m in migrate_lines(action))
    lines.append(f"      reason: {action['reason']}")
    if action.get("dependsOn"):
        lines.append(f"      after: {', '.join(action['dependsOn'])}")
    lines.append("")
    return lines


def render_text(plan: Mapping[str, Any], colour: bool = False) -> str:
    """The whole plan as text; ends with the one-line summary."""
    out: list[str] = []
    actions = sorted_actions(plan)
    if actions:
        out.append("reconciler will perform the following actions:")
        out.append("")
        for action in actions:
            out.extend(_action_block(action, colour))
    for entry in plan.get("unplaced", []):
        out.append(_paint(f"Error: {entry['key']} cannot be placed:", "31", colour))
        out.extend(f"  - {reason}" for reason in entry["reasons"])
        out.append("")
    for warning in plan.get("warnings", []):
        out.append(_paint(f"Warning: {warning}", "33", colour))
    drift = drift_lines(plan)
    if drift:
        out.append("Drift left as it is (driftPolicy Report):")
        out.extend(f"  ~ {line}" for line in drift)
    rounds = rebalance_lines(plan)
    if rounds:
        out.append("Rebalancing:")
        out.extend(f"  {line}" for line in rounds)
    if not actions:
        out.append(no_changes_line(plan))
        out.append(summary_line(plan))
    else:
        out.append(_paint(summary_line(plan), "1", colour))
    clouds = plan.get("clouds", [])
    if clouds:
        out.append("Prices: " + "; ".join(price_age(c, plan["createdAt"]) for c in clouds))
    return "\n".join(out) + "\n"
