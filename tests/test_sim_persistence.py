"""The simulated world on disk: reload, compaction, crashes, several processes, scale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, PowerState, Pricing
from reconciler.providers.base import ProviderContext, VMRequest, VMUpdate
from reconciler.providers.sim import SimProvider, SimWorld, drop_worlds

CLOUD = CloudSpec("private", "sim", pricing=Pricing(catalog="sim-private-openstack"))

# A child process creating VMs with uids "<prefix>-<i>" into one state dir; it prints
# each uid once create_vm returned (acknowledged), flushed.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from reconciler.model.keys import ResourceKey, ownership_tags
    from reconciler.model.specs import CloudSpec, PowerState, Pricing
    from reconciler.providers.base import ProviderContext, VMRequest
    from reconciler.providers.sim import SimProvider, SimWorld

    state, prefix, count, compact = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    world = SimWorld(Path(state) / "sim-world", compact_min=compact)
    cloud = CloudSpec("private", "sim", pricing=Pricing(catalog="sim-private-openstack"))
    p = SimProvider(cloud, ProviderContext(state_dir=Path(state)), world=world)
    for i in range(count):
        uid = f"{prefix}-{i}"
        key = ResourceKey("VirtualMachine", "ns", uid)
        p.create_vm(VMRequest(uid, "m1.small", "img", PowerState.RUNNING,
                              ownership_tags("reconciler", key, uid)))
        print(uid, flush=True)
    """
)


@pytest.fixture(autouse=True)
def _close_worlds() -> Iterator[None]:
    yield
    drop_worlds()


def request(uid: str) -> VMRequest:
    key = ResourceKey("VirtualMachine", "ns", uid)
    return VMRequest(
        uid, "m1.small", "img", PowerState.RUNNING, ownership_tags("reconciler", key, uid)
    )


def provider(world: SimWorld, state: Path) -> SimProvider:
    return SimProvider(CLOUD, ProviderContext(state_dir=state), world=world)


def test_state_survives_a_new_world_object(tmp_path: Path) -> None:
    first = SimWorld(tmp_path / "sim-world")
    p = provider(first, tmp_path)
    vms = [p.create_vm(request(f"u{i}")) for i in range(20)]
    p.update_vm(vms[0].external_id, VMUpdate(power_state=PowerState.STOPPED))
    p.delete_vm(vms[1].external_id)
    before = p.list_managed()
    first.close()
    second = SimWorld(tmp_path / "sim-world")
    assert provider(second, tmp_path).list_managed() == before
    second.compact()
    third = SimWorld(tmp_path / "sim-world")
    assert provider(third, tmp_path).list_managed() == before
    assert (tmp_path / "sim-world" / "log.jsonl").stat().st_size == 0


def test_automatic_compaction_keeps_everything(tmp_path: Path) -> None:
    world = SimWorld(tmp_path / "sim-world", compact_min=50)
    p = provider(world, tmp_path)
    for i in range(300):
        p.create_vm(request(f"u{i}"))
    assert (tmp_path / "sim-world" / "snapshot.json").exists()
    again = SimWorld(tmp_path / "sim-world")
    assert len(provider(again, tmp_path).list_managed().vms) == 300


def test_torn_last_line_is_ignored_then_cut(tmp_path: Path) -> None:
    world = SimWorld(tmp_path / "sim-world")
    p = provider(world, tmp_path)
    p.create_vm(request("a"))
    world.close()
    with open(tmp_path / "sim-world" / "log.jsonl", "ab") as log:
        log.write(b'{"s":2,"put":{"id":"i-')  # a writer killed mid-line
    again = SimWorld(tmp_path / "sim-world")
    q = provider(again, tmp_path)
    assert len(q.list_managed().vms) == 1
    q.create_vm(request("b"))
    assert len(provider(SimWorld(tmp_path / "sim-world"), tmp_path).list_managed().vms) == 2


def _spawn(state: Path, prefix: str, count: int, compact: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), prefix, str(count), str(compact)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_lose_no_writes(tmp_path: Path) -> None:
    # compact_min=300 forces both processes through several compactions of each other's log.
    children = [_spawn(tmp_path, name, 1500, 300) for name in ("a", "b")]
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0 and len(out.split()) == 1500
    vms = provider(SimWorld(tmp_path / "sim-world"), tmp_path).list_managed().vms
    assert len(vms) == 3000
    assert len({vm.external_id for vm in vms}) == 3000
    assert {vm.uid for vm in vms} == {f"{p}-{i}" for p in "ab" for i in range(1500)}


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    child = _spawn(tmp_path, "k", 10**6, 2000)
    assert child.stdout is not None
    acked = [child.stdout.readline().strip() for _ in range(3000)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    acked += child.stdout.read().split()  # lines already written before the kill
    p = provider(SimWorld(tmp_path / "sim-world"), tmp_path)
    found = {vm.uid for vm in p.list_managed().vms}
    assert set(acked) <= found
    p.create_vm(request("after-crash"))  # the log is still writable


def test_hundred_thousand_creates_are_linear(tmp_path: Path) -> None:
    world = SimWorld(tmp_path / "sim-world")
    p = provider(world, tmp_path)
    start = time.perf_counter()
    for i in range(100_000):
        p.create_vm(request(f"u{i}"))
    created = time.perf_counter() - start
    start = time.perf_counter()
    assert len(p.list_managed().vms) == 100_000
    listed = time.perf_counter() - start
    start = time.perf_counter()
    assert len(SimWorld(tmp_path / "sim-world")) == 100_000
    reloaded = time.perf_counter() - start
    print(f"\n100k creates {created:.2f}s, list {listed:.2f}s, reload {reloaded:.2f}s")
    assert created < 30
