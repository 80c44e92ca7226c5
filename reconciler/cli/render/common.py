"""Helpers shared by the text and markdown renderers (they read plan JSON only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

ORDER = {
    "delete": 0,
    "migrate": 1,
    "replace": 1,
    "detach": 2,
    "stop": 3,
    "forget": 4,
    "create": 5,
    "update": 6,
    "attach": 7,
    "start": 8,
    "sync": 9,
}
VERB = {
    "create": "will be created",
    "update": "will be updated in place",
    "start": "will be started",
    "stop": "will be stopped",
    "replace": "will be replaced (created elsewhere, then the old one deleted)",
    "migrate": "will be migrated with its data (the source is kept stopped, then deleted)",
    "delete": "will be destroyed",
    "forget": "will be forgotten (left running, no longer managed)",
    "attach": "will be attached",
    "detach": "will be detached",
    "sync": "will have its copies synced from the source copy",
}
SYMBOL = {
    "create": "+",
    "update": "~",
    "start": ">",
    "stop": "||",
    "replace": "-/+",
    "migrate": "=>",
    "delete": "-",
    "forget": "!",
    "attach": "&",
    "detach": "x",
    "sync": "<>",
}


def sorted_actions(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Destroys first, then changes, each group in key order."""
    actions: list[Mapping[str, Any]] = list(plan["actions"])
    return sorted(actions, key=lambda a: (ORDER.get(a["action"], 9), a["key"], a["cloud"]))


def money(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def hourly(value: float) -> str:
    return f"${value:.4f}/h" if value < 1 else f"${value:,.3f}/h"


def summary_line(plan: Mapping[str, Any]) -> str:
    counts = plan["summary"]
    cost = plan["cost"]
    change = (
        counts["update"] + counts["start"] + counts["stop"] + counts["attach"] + counts["detach"]
    ) + counts.get("sync", 0)
    parts = [f"{counts['create']} to create"]
    if counts.get("migrate"):
        parts.append(f"{counts['migrate']} to migrate")
    if counts["replace"]:
        parts.append(f"{counts['replace']} to replace")
    parts.append(f"{change} to change")
    parts.append(f"{counts['delete']} to delete")
    if counts["forget"]:
        parts.append(f"{counts['forget']} to forget")
    delta = cost["deltaPerMonth"]
    sign = "+" if delta > 0 else ""
    return (
        f"Plan: {', '.join(parts)}. Cost: {money(cost['currentPerMonth'])}/mo -> "
        f"{money(cost['plannedPerMonth'])}/mo ({sign}{money(delta)}/mo)"
    )


def no_changes_line(plan: Mapping[str, Any]) -> str:
    """Only claim convergence when nothing is left unplaced."""
    unplaced = len(plan.get("unplaced", []))
    if unplaced:
        return (
            f"No changes can be made, but {unplaced} resource{'s' if unplaced != 1 else ''} "
            "cannot be placed (see the errors above)."
        )
    return "No changes. The clouds match the manifests."


def price_age(cloud: Mapping[str, Any], created_at: str) -> str:
    """'aws-eu-west-1 list prices as of 2024-06-01 (542 days old)' for one cloud."""
    as_of = cloud.get("priceAsOf") or ""
    if not as_of:
        return f"{cloud['name']}: {cloud.get('priceSource') or 'declared'} (no date)"
    try:
        made = dt.date.fromisoformat(created_at[:10])
        days = (made - dt.date.fromisoformat(as_of[:10])).days
        age = f"{days} day{'s' if days != 1 else ''} old"
    except ValueError:
        age = "age unknown"
    sim = ", simulated" if cloud.get("simulated") else ""
    return f"{cloud['name']}: prices as of {as_of} ({age}{sim})"


def change_lines(action: Mapping[str, Any]) -> list[str]:
    return [f"{c['path']}: {c['before']!r} -> {c['after']!r}" for c in action.get("changes", [])]


def migrate_lines(action: Mapping[str, Any]) -> list[str]:
    """What a migrate action moves and, for a cost-driven move, its arithmetic."""
    if action["action"] != "migrate":
        return []
    params = action.get("params", {})
    source, target = params.get("source", {}), params.get("target", {})
    lines = [
        f"from {source.get('cloud')} ({source.get('externalId')}) to {target.get('cloud')} "
        f"as {target.get('instanceType')}; strategy {params.get('strategy')}, "
        f"mode {params.get('mode')}, id {params.get('migrationId')}"
    ]
    volumes = params.get("volumes") or []
    if volumes:
        lines.append("moves with it: " + ", ".join(v["key"] for v in volumes))
    staging = params.get("staging")
    lines.append(
        f"disks pass through bucket {staging['bucket']} on {staging['cloud']}"
        if staging
        else "disks stream straight across (no object storage on either cloud)"
    )
    econ = params.get("economics")
    if econ:
        lines.append(
            f"saves {money(econ['savingsPerMonth'])}/mo ({econ['savingsPercent']:g}%); over "
            f"{econ['horizonDays']} d {money(econ['savingsOverHorizon'])} - cost "
            f"{money(econ['migrationCost'])} (egress {econ['dataGiB']:g} GiB x "
            f"${econ['egressPerGiB']:g} = {money(econ['egressCost'])}, conversion "
            f"{money(econ['conversionCost'])}, downtime {money(econ['downtimeCost'])}) = "
            f"{money(econ['netOverHorizon'])} net, above the threshold {money(econ['threshold'])}"
        )
    return lines


def rebalance_lines(plan: Mapping[str, Any]) -> list[str]:
    """One line per policy with a rebalancing interval."""
    out = []
    for entry in plan.get("rebalance", []):
        if entry["state"] == "never":
            continue
        line = f"{entry['policy']}: {entry['interval']} round {entry['period']} {entry['state']}"
        if entry["moves"] or entry["inFlight"]:
            line += f", {entry['moves']} move(s) now, {entry['inFlight']} in flight"
            line += f" (max {entry['maxConcurrent']} at once)"
        if entry["held"]:
            line += f", {entry['held']} held back"
        if entry["nextRound"]:
            line += f"; next round {entry['nextRound']}"
        out.append(line)
    return out


def drift_lines(plan: Mapping[str, Any]) -> list[str]:
    return [
        f"{d['key']} ({d['externalId']} on {d['cloud']}): "
        + ", ".join(f"{c['path']} {c['before']!r} (spec {c['after']!r})" for c in d["changes"])
        + f"  [driftPolicy {d['policy']}]"
        for d in plan.get("drift", [])
    ]
