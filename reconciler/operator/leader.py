"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

A candidate takes the Lease when it is absent, released (empty holderIdentity) or expired
(renewTime + leaseDurationSeconds in the past; node clocks are assumed NTP-synced to well
under the lease duration, as Kubernetes itself assumes). Every write carries the Lease's
resourceVersion, so of two racing candidates exactly one wins (the other gets Conflict).
The leader renews every ``retry_period``; if no renewal succeeded for ``renew_deadline`` it
stops leading before the lease can expire for the others. With the defaults (10/7/2 s) a
standby takes over within about 12 s of the leader dying, and at once after ``release()``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.operator.kube import Conflict, KubeClient, KubeError, NotFound, resource_path

__all__ = ["LeaderElector", "format_micro_time", "parse_time"]

log = logging.getLogger(__name__)


def format_micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: ``2026-11-25T10:00:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime | None:
    """Parse a Time or MicroTime string (None if empty or malformed)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


class LeaderElector:
    """Campaign for one Lease; ``run`` blocks, calling back when leadership starts/stops.

    The callbacks run on the elector's thread and must return quickly (e.g. set an Event).
    """

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 10.0,
        renew_deadline: float = 7.0,
        retry_period: float = 2.0,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._path = resource_path("Lease", namespace, name)
        self._collection = resource_path("Lease", namespace)
        self._namespace = namespace
        self._name = name
        self._leader = threading.Event()

    @property
    def is_leader(self) -> bool:
        """True while this process holds a lease it renewed within ``renew_deadline``."""
        return self._leader.is_set()

    def run(
        self,
        stop: threading.Event,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
    ) -> None:
        """Campaign, lead and renew until ``stop``; a lost lease returns to campaigning."""
        while not stop.is_set():
            if not self.try_acquire_or_renew():
                stop.wait(self.retry_period * random.uniform(1.0, 1.2))
                continue
            log.info("%s became leader of lease %s", self.identity, self._name)
            self._leader.set()
            on_started()
            self._renew_until_lost(stop)
            self._leader.clear()
            log.info("%s stopped leading lease %s", self.identity, self._name)
            on_stopped()

    def _renew_until_lost(self, stop: threading.Event) -> None:
        last_renew = time.monotonic()
        while not stop.wait(self.retry_period):
            if self.try_acquire_or_renew():
                last_renew = time.monotonic()
            elif time.monotonic() - last_renew >= self.renew_deadline:
                log.warning("%s could not renew lease %s in time", self.identity, self._name)
                return

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the lease; True if we hold it afterwards."""
        now = datetime.now(UTC)
        try:
            lease = self.client.get(self._path)
        except NotFound:
            return self._create(now)
        except KubeError as exc:
            log.warning("lease %s: get failed: %s", self._name, exc)
            return False
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec, now):
            return False
        renewed = dict(spec)
        renewed.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.lease_duration)),
            renewTime=format_micro_time(now),
        )
        if holder != self.identity:
            renewed["acquireTime"] = format_micro_time(now)
            renewed["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = renewed
        try:
            self.client.replace(self._path, lease)
        except Conflict:
            return False
        except KubeError as exc:
            log.warning("lease %s: update failed: %s", self._name, exc)
            return False
        return True

    def _expired(self, spec: dict[str, Any], now: datetime) -> bool:
        renewed = parse_time(str(spec.get("renewTime") or ""))
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return renewed is None or (now - renewed).total_seconds() > duration

    def _create(self, now: datetime) -> bool:
        stamp = format_micro_time(now)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            self.client.create(self._collection, body)
        except KubeError as exc:  # Conflict (AlreadyExists): another candidate was faster
            if not isinstance(exc, Conflict):
                log.warning("lease %s: create failed: %s", self._name, exc)
            return False
        return True

    def release(self) -> bool:
        """Give the lease up so a standby takes over at once.

        Call it on graceful shutdown after ``run`` has returned (else ``run`` would take the
        released lease right back). Returns False if we did not hold it or the write failed.
        """
        self._leader.clear()
        try:
            lease = self.client.get(self._path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return False
            now = format_micro_time(datetime.now(UTC))
            lease["spec"] = {
                **spec,
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
            }
            self.client.replace(self._path, lease)
        except KubeError as exc:
            log.warning("lease %s: release failed: %s", self._name, exc)
            return False
        return True
