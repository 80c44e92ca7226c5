"""Which rebalancing rounds have finished: per BrokerPolicy, the period of its last
completed round (``state_dir/rebalance.json``). Written after an apply that carried a
plan in which a policy's round completes (nothing more was worth moving)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from reconciler.executor.jsonfile import write_json
from reconciler.model.keys import ResourceKey
from reconciler.model.moves import RoundState
from reconciler.model.plan import Plan

ROUNDS_FILE = "rebalance.json"


def load_rounds(state_dir: Path) -> dict[ResourceKey, str]:
    """Policy key -> period of its last completed round ({} if none or unreadable)."""
    try:
        raw = json.loads((state_dir / ROUNDS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    out: dict[ResourceKey, str] = {}
    for key, period in (raw.get("completed") or {}).items():
        try:
            out[ResourceKey.parse(key)] = str(period)
        except ValueError:
            continue
    return out


def completed_rounds(plan: Plan) -> dict[ResourceKey, str]:
    """The rounds a successful apply of ``plan`` completes."""
    return {
        ResourceKey.parse(r["policy"]): str(r["period"])
        for r in plan.rebalance
        if r.get("state") == RoundState.COMPLETES.value
    }


def save_rounds(state_dir: Path, done: Mapping[ResourceKey, str]) -> None:
    """Merge ``done`` into the file, atomically."""
    if not done:
        return
    merged = {**load_rounds(state_dir), **done}
    body = {"completed": {str(k): v for k, v in sorted(merged.items())}}
    write_json(state_dir / ROUNDS_FILE, body)
