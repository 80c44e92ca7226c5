"""Writing what a pass decided back to the cluster: finalizers, status, Events.

Every write is a merge patch of only what changed, with the resourceVersion as a
precondition where a lost update would matter (finalizer lists). A status equal to
the one already stored is not written, so a converged cluster costs no writes; an
optional field a new status lacks is removed with an explicit null (a merge patch
would otherwise keep it, and the status would differ forever).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.executor.clock import now_iso
from reconciler.model.keys import ResourceKey, owning_set
from reconciler.model.plan import Action, ActionType
from reconciler.operator.desired import FINALIZED_KINDS, FINALIZER
from reconciler.operator.events import EventRecorder, ObjectRef
from reconciler.operator.informer import Cache, CachedObject, status_digest
from reconciler.operator.kube import Conflict, KubeClient, KubeError, NotFound, resource_path
from reconciler.operator.report import PassReport
from reconciler.operator.status import desired_status, label, vm_signature

log = logging.getLogger(__name__)

EVENT_REASONS = {
    ActionType.CREATE: "Created",
    ActionType.UPDATE: "Updated",
    ActionType.START: "Started",
    ActionType.STOP: "Stopped",
    ActionType.REPLACE: "Replaced",
    ActionType.DELETE: "Deleted",
    ActionType.FORGET: "Forgotten",
    ActionType.ATTACH: "Attached",
    ActionType.DETACH: "Detached",
}
#: Optional top-level status fields per kind, removed when a new status lacks them.
OPTIONAL_STATUS = {
    "VirtualMachine": ("placement", "candidates", "migration"),
    "Volume": ("cloud", "externalId", "attachedTo"),
    "BrokerPolicy": ("rebalance",),
    "Image": ("clouds",),
}
#: Synced reasons worth an Event when an object enters them.
WARN_REASONS = frozenset({"InvalidSpec", "DeletionBlocked", "PlanRefused", "CloudUnavailable"})


def _path(obj: CachedObject, subresource: str = "") -> str:
    return resource_path(obj.kind, obj.namespace, obj.name, subresource)


def ref_of(obj: CachedObject) -> ObjectRef:
    return ObjectRef(obj.kind, obj.namespace, obj.name, obj.uid)


def owner_of(cache: Cache, key: ResourceKey) -> CachedObject | None:
    """The object an action's key belongs to (a replica belongs to its set)."""
    obj = cache.get(key)
    parent = owning_set(key) if obj is None else None
    return cache.get(parent) if parent is not None else obj


class Writer:
    """Patches finalizers and status, and records Events, for one controller."""

    def __init__(self, client: KubeClient, events: EventRecorder) -> None:
        self.client = client
        self.events = events
        self._signatures: dict[ResourceKey, tuple[object, ...]] = {}

    def add_finalizers(self, objects: Iterable[CachedObject]) -> int:
        """Put our finalizer on every live object of a finalized kind that lacks it."""
        added = 0
        for obj in objects:
            if obj.kind not in FINALIZED_KINDS or obj.deletion_timestamp:
                continue
            if FINALIZER in obj.finalizers:
                continue
            if self._set_finalizers(obj, [*obj.finalizers, FINALIZER]):
                added += 1
        return added

    def remove_finalizer(self, obj: CachedObject) -> bool:
        rest = [f for f in obj.finalizers if f != FINALIZER]
        if len(rest) == len(obj.finalizers):
            return False
        done = self._set_finalizers(obj, rest)
        if done:
            self.events.record(
                ref_of(obj), "Normal", "Finalized", "cloud resources released; object removed"
            )
        return done

    def _set_finalizers(self, obj: CachedObject, finalizers: list[str]) -> bool:
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version}}
        try:
            self.client.merge_patch(_path(obj), patch)
            return True
        except (Conflict, NotFound):
            return False  # changed or gone meanwhile: the watch brings the new version
        except KubeError as exc:
            log.warning("cannot update finalizers", extra={"key": str(obj.key), "error": str(exc)})
            return False

    def status_update(
        self, obj: CachedObject, rep: PassReport, now: str
    ) -> dict[str, object] | None:
        """The status to write for ``obj``, or None when the stored one is current
        (VMs whose inputs did not change since the last pass are not even recomputed).
        Pure computation: the controller runs it on its own thread. A rebalancing
        policy is left alone while its round is not known (a pass that could not plan)."""
        if obj.kind == "BrokerPolicy" and rep.rounds is None and label(obj) not in rep.invalid:
            interval = (obj.spec.get("rebalance") or {}).get("interval", "Never")
            if interval != "Never":
                return None
        signature = vm_signature(obj, rep) if obj.kind == "VirtualMachine" else None
        if signature is not None and self._signatures.get(obj.key) == signature:
            return None
        status = desired_status(obj, rep, now)
        if status_digest(status) == obj.status_digest:
            if signature is not None:
                self._signatures[obj.key] = signature
            return None
        return status

    def patch_status(self, obj: CachedObject, status: dict[str, object]) -> bool:
        """Write ``status`` (and a Warning Event when Synced enters a warning reason)."""
        self._warn_on_transition(obj, status)
        body = {**dict.fromkeys(OPTIONAL_STATUS.get(obj.kind, ())), **status}
        try:
            self.client.merge_patch(_path(obj, "status"), {"status": body})
            return True
        except NotFound:
            return False
        except KubeError as exc:
            log.warning("cannot write status", extra={"key": str(obj.key), "error": str(exc)})
            return False

    def _warn_on_transition(self, obj: CachedObject, status: dict[str, object]) -> None:
        def synced(conds: object) -> dict[str, str]:
            for cond in conds if isinstance(conds, list) else []:
                if isinstance(cond, dict) and cond.get("type") == "Synced":
                    return cond
            return {}

        new = synced(status.get("conditions"))
        old = synced(obj.status.get("conditions"))
        reason = new.get("reason", "")
        if reason in WARN_REASONS and (reason, new.get("message")) != (
            old.get("reason"),
            old.get("message"),
        ):
            self.events.record(ref_of(obj), "Warning", reason, str(new.get("message", "")))

    def action_event(self, obj: CachedObject, action: Action, ok: bool, message: str) -> None:
        """One Event per carried-out action: Normal on success, Warning on failure."""
        where = f"{action.key} on {action.cloud}"
        if ok and action.type is ActionType.MIGRATE:
            self._migration_event(obj, action)
        elif ok:
            reason = EVENT_REASONS.get(action.type, "Changed")
            self.events.record(ref_of(obj), "Normal", reason, f"{where}: {action.reason}")
        else:
            text = f"{action.type.value} {where} failed: {message}"
            self.events.record(ref_of(obj), "Warning", "ActionFailed", text)

    def migration_started(self, obj: CachedObject, action: Action) -> None:
        """The Event of a migration that starts (a resumed one started earlier)."""
        p = action.params
        text = (
            f"migration {p['migrationId']} of {action.key} from {p['source']['cloud']} to "
            f"{p['target']['cloud']} started: {action.reason}"
        )
        self.events.record(ref_of(obj), "Normal", "MigrationStarted", text)

    def _migration_event(self, obj: CachedObject, action: Action) -> None:
        p = action.params
        ident, source, target = p["migrationId"], p["source"]["cloud"], p["target"]["cloud"]
        if p.get("mode") == "abort":
            text = f"migration {ident} of {action.key} rolled back: it runs on {source} again"
            self.events.record(ref_of(obj), "Normal", "MigrationAborted", text)
        else:
            text = f"migration {ident} of {action.key} finished: moved from {source} to {target}"
            self.events.record(ref_of(obj), "Normal", "Migrated", text)


#: Status PATCHes in flight at once (the client's connection pool holds 16).
STATUS_WRITERS = 8


def write_back(
    writer: Writer,
    cache: Cache,
    deleting: Mapping[ResourceKey, CachedObject],
    report: PassReport,
    objects: Iterable[CachedObject],
    stop: threading.Event,
) -> int:
    """Status of ``objects`` as cached now (computed here, written in parallel; stops
    early on ``stop``), then the finalizers of objects being deleted whose cloud
    resources are gone. Returns how many statuses were written."""
    now = now_iso()
    current = (cache.get(o.key) for o in objects)
    live = [o for o in current if o is not None and o.key not in deleting]
    updates = []
    for obj in live:
        status = writer.status_update(obj, report, now)
        if status is not None:
            updates.append((obj, status))

    def write(update: tuple[CachedObject, dict[str, object]]) -> bool:
        return not stop.is_set() and writer.patch_status(*update)

    written = 0
    if updates:
        with ThreadPoolExecutor(max_workers=STATUS_WRITERS) as pool:
            written = sum(pool.map(write, updates))
    if report.plan_error or not report.clouds or stop.is_set():
        return written  # without a full observation, never conclude that resources are gone
    for key, obj in deleting.items():
        if not report.has_resources(key) and not report.applying.get(key):
            writer.remove_finalizer(obj)
    return written
