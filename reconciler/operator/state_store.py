"""Rebalancing and migration state kept in the cluster: one ConfigMap in the operator's
namespace (``reconciler-state`` by default) holding

- ``migrations.json``: the executor's migration records (``MigrationStore``): per
  migration id, the last step reached, each disk's checksum and staged etag, and when
  it started. The clouds' tags say *whether* a migration is in flight; a lost record
  only costs work (disks read again), never correctness. A rolled-back migration is
  over: its record is not handed out again, so the same move (same VM, same target,
  hence the same id) started later begins afresh instead of resuming steps whose
  results the rollback deleted.
- ``rounds.json``: per BrokerPolicy key, the period of its last completed rebalancing
  round (what ``executor.rounds`` keeps in a file for the CLI).

Only the leader writes. Every write is a PUT carrying the resourceVersion last read,
so a deposed leader's write fails (TransientError) instead of overwriting; a failed
write changes nothing here and the next access reads the ConfigMap again. The map is
created on the first write (a cluster that never rebalances never gets one) and kept
small: records of finished migrations go after ``FINISHED_TTL`` (at most
``KEEP_FINISHED`` of them are kept), any record untouched for ``STALE_TTL`` goes too.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.broker.schedule import iso, parse_time
from reconciler.executor.clock import now as clock_now
from reconciler.executor.migration_store import Record
from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import ResourceKey
from reconciler.operator.kube import Conflict, KubeClient, KubeError, NotFound, resource_path

log = logging.getLogger(__name__)

CONFIGMAP = "reconciler-state"
MIGRATIONS_KEY = "migrations.json"
ROUNDS_KEY = "rounds.json"
#: Steps after which a migration is over (the executor's last step, or its rollback's).
FINISHED_STEPS = frozenset({"finish", "aborted"})
FINISHED_TTL = dt.timedelta(days=7)
KEEP_FINISHED = 20
STALE_TTL = dt.timedelta(days=30)
#: A ConfigMap holds at most 1 MiB; stay clear of it.
MAX_BYTES = 900 * 1024


def state_name_for(journal_name: str) -> str:
    """The state ConfigMap that goes with a journal ConfigMap: ``reconciler-journal`` ->
    ``reconciler-state``; any other name gets ``-state`` appended."""
    if journal_name == "reconciler-journal":
        return CONFIGMAP
    return f"{journal_name}-state"


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _parse(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class ClusterState:
    """MigrationStore and completed rounds over one ConfigMap; thread safe."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str = CONFIGMAP,
        clock: Callable[[], dt.datetime] = clock_now,
    ) -> None:
        self._client, self._namespace, self._name = client, namespace, name
        self._path = resource_path("ConfigMap", namespace, name)
        self._clock = clock
        self._lock = threading.Lock()
        self._migrations: dict[str, Record] = {}
        self._rounds: dict[str, str] = {}
        self._resource_version: str | None = None  # None: the ConfigMap does not exist
        self._loaded = False

    # -- reading ----------------------------------------------------------------------
    def expire(self) -> None:
        """Read the ConfigMap again on next use (each full pass: picks up hand edits)."""
        with self._lock:
            self._loaded = False

    def _ensure(self) -> None:
        """Load the ConfigMap unless loaded (call with the lock held)."""
        if self._loaded:
            return
        try:
            raw = self._client.get(self._path)
        except NotFound:
            raw = {"metadata": {}, "data": {}}
        except KubeError as exc:
            raise TransientError(f"cannot read the state ConfigMap {self._name}: {exc}") from exc
        data = raw.get("data") or {}
        self._migrations = {
            k: v for k, v in _parse(data.get(MIGRATIONS_KEY)).items() if isinstance(v, dict)
        }
        self._rounds = {k: str(v) for k, v in _parse(data.get(ROUNDS_KEY)).items()}
        self._resource_version = raw["metadata"].get("resourceVersion")
        self._loaded = True

    def rounds(self) -> dict[ResourceKey, str]:
        """Policy key -> period of its last completed round."""
        with self._lock:
            self._ensure()
            out: dict[ResourceKey, str] = {}
            for key, period in self._rounds.items():
                try:
                    out[ResourceKey.parse(key)] = period
                except ValueError:
                    continue
            return out

    def cached(self, migration_id: str) -> Record | None:
        """The record as last read, for status; reads again if due, but never raises
        (an unreadable ConfigMap leaves the old copy in use until the next full pass;
        a write still carries the old resourceVersion, so it cannot overwrite)."""
        with self._lock:
            try:
                self._ensure()
            except TransientError as exc:
                self._loaded = True  # one failed read per pass, not one per VM
                log.warning("state ConfigMap unreadable", extra={"error": str(exc)})
            found = self._migrations.get(migration_id)
            return dict(found) if found is not None else None

    # -- MigrationStore -----------------------------------------------------------------
    def load(self, migration_id: str) -> Record | None:
        """The record to resume from (None for an unknown or rolled-back migration)."""
        with self._lock:
            self._ensure()
            found = self._migrations.get(migration_id)
            if found is None or found.get("step") == "aborted":
                return None
            copy: Record = json.loads(_dump(found))
            return copy

    def all(self) -> list[Record]:
        with self._lock:
            self._ensure()
            return [json.loads(_dump(r)) for _, r in sorted(self._migrations.items())]

    def save(self, migration_id: str, record: Record) -> None:
        def change(migrations: dict[str, Record], _rounds: dict[str, str]) -> None:
            old = migrations.get(migration_id) or {}
            if old.get("step") in FINISHED_STEPS:
                old = {}  # the same move again: a new migration
            started = old.get("startedAt") or record.get("updatedAt") or iso(self._clock())
            migrations[migration_id] = {**record, "id": migration_id, "startedAt": started}

        self._write(change)

    def delete(self, migration_id: str) -> None:
        self._write(lambda migrations, _rounds: migrations.pop(migration_id, None))

    # -- rounds -----------------------------------------------------------------------
    def complete_rounds(self, done: Mapping[ResourceKey, str]) -> None:
        """Remember that these policies' rounds completed (no write if known already)."""
        with self._lock:
            self._ensure()
            if all(self._rounds.get(str(k)) == v for k, v in done.items()):
                return

        def change(_migrations: dict[str, Record], rounds: dict[str, str]) -> None:
            rounds.update({str(k): v for k, v in done.items()})

        self._write(change)

    # -- writing ----------------------------------------------------------------------
    def _write(self, change: Callable[[dict[str, Record], dict[str, str]], object]) -> None:
        """Apply ``change`` to copies, prune, PUT (or create); keep the copies only when
        the write succeeded."""
        with self._lock:
            self._ensure()
            migrations = json.loads(_dump(self._migrations))
            rounds = dict(self._rounds)
            change(migrations, rounds)
            self._prune(migrations)
            data = {MIGRATIONS_KEY: _dump(migrations), ROUNDS_KEY: _dump(rounds)}
            if sum(len(v) for v in data.values()) > MAX_BYTES:
                raise PermanentError(
                    f"the state ConfigMap {self._name} would exceed {MAX_BYTES} bytes "
                    f"({len(migrations)} migration records); lower maxConcurrentMigrations"
                )
            try:
                raw = self._put(data)
            except Conflict as exc:
                self._loaded = False
                raise TransientError(
                    f"the state ConfigMap {self._name} was changed by another writer "
                    "(leadership lost?)"
                ) from exc
            except KubeError as exc:
                self._loaded = False
                raise TransientError(
                    f"cannot write the state ConfigMap {self._name}: {exc}"
                ) from exc
            self._migrations, self._rounds = migrations, rounds
            self._resource_version = raw["metadata"].get("resourceVersion")

    def _put(self, data: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self._name, "namespace": self._namespace}
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
        if self._resource_version is None:
            return self._client.create(resource_path("ConfigMap", self._namespace), body)
        meta["resourceVersion"] = self._resource_version
        return self._client.replace(self._path, body)

    def _prune(self, migrations: dict[str, Record]) -> None:
        """Drop finished records older than FINISHED_TTL (keeping at most KEEP_FINISHED)
        and any record untouched for STALE_TTL."""
        now = self._clock()
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)

        def updated(record: Record) -> dt.datetime:
            return parse_time(str(record.get("updatedAt") or "")) or epoch

        finished = sorted(
            (k for k, r in migrations.items() if r.get("step") in FINISHED_STEPS),
            key=lambda k: updated(migrations[k]),
            reverse=True,
        )
        drop = set(finished[KEEP_FINISHED:])
        drop |= {k for k in finished if now - updated(migrations[k]) > FINISHED_TTL}
        drop |= {k for k, r in migrations.items() if now - updated(r) > STALE_TTL}
        for key in drop:
            del migrations[key]
