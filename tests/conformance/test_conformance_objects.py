"""Conformance, part three: objects in our buckets (Capability.BUCKETS).

The optional object operations of the Provider contract (reconciler/providers/base.py),
tested for every driver that declares BUCKETS, against the same backends as the core
suite: Swift, moto S3, SeaweedFS and Azurite are real servers. A driver without BUCKETS
must refuse every object call with ``PermanentError`` reason NotSupported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from conformance.target import ConformanceTarget
from conformance.targets import azure as azure_target
from conformance.targets import libvirt as libvirt_target
from conformance.test_conformance import bucket_request, capable, new_uid, tags_for
from conformance.test_conformance_disks import assert_not_supported, digest, synthetic
from reconciler.model.artifacts import META_SHA256
from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError
from reconciler.model.keys import TAG_OWNER
from reconciler.model.specs import CloudSpec, Pricing
from reconciler.providers.base import BucketRequest, Provider, ProviderContext
from reconciler.providers.libvirt import LibvirtProvider

#: Larger than the 8 MiB part, segment and block size of every driver: two parts.
BIG = 9 * 2**20 + 3
OTHER_OWNER = "someone-else"


def sha(chunks: Iterable[bytes]) -> str:
    return digest(chunks)[1]


def read(provider: Provider, bucket: str, key: str) -> tuple[int, str]:
    """(size, sha256) of an object's bytes as get_object streams them."""
    return digest(provider.get_object(bucket, key))


def refused(call: Callable[[], object]) -> PermanentError:
    """The PermanentError ``call`` raises (a returned stream is read to the end)."""
    with pytest.raises(PermanentError) as info:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    assert not isinstance(info.value, CapacityError)
    return info.value


def empty_and_delete(provider: Provider, bucket: str) -> None:
    for info in provider.list_objects(bucket):
        provider.delete_object(bucket, info.key)
    provider.delete_bucket(bucket)


def other_owner(provider: Provider) -> Provider:
    """A second driver for the same Cloud and backend, run by another owner."""
    context = dataclasses.replace(provider.context, owner=OTHER_OWNER)
    return type(provider)(provider.cloud, context)


def close(provider: Provider) -> None:
    closer = getattr(provider, "close", None)
    if callable(closer):
        closer()


def test_objects_round_trip(target: ConformanceTarget) -> None:
    """put (small, multipart-sized), get, head, list, overwrite, delete twice."""
    provider = target.provider
    if not capable(target, Capability.BUCKETS):
        for call in every_call(provider, "absent-bucket"):
            assert_not_supported(call)
        return
    bucket = provider.create_bucket(bucket_request(target, new_uid())).external_id
    small = [b"hello ", b"", b"world"]
    info = provider.put_object(bucket, "docs/small.txt", small, {"Color": "Blue"})
    assert (info.key, info.size, info.sha256) == ("docs/small.txt", 11, sha(small))
    assert info.metadata.get("color") == "Blue" and info.etag
    big = synthetic(bucket.encode(), BIG)
    large = provider.put_object(bucket, "disk.raw", big, {META_SHA256: "0" * 64})  # ours wins
    assert (large.size, large.sha256) == (BIG, sha(big))
    assert read(provider, bucket, "disk.raw") == (BIG, sha(big))
    assert read(provider, bucket, "docs/small.txt") == (11, sha(small))
    for put in (info, large):
        head = provider.head_object(bucket, put.key)
        assert head is not None and (head.size, head.etag) == (put.size, put.etag)
        assert head.sha256 == put.sha256 and head.metadata.get(META_SHA256) == put.sha256
    head = provider.head_object(bucket, info.key)
    assert head is not None and head.metadata.get("color") == "Blue"
    listed = provider.list_objects(bucket)
    assert [o.key for o in listed] == ["disk.raw", "docs/small.txt"]
    for entry, put in zip(listed, (large, info), strict=True):
        assert (entry.size, entry.etag) == (put.size, put.etag)
        assert entry.sha256 in ("", put.sha256)  # listings of S3 and Swift have no metadata
    replaced = provider.put_object(bucket, "docs/small.txt", [b"bye"], {})
    assert read(provider, bucket, "docs/small.txt") == (3, sha([b"bye"]))
    head = provider.head_object(bucket, "docs/small.txt")
    assert head is not None and (head.size, head.sha256) == (3, replaced.sha256)
    assert "color" not in head.metadata and replaced.etag != info.etag
    for key in ("disk.raw", "disk.raw", "never-written"):
        provider.delete_object(bucket, key)  # absent is success
    assert provider.head_object(bucket, "disk.raw") is None
    assert refused(lambda: provider.get_object(bucket, "disk.raw")).reason == "NotFound"
    assert [o.key for o in provider.list_objects(bucket)] == ["docs/small.txt"]
    empty_and_delete(provider, bucket)


def test_list_with_prefix_is_sorted(target: ConformanceTarget) -> None:
    provider = target.provider
    if not capable(target, Capability.BUCKETS):
        pytest.skip(f"{target.name} declares no '{Capability.BUCKETS}' capability")
    bucket = provider.create_bucket(bucket_request(target, new_uid())).external_id
    keys = ["p/zeta", "p/alpha", "q/other", "p/Mid", "p/a/b", "p", "pa"]
    for key in keys:
        provider.put_object(bucket, key, [key.encode()], {})
    assert [o.key for o in provider.list_objects(bucket, "p/")] == sorted(
        k for k in keys if k.startswith("p/")
    )
    every = provider.list_objects(bucket)
    assert [o.key for o in every] == sorted(keys)
    assert all(o.size == len(o.key) for o in every)
    assert provider.list_objects(bucket, "nothing-here/") == []
    empty_and_delete(provider, bucket)


def test_a_bucket_holding_objects_is_not_deleted(target: ConformanceTarget) -> None:
    """delete_bucket never deletes stored objects: a bucket holding one is refused with
    BucketNotEmpty and left as it was; emptied, it is deleted."""
    provider = target.provider
    if not capable(target, Capability.BUCKETS):
        pytest.skip(f"{target.name} declares no '{Capability.BUCKETS}' capability")
    bucket = provider.create_bucket(bucket_request(target, new_uid())).external_id
    provider.put_object(bucket, "keep/me", [b"precious"], {})
    assert refused(lambda: provider.delete_bucket(bucket)).reason == "BucketNotEmpty"
    assert read(provider, bucket, "keep/me") == (8, sha([b"precious"]))
    assert bucket in {b.external_id for b in provider.list_managed().buckets}
    empty_and_delete(provider, bucket)
    assert bucket not in {b.external_id for b in provider.list_managed().buckets}


def every_call(provider: Provider, bucket: str) -> list[Callable[[], object]]:
    """One call of each object operation on ``bucket``."""
    return [
        lambda: provider.put_object(bucket, "k", [b"x"], {}),
        lambda: provider.get_object(bucket, "k"),
        lambda: provider.head_object(bucket, "k"),
        lambda: provider.list_objects(bucket),
        lambda: provider.delete_object(bucket, "k"),
    ]


def test_objects_only_in_our_buckets(target: ConformanceTarget) -> None:
    """Every object call on another owner's bucket, or on an untagged one made behind
    the driver's back, raises PermanentError and changes nothing there."""
    provider = target.provider
    if not capable(target, Capability.BUCKETS):
        pytest.skip(f"{target.name} declares no '{Capability.BUCKETS}' capability")
    other = other_owner(provider)
    try:
        uid = new_uid()
        tags = {**tags_for(target, "Bucket", uid), TAG_OWNER: OTHER_OWNER}
        theirs = other.create_bucket(BucketRequest(f"rc-theirs-{uid}", False, tags)).external_id
        kept = other.put_object(theirs, "k", [b"theirs"], {})
        for call in every_call(provider, theirs):
            assert refused(call).reason in ("NotManaged", "NotFound")
        assert other.head_object(theirs, "k") == kept
        assert [o.key for o in other.list_objects(theirs)] == ["k"]
        assert read(other, theirs, "k") == (6, sha([b"theirs"]))
        empty_and_delete(other, theirs)
    finally:
        close(other)
    if target.make_foreign_bucket is not None:
        untagged = target.make_foreign_bucket(f"rc-untagged-{new_uid()}")
        for call in every_call(provider, untagged):
            assert refused(call).reason == "NotManaged"


def test_absent_bucket_is_not_found(target: ConformanceTarget) -> None:
    provider = target.provider
    if not capable(target, Capability.BUCKETS):
        pytest.skip(f"{target.name} declares no '{Capability.BUCKETS}' capability")
    for call in every_call(provider, f"rc-absent-{new_uid()}"):
        assert refused(call).reason == "NotFound"


# -- drivers configured without object storage: NotSupported -----------------------------
def test_libvirt_without_object_storage_refuses_objects(tmp_path: Path) -> None:
    cloud = CloudSpec(
        "conf-libvirt-nostore",
        "libvirt",
        region="dc1",
        hosts=(f"test://{libvirt_target.HOST_FILE}",),
        pricing=Pricing(catalog="sim-private-openstack"),
    )
    provider = LibvirtProvider(cloud, ProviderContext(state_dir=tmp_path))
    try:
        assert Capability.BUCKETS not in provider.describe().capabilities
        for call in every_call(provider, "any-bucket"):
            assert_not_supported(call)
    finally:
        provider.close()


def test_azure_without_storage_credentials_refuses_objects() -> None:
    fake = azure_target.start_fake()
    try:
        provider = azure_target.make_provider(fake, None)
        assert Capability.BUCKETS not in provider.describe().capabilities
        for call in every_call(provider, "any-bucket"):
            assert_not_supported(call)
    finally:
        fake.stop()
