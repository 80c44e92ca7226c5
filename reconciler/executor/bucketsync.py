"""Bucket copies kept in sync: the drift between a source bucket and its replicas, and
the copies and deletes that remove it.

The source (a Bucket's first copy) is the truth; a replica holds what the source held
when it was last synced. An object of a replica records the source's ETag it was copied
from (``META_SOURCE_ETAG``), since ETags are not comparable across stores. Per replica:

* missing: in the source, not in the replica;
* stale:   in both, but the sizes differ or the recorded source ETag is not the
  source's current ETag (the source changed since it was copied);
* extra:   in the replica, not in the source.

Comparing costs one listing per bucket, plus one ``head_object`` per object present in
both whose replica listing lacks the recorded ETag and whose sizes agree (S3 and Swift
listings carry no user metadata; Azure listings do, so an Azure replica needs none).
Syncing streams each missing or stale object source -> replica (written with
``META_SOURCE_ETAG``; the replica's driver records ``META_SHA256`` of what it received)
and deletes extras. Every provider call goes through ``call_with_retry`` (a copy is
retried whole: read again, written again) on a small thread pool. Pure data in, a
frozen report out; nothing is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.executor.retry import RetryPolicy, call_with_retry
from reconciler.model.artifacts import META_SOURCE_ETAG, ObjectInfo
from reconciler.model.errors import PermanentError, ProviderError
from reconciler.providers.base import Provider

T = TypeVar("T")


@dataclass(frozen=True)
class BucketRef:
    """One bucket of one cloud: its provider and external id."""

    provider: Provider
    bucket: str

    def __str__(self) -> str:
        return f"{self.provider.cloud.name}/{self.bucket}"


@dataclass(frozen=True)
class SyncOptions:
    """``workers``: concurrent provider calls; ``shown``: keys listed per drift kind."""

    workers: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    shown: int = 20


@dataclass(frozen=True)
class ReplicaReport:
    """One replica: the drift found (counts; keys sorted and capped for display) and,
    when syncing, what was done. ``errors`` holds the first failure messages."""

    replica: str
    missing: int
    stale: int
    extra: int
    missing_keys: tuple[str, ...] = ()
    stale_keys: tuple[str, ...] = ()
    extra_keys: tuple[str, ...] = ()
    heads: int = 0
    copied: int = 0
    deleted: int = 0
    bytes_copied: int = 0
    failed: int = 0
    errors: tuple[str, ...] = ()

    @property
    def drift(self) -> int:
        return self.missing + self.stale + self.extra


@dataclass(frozen=True)
class SyncReport:
    """Drift (and, if ``synced``, what was done) for every replica of ``source``."""

    source: str
    objects: int
    source_bytes: int
    replicas: tuple[ReplicaReport, ...]
    synced: bool

    @property
    def drift(self) -> int:
        return sum(r.drift for r in self.replicas)

    @property
    def copied(self) -> int:
        return sum(r.copied for r in self.replicas)

    @property
    def deleted(self) -> int:
        return sum(r.deleted for r in self.replicas)

    @property
    def bytes_copied(self) -> int:
        return sum(r.bytes_copied for r in self.replicas)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.replicas)

    @property
    def in_sync(self) -> bool:
        """No drift left: none found, or (after a sync) every bit of it repaired."""
        return self.failed == 0 and (self.synced or self.drift == 0)


def drift(
    source: BucketRef, replicas: Sequence[BucketRef], options: SyncOptions | None = None
) -> SyncReport:
    """What differs between ``source`` and each replica; changes nothing."""
    return _Run(source, replicas, options or SyncOptions()).run(act=False)


def sync(
    source: BucketRef, replicas: Sequence[BucketRef], options: SyncOptions | None = None
) -> SyncReport:
    """Find the drift, then copy missing and stale objects and delete extras. A source
    that cannot be listed raises; a replica's failures are counted in its report."""
    return _Run(source, replicas, options or SyncOptions()).run(act=True)


@dataclass
class _Replica:
    """Working state of one replica during a run."""

    ref: BucketRef
    listing: dict[str, ObjectInfo] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    heads: int = 0
    copied: int = 0
    deleted: int = 0
    bytes_copied: int = 0
    errors: list[str] = field(default_factory=list)


class _Run:
    def __init__(
        self, source: BucketRef, replicas: Sequence[BucketRef], options: SyncOptions
    ) -> None:
        names = [str(ref) for ref in (source, *replicas)]
        if len(set(names)) != len(names):
            raise ValueError(f"a bucket is both source and replica, or listed twice: {names}")
        self.source = source
        self.replicas = [_Replica(ref) for ref in replicas]
        self.options = options
        self.pool = ThreadPoolExecutor(max_workers=max(1, options.workers))

    def call(self, fn: Callable[[], T]) -> T:
        return call_with_retry(fn, self.options.retry)

    def run(self, act: bool) -> SyncReport:
        with self.pool:
            source = self._list_all()
            self._compare(source)
            if act:
                self._repair(source)
        return SyncReport(
            source=str(self.source),
            objects=len(source),
            source_bytes=sum(info.size for info in source.values()),
            replicas=tuple(self._report(r) for r in self.replicas),
            synced=act,
        )

    def _list(self, ref: BucketRef) -> dict[str, ObjectInfo]:
        listed = self.call(lambda: ref.provider.list_objects(ref.bucket))
        return {info.key: info for info in listed}

    def _list_all(self) -> dict[str, ObjectInfo]:
        """The source's listing (its failure raises) and every replica's (a failure is
        that replica's error; its drift is then unknown and nothing is done to it)."""
        theirs = [(r, self.pool.submit(self._list, r.ref)) for r in self.replicas]
        source = self._list(self.source)
        for replica, future in theirs:
            try:
                replica.listing = future.result()
            except ProviderError as exc:
                replica.errors.append(f"listing: {exc}")
        return source

    def _compare(self, source: dict[str, ObjectInfo]) -> None:
        heads: list[tuple[_Replica, ObjectInfo, Future[ObjectInfo | None]]] = []
        for replica in (r for r in self.replicas if not r.errors):
            replica.missing = sorted(set(source) - set(replica.listing))
            replica.extra = sorted(set(replica.listing) - set(source))
            for key in sorted(set(source) & set(replica.listing)):
                theirs, ours = source[key], replica.listing[key]
                if ours.size != theirs.size:
                    replica.stale.append(key)
                elif META_SOURCE_ETAG in ours.metadata:
                    if ours.metadata[META_SOURCE_ETAG] != theirs.etag or not theirs.etag:
                        replica.stale.append(key)
                else:
                    ref = replica.ref
                    future = self.pool.submit(self.call, _head(ref, key))
                    heads.append((replica, theirs, future))
                    replica.heads += 1
        for replica, theirs, future in heads:
            try:
                head = future.result()
            except ProviderError as exc:
                replica.errors.append(f"head {theirs.key}: {exc}")
                continue
            if head is None:
                replica.missing.append(theirs.key)
            elif head.metadata.get(META_SOURCE_ETAG) != theirs.etag or not theirs.etag:
                replica.stale.append(theirs.key)
        for replica in self.replicas:
            replica.missing.sort()
            replica.stale.sort()

    def _repair(self, source: dict[str, ObjectInfo]) -> None:
        work: list[tuple[_Replica, str, Future[int]]] = []
        for replica in self.replicas:
            for key in (*replica.missing, *replica.stale):
                work.append((replica, key, self.pool.submit(self._copy, replica, source[key])))
            for key in replica.extra:
                work.append((replica, key, self.pool.submit(self._delete, replica, key)))
        for replica, key, future in work:
            try:
                copied = future.result()
            except ProviderError as exc:
                replica.errors.append(f"{key}: {exc}")
                continue
            if key in source:
                replica.copied += 1
                replica.bytes_copied += copied
            else:
                replica.deleted += 1

    def _copy(self, replica: _Replica, info: ObjectInfo) -> int:
        """Stream one object source -> replica; returns the bytes written. A copy whose
        size (or SHA-256, when the source listing has it) is not the source's is deleted
        again, so it is never taken for an up-to-date copy."""
        src, dst = self.source, replica.ref
        meta = {META_SOURCE_ETAG: info.etag}

        def once() -> ObjectInfo:
            chunks = src.provider.get_object(src.bucket, info.key)
            return dst.provider.put_object(dst.bucket, info.key, chunks, meta)

        written = self.call(once)
        if written.size != info.size or (info.sha256 and written.sha256 != info.sha256):
            self.call(lambda: dst.provider.delete_object(dst.bucket, info.key))
            raise PermanentError(
                f"copy of {info.key} to {dst} does not match the source listing (size "
                f"{written.size} vs {info.size}); did the source change during the copy?",
                cloud=dst.provider.cloud.name,
                reason="ChecksumMismatch",
            )
        return written.size

    def _delete(self, replica: _Replica, key: str) -> int:
        ref = replica.ref
        self.call(lambda: ref.provider.delete_object(ref.bucket, key))
        return 0

    def _report(self, replica: _Replica) -> ReplicaReport:
        shown = self.options.shown
        return ReplicaReport(
            replica=str(replica.ref),
            missing=len(replica.missing),
            stale=len(replica.stale),
            extra=len(replica.extra),
            missing_keys=tuple(replica.missing[:shown]),
            stale_keys=tuple(replica.stale[:shown]),
            extra_keys=tuple(replica.extra[:shown]),
            heads=replica.heads,
            copied=replica.copied,
            deleted=replica.deleted,
            bytes_copied=replica.bytes_copied,
            failed=len(replica.errors),
            errors=tuple(replica.errors[:shown]),
        )


def _head(ref: BucketRef, key: str) -> Callable[[], ObjectInfo | None]:
    return lambda: ref.provider.head_object(ref.bucket, key)
