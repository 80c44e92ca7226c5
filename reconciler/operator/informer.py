"""List/watch informers feeding one compact, thread-safe cache of our custom resources.

Each kind gets a daemon thread: paginated LIST, then WATCH from the list's resourceVersion
with bookmarks; 410 Gone re-lists (and reports objects that vanished meanwhile); broken
connections reconnect with exponential backoff and jitter. The cache keeps slim slotted
objects (no managedFields, no last-applied annotation) because memory matters at 10k objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.model.keys import CLUSTER_SCOPED, ResourceKey
from reconciler.operator.kube import Gone, KubeClient, KubeError, WatchStream, resource_path

__all__ = [
    "Cache",
    "CachedObject",
    "Informer",
    "start_informers",
    "status_digest",
    "wait_synced",
]

log = logging.getLogger(__name__)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
OnChange = Callable[[ResourceKey], None]


@dataclass(slots=True)
class CachedObject:
    """The parts of a custom resource the operator reads, and nothing else."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: tuple[str, ...]
    deletion_timestamp: str | None
    #: The spec as compact JSON: one allocation instead of a tree of dicts and strings
    #: (at 10k objects the trees were most of the operator's memory); see ``spec``.
    spec_json: bytes
    #: Only the conditions, as compact JSON (their transition times and reasons carry
    #: over); the rest of the stored status (placement, up to 12 candidates per VM) is
    #: kept as a digest, enough to tell whether a computed status differs.
    status_json: bytes
    status_digest: bytes = b""

    @property
    def spec(self) -> dict[str, Any]:
        """The spec, decoded afresh (callers may keep or change the copy they get)."""
        value: dict[str, Any] = json.loads(self.spec_json)
        return value

    @property
    def status(self) -> dict[str, Any]:
        """The cached part of the status (``conditions``), decoded afresh."""
        value: dict[str, Any] = json.loads(self.status_json)
        return value

    @property
    def key(self) -> ResourceKey:
        """The object's ResourceKey (namespace "" for cluster-scoped kinds)."""
        return ResourceKey(
            self.kind, "" if self.kind in CLUSTER_SCOPED else self.namespace, self.name
        )

    @classmethod
    def from_raw(cls, kind: str, raw: dict[str, Any]) -> CachedObject:
        """Slim down an API object; managedFields and last-applied are dropped."""
        meta = raw.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if LAST_APPLIED in annotations:
            annotations = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        return cls(
            kind=kind,
            namespace=sys.intern(meta.get("namespace") or ""),
            name=meta.get("name") or "",
            uid=meta.get("uid") or "",
            generation=int(meta.get("generation") or 0),
            resource_version=meta.get("resourceVersion") or "",
            labels=_compact(meta.get("labels") or {}),
            annotations=_compact(annotations),
            finalizers=tuple(meta.get("finalizers") or ()),
            deletion_timestamp=meta.get("deletionTimestamp"),
            spec_json=_compact_json(raw.get("spec") or {}),
            status_json=_compact_json(_conditions_only(raw.get("status") or {})),
            status_digest=status_digest(raw.get("status") or {}),
        )


_SHORT = 24


def _conditions_only(status: dict[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions")
    return {"conditions": conditions} if isinstance(conditions, list) else {}


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _numbers_as_floats(value: Any) -> Any:
    """JSON numbers as floats, so 1 and 1.0 digest alike (servers may rewrite either)."""
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def status_digest(status: Any) -> bytes:
    """A short digest of a status as JSON; equal statuses give equal digests."""
    text = json.dumps(_numbers_as_floats(status), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


def _compact(value: Any) -> Any:
    """Share repeated strings between objects: every dict key and short string value.

    JSON decoding makes fresh strings per watch event; at 10k objects the same keys
    ("resources", "vcpus", "conditions", ...) and enum values ("Running", "True") would
    otherwise be stored 10k times. Longer strings (uids, messages) stay as they are.
    """
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHORT:
        return sys.intern(value)
    return value


class Cache:
    """Thread-safe map ResourceKey -> CachedObject, indexed by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_kind: dict[str, dict[ResourceKey, CachedObject]] = {}

    def get(self, key: ResourceKey) -> CachedObject | None:
        """The cached object for ``key``, or None."""
        with self._lock:
            return self._by_kind.get(key.kind, {}).get(key)

    def objects(self, kind: str | None = None) -> list[CachedObject]:
        """A snapshot list of every cached object (of one kind if given)."""
        with self._lock:
            if kind is not None:
                return list(self._by_kind.get(kind, {}).values())
            return [obj for objs in self._by_kind.values() for obj in objs.values()]

    def keys(self, kind: str) -> list[ResourceKey]:
        """A snapshot of the keys cached for ``kind``."""
        with self._lock:
            return list(self._by_kind.get(kind, {}))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(objs) for objs in self._by_kind.values())

    def upsert(self, obj: CachedObject) -> bool:
        """Store ``obj``; False when that resourceVersion is already cached (no change)."""
        key = obj.key
        with self._lock:
            objs = self._by_kind.setdefault(key.kind, {})
            current = objs.get(key)
            if current is not None and current.resource_version == obj.resource_version:
                return False
            objs[key] = obj
            return True

    def remove(self, key: ResourceKey) -> CachedObject | None:
        """Drop ``key``; returns what was cached, if anything."""
        with self._lock:
            return self._by_kind.get(key.kind, {}).pop(key, None)


class Informer:
    """Keeps ``cache`` equal to the server for one kind; calls ``on_change`` per change.

    ``on_change`` runs on the informer's thread after the cache is updated, never under a
    lock; it should only enqueue. ``synced`` is set after the first LIST, ``last_error``
    holds the latest failure (None once healthy again) for readiness reporting.
    """

    def __init__(
        self,
        client: KubeClient,
        kind: str,
        cache: Cache,
        on_change: OnChange,
        stop: threading.Event,
        *,
        namespace: str = "",
        page_size: int = 500,
        watch_timeout: int = 300,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.client = client
        self.kind = kind
        self.cache = cache
        self.on_change = on_change
        self.stop = stop
        self.namespace = namespace
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.synced = threading.Event()
        self.last_error: str | None = None
        self.resource_version = ""
        self.relists = 0
        self._path = resource_path(kind, namespace)
        self._stream: WatchStream | None = None
        self._stream_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run list+watch on a daemon thread until ``stop`` is set."""
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind}", daemon=True)
        self._thread.start()
        closer = threading.Thread(target=self._close_on_stop, name=f"informer-{self.kind}-stop")
        closer.daemon = True
        closer.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the informer thread to finish (after ``stop`` is set)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def reconnect(self) -> None:
        """Drop the current watch connection; the informer re-watches from its resourceVersion."""
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def relist(self) -> None:
        """LIST everything (paginated), reconcile the cache with it, emit what changed."""
        fresh: set[ResourceKey] = set()
        changed: list[ResourceKey] = []
        meta: dict[str, Any] = {}
        for page in self.client.list_pages(self._path, self.page_size):
            for raw in page.get("items") or ():
                obj = CachedObject.from_raw(self.kind, raw)
                fresh.add(obj.key)
                if self.cache.upsert(obj):
                    changed.append(obj.key)
            meta = page.get("metadata") or {}
        vanished = [k for k in self.cache.keys(self.kind) if k not in fresh and self._mine(k)]
        for key in vanished:
            self.cache.remove(key)
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.relists += 1
        self.synced.set()
        self._emit(changed + vanished)

    def _mine(self, key: ResourceKey) -> bool:
        return not self.namespace or key.namespace == self.namespace

    def _run(self) -> None:
        low, high = self.backoff
        delay = low
        gone_before = False
        while not self.stop.is_set():
            try:
                if not self.resource_version:
                    self.relist()
                    delay = low
                if self._watch():
                    delay = low
                self.last_error = None
                gone_before = False
                continue
            except Gone as exc:
                self.resource_version = ""
                self.last_error = str(exc)
                log.info("%s watch expired (%s); re-listing", self.kind, exc.message)
                if not gone_before:
                    gone_before = True
                    continue
            except KubeError as exc:
                self.last_error = str(exc)
                log.warning("%s list/watch failed: %s", self.kind, exc)
            except Exception as exc:  # a bug must not kill the informer for good
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s informer error", self.kind)
            self.stop.wait(min(high, max(low, delay * random.uniform(0.8, 1.2))))
            delay = min(high, delay * 2)

    def _watch(self) -> bool:
        """Watch until the server ends the stream; True if it delivered anything."""
        stream = self.client.watch(self._path, self.resource_version, self.watch_timeout)
        with self._stream_lock:
            self._stream = stream
        if self.stop.is_set():
            stream.close()
        progressed = False
        try:
            for event in stream:
                self._handle(event)
                progressed = True
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()
        return progressed

    def _handle(self, event: dict[str, Any]) -> None:
        kind, raw = event.get("type"), event.get("object") or {}
        rv = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            self.resource_version = rv or self.resource_version
            return
        obj = CachedObject.from_raw(self.kind, raw)
        if kind == "DELETED":
            self.cache.remove(obj.key)
            changed = True
        else:
            changed = self.cache.upsert(obj)
        self.resource_version = rv or self.resource_version
        if changed:
            self._emit([obj.key])

    def _emit(self, keys: Iterable[ResourceKey]) -> None:
        for key in keys:
            try:
                self.on_change(key)
            except Exception:
                log.exception("on_change(%s) failed", key)

    def _close_on_stop(self) -> None:
        self.stop.wait()
        self.reconnect()


def start_informers(
    client: KubeClient,
    kinds: Iterable[str],
    cache: Cache,
    on_change: OnChange,
    stop: threading.Event,
    **options: Any,
) -> list[Informer]:
    """Start one informer per kind (options as Informer's keyword arguments)."""
    informers = [Informer(client, kind, cache, on_change, stop, **options) for kind in kinds]
    for informer in informers:
        informer.start()
    return informers


def wait_synced(informers: Iterable[Informer], timeout: float) -> bool:
    """Wait until every informer finished its first LIST; False on timeout."""
    deadline = time.monotonic() + timeout
    return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in informers)
