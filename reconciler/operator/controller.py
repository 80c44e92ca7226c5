"""The level-based reconcile loop: desired from the cache, actual from the clouds.

Any change to any object marks the world dirty; after a short debounce one pass
plans everything (placement is global: spread, capacity and prices couple objects)
and carries out what may be carried out. A pass that acted, or left objects in
backoff, requeues itself; a periodic resync catches drift and price changes. The
loop is only driven while this replica leads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.executor.engine import Settings, apply, now_iso, resolve_in_flight
from reconciler.executor.runner import ActionEvent
from reconciler.executor.world import World
from reconciler.model.errors import ReconcilerError
from reconciler.model.plan import Action, Plan
from reconciler.operator.clouds import CloudProviders
from reconciler.operator.desired import ClusterDesired, SchemaMemo, build_desired
from reconciler.operator.gating import Backoff, paused_filter, split_plan
from reconciler.operator.informer import Cache, CachedObject
from reconciler.operator.journal_store import ClusterJournal
from reconciler.operator.observability import Metrics
from reconciler.operator.planning import plan_cluster
from reconciler.operator.report import PassReport
from reconciler.operator.writeback import Writer, owner_of

log = logging.getLogger(__name__)
#: Status PATCHes in flight at once (the client's connection pool holds 16).
STATUS_WRITERS = 8


@dataclass(frozen=True)
class LoopOptions:
    debounce: float = 0.05
    resync: float = 60.0
    observe_only: bool = False


class Controller:
    """One reconcile pass at a time over the whole cache."""

    def __init__(
        self,
        cache: Cache,
        settings: Settings,
        clouds: CloudProviders,
        journal: ClusterJournal,
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
        self.backoff = Backoff()
        self.schema_memo = SchemaMemo()
        self._wake = threading.Condition()
        self._dirty = 0
        self._recovered = False
        self.last_pass = 0.0

    # -- triggering -----------------------------------------------------------------
    def enqueue(self, _key: object = None) -> None:
        """Called by informers on every change (never blocks)."""
        with self._wake:
            self._dirty += 1
            self._wake.notify()

    def _wait_for_work(self, timeout: float) -> None:
        with self._wake:
            if not self._dirty:
                self._wake.wait(timeout)
        self.stop.wait(self.options.debounce)  # let a burst of changes arrive
        with self._wake:
            self.metrics.set_queue_depth(self._dirty)
            self._dirty = 0

    def run(self, leading: threading.Event) -> None:
        """Reconcile while ``leading`` is set, until ``stop``."""
        delay = 0.0
        while not self.stop.is_set():
            if not leading.is_set():
                self._recovered = False
                self.clouds.forget()
                leading.wait(1.0)
                continue
            self._wait_for_work(delay)
            if self.stop.is_set() or not leading.is_set():
                continue
            delay = self.reconcile_once()

    # -- one pass -------------------------------------------------------------------
    def reconcile_once(self) -> float:
        """Plan, act and report once; return seconds until the next pass is due."""
        started = time.monotonic()
        report = PassReport(observe_only=self.options.observe_only)
        objects = self.cache.objects()
        acted = False
        if self.writer.add_finalizers(objects):
            return 0.0  # the watch delivers the updated objects; act on those
        cluster = build_desired(objects, self.schema_memo)
        report.invalid, report.paused = cluster.invalid, set(cluster.paused)
        report.blocked = dict(cluster.blocked)
        try:
            acted = self._plan_and_apply(cluster, report)
        except ReconcilerError as exc:
            report.plan_error = str(exc)
            self.metrics.count_error()
            log.warning("reconcile refused", extra={"error": str(exc)})
        self._write_back(cluster, report)
        self.metrics.observe_reconcile(time.monotonic() - started)
        self.metrics.set_objects(Counter(o.kind for o in objects))
        self.last_pass = time.time()
        if acted:
            return 0.0
        due = self.backoff.next_due()
        return min(self.options.resync, due) if due is not None else self.options.resync

    def _plan_and_apply(self, cluster: ClusterDesired, report: PassReport) -> bool:
        if not self._recovered:
            self._recover(cluster)
        plan, world = plan_cluster(
            cluster, self.cache.objects("Cloud"), self.clouds, self.settings.owner, report
        )
        self.metrics.set_costs(_costs(report))
        runnable, held = self._gate(plan, cluster)
        for action in held:
            report.pending[action.key].append(action)
        if not runnable.actions:
            return False
        for action in runnable.actions:
            report.applying[action.key].append(action)
        self._apply(runnable, world, cluster, report)
        return True

    def _gate(self, plan: Plan, cluster: ClusterDesired) -> tuple[Plan, list[Action]]:
        """Hold back actions of paused objects and objects in backoff (all, if
        observing only)."""
        if self.options.observe_only:
            return split_plan(plan, lambda _a: True)
        paused = paused_filter(cluster.paused)
        return split_plan(plan, lambda a: paused(a) or self.backoff.waiting(a.key))

    def _recover(self, cluster: ClusterDesired) -> None:
        """First pass as leader: settle calls a previous leader left in flight."""
        creds, _ = self.clouds.credentials(cluster.desired.clouds)
        providers = self.clouds.providers(cluster.desired.clouds, creds)
        for note in resolve_in_flight(self.journal.read_in_flight(), providers):
            log.info(note)
        self.journal.clear()
        self._recovered = True

    def _apply(self, plan: Plan, world: World, cluster: ClusterDesired, report: PassReport) -> None:
        def on_event(event: ActionEvent) -> None:
            action = event.action
            if event.phase == "start":
                log.info("action start", extra={"action": action.id, "key": str(action.key)})
            if event.phase not in ("done", "failed", "skipped"):
                return
            outcome = {"done": "ok"}.get(event.phase, event.phase)
            self.metrics.count_action(action.key.kind, action.type.value, outcome)
            if event.phase == "failed":
                report.failed[action.key] = event.message
                delay = self.backoff.failed(action.key)
                log.warning(
                    "action failed",
                    extra={"action": action.id, "error": event.message, "retry_in": delay},
                )
            elif event.phase == "done":
                self.backoff.succeeded(action.key)
                log.info("action done", extra={"action": action.id, "cloud": action.cloud})
            owner = owner_of(self.cache, action.key)
            if owner is not None and event.phase != "skipped":
                self.writer.action_event(owner, action, event.phase == "done", event.message)

        apply(
            plan,
            world,
            cluster.desired,
            self.settings,
            on_event,
            journal=self.journal,
            stop=self.stop,
        )

    def _write_back(self, cluster: ClusterDesired, report: PassReport) -> None:
        """Status for every object (in parallel; stops early on SIGTERM), then the
        finalizers of objects whose cloud resources are gone."""
        now = now_iso()
        live = [o for o in self.cache.objects() if o.key not in cluster.deleting]

        def write(obj: CachedObject) -> None:
            if not self.stop.is_set():
                self.writer.write_status(obj, report, now)

        with ThreadPoolExecutor(max_workers=STATUS_WRITERS) as pool:
            list(pool.map(write, live))
        if report.plan_error or not report.clouds or self.stop.is_set():
            return  # without a full observation, never conclude that resources are gone
        for key, obj in cluster.deleting.items():
            if not report.has_resources(key) and not report.applying.get(key):
                self.writer.remove_finalizer(obj)


def _costs(report: PassReport) -> dict[str, float]:
    """$/h per cloud of what runs now."""
    out: dict[str, float] = {name: 0.0 for name in report.clouds}
    for vm in report.inventory.all_vms():
        out[vm.cloud] = out.get(vm.cloud, 0.0) + vm.price_per_hour
    for vol in report.inventory.all_volumes():
        out[vol.cloud] = out.get(vol.cloud, 0.0) + vol.price_per_hour
    return out
