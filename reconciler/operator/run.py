"""``reconciler operator``: wire informers, leader election, the controller and the
health/metrics server together, and shut down cleanly on SIGTERM.

Every replica keeps its cache warm; only the leader reconciles. A replica that loses
its lease exits (status 1) so that it restarts from a clean slate, as
controller-runtime does; SIGTERM lets the action in flight finish, journals it,
releases the lease (so the standby takes over at once) and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from reconciler.executor.engine import Settings
from reconciler.model.keys import KINDS, ResourceKey
from reconciler.operator import memory
from reconciler.operator.clouds import CloudProviders
from reconciler.operator.controller import Controller, LoopOptions
from reconciler.operator.events import EventRecorder
from reconciler.operator.informer import Cache, CachedObject, start_informers, wait_synced
from reconciler.operator.journal_store import ClusterJournal
from reconciler.operator.kube import KubeClient, load_config
from reconciler.operator.leader import LeaderElector
from reconciler.operator.observability import HealthServer, Metrics, setup_logging
from reconciler.operator.state_store import ClusterState, state_name_for
from reconciler.operator.writeback import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorOptions:
    state_dir: Path
    owner: str = "reconciler"
    namespace: str = "reconciler-system"
    kubeconfig: str | None = None
    context: str | None = None
    metrics_addr: str = "127.0.0.1:8080"
    identity: str = ""
    lease_name: str = "reconciler-leader"
    journal_name: str = "reconciler-journal"
    #: The ConfigMap of rebalancing rounds and migration records ("": derived from
    #: ``journal_name``, see ``state_store.state_name_for``).
    state_name: str = ""
    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0
    resync: float = 60.0
    max_postpone: float = 30.0
    observe_only: bool = False
    parallelism: int = 8
    log_level: str = "info"
    log_format: str = "json"


def default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _meaningful(obj: CachedObject | None) -> object:
    """What of an object can change a plan (a status write alone cannot)."""
    if obj is None:
        return None
    return (
        obj.generation,
        obj.deletion_timestamp,
        obj.finalizers,
        tuple(sorted(obj.annotations.items())),
        tuple(sorted(obj.labels.items())),
    )


class ChangeFilter:
    """Wakes the controller only for changes that can matter (not our status writes)."""

    def __init__(self, cache: Cache, controller: Controller) -> None:
        self.cache = cache
        self.controller = controller
        #: A hash of what mattered per key (the tuples themselves were ~200 B per object).
        self._seen: dict[ResourceKey, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: ResourceKey) -> None:
        self.controller.activity += 1  # unlocked: an approximate count is enough
        meaningful = _meaningful(self.cache.get(key))
        mark = hash(meaningful)
        with self._lock:
            if self._seen.get(key) == mark:
                return
            if meaningful is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = mark
        self.controller.enqueue(key)


def run_operator(opts: OperatorOptions) -> int:
    """Run until SIGTERM/SIGINT (0) or until leadership is lost (1)."""
    setup_logging(opts.log_level, opts.log_format)
    memory.limit_arenas()  # before any thread starts
    identity = opts.identity or default_identity()
    client = KubeClient(load_config(opts.kubeconfig, opts.context))
    stop, leading, lost = threading.Event(), threading.Event(), threading.Event()
    metrics = Metrics()
    events = EventRecorder(client, instance=identity)
    settings = Settings(opts.state_dir, opts.owner, opts.parallelism)
    cache = Cache()
    controller = Controller(
        cache,
        settings,
        CloudProviders(client, opts.namespace, settings.context),
        ClusterJournal(client, opts.namespace, opts.journal_name),
        ClusterState(client, opts.namespace, opts.state_name or state_name_for(opts.journal_name)),
        Writer(client, events),
        metrics,
        LoopOptions(
            resync=opts.resync, max_postpone=opts.max_postpone, observe_only=opts.observe_only
        ),
        stop,
    )
    informers = start_informers(client, KINDS, cache, ChangeFilter(cache, controller), stop)
    host, _, port = opts.metrics_addr.rpartition(":")
    health = HealthServer(
        metrics,
        host or "0.0.0.0",
        int(port),
        ready=lambda: (all(i.synced.is_set() for i in informers), "caches not synced yet"),
        alive=lambda: not lost.is_set(),
    )
    health.start()
    elector = LeaderElector(
        client,
        opts.namespace,
        opts.lease_name,
        identity,
        opts.lease_duration,
        opts.renew_deadline,
        opts.retry_period,
    )

    def started() -> None:
        metrics.set_leader(True)
        leading.set()

    def stopped() -> None:
        metrics.set_leader(False)
        leading.clear()
        if not stop.is_set():
            lost.set()
            stop.set()
        controller.enqueue()  # wake the loop so it sees the stop at once

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received: finishing the action in flight", extra={"signal": signum})
        stop.set()
        controller.enqueue()  # an idle loop waits up to --resync seconds otherwise

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(
        signal.SIGUSR1,  # a snapshot takes seconds at 10k objects: not on the loop
        lambda *_: threading.Thread(target=memory.log_top_allocations, daemon=True).start(),
    )
    campaign = threading.Thread(
        target=elector.run, args=(stop, started, stopped), name="leader-election", daemon=True
    )
    log.info("operator starting", extra={"identity": identity, "namespace": opts.namespace})
    began = time.monotonic()
    wait_synced(informers, 120.0)
    log.info(
        "caches synced",
        extra={"objects": len(cache), "seconds": round(time.monotonic() - began, 3)},
    )
    campaign.start()
    try:
        controller.run(leading)
    finally:
        stop.set()
        campaign.join(timeout=opts.retry_period * 2)
        elector.release()  # no-op unless we hold the lease
        events.close()
        health.stop()
    if lost.is_set():
        log.error("leadership lost; exiting so a fresh process can campaign again")
        return 1
    log.info("operator stopped")
    return 0
