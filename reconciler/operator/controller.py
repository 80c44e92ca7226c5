"""The level-based reconcile loop: desired from the cache, actual from the clouds.

Every change marks its object dirty; after a short debounce one pass runs. A full
pass observes every cloud and plans everything (placement is global: spread,
capacity and prices couple objects). It runs first as leader, at every resync (for
drift and prices), after a failed call, and whenever a change is not one a scoped
pass can plan. Otherwise a scoped pass plans only the changed objects against the
baseline (what the last full pass saw plus the results of our own calls), so a
spec change does not wait for a whole-world pass. A pass that acted requeues the
keys it acted on; objects in backoff are retried by the next full pass when due.
The loop is only driven while this replica leads. Rebalancing rounds and migration
records live in the state ConfigMap (see ``moves`` and ``state_store``); migrations
run beside the loop, not inside a pass (see ``background``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.executor.engine import Settings, apply, resolve_in_flight
from reconciler.executor.runner import ApplyResult
from reconciler.executor.world import World
from reconciler.model.errors import ReconcilerError
from reconciler.model.keys import ResourceKey
from reconciler.model.plan import Action, ActionType, Plan
from reconciler.operator import memory
from reconciler.operator.background import BackgroundMigrations
from reconciler.operator.baseline import Baseline
from reconciler.operator.clouds import CloudProviders
from reconciler.operator.desired import ClusterDesired, SchemaMemo, build_desired
from reconciler.operator.gating import Backoff, FullPassClock, paused_filter, split_plan
from reconciler.operator.informer import Cache, CachedObject
from reconciler.operator.inline import InlineChanges
from reconciler.operator.journal_store import ClusterJournal
from reconciler.operator.moves import Moves
from reconciler.operator.observability import Metrics
from reconciler.operator.outcomes import ActionOutcomes
from reconciler.operator.planning import plan_cluster
from reconciler.operator.report import PassReport
from reconciler.operator.scoped import Scope, plan_scoped, scope_for
from reconciler.operator.state_store import ClusterState
from reconciler.operator.writeback import Writer, write_back
from reconciler.planner.collect import covered

log = logging.getLogger(__name__)
#: After a pass, once this long passes with nothing to do, free heap pages go back to
#: the kernel (the watch events that follow a burst of status writes are garbage too).
IDLE_TRIM_SECONDS = 1.0
#: After this many passes and watch events (our own status writes echo back as watch
#: events) since the last full pass, the first idle second brings the next full pass
#: forward: a burst is verified against the clouds soon, and the memory it fragmented
#: (cache entries replaced among short-lived objects) is given back then, not at resync.
CONSOLIDATE_AFTER = 1000
#: Actions that can free capacity, offer availability or spread slots.
FREES = frozenset({ActionType.DELETE, ActionType.FORGET, ActionType.UPDATE, ActionType.REPLACE})


class Preempted(Exception):
    """A full pass gave way, before acting, to changes that arrived while it planned."""


@dataclass(frozen=True)
class LoopOptions:
    debounce: float = 0.05
    resync: float = 60.0
    #: How long a due full pass may restart to let changes through (FullPassClock).
    max_postpone: float = 30.0
    observe_only: bool = False


class Controller:
    """One reconcile pass at a time: a full pass over the whole cache, or a scoped
    pass over the objects that changed since (see ``scoped``)."""

    def __init__(
        self,
        cache: Cache,
        settings: Settings,
        clouds: CloudProviders,
        journal: ClusterJournal,
        state: ClusterState,
        writer: Writer,
        metrics: Metrics,
        options: LoopOptions,
        stop: threading.Event,
    ) -> None:
        self.cache = cache
        self.settings = settings
        self.clouds = clouds
        self.journal = journal
        self.writer = writer
        self.metrics = metrics
        self.options = options
        self.stop = stop
        self.state = state
        self.background = BackgroundMigrations(self._migration_ended, settings.parallelism)
        self.moves = Moves(state, cache, writer, metrics, stop, self.background.halt)
        #: A background migration ended since the last full pass observed the clouds.
        self._ended_since_observing = False
        self.backoff = Backoff()
        self.schema_memo = SchemaMemo()
        self.baseline: Baseline | None = None
        self._wake = threading.Condition()
        self._dirty: set[ResourceKey] = set()
        self._poked = False
        #: Bumped by every pass and watch event; the idle wait trims after bursts.
        self.activity = 0
        self._trimmed_at = 0
        self._recovered = False
        self.full = FullPassClock(max_postpone=options.max_postpone)
        self.inline = InlineChanges()
        self.outcomes = ActionOutcomes(
            cache, writer, metrics, self.moves, self.backoff, self.inline, lambda: self.baseline
        )
        self._activity_at_full = 0  # ``activity`` when the last full pass observed
        self._waiting_for_room = False  # the last full pass left VMs unplaced

    # -- triggering -----------------------------------------------------------------
    def enqueue(self, key: ResourceKey | None = None) -> None:
        """Called by informers on every change (never blocks); no key just wakes."""
        with self._wake:
            if key is None:
                self._poked = True
            else:
                self._dirty.add(key)
            self._wake.notify()

    def _wait_for_work(self, timeout: float) -> set[ResourceKey]:
        """The keys changed meanwhile; empty when woken by time (a full pass is due).

        While waiting, each idle second that ends a burst of activity (passes, watch
        events such as the echoes of our status writes) ends with ``memory.trim()``, and
        after a large burst (CONSOLIDATE_AFTER) it brings the next full pass forward."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            seen = self.activity
            if not self._idle(min(IDLE_TRIM_SECONDS, left)):
                break
            if self.activity == seen != self._trimmed_at:
                memory.trim()
                self._trimmed_at = seen
                if seen - self._activity_at_full >= CONSOLIDATE_AFTER:
                    self.full.due_within(0.0)
                    break
        self.stop.wait(self.options.debounce)  # let a burst of changes arrive
        with self._wake:
            dirty, self._dirty, self._poked = self._dirty, set(), False
        self.metrics.set_queue_depth(len(dirty))
        return dirty

    def _idle(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for work; True if none came."""
        with self._wake:
            if not self._dirty and not self._poked:
                self._wake.wait(seconds)
            return not self._dirty and not self._poked

    def run(self, leading: threading.Event) -> None:
        """Reconcile while ``leading`` is set, until ``stop``."""
        delay = 0.0
        while not self.stop.is_set():
            if not leading.is_set():
                self.background.stop()  # the next leader resumes them
                self._recovered = False
                self.baseline = None
                self.clouds.forget()
                leading.wait(1.0)
                continue
            self.background.resume()
            dirty = self._wait_for_work(delay)
            if self.stop.is_set() or not leading.is_set():
                continue
            delay = self.reconcile_once(dirty)
            self.activity += 1
        self.background.stop()  # each stops before its next step

    def _migration_ended(self, key: ResourceKey) -> None:
        """A background migration ended: where its VM and volumes are changed under
        the baseline, so the next pass observes again (a full one)."""
        with self._wake:
            self._ended_since_observing = True
            self._dirty.add(key)
            self._wake.notify()
        base = self.baseline
        if base is not None:
            base.invalidate()

    # -- one pass -------------------------------------------------------------------
    def reconcile_once(self, dirty: set[ResourceKey] | None = None) -> float:
        """Plan, act and report once; return seconds until the next pass is due.

        With ``dirty`` keys, a recent trustworthy baseline and no full pass due, only
        the changed objects are planned; otherwise everything is.
        """
        scope = self._scope(dirty or set())
        if scope is not None:
            due = self._scoped_pass(scope)
            if due is not None:
                return due
        return self._full_pass()

    def _scope(self, dirty: set[ResourceKey]) -> Scope | None:
        base = self.baseline
        if not dirty or base is None or not base.valid:
            return None
        if self.full.due() and not self.full.may_postpone():
            return None
        return scope_for(dirty, self.cache, base)

    def _checkpoint(self) -> None:
        """Between the steps of a full pass: give way to changes a scoped pass can
        plan now (the full pass runs right after; see FullPassClock), or, once it may
        not give way any more, serve them here (see inline.py)."""
        with self._wake:
            dirty = set(self._dirty)
        if not dirty:
            return
        if self.full.may_postpone():
            if self._scope(dirty) is None:
                return
            self.full.postpone()
            log.debug("full pass gives way", extra={"changed": len(dirty)})
            raise Preempted
        base = self.baseline
        scope = scope_for(dirty, self.cache, base) if base is not None and base.valid else None
        if scope is None:
            return
        with self._wake:
            self._dirty -= scope.keys
        self.inline.served(scope.keys)
        log.info("change served inside a full pass", extra={"changed": len(scope.keys)})
        if self._scoped_pass(scope) is None:
            with self._wake:
                self._dirty |= scope.keys  # needs a full pass: the next one

    def _full_pass(self) -> float:
        self.inline.begin()
        try:
            return self._full_pass_inner()
        finally:
            self.inline.end()

    def _full_pass_inner(self) -> float:
        started = time.monotonic()
        objects = self.cache.objects()
        if self.writer.add_finalizers(objects):
            return 0.0  # the watch delivers the updated objects; act on those
        cluster = build_desired(objects, self.schema_memo)
        report = PassReport.for_cluster(cluster, self.options.observe_only)
        acted = False
        try:
            if not self._recovered:
                self._recover(cluster)
            self._checkpoint()
            with self._wake:
                self._ended_since_observing = False
            plan, world = plan_cluster(
                cluster,
                self.cache.objects("Cloud"),
                self.clouds,
                self.settings.owner,
                report,
                self._checkpoint,
                rounds=self.moves.rounds_for(cluster),
                migrating=self.background.running(),
            )
            self._checkpoint()
            self.baseline = Baseline(world)
            if self._ended_since_observing:  # it observed before a migration ended
                self.baseline.invalidate()
            self.inline.fold_into(self.baseline)
            self._activity_at_full = self.activity
            self.full.planned()
            self._waiting_for_room = bool(report.result and report.result.unplaced)
            self.moves.planned(report)
            acted, ok = self._act(plan, world, cluster, report, self.inline.covers)
            if ok and not self.options.observe_only:
                self.moves.complete(plan, report)
        except Preempted:
            return 0.0
        except ReconcilerError as exc:
            self.baseline = None
            report.plan_error = str(exc)
            self.metrics.count_error()
            log.warning("reconcile refused", extra={"error": str(exc)})
            self.moves.planned(report)  # the last known rounds, for status
        served = [o for o in objects if not self.inline.covers(o.key)]
        self._write_back(cluster, report, served)
        self.metrics.set_objects(Counter(o.kind for o in objects))
        due = self.backoff.next_due()
        self.full.finished(self.options.resync, due)
        del cluster, report, objects
        memory.trim()  # a full pass's working set is large and short-lived
        return self._finish("full", started, acted)

    def _scoped_pass(self, scope: Scope) -> float | None:
        """Plan and act on ``scope`` alone; None when a full pass is needed instead."""
        started = time.monotonic()
        assert self.baseline is not None
        if self.writer.add_finalizers(scope.objects):
            return self.full.seconds_left()  # the watch wakes us
        try:
            planned = plan_scoped(scope, self.cache, self.baseline, self.settings.owner)
        except ReconcilerError:
            return None  # a full pass reports the error on every object it concerns
        if planned is None:
            return None
        plan, world, cluster, report = planned
        report.observe_only = self.options.observe_only
        report.records = self.state
        acted, _ = self._act(plan, world, cluster, report)
        if acted and self._waiting_for_room and any(a.type in FREES for a in plan.actions):
            self.full.due_within(0.0)  # freed room may fit what was left unplaced
        self._write_back(cluster, report, scope.objects)
        due = self.backoff.next_due()
        if due is not None:
            self.full.due_within(due)
        return self._finish("changed", started, acted)

    def _finish(self, scope: str, started: float, acted: bool) -> float:
        if self.baseline is not None:
            self.metrics.set_costs(self.baseline.cost_per_hour())
        self.metrics.observe_reconcile(time.monotonic() - started, scope)
        return 0.0 if acted else self.full.seconds_left()

    def _act(
        self,
        plan: Plan,
        world: World,
        cluster: ClusterDesired,
        report: PassReport,
        leave_alone: Callable[[ResourceKey], bool] = lambda _key: False,
    ) -> tuple[bool, bool]:
        """Gate and carry out ``plan`` (holding back the keys ``leave_alone`` names too,
        and those a background migration is moving); migrations are handed to the
        background, the rest is carried out now and its keys re-checked next pass.
        Returns (whether anything was carried out or started, whether all of what was
        carried out succeeded)."""
        moving = self.background.holds(cluster.desired)
        runnable, held = self._gate(plan, cluster, lambda key: leave_alone(key) or moving(key))
        for action in held:
            (report.applying if moving(action.key) else report.pending)[action.key].append(action)
            retrying = self.backoff.why_waiting(action.key)
            if retrying is not None and not covered(cluster.paused, action.key):
                report.failed.setdefault(action.key, retrying)  # why, not just "pending"
        now = tuple(a for a in runnable.actions if a.type is not ActionType.MIGRATE)
        started = [
            self._start_migration(a, plan, world, cluster, report)
            for a in runnable.actions
            if a.type is ActionType.MIGRATE
        ]
        if not now:
            return any(started), True
        for action in now:
            report.applying[action.key].append(action)
        result = self._apply(dataclasses.replace(runnable, actions=now), world, cluster, report)
        with self._wake:
            self._dirty.update(a.key for a in now)
        return True, result.ok

    def _start_migration(
        self, action: Action, plan: Plan, world: World, cluster: ClusterDesired, report: PassReport
    ) -> bool:
        """Hand one migration to the background (pending if it cannot start now)."""
        alone = plan.only((action,))
        report.applying[action.key].append(action)
        if self.background.start(action, lambda: self._apply(alone, world, cluster, report)):
            return True
        report.applying[action.key].remove(action)
        report.pending[action.key].append(action)
        return False

    def _gate(
        self, plan: Plan, cluster: ClusterDesired, leave_alone: Callable[[ResourceKey], bool]
    ) -> tuple[Plan, list[Action]]:
        """Hold back actions of paused objects, objects in backoff, new migrations of
        VMs annotated to abort and keys to ``leave_alone`` (all, if observing only)."""
        if self.options.observe_only:
            return split_plan(plan, lambda _a: True)
        paused = paused_filter(cluster.paused)
        aborting = self.moves.held(cluster.abort)
        return split_plan(
            plan,
            lambda a: paused(a) or aborting(a) or self.backoff.waiting(a.key) or leave_alone(a.key),
        )

    def _recover(self, cluster: ClusterDesired) -> None:
        """First pass as leader: settle calls a previous leader left in flight."""
        creds, _ = self.clouds.credentials(cluster.desired.clouds)
        providers = self.clouds.providers(cluster.desired.clouds, creds)
        for note in resolve_in_flight(self.journal.read_in_flight(), providers):
            log.info(note)
        self.journal.clear()
        self._recovered = True

    def _apply(
        self, plan: Plan, world: World, cluster: ClusterDesired, report: PassReport
    ) -> ApplyResult:
        return apply(
            plan,
            world,
            cluster.desired,
            self.settings,
            lambda event: self.outcomes.on_action(event, report),
            journal=self.journal,
            stop=self.stop,
            migrations=self.state,
        )

    def _write_back(
        self, cluster: ClusterDesired, report: PassReport, objects: list[CachedObject]
    ) -> None:
        written = write_back(self.writer, self.cache, cluster.deleting, report, objects, self.stop)
        for _ in range(written):
            self.metrics.count_status_write()
