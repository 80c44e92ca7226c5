"""Migrations carried out beside the reconcile loop, not inside a pass.

A migration lasts as long as its disks take to copy (minutes, hours for large disks);
the loop must not wait for it: other objects' changes, drift and status go on. A pass
hands each migration it may carry out (start, resume or rollback) to this runner,
which runs it on a thread of its own: at most ``limit`` at once (the operator's
``--parallelism``; rebalancing also keeps to each policy's ``maxConcurrentMigrations``),
a migration beyond that waits for a later pass; a migration's own calls run one after
another.

While a key's migration runs, every pass leaves that VM alone, and the Volumes
attached to it (they move with it): their actions are shown as applying, not carried
out. When the migration ends (done, failed or stopped) ``finished`` is told, so the
controller re-observes: where things are changed under the baseline. Losing the lease
or shutting down sets ``halt``: each migration stops before its next step (the next
leader resumes it, every step is idempotent) and ``stop`` waits for that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from reconciler.model.keys import ResourceKey
from reconciler.model.plan import Action
from reconciler.model.specs import DesiredState

log = logging.getLogger(__name__)


class BackgroundMigrations:
    """At most one running migration per VM key, each on its own thread."""

    def __init__(self, finished: Callable[[ResourceKey], None], limit: int = 8) -> None:
        self._finished = finished
        self.limit = max(1, limit)
        self._lock = threading.Lock()
        self._threads: dict[ResourceKey, threading.Thread] = {}
        #: Set when migrations must stop before their next step (see module docstring).
        self.halt = threading.Event()

    def running(self) -> frozenset[ResourceKey]:
        with self._lock:
            return frozenset(self._threads)

    def holds(self, desired: DesiredState) -> Callable[[ResourceKey], bool]:
        """Whether a key's actions must wait: a VM being migrated, or a Volume attached
        to one."""
        running = self.running()
        if not running:
            return lambda _key: False
        volumes = {
            key
            for key, spec in desired.volumes.items()
            if spec.attach_to
            and ResourceKey("VirtualMachine", key.namespace, spec.attach_to) in running
        }
        return lambda key: key in running or key in volumes

    def start(self, action: Action, run: Callable[[], object]) -> bool:
        """Run ``run`` (which carries out the migration ``action``) on a new thread;
        False, and nothing started, when the key already has one running, ``limit``
        are running or the runner is halted."""
        key = action.key
        with self._lock:
            busy = key in self._threads or len(self._threads) >= self.limit
            if busy or self.halt.is_set():
                return False
            thread = threading.Thread(
                target=self._body, args=(key, run), name=f"migration-{key.name}", daemon=True
            )
            self._threads[key] = thread
        log.info("migration handed to the background", extra={"action": action.id})
        thread.start()
        return True

    def _body(self, key: ResourceKey, run: Callable[[], object]) -> None:
        try:
            run()
        except Exception:  # the executor reports failures as events; this is a bug
            log.exception("migration runner failed", extra={"key": str(key)})
        finally:
            with self._lock:
                self._threads.pop(key, None)
            self._finished(key)

    def stop(self) -> None:
        """Halt every migration before its next step and wait until they have stopped
        (a step in progress finishes: no step is cut in the middle)."""
        self.halt.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join()

    def resume(self) -> None:
        """Leading again: migrations may be started (none is running: ``stop`` waited)."""
        self.halt.clear()
