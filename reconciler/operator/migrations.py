"""Migrations and rebalancing rounds as the operator shows and steers them.

A migration is in flight while its source VM carries the migration tags (see
planner/migrate.py); the state ConfigMap adds the last step reached and when it
started. Status shows it on the VirtualMachine (``status.migration``, Synced/Ready
``Migrating``); each BrokerPolicy shows its round (``status.rebalance``).

The ``reconciler.dev/migration-abort`` annotation rolls a migration back. It is read
at every pass, and also between the steps of a migration the operator is carrying
out: the step about to start is refused (``MigrationStopped``) and the next pass rolls
back. Once the switch step has begun there is nothing to roll back: the migration is
finished instead. SIGTERM stops a migration between two steps the same way; the next
leader resumes it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.executor.migration import STEPS
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_MIGRATED_TO, TAG_MIGRATION_TARGET, ResourceKey
from reconciler.model.moves import RebalanceRound, RoundState
from reconciler.model.observed import Inventory, ObservedVM, ObservedVolume
from reconciler.model.plan import Action, ActionType
from reconciler.operator.report import PassReport
from reconciler.operator.state_store import FINISHED_STEPS
from reconciler.planner.migrate import find_flight, is_retained

#: Steps before which an abort can still roll the migration back.
ABORTABLE_STEPS = frozenset(STEPS[: STEPS.index("switch")])


class MigrationStopped(PermanentError):
    """Raised between two steps of a migration that must not go on in this pass (its
    abort was requested meanwhile, or the operator is shutting down)."""


@dataclass(frozen=True, slots=True)
class MigrationView:
    """One VM's migration in flight, as status shows it."""

    id: str
    source_cloud: str
    target_cloud: str
    phase: str  # the last step completed, or "pending"
    started_at: str
    abort: bool

    def message(self) -> str:
        text = (
            f"migration {self.id} from {self.source_cloud} to {self.target_cloud}: "
            f"last step {self.phase}"
        )
        return text + ("; abort requested: rolling back to the source" if self.abort else "")

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "phase": self.phase,
            "sourceCloud": self.source_cloud,
            "targetCloud": self.target_cloud,
        }
        if self.started_at:
            out["startedAt"] = self.started_at
        if self.abort:
            out["abortRequested"] = True
        return out


def is_start(action: Action) -> bool:
    """Whether ``action`` starts a new migration (not a resume or a rollback)."""
    return action.type is ActionType.MIGRATE and action.params.get("mode") == "start"


def current_vm(vms: Sequence[ObservedVM]) -> ObservedVM | None:
    """The VM that *is* the resource among a key's VMs: not a retained source; while a
    migration is in flight (before its switch), its source."""
    live = [vm for vm in vms if not is_retained(vm.tags)]
    for vm in live:
        if vm.tags.get(TAG_MIGRATION_TARGET):
            return vm
    if live:
        return live[0]
    return vms[0] if vms else None


def current_volume(
    volumes: Sequence[ObservedVolume], vm: ObservedVM | None
) -> ObservedVolume | None:
    """The volume that *is* the resource among a key's volumes: the one attached to its
    VM's current instance (after a migration the old copy stays with the retained
    source until that goes), else one not retained."""
    for vol in volumes:
        if vm is not None and vol.cloud == vm.cloud and vol.attached_to == vm.external_id:
            return vol
    live = [vol for vol in volumes if not is_retained(vol.tags)]
    return live[0] if live else (volumes[0] if volumes else None)


def migration_view(key: ResourceKey, rep: PassReport) -> MigrationView | None:
    """The migration of ``key`` in flight (seen on the clouds, or started in this pass)
    that has not finished yet, if any."""
    vms = rep.vms(key)
    flight = find_flight(vms) if vms else None
    if flight is not None:
        ident, source, target = flight.id, flight.source.cloud, flight.target_cloud
    else:
        action = next((a for a in rep.applying.get(key, ()) if is_start(a)), None)
        if action is None:
            return None
        params = action.params
        ident = str(params["migrationId"])
        source, target = str(params["source"]["cloud"]), str(params["target"]["cloud"])
    record = (rep.records.cached(ident) if rep.records is not None else None) or {}
    aborting = key in rep.abort
    if record.get("step") == "aborted" and not aborting:
        record = {}  # an earlier try of the same move, rolled back: this one is new
    phase = str(record.get("step") or "pending")
    if phase in FINISHED_STEPS:
        return None
    started = str(record.get("startedAt") or "")
    return MigrationView(ident, source, target, phase, started, aborting)


def effective_abort(
    requested: Collection[ResourceKey], inventory: Inventory
) -> tuple[frozenset[ResourceKey], list[ResourceKey]]:
    """(the keys whose migration can still be rolled back, those past their switch).

    A switched migration cannot be rolled back; asked to, the executor would fail on
    every pass. It is finished instead (its source is retained as usual)."""
    if not requested:
        return frozenset(), []
    wanted = set(requested)
    by_key: dict[ResourceKey, list[ObservedVM]] = {}
    for vm in inventory.all_vms():
        key = vm.key
        if key is not None and key in wanted:
            by_key.setdefault(key, []).append(vm)
    late = []
    for key, vms in by_key.items():
        flight = find_flight(vms)
        if flight is not None and flight.source.tags.get(TAG_MIGRATED_TO):
            late.append(key)
    return frozenset(wanted - set(late)), sorted(late)


def interrupts(action: Action, progress: str, abort_requested: bool) -> bool:
    """Whether the step ``progress`` announces ("export (3/9)") must not start because
    the migration's abort was requested meanwhile."""
    if not abort_requested or action.type is not ActionType.MIGRATE:
        return False
    if action.params.get("mode") == "abort":
        return False
    return progress.split(" ", 1)[0] in ABORTABLE_STEPS


def rebalance_status(found: RebalanceRound) -> dict[str, Any] | None:
    """A BrokerPolicy's ``status.rebalance`` (None when it never rebalances)."""
    if found.state is RoundState.NEVER:
        return None
    out: dict[str, Any] = {
        "interval": found.interval,
        "period": found.period,
        "state": found.state.value,
        "moves": found.moves,
        "inFlight": found.in_flight,
        "held": found.held,
        "maxConcurrent": found.max_concurrent,
    }
    if found.next_round:
        out["nextRound"] = found.next_round
    return out
