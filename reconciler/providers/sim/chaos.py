"""What makes the simulator behave like a remote cloud: latency, 429s and faults.

Every simulated API call goes through ``Chaos.enter`` (sleep ``latencyMs``, take a
token from the cloud's server-side bucket or fail with a 429-like TransientError,
roll the seeded fault dice) and, for mutations, ``Chaos.leave`` afterwards.

An injected TransientError comes in two kinds, chosen at random with equal odds:
"failed" (raised before the call did anything) and "lost response" (the mutation was
performed and acknowledged by the world, but the caller gets an error). The second is
what makes idempotent create-by-uid necessary: the executor's retry must find the
resource instead of making a second one.

Tests can also arm one deterministic, one-shot fault with ``Chaos.inject_next`` (the
provider conformance suite does): the wire errors a real cloud returns (429, 503, 400,
401, quota) and the lost response, each on exactly the next call.

Crash tests set ``RECONCILER_SIM_CRASH=enter:N`` (or ``leave:N``): the process kills
itself with SIGKILL as the N-th simulated mutation of the process (create, update or
delete, any cloud) starts (or right after it took effect), so a test can stop an
apply at every step of a migration in turn.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from enum import Enum

from reconciler.model.errors import CapacityError, PermanentError, ProviderError, TransientError
from reconciler.model.specs import CloudSpec, Simulation
from reconciler.providers.sim.world import SimWorld

OPERATIONS = ("list", "create", "update", "delete")
DEFAULT_FAULT_OPERATIONS = ("create", "update", "delete")
#: One-shot faults ``Chaos.inject_next`` can arm.
INJECTABLE_FAULTS = ("lost_response", "throttle", "unavailable", "bad_request", "auth", "capacity")


_MUTATIONS = {"enter": 0, "leave": 0}
_MUTATIONS_LOCK = threading.Lock()


def _crash_point(phase: str, operation: str) -> None:
    """SIGKILL this process at the mutation ``RECONCILER_SIM_CRASH`` names (tests)."""
    wanted = os.environ.get("RECONCILER_SIM_CRASH", "")
    if not wanted or operation == "list":
        return
    where, _, count = wanted.partition(":")
    if where != phase:
        return
    with _MUTATIONS_LOCK:
        _MUTATIONS[phase] += 1
        reached = _MUTATIONS[phase] == int(count or 0)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)


class Fault(Enum):
    NONE = "none"
    LOST_RESPONSE = "lost-response"


class Chaos:
    """Latency, server-side throttling and seeded fault injection for one cloud.

    The RNG is seeded with ``faults.seed`` and the cloud name, so the same sequence of
    calls meets the same faults in every run.
    """

    def __init__(self, cloud: CloudSpec, world: SimWorld) -> None:
        self.cloud = cloud.name
        self.sim = cloud.simulation or Simulation()
        self.world = world
        faults = self.sim.faults
        self.operations = frozenset(faults.operations or DEFAULT_FAULT_OPERATIONS)
        self._rng = random.Random(f"{faults.seed}:{cloud.name}")
        self._rng_lock = threading.Lock()
        self._armed: list[tuple[str, str | None]] = []

    def inject_next(self, fault: str, operation: str | None = None) -> None:
        """Arm a one-shot ``fault`` (one of INJECTABLE_FAULTS) for the next call of
        ``operation`` (any simulated API call if None). "lost_response" lets a mutation
        take effect and then raises TransientError; the others raise before any effect."""
        if fault not in INJECTABLE_FAULTS or (
            operation is not None and operation not in OPERATIONS
        ):
            raise ValueError(f"cannot inject {fault!r} into {operation!r}")
        with self._rng_lock:
            self._armed.append((fault, operation))

    def clear_injected(self) -> None:
        """Disarm every one-shot fault that has not fired yet."""
        with self._rng_lock:
            self._armed.clear()

    def _take_armed(self, operation: str) -> str:
        """The first armed fault matching ``operation`` (removed), or ""."""
        with self._rng_lock:
            for index, (fault, target) in enumerate(self._armed):
                if target is None or target == operation:
                    del self._armed[index]
                    return fault
        return ""

    def _error(self, fault: str, operation: str) -> ProviderError:
        """The error a fault raises before the call has any effect: a seeded
        "transient"/"permanent" one, or the real wire shape of an injected one."""
        if fault == "transient":
            return TransientError(
                f"simulated transient fault in {operation} (nothing was done)", self.cloud, 0.01
            )
        if fault == "permanent":
            return PermanentError(
                f"simulated permanent fault in {operation}", self.cloud, "InjectedFault"
            )
        where = f"injected fault in {operation}"
        if fault == "throttle":
            return TransientError(f"{where}: HTTP 429 Too Many Requests", self.cloud, 0.01)
        if fault in ("unavailable", "lost_response"):
            return TransientError(f"{where}: HTTP 503 Service Unavailable", self.cloud, 0.01)
        if fault == "bad_request":
            return PermanentError(f"{where}: HTTP 400 Bad Request", self.cloud, "BadRequest")
        if fault == "auth":
            return PermanentError(f"{where}: HTTP 401 Unauthorized", self.cloud, "Unauthorized")
        return CapacityError(f"{where}: quota exceeded", self.cloud)

    def _throttle(self) -> None:
        rate = self.sim.server_rate_limit
        if rate is None:
            return
        wait = self.world.throttle(self.cloud, rate).try_acquire()
        if wait > 0.0:
            raise TransientError(
                f"simulated throttling (HTTP 429): over {rate:g} requests/s",
                cloud=self.cloud,
                retry_after=wait,
            )

    def _roll(self, operation: str) -> str:
        """The seeded fault of one call: "transient", "lost_response" (never for a
        list), "permanent" or ""."""
        faults = self.sim.faults
        if operation not in self.operations or (
            faults.transient_rate <= 0 and faults.permanent_rate <= 0
        ):
            return ""
        with self._rng_lock:
            draw = self._rng.random()
            lost = self._rng.random() < 0.5
        if draw < faults.transient_rate:
            return "lost_response" if lost and operation != "list" else "transient"
        if draw < faults.transient_rate + faults.permanent_rate:
            return "permanent"
        return ""

    def enter(self, operation: str) -> Fault:
        """Run before a call; raises a fault that happens before any effect.

        The fault is the next armed one for ``operation``, else the seeded dice's."""
        if self.sim.latency_ms > 0:
            time.sleep(self.sim.latency_ms / 1000.0)
        self._throttle()
        _crash_point("enter", operation)
        fault = self._take_armed(operation) or self._roll(operation)
        if fault == "lost_response" and operation != "list":
            return Fault.LOST_RESPONSE
        if fault:
            raise self._error(fault, operation)
        return Fault.NONE

    def leave(self, operation: str, fault: Fault) -> None:
        """Run after a call did its work; raises the "lost response" fault."""
        _crash_point("leave", operation)
        if fault is Fault.LOST_RESPONSE:
            raise TransientError(
                f"simulated lost response in {operation} (the change WAS made)",
                cloud=self.cloud,
                retry_after=0.01,
            )
