"""Storage placement: volumes follow VMs, unattached volumes and buckets by price."""

from __future__ import annotations

from test_broker_unit import NS, inventory, key, observed, offer, pol, run, state, vm

from reconciler.model.cloud import Capability, CloudInfo
from reconciler.model.keys import TAG_KEY, TAG_OWNER, ResourceKey
from reconciler.model.observed import CloudInventory, Inventory, ObservedBucket, ObservedVolume
from reconciler.model.specs import BucketSpec, CloudSelector, VolumeSpec

STORE = frozenset({Capability.VOLUMES, Capability.BUCKETS})


def sc(name: str, block: float, obj: float, caps: frozenset[Capability] = STORE) -> CloudInfo:
    return CloudInfo(
        name,
        "sim",
        "r",
        {},
        caps,
        block_storage_per_gib_month=block,
        object_storage_per_gib_month=obj,
    )


CLOUDS = [sc("a", 0.10, 0.020), sc("b", 0.05, 0.030), sc("c", 0.01, 0.010, frozenset())]
OFFERS = [offer("a", "a.m", 2, 4, 0.05), offer("b", "b.m", 2, 4, 0.10)]


def vol(name: str, **kw: object) -> VolumeSpec:
    return VolumeSpec(ResourceKey("Volume", NS, name), 10, **kw)  # type: ignore[arg-type]


def bucket(name: str, **kw: object) -> BucketSpec:
    return BucketSpec(ResourceKey("Bucket", NS, name), **kw)  # type: ignore[arg-type]


def test_volume_follows_its_vm() -> None:
    v = vol("d", attach_to="x")
    res = run(state([vm("x")], volumes={v.key: v}), CLOUDS, OFFERS)
    assert res.placements[key("x")].cloud == "a"
    sp = res.storage[v.key]
    assert sp.clouds == ("a",) and "follows VM x" in sp.reason
    assert sp.price_per_gib_month == {"a": 0.10}


def test_volume_of_unplaced_or_missing_vm() -> None:
    v = vol("d", attach_to="x")
    res = run(state([vm("x", vcpus=64)], volumes={v.key: v}), CLOUDS, OFFERS)
    assert res.storage_unplaced[v.key].reasons == ("attached VM team/x is not placed",)
    w = vol("e", attach_to="ghost")
    res = run(state([], volumes={w.key: w}), CLOUDS, OFFERS)
    assert "is not declared" in res.storage_unplaced[w.key].reasons[0]


def test_unattached_volume_cheapest_with_capability() -> None:
    v = vol("d")
    res = run(state([], volumes={v.key: v}), CLOUDS, OFFERS)
    assert res.storage[v.key].clouds == ("b",)  # c is cheaper but lacks volumes
    v2 = vol("d", cloud="a")
    res = run(state([], volumes={v2.key: v2}), CLOUDS, OFFERS)
    assert res.storage[v2.key].clouds == ("a",)
    v3 = vol("d", cloud="c")
    res = run(state([], volumes={v3.key: v3}), CLOUDS, OFFERS)
    assert "lacks capability volumes" in res.storage_unplaced[v3.key].reasons[0]


def test_unattached_volume_is_sticky_and_policy_applies() -> None:
    v = vol("d")
    tags = {TAG_OWNER: "reconciler", TAG_KEY: str(v.key)}
    ov = ObservedVolume("a", "vol-1", 10, "standard", None, 0.001, tags)
    inv = Inventory({"a": CloudInventory("a", volumes=(ov,))})
    res = run(state([], volumes={v.key: v}), CLOUDS, OFFERS, inv)
    assert res.storage[v.key].clouds == ("a",) and "already exists" in res.storage[v.key].reason
    p = pol("p", deny=(CloudSelector(name="b"),))
    v2 = vol("d", policy_ref="p")
    res = run(state([], p, volumes={v2.key: v2}), CLOUDS, OFFERS)
    assert res.storage[v2.key].clouds == ("a",)


def test_bucket_copies_cheapest_distinct() -> None:
    b = bucket("s", copies=2)
    res = run(state([], buckets={b.key: b}), CLOUDS, OFFERS)
    assert res.storage[b.key].clouds == ("a", "b")
    b3 = bucket("s", copies=3)
    res = run(state([], buckets={b3.key: b3}), CLOUDS, OFFERS)
    assert (
        "needs 3 copies on distinct clouds, only 2 usable"
        in res.storage_unplaced[b3.key].reasons[0]
    )


def test_bucket_explicit_clouds_and_existing_copies() -> None:
    b = bucket("s", clouds=("b", "a"), copies=1)
    res = run(state([], buckets={b.key: b}), CLOUDS, OFFERS)
    assert res.storage[b.key].clouds == ("b",)
    tags = {TAG_OWNER: "reconciler", TAG_KEY: str(b.key)}
    ob = ObservedBucket("a", "bk-1", False, 0.0, tags)
    inv = Inventory({"a": CloudInventory("a", buckets=(ob,))})
    res = run(state([], buckets={b.key: b}), CLOUDS, OFFERS, inv)
    assert res.storage[b.key].clouds == ("a",)
    assert res.storage[b.key].reason.startswith("1 existing copy kept")


def test_sticky_vm_keeps_volume_cloud() -> None:
    v = vol("d", attach_to="x")
    inv = inventory(observed("b", "x", "b.m", 2, 4, 0.10))
    res = run(state([vm("x")], volumes={v.key: v}), CLOUDS, OFFERS, inv)
    assert res.placements[key("x")].sticky
    assert res.storage[v.key].clouds == ("b",)
