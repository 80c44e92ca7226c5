"""Carrying out a Plan: dependency order, bounded parallelism, per-cloud rate limits,
retries with backoff, and a journal entry before and after every cloud call.

Destructive actions (delete, detach, stop, forget) run in a first wave so a finite
private cloud has its capacity back before creates need it; each wave follows the
plan's dependsOn edges. An action whose dependency failed is skipped, not attempted.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reconciler.executor.bucketsync import BucketRef, sync
from reconciler.executor.clock import now
from reconciler.executor.dispatch import Resolver, call_for, vm_request
from reconciler.executor.images import ensure_image
from reconciler.executor.journal import JournalSink
from reconciler.executor.migration import Migration
from reconciler.executor.migration_store import MemoryMigrationStore, MigrationStore
from reconciler.executor.retry import RetryPolicy, call_with_retry
from reconciler.model.errors import PermanentError, ProviderError, TransientError
from reconciler.model.observed import Observed
from reconciler.model.plan import Action, ActionType, Plan
from reconciler.providers.base import Provider
from reconciler.providers.ratelimit import TokenBucket

T = TypeVar("T")
FIRST_WAVE = frozenset({ActionType.DELETE, ActionType.DETACH, ActionType.STOP, ActionType.FORGET})


@dataclass(frozen=True)
class ActionEvent:
    """Progress of one action: phase is start, retry, progress (a migration's step),
    done, failed or skipped."""

    action: Action
    phase: str
    message: str = ""
    external_id: str | None = None
    seconds: float = 0.0
    #: On "done": the provider's record of what the action left (None once deleted).
    observed: Observed | None = None


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


@dataclass(frozen=True)
class ExecOptions:
    parallelism: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limits: Mapping[str, TokenBucket] = field(default_factory=dict)
    #: Set to stop starting new actions (SIGTERM): calls in flight finish and are
    #: journaled, the rest are reported as skipped.
    stop: threading.Event = field(default_factory=threading.Event)
    #: Where migrations keep their progress (None: in memory, for this apply only).
    migrations: MigrationStore | None = None
    #: Scratch space for images being converted and imported.
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "reconciler")


def plan_id(plan: Plan) -> str:
    return f"{plan.created_at}/{plan.inventory_fingerprint[:12]}"


class _Run:
    """State of one apply; one instance per ``execute`` call."""

    def __init__(
        self,
        plan: Plan,
        providers: Mapping[str, Provider],
        journal: JournalSink,
        options: ExecOptions,
        on_event: Callable[[ActionEvent], None],
    ) -> None:
        self.plan_id = plan_id(plan)
        self.providers = providers
        self.journal = journal
        self.options = options
        self.resolver = Resolver()
        self.result = ApplyResult()
        self.migrations = options.migrations or MemoryMigrationStore()
        self._emit_lock = threading.Lock()
        self._on_event = on_event

    def emit(self, event: ActionEvent) -> None:
        with self._emit_lock:
            self._on_event(event)

    def _provider_call(self, action: Action, cloud: str, fn: Callable[[], T]) -> T:
        bucket = self.options.rate_limits.get(cloud)

        def limited() -> T:
            if bucket is not None:
                bucket.acquire()
            return fn()

        def report(attempt: int, exc: TransientError) -> None:
            self.emit(ActionEvent(action, "retry", f"attempt {attempt + 1} after: {exc}"))

        return call_with_retry(limited, self.options.retry, on_retry=report)

    def perform(self, action: Action) -> Observed | None:
        """Journal the intent, make the call(s), journal the outcome."""
        self.journal.intent(self.plan_id, action)
        try:
            observed = self._dispatch(action)
        except Exception as exc:
            self.journal.outcome(self.plan_id, action, False, None, str(exc))
            raise
        external_id = observed.external_id if observed is not None else None
        self.journal.outcome(self.plan_id, action, True, external_id)
        if external_id:
            self.resolver.record(str(action.key), external_id)
        return observed

    def _migrate(self, action: Action) -> Observed | None:
        def call(cloud: str, fn: Callable[[], Any]) -> Any:
            return self._provider_call(action, cloud, fn)

        def progress(step: str) -> None:
            self.emit(ActionEvent(action, "progress", step))

        migration = Migration(
            action, self.providers, self.migrations, self.journal, self.plan_id, call, progress, now
        )
        return migration.run()

    def _sync(self, action: Action) -> Observed | None:
        """Copy a bucket's objects from its source copy to the others; fails (after the
        copies that worked) if any object could not be copied."""
        source = action.params["source"]
        replicas = [self._bucket_ref(action, r) for r in action.params["replicas"]]
        origin = BucketRef(self.providers[source["cloud"]], source["bucket"])
        report = sync(origin, replicas)
        if report.failed:
            errors = "; ".join(e for r in report.replicas for e in r.errors[:2])
            raise PermanentError(f"{report.failed} object(s) not copied: {errors}", action.cloud)
        done = f"copied {report.copied} object(s), {report.bytes_copied} bytes; "
        self.emit(ActionEvent(action, "progress", done + f"deleted {report.deleted}"))
        return None

    def _bucket_ref(self, action: Action, replica: Mapping[str, str]) -> BucketRef:
        provider = self.providers[replica["cloud"]]
        if "bucket" in replica:
            return BucketRef(provider, replica["bucket"])
        found = self._provider_call(
            action, replica["cloud"], lambda: provider.find_by_uid(replica["uid"])
        )
        if found is None:
            raise PermanentError(
                f"the new copy (uid {replica['uid']}) was not created", replica["cloud"]
            )
        return BucketRef(provider, found.external_id)

    def _import_image(self, action: Action) -> Observed | None:
        """An Image (one of its disks) imported on demand; later VM and volume creates
        find its id under ``<image key>@<cloud>[#<disk>]``."""
        provider = self.providers[action.cloud]
        work = self.options.work_dir
        image = self._provider_call(
            action,
            action.cloud,
            lambda: ensure_image(provider, action.params, work, self.providers),
        )
        disk = action.params["image"].get("disk") or ""
        suffix = f"#{disk}" if disk else ""
        self.resolver.record(f"{action.key}@{action.cloud}{suffix}", image.external_id)
        self.emit(ActionEvent(action, "progress", f"image {image.external_id} ({image.sha256})"))
        return None

    def _dispatch(self, action: Action) -> Observed | None:
        if action.type is ActionType.MIGRATE:
            return self._migrate(action)
        if action.key.kind == "Image" and action.type is ActionType.CREATE:
            return self._import_image(action)
        if action.type is ActionType.SYNC:
            return self._sync(action)
        provider = self.providers[action.cloud]
        if action.type is ActionType.REPLACE:  # a VM: create in the target, delete the source
            request = vm_request(action.params)
            created = self._provider_call(action, action.cloud, lambda: provider.create_vm(request))
            source = self.providers[str(action.params["fromCloud"])]
            old_id = str(action.params["fromExternalId"])
            self._provider_call(action, source.cloud.name, lambda: source.delete_vm(old_id))
            return created
        call = call_for(action)
        return self._provider_call(
            action, action.cloud, lambda: call(provider, action, self.resolver)
        )

    def run_wave(self, actions: Sequence[Action]) -> None:
        """Run one wave as a DAG with at most ``parallelism`` calls in flight."""
        in_wave = {a.id for a in actions}
        waiting: dict[str, int] = {}
        children: dict[str, list[Action]] = {}
        ready: deque[Action] = deque()
        for action in actions:
            local = [d for d in action.depends_on if d in in_wave]
            if self._blocked_by(action):
                continue
            waiting[action.id] = len(local)
            for dep in local:
                children.setdefault(dep, []).append(action)
            if not local:
                ready.append(action)
        workers = max(1, self.options.parallelism)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            inflight: dict[Future[Observed | None], tuple[Action, float]] = {}
            while ready or inflight:
                while ready and len(inflight) < workers:
                    action = ready.popleft()
                    if self.options.stop.is_set():
                        self._skip(action, "not started: shutting down", children)
                        continue
                    self.emit(ActionEvent(action, "start"))
                    inflight[pool.submit(self.perform, action)] = (action, time.monotonic())
                if not inflight:
                    break
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in finished:
                    action, started = inflight.pop(future)
                    ok = self._finish(action, future, time.monotonic() - started)
                    for child in children.get(action.id, []):
                        if not ok:
                            self._skip(child, f"depends on {action.id}, which failed", children)
                            continue
                        waiting[child.id] -= 1
                        if waiting[child.id] == 0 and child.id not in self.result.skipped:
                            ready.append(child)

    def _blocked_by(self, action: Action) -> bool:
        """Skip an action whose dependency (from an earlier wave) failed or was skipped."""
        for dep in action.depends_on:
            if dep in self.result.failed or dep in self.result.skipped:
                self.result.skipped[action.id] = f"depends on {dep}, which did not succeed"
                self.emit(ActionEvent(action, "skipped", self.result.skipped[action.id]))
                return True
        return False

    def _skip(self, action: Action, why: str, children: Mapping[str, list[Action]]) -> None:
        if action.id in self.result.skipped:
            return
        self.result.skipped[action.id] = why
        self.emit(ActionEvent(action, "skipped", why))
        for child in children.get(action.id, []):
            self._skip(child, f"depends on {action.id}, which was skipped", children)

    def _finish(self, action: Action, future: Future[Observed | None], seconds: float) -> bool:
        try:
            observed = future.result()
        except ProviderError as exc:
            self.result.failed[action.id] = str(exc)
            self.emit(ActionEvent(action, "failed", str(exc), seconds=seconds))
            return False
        except Exception as exc:  # a bug, reported per action instead of killing the apply
            message = f"internal error: {type(exc).__name__}: {exc}"
            self.result.failed[action.id] = message
            self.emit(ActionEvent(action, "failed", message, seconds=seconds))
            return False
        self.result.done.append(action.id)
        external_id = observed.external_id if observed is not None else None
        self.emit(ActionEvent(action, "done", "", external_id, seconds, observed))
        return True


def split_waves(actions: Sequence[Action]) -> tuple[list[Action], list[Action]]:
    """First wave: destructive actions whose dependencies are all destructive too."""
    first = {a.id for a in actions if a.type in FIRST_WAVE}
    by_id = {a.id: a for a in actions}
    changed = True
    while changed:
        changed = False
        for ident in list(first):
            if any(dep not in first and dep in by_id for dep in by_id[ident].depends_on):
                first.discard(ident)
                changed = True
    return [a for a in actions if a.id in first], [a for a in actions if a.id not in first]


def execute(
    plan: Plan,
    providers: Mapping[str, Provider],
    journal: JournalSink,
    options: ExecOptions | None = None,
    on_event: Callable[[ActionEvent], None] = lambda _event: None,
) -> ApplyResult:
    """Apply every action of ``plan``; never raises for a failed cloud call (see result)."""
    run = _Run(plan, providers, journal, options or ExecOptions(), on_event)
    journal.begin(run.plan_id, len(plan.actions))
    try:
        for wave in split_waves(plan.actions):
            run.run_wave(wave)
    finally:
        journal.end(run.plan_id, run.result.ok)
    return run.result
