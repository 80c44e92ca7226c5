"""Lease leader election between two electors on a real kube-apiserver (operator RBAC)."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kube.kubeserver import OPERATOR_NAMESPACE, KubeServer
from reconciler.operator.kube import resource_path
from reconciler.operator.leader import LeaderElector

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class Candidate:
    """One elector running on its own thread, recording its transitions."""

    elector: LeaderElector
    stop: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Candidate:
        self.thread = threading.Thread(
            target=self.elector.run,
            args=(self.stop, self.started.set, self.stopped.set),
            daemon=True,
        )
        self.thread.start()
        return self

    def kill(self) -> None:
        """Stop campaigning without releasing: what SIGKILL looks like to the others."""
        self.stop.set()
        assert self.thread is not None
        self.thread.join(10)


@pytest.fixture
def lease_name() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
def pair(kube: KubeServer, lease_name: str) -> Iterator[tuple[Candidate, Candidate]]:
    made = [
        Candidate(LeaderElector(kube.operator_client(), OPERATOR_NAMESPACE, lease_name, name))
        for name in ("a", "b")
    ]
    made[0].start()
    assert made[0].started.wait(5)
    made[1].start()
    yield made[0], made[1]
    for candidate in made:
        candidate.stop.set()


def test_one_leader_then_failover_within_15s(
    kube: KubeServer, pair: tuple[Candidate, Candidate], lease_name: str
) -> None:
    leader, standby = pair
    time.sleep(2.5)  # the standby has campaigned at least once
    assert leader.elector.is_leader and not standby.elector.is_leader
    lease = kube.admin_client().get(resource_path("Lease", OPERATOR_NAMESPACE, lease_name))
    assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseTransitions"] == 0
    assert MICRO_TIME.match(lease["spec"]["renewTime"]) and MICRO_TIME.match(
        lease["spec"]["acquireTime"]
    )

    killed_at = time.monotonic()
    leader.kill()
    assert standby.started.wait(15)
    took = time.monotonic() - killed_at
    print(f"failover after kill: {took:.1f}s")
    assert standby.elector.is_leader and took < 15
    lease = kube.admin_client().get(resource_path("Lease", OPERATOR_NAMESPACE, lease_name))
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1


def test_release_hands_over_at_once(kube: KubeServer, pair: tuple[Candidate, Candidate]) -> None:
    leader, standby = pair
    leader.kill()
    released_at = time.monotonic()
    assert leader.elector.release()
    assert standby.started.wait(5)
    assert time.monotonic() - released_at < 3.0
    assert not leader.elector.release()  # no longer ours


def test_leader_steps_down_when_it_cannot_renew(kube: KubeServer, lease_name: str) -> None:
    elector = LeaderElector(
        kube.operator_client(),
        OPERATOR_NAMESPACE,
        lease_name,
        "a",
        lease_duration=3.0,
        renew_deadline=1.5,
        retry_period=0.3,
    )
    candidate = Candidate(elector).start()
    assert candidate.started.wait(5)
    admin = kube.admin_client()
    path = resource_path("Lease", OPERATOR_NAMESPACE, lease_name)
    lease = admin.get(path)
    lease["spec"]["holderIdentity"] = "intruder"
    lease["spec"]["renewTime"] = "2999-01-01T00:00:00.000000Z"
    admin.replace(path, lease)
    assert candidate.stopped.wait(5)
    assert not elector.is_leader
    candidate.stop.set()


def test_rejects_inconsistent_durations(kube: KubeServer) -> None:
    with pytest.raises(ValueError):
        LeaderElector(kube.operator_client(), OPERATOR_NAMESPACE, "x", "a", 5.0, 6.0, 1.0)
