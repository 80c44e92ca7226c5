"""What the operator does with each event of an action being carried out.

Metrics and logs, per-object backoff after a failure, the baseline (a success is
folded in; a failure invalidates it: observe again), the record of
outcomes a full pass folds in later (``InlineChanges``), Events on the object, and a
migration's status at every step (``Moves``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from reconciler.executor.runner import ActionEvent
from reconciler.model.observed import Observed
from reconciler.model.plan import Action, ActionType
from reconciler.operator.baseline import Baseline
from reconciler.operator.gating import Backoff
from reconciler.operator.informer import Cache
from reconciler.operator.inline import InlineChanges
from reconciler.operator.moves import Moves
from reconciler.operator.observability import Metrics
from reconciler.operator.report import PassReport
from reconciler.operator.writeback import Writer, owner_of

log = logging.getLogger(__name__)


class ActionOutcomes:
    """Turns action events into metrics, backoff, baseline updates and Events."""

    def __init__(
        self,
        cache: Cache,
        writer: Writer,
        metrics: Metrics,
        moves: Moves,
        backoff: Backoff,
        inline: InlineChanges,
        baseline: Callable[[], Baseline | None],
    ) -> None:
        self.cache, self.writer, self.metrics = cache, writer, metrics
        self.moves, self.backoff, self.inline = moves, backoff, inline
        #: The controller's current baseline (a new one each full pass).
        self.baseline = baseline

    def on_action(self, event: ActionEvent, report: PassReport) -> None:
        """One event of an action being carried out (on the loop's thread, or a
        background migration's)."""
        action = event.action
        if event.phase == "start":
            log.info("action start", extra={"action": action.id, "key": str(action.key)})
        if action.type is ActionType.MIGRATE:
            self.moves.on_event(event, report)  # may stop the migration (abort requested)
        if event.phase not in ("done", "failed", "skipped"):
            return
        if event.phase == "failed" and self.moves.was_interrupted(action):
            self.metrics.count_action(action.key.kind, action.type.value, "skipped")
            log.info("migration stopped", extra={"action": action.id, "why": event.message})
            return
        outcome = {"done": "ok"}.get(event.phase, event.phase)
        self.metrics.count_action(action.key.kind, action.type.value, outcome)
        if event.phase == "failed":
            self._fold(action, None, ok=False)
            report.failed[action.key] = event.message
            delay = self.backoff.failed(action.key, event.message)
            log.warning(
                "action failed",
                extra={"action": action.id, "error": event.message, "retry_in": delay},
            )
        elif event.phase == "done":
            self._fold(action, event.observed, ok=True)
            self.backoff.succeeded(action.key)
            log.info("action done", extra={"action": action.id, "cloud": action.cloud})
        owner = owner_of(self.cache, action.key)
        if owner is not None and event.phase != "skipped":
            self.writer.action_event(owner, action, event.phase == "done", event.message)

    def _fold(self, action: Action, observed: Observed | None, ok: bool) -> None:
        """Bring the baseline, and the running full pass's record of what was served
        inside it, up to date with one outcome (a failed call's effect is unknown:
        observe again). Not a migration's: it runs on a thread of its own, and when
        it ends the controller observes again (``Controller._migration_ended``)."""
        if action.type is ActionType.MIGRATE:
            return
        self.inline.outcome(action, observed, ok)
        baseline = self.baseline()
        if baseline is None:
            return
        if ok:
            baseline.record(action, observed)
        else:
            baseline.invalidate()
