"""The controller's side of rebalancing and migration.

- Rounds: a full pass plans with the rounds completed so far (from the state
  ConfigMap) and, when its plan was carried out without a failure, records the rounds
  it completes. A scoped pass never moves a VM for cost.
- Migrations: one Event when a migration starts, finishes or is rolled back; the VM's
  status is written at every step while the migration runs (beside the loop, see
  ``background``); a migration whose ``reconciler.dev/migration-abort`` annotation
  appears meanwhile is stopped before its next step (if not yet switched), and the
  next pass rolls it back; on SIGTERM, or when the lease is lost (``halt``), a
  migration stops before its next step too, and the next leader resumes it (every
  step is idempotent), so shutting down does not wait for a whole migration.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from reconciler.executor.clock import now_iso
from reconciler.executor.rounds import completed_rounds
from reconciler.executor.runner import ActionEvent
from reconciler.model.errors import ReconcilerError
from reconciler.model.keys import ResourceKey
from reconciler.model.moves import RebalanceRound, RoundState
from reconciler.model.plan import Action, Plan
from reconciler.operator.desired import ABORT_ANNOTATION, ClusterDesired
from reconciler.operator.informer import Cache
from reconciler.operator.migrations import MigrationStopped, interrupts, is_start
from reconciler.operator.observability import Metrics
from reconciler.operator.report import PassReport
from reconciler.operator.state_store import ClusterState
from reconciler.operator.writeback import Writer, owner_of

log = logging.getLogger(__name__)


def rebalances(cluster: ClusterDesired) -> bool:
    """Whether any declared BrokerPolicy has rebalancing rounds."""
    return any(p.rebalance.interval != "Never" for p in cluster.desired.policies.values())


class Moves:
    """Rounds, migration Events, in-flight status and abort, for one controller."""

    def __init__(
        self,
        state: ClusterState,
        cache: Cache,
        writer: Writer,
        metrics: Metrics,
        stop: threading.Event,
        halt: threading.Event,
    ) -> None:
        self.state, self.cache, self.writer, self.metrics = state, cache, writer, metrics
        #: ``stop``: shutting down; ``halt``: no longer leading (BackgroundMigrations).
        self.stop, self.halt = stop, halt
        #: Each policy's round as last planned by a full pass (status during outages).
        self.last_rounds: dict[ResourceKey, RebalanceRound] | None = None
        self._interrupted: set[str] = set()

    # -- rounds -------------------------------------------------------------------------
    def rounds_for(self, cluster: ClusterDesired) -> dict[ResourceKey, str]:
        """The completed rounds a full pass plans with (read afresh; no read at all
        when no policy rebalances)."""
        self.state.expire()
        return self.state.rounds() if rebalances(cluster) else {}

    def planned(self, report: PassReport) -> None:
        """Note the rounds of a full pass's plan (or, if it could not plan, the last
        known ones) for status."""
        if report.result is not None:
            self.last_rounds = {r.policy: r for r in report.result.rounds}
        report.rounds = self.last_rounds
        report.records = self.state

    def complete(self, plan: Plan, report: PassReport) -> None:
        """Record the rounds ``plan`` completes (it was carried out without failures);
        status shows them done at once."""
        done = completed_rounds(plan)
        if not done:
            return
        try:
            self.state.complete_rounds(done)
        except ReconcilerError as exc:  # the next full pass completes them again
            log.warning("cannot record completed rebalancing rounds", extra={"error": str(exc)})
            return
        rounds = dict(report.rounds or {})
        for key in done:
            if key in rounds:
                rounds[key] = dataclasses.replace(rounds[key], state=RoundState.DONE)
        report.rounds = self.last_rounds = rounds
        periods = {str(k): v for k, v in done.items()}
        log.info("rebalancing rounds completed", extra={"rounds": periods})

    # -- gating -------------------------------------------------------------------------
    @staticmethod
    def held(abort: frozenset[ResourceKey]) -> Callable[[Action], bool]:
        """New migrations of VMs annotated to abort do not start."""
        return lambda action: action.key in abort and is_start(action)

    # -- events and progress ------------------------------------------------------------
    def on_event(self, event: ActionEvent, report: PassReport) -> None:
        """Start Event and in-flight status; raises MigrationStopped to stop a migration
        before its next step (abort requested, or shutting down)."""
        action = event.action
        owner = owner_of(self.cache, action.key)
        if owner is None:
            return
        if event.phase == "start" and is_start(action):
            self.writer.migration_started(owner, action)
        if event.phase != "progress":
            return
        try:  # runs inside the executor: an error here must not end the apply
            status = self.writer.status_update(owner, report, now_iso())
            if status is not None and self.writer.patch_status(owner, status):
                self.metrics.count_status_write()
        except Exception as exc:  # status is best effort mid-migration
            log.warning("cannot write status mid-migration", extra={"error": str(exc)})
        ident = action.params["migrationId"]
        if interrupts(action, event.message, owner.annotations.get(ABORT_ANNOTATION) == "true"):
            self._interrupted.add(action.id)
            raise MigrationStopped(
                f"migration {ident} stopped before {event.message}: abort requested; the "
                "next pass rolls it back",
                cloud=action.cloud,
                reason="AbortRequested",
            )
        if self.stop.is_set() or self.halt.is_set():
            why = "shutting down" if self.stop.is_set() else "no longer leading"
            self._interrupted.add(action.id)
            raise MigrationStopped(
                f"migration {ident} stopped before {event.message}: {why}; the "
                "next leader resumes it",
                cloud=action.cloud,
                reason="ShuttingDown",
            )

    def was_interrupted(self, action: Action) -> bool:
        """Whether ``action`` failed because we stopped it (once)."""
        if action.id in self._interrupted:
            self._interrupted.discard(action.id)
            return True
        return False
