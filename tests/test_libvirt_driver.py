"""The libvirt driver against libvirt's test-driver hosts (tests/data/libvirt/*.xml):
host placement and capacity, resize, multi-host listing, metadata, foreign domains,
volumes, snapshots and configuration errors; then disks, images and snapshots against
a REAL QEMU host (a private libvirtd, as in test_libvirt_qemu.py): the disk promises of
the conformance suite, VMs booting from imported images, copies between hosts."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import libvirt
import pytest
from conformance import test_conformance_disks as disks
from conformance.target import ConformanceTarget
from servers.libvirtd import POOL, Libvirtd, alive, start_libvirtd, write_volume

from reconciler.model.artifacts import DiskRef
from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError, TransientError
from reconciler.model.keys import TAG_OWNER, ResourceKey, ownership_tags
from reconciler.model.specs import Capacity, CloudSpec, OfferSpec, PowerState, Pricing
from reconciler.providers.base import (
    ImageRequest,
    ProviderContext,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)
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
    # The test driver copies volumes (snapshots) but serves no upload/download streams.
    expected = {Capability.STOP, Capability.RESIZE, Capability.VOLUMES, Capability.VOLUME_SNAPSHOTS}
    assert expected == set(info.capabilities)
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


def test_snapshots_on_test_hosts_and_no_streams(make: Make) -> None:
    """The test driver copies volumes, so snapshots work there; it serves no volume
    streams, so disk export and image import are refused as NotSupported."""
    p = make("host-a")
    vm = p.create_vm(request("u1"))
    tags = ownership_tags("reconciler", ResourceKey("Volume", "ns", "data"), "v1")
    vol = p.create_volume(VolumeRequest("data", 5, "standard", tags))
    snap_tags = ownership_tags("reconciler", ResourceKey("Volume", "ns", "data"), "s1")
    snap = p.snapshot_volume(vol.external_id, snap_tags)
    assert snap == "snap/rcs-s1" == p.snapshot_volume(vol.external_id, snap_tags)
    assert p.list_snapshots(vol.external_id) == [snap]
    assert [v.external_id for v in p.list_managed().volumes] == [vol.external_id]
    p.update_volume(vol.external_id, None, vm.external_id, False)
    busy = ownership_tags("reconciler", ResourceKey("Volume", "ns", "data"), "s2")
    with pytest.raises(PermanentError) as err:  # attached to a running VM: a torn copy
        p.snapshot_volume(vol.external_id, busy)
    assert err.value.reason == "DiskInUse"
    p.delete_volume(vol.external_id)
    assert p.list_snapshots(vol.external_id) == [snap]  # a full copy outlives its volume
    p.delete_snapshot(snap)
    p.delete_snapshot(snap)
    assert p.list_snapshots(vol.external_id) == []
    with p.hosts[0].session("test") as conn:  # the ledger domain went with its last entry
        assert "reconciler-artifacts-reconciler" not in conn.listDefinedDomains()
    for call in (
        lambda: p.read_disk(DiskRef("vm", vm.external_id)),
        lambda: p.import_image(ImageRequest("x", 1, "0" * 64, snap_tags), [b"x"]),
    ):
        with pytest.raises(PermanentError) as err:
            call()
        assert err.value.reason == "NotSupported"


# -- disks, images and snapshots on a REAL QEMU host (a private libvirtd) -----------------
#: A base image an operator put into the pool (written by the test through the SDK).
BASE_IMAGE = "rc-base-image"
BASE_SIZE = 3 * 2**20 + 12345
QEMU_OFFERS = (
    OfferSpec("q.tiny", vcpus=1, memory_gib=0.125, price_per_hour=0.01),
    OfferSpec("q.small", vcpus=2, memory_gib=0.25, price_per_hour=0.02),
)


def pattern(seed: bytes, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    blocks = (hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def pool_files(daemon: Libvirtd) -> set[str]:
    return {path.name for path in daemon.pool_dir.iterdir()}


@pytest.fixture(scope="module")
def qemu_host() -> Iterator[Libvirtd]:
    """A private libvirtd (servers/libvirtd.py) with pool ``reconciler`` holding a
    base image volume."""
    daemon = start_libvirtd(pool=True)
    try:
        write_volume(daemon.uri, BASE_IMAGE, pattern(b"base", BASE_SIZE))
        yield daemon
    finally:
        daemon.stop()


def qemu_provider(*uris: str, owner: str = "reconciler") -> LibvirtProvider:
    cloud = CloudSpec(
        "qemu-lab",
        "libvirt",
        region="lab",
        hosts=uris,
        settings={"domainType": "qemu", "pool": POOL, "network": "none", "shutdownTimeout": "1"},
        pricing=Pricing(offers=QEMU_OFFERS, mode="Replace"),
    )
    return LibvirtProvider(cloud, ProviderContext(owner=owner))


def not_used(*_: object) -> Any:
    raise AssertionError("the disk conformance tests do not use this hook")


@pytest.fixture
def qemu_target(qemu_host: Libvirtd) -> Iterator[ConformanceTarget]:
    """A conformance target over the real QEMU host, for the disk promises only (the
    core suite runs the libvirt driver on test:/// hosts: tests/conformance)."""
    provider = qemu_provider(qemu_host.uri, owner=f"qemu-{uuid4().hex[:8]}")
    try:
        yield ConformanceTarget(
            name="libvirt",
            provider=provider,
            instance_types=("q.tiny", "q.small"),
            image=BASE_IMAGE,
            volume_class="standard",
            make_foreign_vm=not_used,
            foreign_vm_state=not_used,
            backend_state=not_used,
            lose_next_response=not_used,
            fail_next_call=not_used,
        )
        inventory = provider.list_managed()
        for vm in inventory.vms:
            provider.delete_vm(vm.external_id)
        for volume in inventory.volumes:
            provider.delete_volume(volume.external_id)
        for _, art in list(provider._artifacts("image")):  # the round trip keeps its image
            provider.delete_image(art.external_id)
    finally:
        provider.close()


@pytest.mark.parametrize(
    "promise",
    [
        disks.test_volume_snapshots,
        disks.test_disk_export,
        disks.test_image_import,
        disks.test_disk_export_then_import_roundtrip,
    ],
    ids=lambda f: f.__name__.removeprefix("test_"),
)
def test_disk_conformance_on_qemu(
    qemu_target: ConformanceTarget, promise: Callable[[ConformanceTarget], None]
) -> None:
    caps = qemu_target.provider.describe().capabilities
    assert {Capability.IMAGE_EXPORT, Capability.IMAGE_IMPORT, Capability.VOLUME_SNAPSHOTS} <= caps
    promise(qemu_target)


def vm_tags(uid: str, owner: str = "reconciler") -> dict[str, str]:
    return ownership_tags(owner, ResourceKey("VirtualMachine", "lab", f"vm-{uid}"), uid)


def import_pattern(p: LibvirtProvider, uid: str, data: bytes) -> str:
    tags = ownership_tags(p.context.owner, ResourceKey("Image", "lab", f"img-{uid}"), uid)
    sha = hashlib.sha256(data).hexdigest()
    chunks = [data[i : i + 100_003] for i in range(0, len(data), 100_003)]
    image = p.import_image(ImageRequest(f"img-{uid}", len(data), sha, tags), chunks)
    assert (image.size_bytes, image.sha256) == (len(data), sha)
    return image.external_id


def test_vm_from_image_on_another_host_boots_from_a_streamed_copy(qemu_host: Libvirtd) -> None:
    """Host 0 holds the image but has no room: the VM lands on host 1, its boot volume
    streamed across (download from host 0 into an upload to host 1), and a real qemu
    runs it; the disk is diskGiB large and begins with the image's bytes."""
    other = start_libvirtd()
    p = qemu_provider(qemu_host.uri, other.uri)
    conn = libvirt.open(other.uri)
    try:
        conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{POOL}</name><target><path>{other.pool_dir}</path>"
            "</target></pool>",
            libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD,
        )
        data = pattern(b"cross-host", 2 * 2**20 + 3)
        image = import_pattern(p, "x1", data)
        assert "rci-x1" in pool_files(qemu_host)
        with p.hosts[0].session("test") as own:
            _, memory_mib, cpus, *_ = own.getInfo()
            hog = own.defineXML(  # a foreign, defined domain claiming all of host 0
                f"<domain type='qemu'><name>hog</name><memory unit='MiB'>{memory_mib}</memory>"
                f"<vcpu>{cpus}</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
            )
        try:
            request = VMRequest("web", "q.tiny", image, PowerState.RUNNING, vm_tags("x2"), 1)
            vm = p.create_vm(request)
        finally:
            hog.undefine()
        assert vm.external_id.startswith("1/") and vm.image == image and vm.disk_gib == 1
        name = domain_name("web", "x2")
        assert alive(other.qemu_pid(name))
        p.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
        ref = DiskRef("vm", vm.external_id)
        assert p.disk_size(ref) == 2**30
        assert disks.digest(p.read_disk(ref), len(data)) == (len(data), sha256(data))
        p.delete_image(image)  # the VM keeps its own copy
        assert "rci-x1" not in pool_files(qemu_host) and p.find_image("x1") is None
        assert disks.digest(p.read_disk(ref), len(data)) == (len(data), sha256(data))
        p.delete_vm(vm.external_id)
        assert pool_files(other) == set()
    finally:
        conn.close()
        p.close()
        other.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_import_verifies_while_streaming_and_leaves_nothing(qemu_host: Libvirtd) -> None:
    p = qemu_provider(qemu_host.uri, owner="imports")
    before = pool_files(qemu_host)
    data = pattern(b"import", 2**20 + 1)
    tags = ownership_tags("imports", ResourceKey("Image", "lab", "i"), "bad1")
    cases: list[tuple[Any, str]] = [
        ([data[:-1] + b"x"], "ChecksumMismatch"),  # same size, other bytes
        ([data, b"more"], "ChecksumMismatch"),  # too long: refused before it is all sent
        ([data[:1000]], "ChecksumMismatch"),  # too short
    ]
    for chunks, reason in cases:
        with pytest.raises(PermanentError) as err:
            p.import_image(ImageRequest("i", len(data), sha256(data), tags), chunks)
        assert err.value.reason == reason
        assert pool_files(qemu_host) == before and p.find_image("bad1") is None

    def failing_source() -> Iterator[bytes]:
        yield data[:4096]
        raise TransientError("source went away", cloud="elsewhere")

    with pytest.raises(TransientError, match="source went away"):
        p.import_image(ImageRequest("i", len(data), sha256(data), tags), failing_source())
    assert pool_files(qemu_host) == before
    # A half-made image volume of an attempt that died (no ledger entry) is replaced.
    write_volume(qemu_host.uri, "rci-bad1", b"partial")
    image = p.import_image(ImageRequest("i", len(data), sha256(data), tags), [data])
    assert image.external_id == "img/rci-bad1" and image.tags == tags
    p2 = qemu_provider(qemu_host.uri, owner="someone-else")
    with pytest.raises(PermanentError) as err:  # not in that owner's ledger: not touched
        p2.delete_image(image.external_id)
    assert err.value.reason == "NotManaged"
    p2.close()
    assert p.find_image("bad1") == image
    p.delete_image(image.external_id)
    assert pool_files(qemu_host) == before
    p.close()


def test_volume_reads_and_snapshots_on_qemu(qemu_host: Libvirtd) -> None:
    """A volume from an image holds its bytes; it cannot be read while a running VM
    uses it; a snapshot is a full copy that later writes to the volume do not change."""
    p = qemu_provider(qemu_host.uri, owner="snaps")
    before = pool_files(qemu_host)
    data = pattern(b"volume", 2**20 + 17)
    image = import_pattern(p, "v1", data)
    vol_tags = ownership_tags("snaps", ResourceKey("Volume", "lab", "data"), "v2")
    vol = p.create_volume(VolumeRequest("data", 1, "standard", vol_tags, image))
    assert p.create_volume(VolumeRequest("data", 1, "standard", vol_tags, image)) == vol
    ref = DiskRef("volume", vol.external_id)
    vm = p.create_vm(
        VMRequest("db", "q.tiny", "blank", PowerState.RUNNING, vm_tags("v3", "snaps"), 1)
    )
    p.update_volume(vol.external_id, None, vm.external_id, False)
    with pytest.raises(PermanentError) as err:
        p.read_disk(ref)
    assert err.value.reason == "DiskInUse"
    p.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
    assert disks.digest(p.read_disk(ref), len(data)) == (len(data), sha256(data))
    snap_tags = ownership_tags("snaps", ResourceKey("Volume", "lab", "data"), "v4")
    snap = p.snapshot_volume(vol.external_id, snap_tags)
    name = vol.external_id.removeprefix("vol/")
    conn = libvirt.open(qemu_host.uri)
    try:  # overwrite the volume's first MiB behind the driver's back
        volume = conn.storagePoolLookupByName(POOL).storageVolLookupByName(name)
        stream = conn.newStream(0)
        volume.upload(stream, 0, 2**18, 0)
        stream.send(b"\xff" * 2**18)
        stream.finish()
        copy = conn.storagePoolLookupByName(POOL).storageVolLookupByName(snap.split("/")[1])
        stream = conn.newStream(0)
        copy.download(stream, 0, len(data), 0)
        read = bytearray()
        while chunk := stream.recv(2**18):
            read += chunk
        stream.finish()
    finally:
        conn.close()
    assert bytes(read) == data  # the snapshot kept the bytes it copied
    assert disks.digest(p.read_disk(ref), 2**18)[1] == sha256(b"\xff" * 2**18)
    p.delete_snapshot(snap)
    p.delete_vm(vm.external_id)
    p.delete_volume(vol.external_id)
    p.delete_image(image)
    assert pool_files(qemu_host) == before
    p.close()
