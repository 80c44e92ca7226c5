"""The libvirt driver against libvirt's test-driver hosts (tests/data/libvirt/*.xml):
host placement and capacity, resize, multi-host listing, metadata, foreign domains,
volumes, and configuration errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError, TransientError
from reconciler.model.keys import TAG_OWNER, ResourceKey, ownership_tags
from reconciler.model.specs import Capacity, CloudSpec, PowerState, Pricing
from reconciler.providers.base import ProviderContext, VMRequest, VMUpdate, VolumeRequest
from reconciler.providers.libvirt import LibvirtProvider, domain_name
from reconciler.providers.libvirt.domxml import NS
from reconciler.providers.libvirt.errors import make_error, map_error
from reconciler.providers.registry import build_provider

DATA = Path(__file__).parent / "data" / "libvirt"
Make = Callable[..., LibvirtProvider]


def uri(name: str) -> str:
    return f"test://{(DATA / f'{name}.xml').resolve()}"


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[LibvirtProvider] = []

    def build(*hosts: str, **kw: object) -> LibvirtProvider:
        kw.setdefault("pricing", Pricing(catalog="sim-private-openstack"))
        cloud = CloudSpec("lab", "libvirt", hosts=tuple(uri(h) for h in hosts), **kw)  # type: ignore[arg-type]
        provider = build_provider(cloud, ProviderContext())
        assert isinstance(provider, LibvirtProvider)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


def request(
    uid: str, itype: str = "m1.medium", power: PowerState = PowerState.RUNNING
) -> VMRequest:
    tags = ownership_tags("reconciler", ResourceKey("VirtualMachine", "ns", f"vm-{uid}"), uid)
    return VMRequest(f"vm-{uid}", itype, "debian-12", power, tags, disk_gib=10)


def add_foreign(p: LibvirtProvider, host: int, vcpus: int, mib: int, owner: str = "") -> str:
    tag = f"<tag key='{TAG_OWNER}' value='{owner}'/>"
    meta = f"<metadata><r:tags xmlns:r='{NS}'>{tag}</r:tags></metadata>"
    xml = (
        f"<domain type='test'><name>foreign-{vcpus}-{mib}</name><memory unit='MiB'>{mib}</memory>"
        f"<vcpu>{vcpus}</vcpu><os><type>hvm</type></os>{meta if owner else ''}</domain>"
    )
    with p.hosts[host].session("test") as conn:
        domain = conn.defineXML(xml)
        domain.create()
        return f"{host}/{domain.UUIDString()}"


def test_placement_fills_roomiest_host_then_others_then_capacity_error(make: Make) -> None:
    p = make("host-a", "host-b")  # 4 CPU/8 GiB and 8 CPU/16 GiB
    hosts = [p.create_vm(request(f"u{i}", "m1.large")).external_id[0] for i in range(3)]
    assert hosts == ["1", "0", "1"]  # most free memory first (b), then the tie goes to a
    with pytest.raises(
        CapacityError, match=r"Cloud lab: no host has room .* largest free host"
    ) as err:
        p.create_vm(request("u9", "m1.large"))
    assert err.value.reason == "CapacityExhausted"
    assert len(p.list_managed().vms) == 3  # multi-host listing


def test_describe_capacity_excludes_only_foreign_use(make: Make) -> None:
    p = make("host-a", "host-b")
    info = p.describe()
    assert info.capacity == Capacity(vcpus=12, memory_gib=24.0)
    assert {Capability.STOP, Capability.RESIZE, Capability.VOLUMES} == set(info.capabilities)
    add_foreign(p, 0, 2, 2048)
    p.create_vm(request("u1"))
    assert p.describe().capacity == Capacity(vcpus=10, memory_gib=22.0)


def test_cpu_allocation_ratio_and_foreign_usage_count(make: Make) -> None:
    p = make("host-c", settings={"cpuAllocationRatio": "2"})  # 2 CPU -> 4 vCPU, 4 GiB
    add_foreign(p, 0, 2, 1024)
    p.create_vm(request("u1", "m1.small"))  # 1 vCPU, 2 GiB
    with pytest.raises(CapacityError, match="1 vCPU and 1 GiB free"):
        p.create_vm(request("u2", "m1.medium"))


def test_resize_checks_host_capacity_and_restarts(make: Make) -> None:
    p = make("host-a")
    vm = p.create_vm(request("u1", "m1.medium"))
    add_foreign(p, 0, 1, 3072)
    with pytest.raises(CapacityError, match="no room to grow"):
        p.update_vm(vm.external_id, VMUpdate(instance_type="m1.large"))
    small = p.update_vm(vm.external_id, VMUpdate(instance_type="m1.small"))
    assert (small.vcpus, small.memory_gib, small.power_state) == (1, 2.0, PowerState.RUNNING)
    assert small.instance_type == "m1.small" and small.price_per_hour == 0.0067
    stopped = p.update_vm(
        vm.external_id, VMUpdate(instance_type="m1.medium", power_state=PowerState.STOPPED)
    )
    assert (stopped.vcpus, stopped.memory_gib, stopped.power_state) == (2, 4.0, PowerState.STOPPED)
    assert p.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED)) == stopped


def test_metadata_round_trip_and_forget(make: Make) -> None:
    p = make("host-a")
    vm = p.create_vm(request("u1"))
    uuid = vm.external_id.split("/")[1]
    with p.hosts[0].session("test") as conn:
        domain = conn.lookupByUUIDString(uuid)
        assert domain.name() == domain_name("vm-u1", "u1")
        element = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS, 0)
    assert 'instanceType="m1.medium"' in element and 'value="reconciler"' in element
    tagged = p.update_vm(vm.external_id, VMUpdate(tags={"team": "a"}))
    assert tagged.tags["team"] == "a" and p.find_by_uid("u1") == tagged
    p.forget(vm.external_id)
    assert p.observe_vm(vm.external_id) is None and p.list_managed().vms == ()
    with p.hosts[0].session("test") as conn:
        assert conn.lookupByUUIDString(uuid).isActive()


def test_foreign_domains_are_invisible_and_untouched(make: Make) -> None:
    p = make("host-a")
    other = add_foreign(p, 0, 1, 512, owner="someone-else")
    untagged = add_foreign(p, 0, 1, 256)
    assert p.list_managed().vms == () and p.observe_vm(other) is None
    for vm_id in (other, untagged):
        with pytest.raises(PermanentError, match="not managed by") as err:
            p.delete_vm(vm_id)
        assert err.value.reason == "NotManaged"
        with pytest.raises(PermanentError, match="not managed by"):
            p.update_vm(vm_id, VMUpdate(power_state=PowerState.STOPPED))
        p.forget(vm_id)
    with p.hosts[0].session("test") as conn:
        assert len([d for d in conn.listAllDomains() if d.isActive()]) == 2


def test_volume_attach_detach_and_relocation(make: Make) -> None:
    p = make("host-a", "host-b")
    vm = p.create_vm(request("u1"))  # lands on host 1
    tags = ownership_tags("reconciler", ResourceKey("Volume", "ns", "data"), "v1")
    vol = p.create_volume(VolumeRequest("data", 5, "standard", tags))
    assert p.create_volume(VolumeRequest("data", 5, "standard", tags)) == vol
    attached = p.update_volume(vol.external_id, None, vm.external_id, False)
    assert attached.attached_to == vm.external_id and attached.external_id == vol.external_id
    assert p.update_volume(vol.external_id, None, vm.external_id, False) == attached
    assert p.list_managed().volumes == (attached,)
    detached = p.update_volume(vol.external_id, None, None, True)
    assert detached.attached_to is None
    with pytest.raises(PermanentError, match="virStorageVolResize") as err:
        p.update_volume(vol.external_id, 8, None, False)
    assert err.value.reason == "Unsupported"
    p.delete_volume(vol.external_id)
    p.delete_volume(vol.external_id)
    p.delete_vm(vm.external_id)
    assert p.list_managed().volumes == () and p.list_managed().vms == ()
    for host in p.hosts:  # boot volume and the emptied ledger are gone too
        with host.session("test") as conn:
            assert conn.listAllDomains() == []
            assert conn.storagePoolLookupByName("default").listVolumes() == []


def test_used_volume_never_moves_between_hosts(make: Make) -> None:
    p = make("host-a", "host-b")
    first = p.create_vm(request("u1", "m1.xlarge"))  # fills host b (8 vCPU)
    second = p.create_vm(request("u2", "m1.small"))  # host a
    assert first.external_id[0] == "1" and second.external_id[0] == "0"
    tags = ownership_tags("reconciler", ResourceKey("Volume", "ns", "data"), "v1")
    vol = p.create_volume(VolumeRequest("data", 5, "standard", tags))
    p.update_volume(vol.external_id, None, first.external_id, False)
    p.update_volume(vol.external_id, None, None, True)
    with pytest.raises(PermanentError, match="may hold data") as err:
        p.update_volume(vol.external_id, None, second.external_id, False)
    assert err.value.reason == "HostMismatch"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({}, "needs spec.hosts"),
        ({"hosts": ("test:///no/such/host.xml",)}, "cannot open libvirt host"),
        ({"hosts": ("test:///default",), "settings": {"colour": "red"}}, "unknown settings colour"),
        ({"hosts": ("test:///default",), "settings": {"cpuAllocationRatio": "x"}}, "a number"),
    ],
)
def test_bad_cloud_is_a_clear_error_naming_it(kw: dict[str, object], match: str) -> None:
    cloud = CloudSpec("lab", "libvirt", **kw)  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match=match) as err:
        build_provider(cloud, ProviderContext()).list_managed()
    assert err.value.reason == "InvalidCloud" and "Cloud lab" in str(err.value)


def test_error_mapping_and_reconnect(make: Make) -> None:
    assert isinstance(map_error(make_error(libvirt.VIR_ERR_RPC, "x"), "lab", "op"), TransientError)
    auth = map_error(make_error(libvirt.VIR_ERR_ACCESS_DENIED, "x"), "lab", "op")
    assert isinstance(auth, PermanentError) and auth.reason == "Unauthorized"
    p = make("host-a")
    vm = p.create_vm(request("u1"))
    host = p.hosts[0]

    def broken(_op: str) -> None:
        host.before = None
        raise make_error(libvirt.VIR_ERR_SYSTEM_ERROR, "connection reset")

    host.before = broken
    with pytest.raises(TransientError, match="lab"):
        p.observe_vm(vm.external_id)
    assert p.observe_vm(vm.external_id) == vm  # a live connection is kept, not reopened


def test_object_storage_absent_means_no_buckets(make: Make) -> None:
    p = make("host-a")
    assert Capability.BUCKETS not in p.describe().capabilities
    with pytest.raises(PermanentError, match=r"no spec\.objectStorage") as err:
        p.delete_bucket("b")
    assert err.value.reason == "Unsupported"


def test_concurrent_creates_never_overcommit(make: Make) -> None:
    p = make("host-a", "host-b")  # room for exactly 6 x m1.medium (2 vCPU, 4 GiB)
    results: list[object] = []

    def create(i: int) -> None:
        try:
            results.append(p.create_vm(request(f"c{i}")))
        except CapacityError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, CapacityError) for r in results) == 2
    assert len(p.list_managed().vms) == 6
