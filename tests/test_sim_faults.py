"""Latency, server-side throttling, seeded fault injection, and the token bucket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, FaultInjection, PowerState, Pricing, Simulation
from reconciler.providers.base import ProviderContext, VMRequest
from reconciler.providers.ratelimit import TokenBucket
from reconciler.providers.sim import SimProvider, drop_worlds


@pytest.fixture(autouse=True)
def _close_worlds() -> Iterator[None]:
    yield
    drop_worlds()


def sim(state: Path, simulation: Simulation, name: str = "c") -> SimProvider:
    cloud = CloudSpec(
        name, "sim", pricing=Pricing(catalog="sim-private-openstack"), simulation=simulation
    )
    return SimProvider(cloud, ProviderContext(state_dir=state))


def request(uid: str) -> VMRequest:
    key = ResourceKey("VirtualMachine", "ns", uid)
    tags = ownership_tags("reconciler", key, uid)
    return VMRequest(uid, "m1.small", "img", PowerState.RUNNING, tags)


def test_token_bucket_with_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, burst=2, clock=lambda: now[0], sleep=lambda s: None)
    assert bucket.try_acquire() == 0.0 and bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.try_acquire() == 0.0
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_token_bucket_acquire_blocks_and_is_thread_safe() -> None:
    bucket = TokenBucket(200.0, burst=1)

    def take_ten() -> None:
        for _ in range(10):
            bucket.acquire()

    start = time.perf_counter()
    threads = [threading.Thread(target=take_ten) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert elapsed >= 39 / 200 * 0.9  # 40 tokens, 1 free, at 200/s


def test_server_throttling_is_a_429(tmp_path: Path) -> None:
    p = sim(tmp_path, Simulation(server_rate_limit=5))
    errors = []
    for i in range(20):
        try:
            p.create_vm(request(f"u{i}"))
        except TransientError as exc:
            errors.append(exc)
    assert errors, "20 calls at once must exceed 5 requests/s"
    assert all(0 < e.retry_after <= 0.2 + 1e-9 for e in errors)
    assert "429" in str(errors[0])
    time.sleep(errors[-1].retry_after)
    p.create_vm(request("later"))


def test_latency(tmp_path: Path) -> None:
    p = sim(tmp_path, Simulation(latency_ms=20))
    start = time.perf_counter()
    p.list_managed()
    assert time.perf_counter() - start >= 0.019


def _outcomes(state: Path, seed: int) -> list[str]:
    faults = FaultInjection(transient_rate=0.3, permanent_rate=0.1, seed=seed)
    p = sim(state, Simulation(faults=faults))
    result = []
    for i in range(60):
        try:
            p.create_vm(request(f"u{i}"))
            result.append("ok")
        except TransientError as exc:
            result.append("lost" if "WAS made" in str(exc) else "failed")
        except PermanentError as exc:
            assert exc.reason == "InjectedFault"
            result.append("permanent")
    return result


def test_faults_are_seeded_and_reproducible(tmp_path: Path) -> None:
    first = _outcomes(tmp_path / "a", seed=7)
    assert _outcomes(tmp_path / "b", seed=7) == first
    assert _outcomes(tmp_path / "c", seed=8) != first
    assert {"ok", "lost", "failed", "permanent"} <= set(first)


def test_lost_response_retry_finds_the_vm(tmp_path: Path) -> None:
    faults = FaultInjection(transient_rate=0.5, seed=1, operations=("create",))
    p = sim(tmp_path, Simulation(faults=faults))
    lost = 0
    for i in range(40):
        for _attempt in range(50):  # the executor's retry loop, in miniature
            try:
                p.create_vm(request(f"u{i}"))
                break
            except TransientError as exc:
                lost += "WAS made" in str(exc)
    assert lost > 0
    vms = p.list_managed().vms  # "list" is not in operations: never faulted
    assert sorted(vm.uid for vm in vms) == sorted(f"u{i}" for i in range(40))


def test_fault_operations_filter(tmp_path: Path) -> None:
    faults = FaultInjection(permanent_rate=1.0, operations=("list",))
    p = sim(tmp_path, Simulation(faults=faults))
    p.create_vm(request("u"))
    with pytest.raises(PermanentError, match="simulated permanent fault in list"):
        p.list_managed()
