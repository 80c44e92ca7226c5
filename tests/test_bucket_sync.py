"""Bucket copies kept in sync (reconciler/executor/bucketsync.py) across four REAL object
stores on 127.0.0.1: Swift all-in-one (OpenStackProvider), moto S3 (AwsProvider),
SeaweedFS (LibvirtProvider's objectStorage) and Azurite (AzureProvider). Each store takes
a turn as the source with the other three as replicas. A store that cannot start fails
the module; nothing here is skipped.

The last tests drive the stores' own large-object paths the sync relies on, with their
size constants lowered so a few MiB exercise them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from conformance.targets import aws as aws_target
from conformance.targets import azure as azure_target
from conformance.targets import libvirt as libvirt_target
from conformance.targets import openstack as openstack_target
from conformance.test_conformance_disks import synthetic
from servers import moto, seaweed
from servers.azurite import azurite
from servers.fake_openstack import openstack_backend
from servers.swift import swift_server

from reconciler.executor.bucketsync import BucketRef, ReplicaReport, SyncOptions, drift, sync
from reconciler.executor.retry import RetryPolicy
from reconciler.model.artifacts import META_SOURCE_ETAG, Chunks
from reconciler.model.errors import TransientError
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, ObjectStorage, Pricing
from reconciler.providers import s3objects
from reconciler.providers.azure import AzureProvider
from reconciler.providers.base import BucketRequest, Provider, ProviderContext
from reconciler.providers.libvirt import LibvirtProvider
from reconciler.providers.openstack import objects as swift_objects

STORES = ("swift", "moto", "seaweedfs", "azurite")
OWNER = "bucket-sync-test"
#: Two parts/segments/blocks in every store (their sizes are 8 MiB).
BIG = 9 * 2**20 + 5
FAST = SyncOptions(workers=4, retry=RetryPolicy(attempts=4, base_seconds=0.01))


def owned(provider: Provider) -> Provider:
    """The same driver, run by this module's owner (buckets of other tests stay apart)."""
    return type(provider)(provider.cloud, dataclasses.replace(provider.context, owner=OWNER))


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Provider]]:
    """One provider per real store, all run by OWNER."""
    swift_server()
    fake_arm = azure_target.start_fake()
    weed = seaweed.seaweed_server()
    cloud = CloudSpec(
        "sync-seaweedfs",
        "libvirt",
        region="dc1",
        hosts=(f"test://{libvirt_target.HOST_FILE}",),
        pricing=Pricing(catalog="sim-private-openstack"),
        object_storage=ObjectStorage(weed.endpoint),
    )
    creds = {"accessKeyId": seaweed.ACCESS_KEY, "secretAccessKey": seaweed.SECRET_KEY}
    state = tmp_path_factory.mktemp("sync-libvirt")
    libvirt = LibvirtProvider(cloud, ProviderContext(OWNER, state, creds))
    made = {
        "swift": openstack_target.make_provider(openstack_backend(), owner=OWNER),
        "moto": owned(aws_target.make_provider(moto.moto_server().url)),
        "seaweedfs": libvirt,
        "azurite": owned(azure_target.make_provider(fake_arm, azurite())),
    }
    try:
        yield made
    finally:
        libvirt.close()
        fake_arm.stop()


def new_uid() -> str:
    return uuid.uuid4().hex[:10]


def bucket_request(uid: str, name: str = "", versioning: bool = False) -> BucketRequest:
    tags = ownership_tags(OWNER, ResourceKey("Bucket", "sync", f"b-{uid}"), f"{uid}-{name}")
    return BucketRequest(f"rc-sync-{uid}", versioning, tags)


def make_buckets(stores: dict[str, Provider], uid: str) -> dict[str, BucketRef]:
    refs = {}
    for name, provider in stores.items():
        made = provider.create_bucket(bucket_request(uid, name))
        refs[name] = BucketRef(provider, made.external_id)
    return refs


def remove(ref: BucketRef) -> None:
    for info in ref.provider.list_objects(ref.bucket):
        ref.provider.delete_object(ref.bucket, info.key)
    ref.provider.delete_bucket(ref.bucket)


def sha(chunks: Iterable[bytes]) -> str:
    return hashlib.sha256(b"".join(chunks)).hexdigest()


def contents(ref: BucketRef) -> dict[str, str]:
    """key -> sha256 of every object's bytes, as get_object streams them."""
    return {
        info.key: sha(ref.provider.get_object(ref.bucket, info.key))
        for info in ref.provider.list_objects(ref.bucket)
    }


def put(ref: BucketRef, key: str, data: Chunks) -> None:
    ref.provider.put_object(ref.bucket, key, data, {})


@pytest.mark.parametrize("source_name", STORES)
def test_copies_converge_and_report_drift(stores: dict[str, Provider], source_name: str) -> None:
    refs = make_buckets(stores, new_uid())
    try:
        check_sync(refs[source_name], [r for n, r in refs.items() if n != source_name])
    finally:
        for ref in refs.values():
            remove(ref)


def check_sync(source: BucketRef, replicas: list[BucketRef]) -> None:
    big = synthetic(source.bucket.encode(), BIG)
    objects: dict[str, list[bytes]] = {
        "a.txt": [b"alpha"],
        "dir/b.txt": [b"bravo" * 100],
        "dir/c.bin": [bytes(range(256)) * 4],
        "big.raw": big,
    }
    for key, data in objects.items():
        put(source, key, data)
    first = sync(source, replicas, FAST)
    assert first.synced and first.in_sync and first.failed == 0, first
    assert (first.objects, first.copied, first.deleted) == (4, 12, 0)
    assert first.bytes_copied == 3 * first.source_bytes
    assert all(r.missing_keys == tuple(sorted(objects)) for r in first.replicas)
    after = drift(source, replicas, FAST)
    assert after.in_sync and after.drift == 0 and not after.synced, after
    assert_heads_only_where_listings_lack_metadata(replicas, after.replicas, common=4)
    expected = contents(source)
    for replica in replicas:
        assert contents(replica) == expected
        head = replica.provider.head_object(replica.bucket, "big.raw")
        assert head is not None and head.sha256 == sha(big)
        source_head = source.provider.head_object(source.bucket, "big.raw")
        assert source_head is not None
        assert head.metadata.get(META_SOURCE_ETAG) == source_head.etag

    put(source, "a.txt", [b"ALPHA"])  # same size: only the recorded ETag tells
    source.provider.delete_object(source.bucket, "dir/b.txt")
    put(source, "new.txt", [b"brand new"])
    put(replicas[0], "stray.txt", [b"not in the source"])
    found = drift(source, replicas, FAST)
    assert not found.in_sync and found.copied == 0
    for replica, report in zip(replicas, found.replicas, strict=True):
        extra = ("dir/b.txt", "stray.txt") if replica is replicas[0] else ("dir/b.txt",)
        assert report.replica == str(replica)
        assert (report.missing_keys, report.stale_keys, report.extra_keys) == (
            ("new.txt",),
            ("a.txt",),
            extra,
        )
        assert (report.missing, report.stale, report.extra) == (1, 1, len(extra))
    second = sync(source, replicas, FAST)
    assert second.in_sync and (second.copied, second.deleted) == (6, 4), second
    assert drift(source, replicas, FAST).drift == 0
    expected = contents(source)
    assert set(expected) == {"a.txt", "dir/c.bin", "big.raw", "new.txt"}
    for replica in replicas:
        assert contents(replica) == expected


def assert_heads_only_where_listings_lack_metadata(
    replicas: list[BucketRef], reports: Iterable[ReplicaReport], common: int
) -> None:
    """Azure listings carry the recorded source ETag; S3 and Swift need one HEAD per
    object present on both sides with equal sizes."""
    for replica, report in zip(replicas, reports, strict=True):
        wanted = 0 if isinstance(replica.provider, AzureProvider) else common
        assert report.heads == wanted, (report.replica, report.heads)


def test_failures_are_reported_per_replica_and_transients_retried(
    stores: dict[str, Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that is not ours is that replica's error; the others still sync. A
    transient failure reading the source is retried (the whole copy again)."""
    uid = new_uid()
    refs = make_buckets({"moto": stores["moto"], "azurite": stores["azurite"]}, uid)
    other = dataclasses.replace(stores["swift"].context, owner="someone-else")
    foreign_swift = type(stores["swift"])(stores["swift"].cloud, other)
    tags = ownership_tags("someone-else", ResourceKey("Bucket", "sync", "theirs"), uid)
    theirs = foreign_swift.create_bucket(BucketRequest(f"rc-theirs-{uid}", False, tags))
    source, replica = refs["moto"], refs["azurite"]
    foreign = BucketRef(stores["swift"], theirs.external_id)
    try:
        put(source, "k", [b"value"])
        real_get = source.provider.get_object
        failures = [TransientError("injected: connection reset", "sync-aws")]

        def flaky(bucket: str, key: str) -> Chunks:
            if failures:
                raise failures.pop()
            return real_get(bucket, key)

        monkeypatch.setattr(source.provider, "get_object", flaky)
        report = sync(source, [replica, foreign], FAST)
        good, bad = report.replicas
        assert (good.copied, good.failed) == (1, 0) and not failures
        assert bad.failed == 1 and "not managed" in bad.errors[0] and bad.copied == 0
        assert not report.in_sync
        assert contents(replica) == contents(source)
    finally:
        remove(source)
        remove(replica)
        foreign_swift.delete_bucket(theirs.external_id)


# -- the stores' large-object paths, with their sizes lowered ----------------------------
@pytest.mark.parametrize("store", ["moto", "seaweedfs"])
def test_s3_restamps_beyond_the_copy_limit(
    stores: dict[str, Provider], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond CopyObject's limit the SHA-256 is stamped by a multipart UploadPartCopy; in
    a versioned bucket one put leaves one version, and a failing source leaves nothing."""
    monkeypatch.setattr(s3objects, "COPY_LIMIT", 2**20)
    monkeypatch.setattr(s3objects, "COPY_PART", 5 * 2**20)
    provider = stores[store]
    bucket = provider.create_bucket(bucket_request(new_uid(), versioning=True)).external_id
    client = s3_client(provider)
    try:
        data = synthetic(b"copy-limit", BIG)
        info = provider.put_object(bucket, "big", data, {"note": "x"})
        head = provider.head_object(bucket, "big")
        assert head is not None and head.sha256 == sha(data) == info.sha256
        assert head.metadata.get("note") == "x" and head.etag == info.etag
        assert sha(provider.get_object(bucket, "big")) == sha(data)
        versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
        assert [v["Key"] for v in versions] == ["big"]

        def broken() -> Iterator[bytes]:
            yield b"x" * (17 * 2**20)  # two whole parts go up before the source fails
            raise TransientError("source went away", "test")

        with pytest.raises(TransientError):
            provider.put_object(bucket, "broken", broken(), {})
        assert provider.head_object(bucket, "broken") is None
        assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        for version in client.list_object_versions(Bucket=bucket).get("Versions", []):
            client.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        for marker in client.list_object_versions(Bucket=bucket).get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=marker["Key"], VersionId=marker["VersionId"])
        provider.delete_bucket(bucket)


def test_swift_segments_grow_and_orphans_are_removed(
    stores: dict[str, Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments double every SEGMENT_GROWTH; overwriting or deleting a large object in an
    unversioned container deletes its segments, and a failed upload leaves none."""
    monkeypatch.setattr(swift_objects, "SEGMENT_SIZE", 2**20)
    monkeypatch.setattr(swift_objects, "SEGMENT_GROWTH", 2)
    provider, server = stores["swift"], swift_server()
    bucket = provider.create_bucket(bucket_request(new_uid())).external_id
    segments = bucket + swift_objects.SEGMENTS_SUFFIX

    def segment_sizes() -> list[int]:
        url = f"{server.storage_url}/{segments.replace('+', '%2B')}?format=json"
        request = urllib.request.Request(url, headers={"X-Auth-Token": server.token()})
        with urllib.request.urlopen(request, timeout=10) as response:
            listing: list[dict[str, Any]] = json.loads(response.read() or b"[]")
        return sorted(int(entry["bytes"]) for entry in listing)

    try:
        data = synthetic(b"segments", 7 * 2**20 + 1)
        info = provider.put_object(bucket, "big", data, {})
        assert segment_sizes() == [2**20, 2**20, 2**20 + 1, 2**21, 2**21]
        assert sha(provider.get_object(bucket, "big")) == sha(data) == info.sha256
        provider.put_object(bucket, "big", synthetic(b"again", 2 * 2**20 + 1), {})
        assert segment_sizes() == [1, 2**20, 2**20]

        def broken() -> Iterator[bytes]:
            yield b"y" * (3 * 2**20)
            raise TransientError("source went away", "test")

        with pytest.raises(TransientError):
            provider.put_object(bucket, "broken", broken(), {})
        assert provider.head_object(bucket, "broken") is None
        assert segment_sizes() == [1, 2**20, 2**20]
        provider.delete_object(bucket, "big")
        assert segment_sizes() == []
    finally:
        remove(BucketRef(provider, bucket))
    assert segments not in server.containers()


def test_a_bucket_cannot_be_its_own_replica(stores: dict[str, Provider]) -> None:
    ref = BucketRef(stores["moto"], "any")
    with pytest.raises(ValueError, match="both source and replica"):
        drift(ref, [ref])


def s3_client(provider: Provider) -> Any:
    """The boto3 S3 client under an AwsProvider or a libvirt Cloud's objectStorage."""
    store = provider.buckets if hasattr(provider, "buckets") else provider._buckets()  # type: ignore[attr-defined]
    return store.client
