"""The Provider contract, as the simulator implements it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError
from reconciler.model.keys import TAG_OWNER, TAG_UID, ResourceKey, ownership_tags
from reconciler.model.observed import ObservedVM
from reconciler.model.specs import (
    Capacity,
    CloudSpec,
    OfferSpec,
    PowerState,
    Pricing,
    Simulation,
)
from reconciler.providers.base import (
    BucketRequest,
    ProviderContext,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)
from reconciler.providers.registry import build_provider, provider_names
from reconciler.providers.sim import SimProvider, drop_worlds, get_world

Make = Callable[..., SimProvider]


@pytest.fixture(autouse=True)
def _close_worlds() -> Iterator[None]:
    yield
    drop_worlds()


@pytest.fixture
def make(tmp_path: Path) -> Make:
    def build(name: str = "private", owner: str = "reconciler", **kw: object) -> SimProvider:
        kw.setdefault("pricing", Pricing(catalog="sim-private-openstack"))
        cloud = CloudSpec(name, "sim", **kw)  # type: ignore[arg-type]
        provider = build_provider(cloud, ProviderContext(owner=owner, state_dir=tmp_path))
        assert isinstance(provider, SimProvider)
        return provider

    return build


def tags(uid: str, name: str = "web") -> dict[str, str]:
    return ownership_tags("reconciler", ResourceKey("VirtualMachine", "ns", name), uid)


def vm_request(
    uid: str, itype: str = "m1.small", power: PowerState = PowerState.RUNNING
) -> VMRequest:
    return VMRequest(f"vm-{uid}", itype, "ubuntu", power, tags(uid), disk_gib=20)


def test_registry() -> None:
    assert "sim" in provider_names()
    with pytest.raises(PermanentError, match="unknown provider 'nope'") as err:
        build_provider(CloudSpec("a", "nope"), ProviderContext())
    assert err.value.reason == "NoDriver"


def test_create_is_idempotent_and_observable(make: Make) -> None:
    p = make()
    vm = p.create_vm(vm_request("u1"))
    assert vm.external_id.startswith("i-") and len(vm.external_id) == 14
    assert (vm.vcpus, vm.memory_gib, vm.price_per_hour) == (1, 2, 0.0067)
    assert p.create_vm(vm_request("u1")) == vm
    assert p.find_by_uid("u1") == vm
    assert p.observe_vm(vm.external_id) == vm
    assert p.list_managed().vms == (vm,)
    info = p.describe()
    assert info.simulated and info.provider == "sim" and info.capabilities == frozenset(Capability)


def test_delete_absent_and_twice(make: Make) -> None:
    p = make()
    vm = p.create_vm(vm_request("u1"))
    p.delete_vm(vm.external_id)
    p.delete_vm(vm.external_id)
    p.delete_vm("i-000000000000")
    assert p.observe_vm(vm.external_id) is None
    with pytest.raises(PermanentError, match="not found"):
        p.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))


def test_foreign_resources_are_invisible_and_untouchable(make: Make) -> None:
    p = make()
    world = p.world
    other = world.add_foreign_vm("private", tags={TAG_OWNER: "someone-else", TAG_UID: "u9"})
    untagged = world.add_foreign_vm("private")
    vol = world.add_foreign_volume("private")
    world.add_foreign_bucket("private", "theirs")
    assert p.list_managed().vms == () and p.list_managed().volumes == ()
    assert p.list_managed().buckets == ()
    assert p.observe_vm(other) is None and p.find_by_uid("u9") is None
    for rid in (other, untagged):
        with pytest.raises(PermanentError, match="not managed by") as err:
            p.delete_vm(rid)
        assert err.value.reason == "NotManaged"
        with pytest.raises(PermanentError, match="not managed by"):
            p.update_vm(rid, VMUpdate(power_state=PowerState.STOPPED))
    with pytest.raises(PermanentError, match="not managed by"):
        p.delete_volume(vol)
    with pytest.raises(PermanentError, match="not managed by"):
        p.delete_bucket("theirs")
    p.forget(other)  # not ours: a no-op, never a change
    assert world.get(other) is not None and world.get(other).owner == "someone-else"  # type: ignore[union-attr]
    assert make(owner="someone-else").find_by_uid("u9") is not None


def test_other_cloud_is_invisible(make: Make) -> None:
    a, b = make("a"), make("b")
    vm = a.create_vm(vm_request("u1"))
    assert b.list_managed().vms == () and b.observe_vm(vm.external_id) is None
    b.delete_vm(vm.external_id)  # absent in b: success, and a keeps its VM
    assert a.observe_vm(vm.external_id) is not None


def test_capacity_counts_foreign_vms(make: Make) -> None:
    p = make(capacity=Capacity(vcpus=8, memory_gib=64, instances=3))
    p.world.add_foreign_vm("private", vcpus=4, memory_gib=8)
    cap = p.describe().capacity
    assert cap == Capacity(vcpus=4, memory_gib=56, instances=2)
    p.create_vm(vm_request("a", "m1.medium"))  # 2 vCPU
    assert p.describe().capacity == cap  # our own VMs are the broker's business
    with pytest.raises(CapacityError, match=r"Cloud private: .*vCPUs, 6 of 8 in use") as err:
        p.create_vm(vm_request("b", "m1.large"))
    assert err.value.reason == "CapacityExhausted"
    small = p.create_vm(vm_request("c", "m1.small"))
    with pytest.raises(CapacityError, match="instances"):
        p.create_vm(vm_request("d", "m1.tiny"))
    with pytest.raises(CapacityError, match="vCPUs"):
        p.update_vm(small.external_id, VMUpdate(instance_type="m1.large"))
    p.update_vm(small.external_id, VMUpdate(instance_type="m1.tiny"))  # shrinking fits


def test_per_offer_available(make: Make) -> None:
    offer = OfferSpec("gold", 2, 4, 0.5, available=2)
    p = make(pricing=Pricing(offers=(offer,)))
    p.world.add_foreign_vm("private", instance_type="gold")
    assert p.offers()[0].available == 1
    p.create_vm(vm_request("a", "gold"))
    with pytest.raises(CapacityError, match="gold: 2 of 2 in use"):
        p.create_vm(vm_request("b", "gold"))


def test_unknown_instance_type(make: Make) -> None:
    p = make()
    with pytest.raises(PermanentError, match=r"unknown instance type 'x9\.huge'") as err:
        p.create_vm(vm_request("u", "x9.huge"))
    assert err.value.reason == "UnknownInstanceType"
    vm = p.create_vm(vm_request("u"))
    with pytest.raises(PermanentError, match="unknown instance type"):
        p.update_vm(vm.external_id, VMUpdate(instance_type="x9.huge"))


def test_stop_start_resize_converge(make: Make) -> None:
    p = make()
    vm = p.create_vm(vm_request("u"))
    stop = VMUpdate(power_state=PowerState.STOPPED)
    stopped = p.update_vm(vm.external_id, stop)
    assert stopped.power_state == PowerState.STOPPED and stopped.price_per_hour == 0.0
    assert p.update_vm(vm.external_id, stop) == stopped
    resize = VMUpdate(instance_type="m1.large", power_state=PowerState.RUNNING)
    big = p.update_vm(vm.external_id, resize)
    assert (big.instance_type, big.vcpus, big.price_per_hour) == ("m1.large", 4, 0.0267)
    assert p.update_vm(vm.external_id, resize) == big
    retag = p.update_vm(vm.external_id, VMUpdate(tags={"team": "a"}))
    assert retag.tags["team"] == "a" and retag.uid == "u"
    with pytest.raises(PermanentError, match="forget"):
        p.update_vm(vm.external_id, VMUpdate(tags={TAG_OWNER: "x"}))


def test_missing_capabilities(make: Make) -> None:
    p = make(simulation=Simulation(capabilities=("volumes",)))
    vm = p.create_vm(vm_request("u"))
    with pytest.raises(PermanentError, match="capability 'stop'") as err:
        p.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
    assert err.value.reason == "MissingCapability"
    with pytest.raises(PermanentError, match="capability 'resize'"):
        p.update_vm(vm.external_id, VMUpdate(instance_type="m1.large"))
    with pytest.raises(PermanentError, match="capability 'buckets'"):
        p.create_bucket(BucketRequest("b", False, tags("b1")))
    with pytest.raises(PermanentError, match="capability 'gpus'"):
        p.create_vm(vm_request("g", "g1.gpu"))
    assert p.describe().capabilities == frozenset({Capability.VOLUMES})
    with pytest.raises(PermanentError, match="teleport") as bad:
        make("bad", simulation=Simulation(capabilities=("teleport",)))
    assert bad.value.reason == "InvalidConfig"


def test_volumes(make: Make) -> None:
    p = make()
    vm = p.create_vm(vm_request("u"))
    req = VolumeRequest("data", 100, "ssd", tags("v1", "data"))
    vol = p.create_volume(req)
    assert vol.external_id.startswith("vol-") and p.create_volume(req) == vol
    assert vol.price_per_hour == pytest.approx(100 * 0.02 / 730)
    grown = p.update_volume(vol.external_id, 200, vm.external_id, False)
    assert grown.size_gib == 200 and grown.attached_to == vm.external_id
    assert p.update_volume(vol.external_id, 200, vm.external_id, False) == grown
    with pytest.raises(PermanentError, match="shrink"):
        p.update_volume(vol.external_id, 10, None, False)
    with pytest.raises(PermanentError, match="detach it first"):
        p.delete_volume(vol.external_id)
    p.delete_vm(vm.external_id)  # detaches, keeps the volume
    (left,) = p.list_managed().volumes
    assert left.attached_to is None
    p.delete_volume(vol.external_id)
    p.delete_volume(vol.external_id)
    assert p.list_managed().volumes == ()


def test_buckets_are_named_per_cloud(make: Make) -> None:
    a, b = make("a"), make("b")
    bucket = a.create_bucket(BucketRequest("backups", False, tags("b1")))
    assert bucket.external_id == "backups" and bucket.price_per_hour == 0.0
    assert a.create_bucket(BucketRequest("backups", False, tags("b1"))) == bucket
    assert b.create_bucket(BucketRequest("backups", False, tags("b2"))).cloud == "b"
    with pytest.raises(PermanentError, match="already taken"):
        a.create_bucket(BucketRequest("backups", False, tags("b3")))
    assert a.update_bucket("backups", True).versioning
    a.delete_bucket("backups")
    a.delete_bucket("backups")
    assert a.list_managed().buckets == () and len(b.list_managed().buckets) == 1


def test_forget_makes_it_foreign(make: Make) -> None:
    p = make()
    vm = p.create_vm(vm_request("u"))
    p.forget(vm.external_id)
    p.forget(vm.external_id)  # a retry after a lost response: success
    assert p.list_managed().vms == () and p.find_by_uid("u") is None
    rec = p.world.get(vm.external_id)
    assert rec is not None and not any(k.startswith("reconciler.dev/") for k in rec.tags)
    with pytest.raises(PermanentError, match="not managed"):
        p.delete_vm(vm.external_id)


def test_create_requires_our_tags(make: Make) -> None:
    p = make()
    with pytest.raises(PermanentError, match="uid"):
        p.create_vm(VMRequest("x", "m1.small", "img", PowerState.RUNNING, {}))
    bad = {**tags("z"), TAG_OWNER: "other"}
    with pytest.raises(PermanentError, match="owned by 'other'"):
        p.create_vm(VMRequest("x", "m1.small", "img", PowerState.RUNNING, bad))


def test_providers_share_one_world(make: Make, tmp_path: Path) -> None:
    p1, p2 = make(), make()
    assert p1.world is p2.world is get_world(tmp_path)
    vm = p1.create_vm(vm_request("u"))
    assert isinstance(p2.find_by_uid("u"), ObservedVM) and p2.observe_vm(vm.external_id) == vm


def test_concurrent_threads_same_uid_make_one_vm(make: Make) -> None:
    p = make()
    results: list[ObservedVM] = []

    def worker(n: int) -> None:
        for i in range(50):
            results.append(p.create_vm(vm_request(f"u{i % 25}")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert len({vm.external_id for vm in results}) == 25 == len(p.list_managed().vms)
