"""Which planned actions a pass may carry out, and per-object failure backoff.

Actions of paused objects, and of objects still in backoff after a failure, are
held back (they show as pending in status); an action that depends on a held-back
one is held back too. Backoff doubles per consecutive failure of the same object,
from ``base`` up to ``cap`` seconds, and is cleared by a success.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.model.keys import ResourceKey
from reconciler.model.plan import Action, Plan
from reconciler.planner.collect import covered


def split_plan(plan: Plan, hold: Callable[[Action], bool]) -> tuple[Plan, list[Action]]:
    """(the plan without held actions, the held actions incl. their dependents)."""
    held_ids: set[str] = set()
    held: list[Action] = []
    for action in plan.actions:  # dependencies come before dependents in a plan
        if hold(action) or any(dep in held_ids for dep in action.depends_on):
            held_ids.add(action.id)
            held.append(action)
    if not held:
        return plan, []
    kept = tuple(a for a in plan.actions if a.id not in held_ids)
    return dataclasses.replace(plan, actions=kept), held


def paused_filter(paused: frozenset[ResourceKey]) -> Callable[[Action], bool]:
    return lambda action: covered(paused, action.key)


@dataclass
class Backoff:
    """Per-object retry delays after failed actions, with the last error (thread
    safe: background migrations report their outcomes from their own threads)."""

    base: float = 1.0
    cap: float = 300.0
    clock: Callable[[], float] = time.monotonic
    #: Wall-clock time, for the retry time in messages.
    wall: Callable[[], float] = time.time
    _failures: dict[ResourceKey, tuple[int, float, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, key: ResourceKey, error: str = "") -> float:
        """Record a failure; return the delay before the object is tried again."""
        with self._lock:
            count = self._failures.get(key, (0, 0.0, ""))[0] + 1
            delay = min(self.cap, self.base * float(2 ** min(count - 1, 30)))
            at = dt.datetime.fromtimestamp(self.wall() + delay, dt.UTC).strftime("%H:%M:%SZ")
            why = f"{error or 'failed'} (failure {count}; tried again at {at})"
            self._failures[key] = (count, self.clock() + delay, why)
        return delay

    def why_waiting(self, key: ResourceKey) -> str | None:
        """While ``key`` waits: its last error and when it is tried again (the same
        text on every pass: a status that changed each pass would echo back as a
        change and be written again, and again)."""
        with self._lock:
            entry = self._failures.get(key)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[2]

    def succeeded(self, key: ResourceKey) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def waiting(self, key: ResourceKey) -> bool:
        return self.why_waiting(key) is not None

    def next_due(self) -> float | None:
        """Seconds until the earliest object in backoff may be retried."""
        now = self.clock()
        with self._lock:
            due = [at - now for _, at, _ in self._failures.values() if at > now]
        return max(0.0, min(due)) if due else None


@dataclass
class FullPassClock:
    """When the next full pass is due, and how long a due one has given way.

    A full pass is due at resync, when an object's backoff ends, or at once (room
    freed for unplaced VMs, a pass that gave way). A due pass may give way to changed
    objects for at most ``max_postpone`` seconds, so a stream of changes delays drift
    detection by that much at most.
    """

    max_postpone: float = 30.0
    clock: Callable[[], float] = time.monotonic
    due_at: float = 0.0
    _postponed_since: float | None = None

    def due(self) -> bool:
        return self.clock() >= self.due_at

    def seconds_left(self) -> float:
        return max(0.0, self.due_at - self.clock())

    def due_within(self, seconds: float) -> None:
        self.due_at = min(self.due_at, self.clock() + seconds)

    def may_postpone(self) -> bool:
        """Whether a due pass may still give way (never, with ``max_postpone`` 0)."""
        since = self._postponed_since
        if self.max_postpone <= 0:
            return False
        return since is None or self.clock() - since < self.max_postpone

    def postpone(self) -> None:
        """A due pass gave way; it stays due."""
        if self._postponed_since is None:
            self._postponed_since = self.clock()
        self.due_within(0.0)

    def planned(self) -> None:
        """A full pass got through planning: no longer postponed."""
        self._postponed_since = None

    def finished(self, resync: float, backoff_due: float | None) -> None:
        self.due_at = self.clock() + min(resync, backoff_due or resync)
