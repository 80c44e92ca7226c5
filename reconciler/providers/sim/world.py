"""The simulated world: every resource of every sim cloud, indexed and persisted.

One SimWorld per state directory per process (``get_world``); all SimProvider
instances in the process share it, and processes share the directory through the
journal (flock around each mutation, catching up on other processes' log lines
first). Every lookup a provider call needs is an index hit, so creating 100k VMs is
linear, not quadratic.
"""

from __future__ import annotations

import math
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.model.keys import TAG_UID
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.sim.blobs import BlobStore
from reconciler.providers.sim.journal import Journal
from reconciler.providers.sim.records import (
    BUCKET,
    OBJECT,
    VM,
    VOLUME,
    SimResource,
    Usage,
    bucket_key,
    new_id,
)

WORLD_DIR = "sim-world"
COMPACT_MIN_LINES = 50_000


class SimWorld:
    """In-memory state with indexes, backed by a Journal (see journal.py)."""

    def __init__(
        self, directory: Path, *, fsync: bool = False, compact_min: int = COMPACT_MIN_LINES
    ) -> None:
        self.directory = directory
        self.compact_min = compact_min
        self._journal = Journal(directory, fsync=fsync)
        self.blobs = BlobStore(directory / "blobs")
        self._mutex = threading.RLock()
        self._depth = 0
        self._throttles: dict[str, TokenBucket] = {}
        self._reset()
        with self.reading():
            pass

    # -- state and indexes ---------------------------------------------------------
    def _reset(self) -> None:
        self._seq = 0
        self._res: dict[str, SimResource] = {}
        self._uid: dict[tuple[str, str], str] = {}
        self._owned: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
        self._usage: dict[tuple[str, str], Usage] = defaultdict(Usage)
        self._total: dict[str, Usage] = defaultdict(Usage)
        self._types: dict[tuple[str, str, str], int] = defaultdict(int)
        self._attached: dict[str, dict[str, None]] = defaultdict(dict)
        self._objects: dict[str, dict[str, None]] = defaultdict(dict)

    def _index(self, rec: SimResource, sign: int) -> None:
        owner = rec.owner
        uid = rec.tags.get(TAG_UID)
        if uid:
            if sign > 0:
                self._uid[(rec.cloud, uid)] = rec.id
            elif self._uid.get((rec.cloud, uid)) == rec.id:
                del self._uid[(rec.cloud, uid)]
        owned = self._owned[(rec.cloud, owner)]
        if sign > 0:
            owned[rec.id] = None
        else:
            owned.pop(rec.id, None)
        if rec.kind == VM:
            self._usage[(rec.cloud, owner)].add(rec, sign)
            self._total[rec.cloud].add(rec, sign)
            self._types[(rec.cloud, owner, rec.instance_type)] += sign
            self._types[(rec.cloud, "\0all", rec.instance_type)] += sign
        elif rec.kind == VOLUME and rec.attached_to:
            attached = self._attached[rec.attached_to]
            if sign > 0:
                attached[rec.id] = None
            else:
                attached.pop(rec.id, None)
        elif rec.kind == OBJECT:
            objects = self._objects[rec.parent]
            if sign > 0:
                objects[rec.id] = None
            else:
                objects.pop(rec.id, None)

    def _apply(self, entry: dict[str, Any]) -> None:
        seq = int(entry["s"])
        if seq <= self._seq:
            return
        self._seq = seq
        if "put" in entry:
            self._store(SimResource.from_json(entry["put"]))
        else:
            self._drop(str(entry["del"]))

    def _store(self, rec: SimResource) -> None:
        old = self._res.get(rec.id)
        if old is not None:
            self._index(old, -1)
        self._res[rec.id] = rec
        self._index(rec, +1)

    def _drop(self, rid: str) -> None:
        old = self._res.pop(rid, None)
        if old is not None:
            self._index(old, -1)

    def _reload(self) -> None:
        self._reset()
        seq, resources = self._journal.load_snapshot()
        for raw in resources:
            self._store(SimResource.from_json(raw))
        self._seq = seq

    def _catch_up(self) -> None:
        entries = self._journal.read_new()
        if entries is None:
            self._reload()
            entries = self._journal.read_new() or []
        for entry in entries:
            self._apply(entry)

    # -- locking -------------------------------------------------------------------
    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[SimWorld]:
        with self._mutex:
            outer = self._depth == 0
            if outer:
                self._journal.lock(exclusive)
            self._depth += 1
            try:
                if outer:
                    self._catch_up()
                    if exclusive:
                        self._journal.drop_torn_tail()
                yield self
                if outer and exclusive:
                    self._maybe_compact()
            finally:
                self._depth -= 1
                if outer:
                    self._journal.unlock()

    def transaction(self) -> AbstractContextManager[SimWorld]:
        """Context manager: exclusive access, up to date with every process."""
        return self._locked(True)

    def reading(self) -> AbstractContextManager[SimWorld]:
        """Context manager: shared access, up to date with every process."""
        return self._locked(False)

    def _maybe_compact(self) -> None:
        if self._journal.log_lines >= max(self.compact_min, len(self._res)):
            self._journal.compact(self._seq, (r.to_json() for r in self._res.values()))

    def compact(self) -> None:
        """Force a snapshot now (tests, tooling)."""
        with self.transaction():
            self._journal.compact(self._seq, (r.to_json() for r in self._res.values()))

    # -- mutations (inside ``transaction()``) ---------------------------------------
    def put(self, rec: SimResource) -> None:
        """Create or replace a record; logged before it is applied in memory."""
        self._journal.append({"s": self._seq + 1, "put": rec.to_json()})
        self._seq += 1
        self._store(rec)

    def remove(self, rid: str) -> None:
        if rid not in self._res:
            return
        self._journal.append({"s": self._seq + 1, "del": rid})
        self._seq += 1
        self._drop(rid)

    def fresh_id(self, kind: str) -> str:
        """A new external id not used by any resource."""
        while True:
            rid = new_id(kind)
            if rid not in self._res:
                return rid

    # -- queries (inside ``reading()`` or ``transaction()``) ------------------------
    def get(self, rid: str) -> SimResource | None:
        return self._res.get(rid)

    def by_uid(self, cloud: str, uid: str) -> SimResource | None:
        rid = self._uid.get((cloud, uid))
        return self._res.get(rid) if rid else None

    def owned(self, cloud: str, owner: str) -> list[SimResource]:
        """Every resource in ``cloud`` whose owner tag is ``owner``, sorted by id (the
        order is the same in every process and after a reload)."""
        return [self._res[rid] for rid in sorted(self._owned.get((cloud, owner), {}))]

    def usage(self, cloud: str, owner: str | None = None) -> Usage:
        """VM usage in a cloud: of one owner, or of everybody when owner is None."""
        source = self._total.get(cloud) if owner is None else self._usage.get((cloud, owner))
        found = source or Usage()
        return Usage(found.vcpus, found.memory_gib, found.instances)

    def type_count(self, cloud: str, instance_type: str, owner: str | None = None) -> int:
        """How many VMs of a type exist in a cloud (of one owner, or of everybody)."""
        return self._types.get((cloud, "\0all" if owner is None else owner, instance_type), 0)

    def attached_volumes(self, vm_id: str) -> list[SimResource]:
        return [self._res[v] for v in self._attached.get(vm_id, {})]

    def objects(self, bucket: str) -> list[SimResource]:
        """Objects in the bucket whose world key is ``bucket``, sorted by key."""
        found = (self._res[o] for o in self._objects.get(bucket, {}))
        return sorted(found, key=lambda r: r.name)

    def resources(self, cloud: str | None = None) -> list[SimResource]:
        """Every resource (of every owner), optionally of one cloud; call while reading."""
        return [r for r in self._res.values() if cloud is None or r.cloud == cloud]

    def __len__(self) -> int:
        return len(self._res)

    # -- simulated server-side throttling -------------------------------------------
    def throttle(self, cloud: str, rate: float) -> TokenBucket:
        """The server-side token bucket of a cloud (per process, burst ~1 s of rate)."""
        with self._mutex:
            bucket = self._throttles.get(cloud)
            if bucket is None or bucket.rate != rate:
                bucket = TokenBucket(rate, max(1, math.ceil(rate)))
                self._throttles[cloud] = bucket
            return bucket

    # -- test helpers: resources that are not ours ----------------------------------
    def add_foreign_vm(
        self,
        cloud: str,
        vcpus: int = 2,
        memory_gib: float = 4.0,
        tags: dict[str, str] | None = None,
        instance_type: str = "foreign.custom",
    ) -> str:
        """Add a VM somebody else made (``tags`` without our owner, or none)."""
        with self.transaction():
            rid = self.fresh_id(VM)
            self.put(
                SimResource(
                    rid,
                    VM,
                    cloud,
                    name=f"foreign-{rid}",
                    tags=dict(tags or {}),
                    instance_type=instance_type,
                    vcpus=vcpus,
                    memory_gib=memory_gib,
                )
            )
            return rid

    def add_foreign_volume(
        self, cloud: str, size_gib: int = 10, tags: dict[str, str] | None = None
    ) -> str:
        with self.transaction():
            rid = self.fresh_id(VOLUME)
            self.put(
                SimResource(
                    rid,
                    VOLUME,
                    cloud,
                    tags=dict(tags or {}),
                    size_gib=size_gib,
                    volume_class="standard",
                )
            )
            return rid

    def add_foreign_bucket(self, cloud: str, name: str, tags: dict[str, str] | None = None) -> str:
        with self.transaction():
            self.put(
                SimResource(
                    bucket_key(cloud, name), BUCKET, cloud, name=name, tags=dict(tags or {})
                )
            )
            return name

    def write_disk(self, rid: str, data: bytes) -> str:
        """Test helper: append ``data`` to the disk of a VM or volume (what a guest
        writing to its disk does); returns the new SHA-256 of the disk."""
        with self.transaction():
            rec = self._res[rid]
            chunks = [*self.blobs.read(rec.disk), data] if rec.disk else [data]
            sha, size = self.blobs.put(chunks)
            self.put(replace(rec, disk=sha, size_bytes=size))
            return sha

    def close(self) -> None:
        with self._mutex:
            self._journal.close()


_WORLDS: dict[tuple[int, Path], SimWorld] = {}
_WORLDS_LOCK = threading.Lock()


def get_world(state_dir: Path) -> SimWorld:
    """The process-wide SimWorld of ``state_dir / "sim-world"`` (created on first use).

    Keyed by pid too, so a forked child opens its own descriptors (flock is per open
    file description: sharing the parent's would not exclude the parent).
    """
    directory = (Path(state_dir) / WORLD_DIR).resolve()
    key = (os.getpid(), directory)
    with _WORLDS_LOCK:
        world = _WORLDS.get(key)
        if world is None:
            world = SimWorld(directory)
            _WORLDS[key] = world
        return world


def drop_worlds() -> None:
    """Close and forget every cached world of this process (tests)."""
    with _WORLDS_LOCK:
        for (pid, _), world in list(_WORLDS.items()):
            if pid == os.getpid():
                world.close()
        _WORLDS.clear()
