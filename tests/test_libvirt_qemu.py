"""A REAL tiny VM through LibvirtProvider: qemu (TCG) under a private libvirtd.

``qemu:///embed`` has no storage driver ("Driver does not support embedded mode"), and
the driver keeps boot disks in a storage pool, so the test starts its own libvirtd in
session mode: every path (config, sockets, domain definitions, pool, logs) lives in a
fresh tmp dir, and the test connects with ``qemu:///session?socket=<tmp>/...``. When
the tests run as root the daemon drops to ``nobody`` (root would make it the system
daemon, with /etc and /run paths); as that user /dev/kvm is closed, so the domain type
is ``qemu`` (TCG). The VM has a blank 1 GiB boot volume and no NIC: SeaBIOS finds
nothing to boot and the VM keeps running. It has no OS to answer ACPI, so every stop
waits settings.shutdownTimeout (1 s) and then destroys.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from servers.libvirtd import POOL, Libvirtd, alive, start_libvirtd

from reconciler.model.cloud import Capability
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, OfferSpec, PowerState, Pricing
from reconciler.providers.base import ProviderContext, VMRequest, VMUpdate
from reconciler.providers.libvirt import LibvirtProvider, domain_name

OFFERS = (
    OfferSpec("q.tiny", vcpus=1, memory_gib=0.125, price_per_hour=0.01),
    OfferSpec("q.small", vcpus=2, memory_gib=0.25, price_per_hour=0.02),
)


@pytest.fixture
def libvirtd() -> Iterator[Libvirtd]:
    """A private libvirtd with a started dir pool ``reconciler`` under its tmp root."""
    daemon = start_libvirtd(pool=True)
    try:
        yield daemon
    finally:
        daemon.stop()


def test_real_vm_boots_resizes_stops_and_is_deleted(libvirtd: Libvirtd) -> None:
    cloud = CloudSpec(
        "qemu-lab",
        "libvirt",
        region="lab",
        hosts=(libvirtd.uri,),
        settings={"domainType": "qemu", "pool": POOL, "network": "none", "shutdownTimeout": "1"},
        pricing=Pricing(offers=OFFERS, mode="Replace"),
    )
    provider = LibvirtProvider(cloud, ProviderContext())
    monitor = libvirt.open(libvirtd.uri)
    try:
        assert Capability.VOLUMES in provider.describe().capabilities
        uid = "0a1b2c3d4e5f"
        tags = ownership_tags("reconciler", ResourceKey("VirtualMachine", "lab", "tiny"), uid)
        request = VMRequest("tiny", "q.tiny", "blank", PowerState.RUNNING, tags, disk_gib=1)
        vm = provider.create_vm(request)
        name = domain_name("tiny", uid)
        assert (vm.vcpus, vm.memory_gib, vm.power_state) == (1, 0.125, PowerState.RUNNING)
        assert vm.price_per_hour == 0.01 and vm.disk_gib == 1
        boot = libvirtd.pool_dir / f"{name}-boot"
        assert boot.stat().st_size == 1024**3  # the blank raw boot volume, a real file
        first = libvirtd.qemu_pid(name)
        assert alive(first)
        assert "qemu-system-x86_64" in Path(f"/proc/{first}/cmdline").read_text()

        time.sleep(1.0)  # no OS: SeaBIOS finds nothing to boot, the VM keeps running
        seen = provider.observe_vm(vm.external_id)
        assert seen is not None and seen.power_state == PowerState.RUNNING
        assert monitor.lookupByName(name).info()[4] > 0  # its vCPU has run (ns of CPU time)
        assert [v.external_id for v in provider.list_managed().vms] == [vm.external_id]

        resized = provider.update_vm(vm.external_id, VMUpdate(instance_type="q.small"))
        assert (resized.instance_type, resized.vcpus, resized.memory_gib) == ("q.small", 2, 0.25)
        assert resized.power_state == PowerState.RUNNING
        second = libvirtd.qemu_pid(name)
        assert second != first and not alive(first) and alive(second)
        live = monitor.lookupByName(name).info()  # the running qemu's own view
        assert (live[3], live[2]) == (2, 256 * 1024)

        stopped = provider.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
        assert stopped.power_state == PowerState.STOPPED and stopped.price_per_hour == 0.0
        assert not alive(second)

        started = provider.update_vm(vm.external_id, VMUpdate(power_state=PowerState.RUNNING))
        assert started.power_state == PowerState.RUNNING
        third = libvirtd.qemu_pid(name)
        provider.delete_vm(vm.external_id)
        assert not alive(third), "the qemu process outlived delete_vm"
        assert provider.observe_vm(vm.external_id) is None
        assert not boot.exists()
        assert monitor.listAllDomains(0) == []
    finally:
        monitor.close()
        provider.close()
