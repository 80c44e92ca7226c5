"""Markdown rendering of a plan, for a pull-request comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.cli.render.common import (
    SYMBOL,
    change_lines,
    drift_lines,
    hourly,
    migrate_lines,
    money,
    no_changes_line,
    price_age,
    rebalance_lines,
    sorted_actions,
    summary_line,
)

MAX_ROWS = 300


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: Mapping[str, Any]) -> str:
    cost = plan["cost"]
    out = ["### reconciler plan", "", f"**{summary_line(plan)}**", ""]
    out += ["| cloud | now $/mo | planned $/mo | prices |", "|---|---:|---:|---|"]
    hours = cost["hoursPerMonth"]
    for c in plan.get("clouds", []):
        per_hour = c["costPerHour"]
        out.append(
            f"| {c['name']} | {money(per_hour['current'] * hours)} | "
            f"{money(per_hour['planned'] * hours)} | {_cell(price_age(c, plan['createdAt']))} |"
        )
    out.append(
        f"| **total** | **{money(cost['currentPerMonth'])}** | "
        f"**{money(cost['plannedPerMonth'])}** | |"
    )
    out.append("")
    actions = sorted_actions(plan)
    if actions:
        out += ["<details><summary>Actions</summary>", ""]
        out += [
            "| | action | resource | cloud | type | $/h | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for a in actions[:MAX_ROWS]:
            prices = a["pricePerHour"]
            detail = "; ".join([a["reason"], *change_lines(a), *migrate_lines(a)])
            out.append(
                f"| `{SYMBOL[a['action']]}` | {a['action']} | `{a['key']}` | {a['cloud']} | "
                f"{a.get('instanceType') or ''} | {hourly(prices['before'])} -> "
                f"{hourly(prices['after'])} | {_cell(detail)} |"
            )
        if len(actions) > MAX_ROWS:
            out.append(f"| | | … {len(actions) - MAX_ROWS} more | | | | |")
        out += ["", "</details>", ""]
    for entry in plan.get("unplaced", []):
        out.append(f"> **Cannot place `{entry['key']}`:** " + "; ".join(entry["reasons"]))
    for warning in plan.get("warnings", []):
        out.append(f"> Warning: {_cell(warning)}")
    for line in drift_lines(plan):
        out.append(f"> Drift (not corrected): {_cell(line)}")
    for line in rebalance_lines(plan):
        out.append(f"> Rebalancing: {_cell(line)}")
    if not actions:
        out.append(no_changes_line(plan))
    return "\n".join(out).rstrip() + "\n"
