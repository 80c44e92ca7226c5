"""Changes served in the middle of a full pass that may no longer give way.

A due full pass normally gives way to waiting changes (``Preempted``, then runs again),
but only for so long (``FullPassClock``): after that it must finish, and without this a
change arriving meanwhile would wait for the whole pass. Instead the controller plans
and carries out such a change at the full pass's next checkpoint, as a scoped pass
against the current baseline, and the full pass then:

* leaves those keys alone (its desired state or its observation may predate the
  change): no actions and no status for them; the next pass looks at them again;
* folds the scoped pass's outcomes into the baseline it installs (its observation may
  predate them), or installs an invalid one if any of those calls failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Observed
from reconciler.model.plan import Action
from reconciler.operator.baseline import Baseline
from reconciler.planner.collect import covered


@dataclass
class InlineChanges:
    """What scoped passes inside the current full pass touched and what came of it."""

    active: bool = False
    keys: set[ResourceKey] = field(default_factory=set)
    outcomes: list[tuple[Action, Observed | None]] = field(default_factory=list)
    failed: bool = False

    def begin(self) -> None:
        """A full pass starts: nothing was served inside it yet."""
        self.active, self.failed = True, False
        self.keys.clear()
        self.outcomes.clear()

    def end(self) -> None:
        self.active = False
        self.keys.clear()
        self.outcomes.clear()

    def served(self, keys: set[ResourceKey]) -> None:
        self.keys |= keys

    def outcome(self, action: Action, observed: Observed | None, ok: bool) -> None:
        """An action finished (recorded only while a full pass is running)."""
        if not self.active:
            return
        if ok:
            self.outcomes.append((action, observed))
        else:
            self.failed = True

    def covers(self, key: ResourceKey) -> bool:
        """Whether the running full pass must leave ``key`` alone."""
        return covered(self.keys, key)

    def fold_into(self, baseline: Baseline) -> None:
        """Bring a baseline made from the full pass's observation up to date."""
        for action, observed in self.outcomes:
            baseline.record(action, observed)
        if self.failed:
            baseline.invalidate()
