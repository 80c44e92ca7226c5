"""The apply journal: intent before every cloud call, outcome after.

One JSON line per record, appended and flushed before the call it announces, so a
process killed with SIGKILL at any point leaves a journal that says which calls may
have happened. Records of one apply sit between a ``begin`` and an ``end`` record; an
apply without ``end`` was interrupted, and its intents without outcome are the calls
whose effect must be looked up in the cloud (by the resource's uid tag).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.model.keys import TAG_UID
from reconciler.model.plan import Action

ROTATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InFlight:
    """An action whose intent was journaled but whose outcome was not."""

    plan_id: str
    action_id: str
    cloud: str
    uid: str | None
    record: dict[str, Any]


class JournalSink(Protocol):
    """Where an apply records intent before, and outcome after, every cloud call.

    ``intent`` must be durable when it returns: the call it announces happens next.
    The CLI writes a local JSONL file (``Journal``); the operator keeps the in-flight
    set in the cluster so a restarted pod resumes without duplicates.
    """

    def begin(self, plan_id: str, actions: int) -> None: ...

    def intent(self, plan_id: str, action: Action) -> None: ...

    def outcome(
        self, plan_id: str, action: Action, ok: bool, external_id: str | None, error: str = ""
    ) -> None: ...

    def end(self, plan_id: str, ok: bool) -> None: ...

    def close(self) -> None: ...


def intent_record(plan_id: str, action: Action) -> dict[str, Any]:
    """The journal record announcing ``action`` (its uid finds a create's result later)."""
    tags = action.params.get("tags") or {}
    return {
        "phase": "intent",
        "plan": plan_id,
        "id": action.id,
        "cloud": action.cloud,
        "uid": tags.get(TAG_UID),
    }


class Journal:
    """Append-only JSONL journal, safe to call from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > ROTATE_BYTES:
            path.replace(path.with_suffix(".1.jsonl"))
        self._lock = threading.Lock()
        _end_torn_line(path)
        self._file = path.open("a", encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        record["t"] = round(time.time(), 3)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def begin(self, plan_id: str, actions: int) -> None:
        self._write({"phase": "begin", "plan": plan_id, "actions": actions})

    def intent(self, plan_id: str, action: Action) -> None:
        self._write(intent_record(plan_id, action))

    def outcome(
        self, plan_id: str, action: Action, ok: bool, external_id: str | None, error: str = ""
    ) -> None:
        self._write(
            {
                "phase": "done" if ok else "failed",
                "plan": plan_id,
                "id": action.id,
                "externalId": external_id,
                "error": error,
            }
        )

    def end(self, plan_id: str, ok: bool) -> None:
        self._write({"phase": "end", "plan": plan_id, "ok": ok})
        with self._lock:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _end_torn_line(path: Path) -> None:
    """A crash mid-write can leave a last line without its newline; end it so the
    next record is not glued onto it (the torn line itself is skipped when read)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        torn = handle.read(1) != b"\n"
    if torn:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n")


def read_in_flight(path: Path) -> list[InFlight]:
    """Intents without outcome from applies that never wrote their ``end`` record."""
    if not path.exists():
        return []
    open_runs: dict[str, dict[str, dict[str, Any]]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its call never started
            plan = str(rec.get("plan", ""))
            phase = rec.get("phase")
            if phase == "begin":
                open_runs[plan] = {}
            elif phase == "end":
                open_runs.pop(plan, None)
            elif phase == "intent" and plan in open_runs:
                open_runs[plan][str(rec["id"])] = rec
            elif phase in ("done", "failed") and plan in open_runs:
                open_runs[plan].pop(str(rec["id"]), None)
    return [
        InFlight(plan, rec["id"], rec.get("cloud", ""), rec.get("uid"), rec)
        for plan, intents in open_runs.items()
        for rec in intents.values()
    ]


def close_interrupted(path: Path, in_flight: Sequence[InFlight]) -> None:
    """Mark the applies ``in_flight`` (read by ``read_in_flight``) as ended once their
    in-flight calls were resolved."""
    plans = {f.plan_id for f in in_flight}
    if not plans:
        return
    _end_torn_line(path)
    with path.open("a", encoding="utf-8") as handle:
        for plan in sorted(plans):
            handle.write(
                json.dumps({"phase": "end", "plan": plan, "ok": False, "recovered": True}) + "\n"
            )
