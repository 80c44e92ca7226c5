"""The apply journal kept in the cluster, so a restarted or new leader resumes.

The local JSONL journal of the CLI would die with the pod. Here the set of calls in
flight lives in a ConfigMap in the operator's namespace: an intent is added (and
written, before the call happens), an outcome removes it. A leader that starts reads
what is left, looks each create up by its uid tag in the cloud, and clears the set;
the level-based plan that follows then neither repeats a finished call nor loses a
half-done one.

Writes are group-committed: threads announcing calls at the same time share one PUT,
and outcomes ride along with the next write, so the cost is about one API call per
batch of parallel actions. The PUT carries the resourceVersion, so a second writer
(a leader that lost its lease but does not know yet) fails instead of overwriting.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from reconciler.executor.journal import InFlight, intent_record
from reconciler.model.errors import TransientError
from reconciler.model.plan import Action
from reconciler.operator.kube import Conflict, KubeClient, KubeError, NotFound, resource_path

CONFIGMAP = "reconciler-journal"
DATA_KEY = "inflight.json"


class ClusterJournal:
    """JournalSink over a ConfigMap; safe to call from many threads."""

    def __init__(self, client: KubeClient, namespace: str, name: str = CONFIGMAP) -> None:
        self._client = client
        self._path = resource_path("ConfigMap", namespace, name)
        self._namespace = namespace
        self._name = name
        self._state = threading.Lock()
        self._flush = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._version = 0
        self._flushed = 0
        self._resource_version: str | None = None
        self._loaded = False

    # -- reading (leader start) -----------------------------------------------------
    def _load(self) -> None:
        try:
            raw = self._client.get(self._path)
        except NotFound:
            raw = self._client.create(resource_path("ConfigMap", self._namespace), self._body("{}"))
        self._resource_version = raw["metadata"].get("resourceVersion")
        text = (raw.get("data") or {}).get(DATA_KEY) or "{}"
        try:
            records = json.loads(text)
        except json.JSONDecodeError:
            records = {}
        with self._state:
            self._records = records if isinstance(records, dict) else {}
            self._loaded = True

    def read_in_flight(self) -> list[InFlight]:
        """Intents whose outcome was never written (by this or a previous leader)."""
        self._load()
        with self._state:
            records = list(self._records.values())
        return [
            InFlight(str(r.get("plan", "")), str(r["id"]), str(r.get("cloud", "")), r.get("uid"), r)
            for r in records
            if "id" in r
        ]

    def clear(self) -> None:
        """Forget every in-flight record once they were resolved."""
        with self._state:
            self._records.clear()
            self._version += 1
        self._commit()

    # -- JournalSink ----------------------------------------------------------------
    def begin(self, plan_id: str, actions: int) -> None:
        if not self._loaded:
            self._load()

    def intent(self, plan_id: str, action: Action) -> None:
        with self._state:
            self._records[f"{plan_id}|{action.id}"] = intent_record(plan_id, action)
            self._version += 1
        self._commit()

    def outcome(
        self, plan_id: str, action: Action, ok: bool, external_id: str | None, error: str = ""
    ) -> None:
        with self._state:
            if self._records.pop(f"{plan_id}|{action.id}", None) is not None:
                self._version += 1

    def end(self, plan_id: str, ok: bool) -> None:
        self._commit()

    def close(self) -> None:
        self._commit()

    # -- writing --------------------------------------------------------------------
    def _body(self, text: str, resource_version: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self._name, "namespace": self._namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {DATA_KEY: text}}

    def _commit(self) -> None:
        """Make every change made so far durable (one PUT for all waiting threads)."""
        with self._state:
            wanted = self._version
        with self._flush:
            if self._flushed >= wanted:
                return  # another thread's write already carried our change
            with self._state:
                version = self._version
                text = json.dumps(self._records, sort_keys=True, separators=(",", ":"))
            try:
                raw = self._client.replace(self._path, self._body(text, self._resource_version))
            except Conflict as exc:
                raise TransientError(
                    "the journal ConfigMap was changed by another writer (leadership lost?)"
                ) from exc
            except KubeError as exc:
                raise TransientError(f"cannot write the journal ConfigMap: {exc}") from exc
            self._resource_version = raw["metadata"].get("resourceVersion")
            self._flushed = version
