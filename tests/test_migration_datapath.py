"""The real data path of a migration, from a libvirt VM's disk to an EC2 image.

Every hop is a real server and a real driver:

1. known bytes (20 MiB + 12,345, written through the libvirt SDK, not the driver) go
   into a pool volume of a private libvirtd (as in test_libvirt_qemu.py);
2. a VM created from that volume by LibvirtProvider runs in a real qemu and is stopped;
   the driver's ``read_disk`` streams its boot disk (virStorageVol.download);
3. ``put_object`` pushes the stream into a bucket: an S3 multipart upload on moto
   (AwsProvider) or on SeaweedFS (the libvirt cloud's own objectStorage), or a Swift
   segmented upload (OpenStackProvider, real Swift all-in-one);
4. ``get_object`` streams it back, straight into AwsProvider's ``import_image`` on moto
   (EBS direct PutSnapshotBlock, then RegisterImage);
5. the imported snapshot's blocks are read back with a plain boto3 EBS client
   (ListSnapshotBlocks + GetSnapshotBlock) and their SHA-256 compared with the source.

A backend that cannot start fails the test; nothing here is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import boto3
import pytest
from conformance.targets import aws as aws_target
from conformance.targets import openstack as os_target
from servers import seaweed
from servers.fake_openstack import openstack_backend
from servers.libvirtd import POOL, Libvirtd, alive, start_libvirtd, write_volume
from servers.moto import ACCESS_KEY, SECRET_KEY, moto_server
from servers.swift import swift_server

from reconciler.model.artifacts import DiskRef
from reconciler.model.errors import PermanentError
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, ObjectStorage, OfferSpec, PowerState, Pricing
from reconciler.providers.base import (
    BucketRequest,
    ImageRequest,
    Provider,
    ProviderContext,
    VMRequest,
    VMUpdate,
)
from reconciler.providers.libvirt import LibvirtProvider, domain_name

SIZE = 20 * 2**20 + 12_345  # three 8 MiB parts/segments, the last one short
SOURCE = "datapath-source"
OWNER = "datapath"
#: The VM has no OS to answer ACPI: stop waits this long, then destroys.
QUICK_STOP = {"shutdownTimeout": "1"}


def known_bytes() -> bytes:
    """SIZE bytes: zeros with pseudo-random stretches at the start, across the first part
    boundary (8 MiB), around 16 MiB and at the very end (moto's EBS blocks are 512 bytes
    and every non-zero one is a request, so the data is sparse but the checks are not)."""
    data = bytearray(SIZE)
    for start, length in (
        (0, 2**18),
        (2**23 - 99_999, 200_000),
        (2**24 - 7, 14),
        (SIZE - 4097, 4097),
    ):
        stretch = b"".join(
            hashlib.sha256(f"{start}/{i}".encode()).digest() for i in range(length // 32 + 1)
        )
        data[start : start + length] = stretch[:length]
    text = b"reconciler data path: bytes that must arrive"
    data[2**22 : 2**22 + len(text)] = text
    assert len(data) == SIZE
    return bytes(data)


@dataclass
class Source:
    """The stopped libvirt VM whose boot disk holds ``data``."""

    provider: LibvirtProvider
    vm_id: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    daemon: Libvirtd = start_libvirtd(pool=True)
    store = seaweed.seaweed_server()
    try:
        data = known_bytes()
        write_volume(daemon.uri, SOURCE, data)
        cloud = CloudSpec(
            "private",
            "libvirt",
            region="lab",
            hosts=(daemon.uri,),
            settings={
                "domainType": "qemu",
                "pool": POOL,
                "network": "none",
                "shutdownTimeout": "1",
            },
            pricing=Pricing(offers=(OfferSpec("q.tiny", 1, 0.125, 0.01),), mode="Replace"),
            object_storage=ObjectStorage(store.endpoint),
        )
        credentials = {"accessKeyId": seaweed.ACCESS_KEY, "secretAccessKey": seaweed.SECRET_KEY}
        provider = LibvirtProvider(cloud, ProviderContext(owner=OWNER, credentials=credentials))
        tags = ownership_tags(OWNER, ResourceKey("VirtualMachine", "lab", "web"), "dp0")
        vm = provider.create_vm(VMRequest("web", "q.tiny", SOURCE, PowerState.RUNNING, tags))
        assert alive(daemon.qemu_pid(domain_name("web", "dp0")))  # a real qemu runs it
        provider.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
        yield Source(provider, vm.external_id, data)
        provider.delete_vm(vm.external_id)
        provider.close()
    finally:
        daemon.stop()


# -- the object stores a migration may stage through ---------------------------------------
STAGES = ("s3-moto", "s3-seaweedfs", "swift")


def staging(name: str, src: Source) -> tuple[Provider, Any]:
    """The driver whose bucket stages the bytes, and its S3 client (None for Swift)."""
    if name == "s3-moto":
        aws = aws_target.make_provider(moto_server().url)
        return aws, aws.buckets.client
    if name == "s3-seaweedfs":  # the libvirt cloud's own object storage
        return src.provider, src.provider._buckets().client
    return os_target.make_provider(openstack_backend(), owner=OWNER), None


def ebs_snapshot_bytes(snapshot_id: str, size: int) -> tuple[str, bool]:
    """(SHA-256 of the first ``size`` bytes, whether every byte after them in the last
    block is zero), read with a plain EBS client: the driver is not trusted here."""
    session = boto3.session.Session(ACCESS_KEY, SECRET_KEY, region_name=aws_target.REGION)
    ebs = session.client("ebs", endpoint_url=moto_server().url)
    listing = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)
    block = int(listing["BlockSize"])
    tokens = {int(b["BlockIndex"]): b["BlockToken"] for b in listing["Blocks"]}
    sha, tail_zero = hashlib.sha256(), True
    for index in range(-(-size // block)):
        data = bytes(block)
        if index in tokens:
            got = ebs.get_snapshot_block(
                SnapshotId=snapshot_id, BlockIndex=index, BlockToken=tokens[index]
            )
            data = got["BlockData"].read()
        keep = min(block, size - index * block)
        sha.update(data[:keep])
        tail_zero = tail_zero and not any(data[keep:])
    assert max(tokens) < -(-size // block), "blocks written beyond the image's bytes"
    return sha.hexdigest(), tail_zero


@pytest.mark.parametrize("stage", STAGES)
def test_libvirt_disk_reaches_ec2_intact(source: Source, stage: str) -> None:
    ref = DiskRef("vm", source.vm_id)
    assert source.provider.disk_size(ref) == SIZE
    store, s3 = staging(stage, source)
    uid = uuid4().hex[:12]
    tags = ownership_tags(store.context.owner, ResourceKey("Bucket", "lab", f"stage-{uid}"), uid)
    bucket = store.create_bucket(BucketRequest(f"stage-{uid}", False, tags)).external_id
    key = "migrations/dp/boot.raw"
    parts: list[int] = []
    if s3 is not None:
        event = "before-call.s3.UploadPart"
        s3.meta.events.register(event, lambda **_: parts.append(1), unique_id=uid)
    try:
        info = store.put_object(bucket, key, source.provider.read_disk(ref), {"migration": uid})
        assert (info.size, info.sha256) == (SIZE, source.sha256)
        if s3 is not None:
            assert len(parts) == 3, "the object did not go up as a 3-part multipart upload"
        else:
            assert f"{bucket}+reconciler-segments" in swift_server().containers()
        aws = aws_target.make_provider(moto_server().url, settings={"waitDelaySeconds": "1"})
        image_tags = ownership_tags("reconciler", ResourceKey("Image", "lab", f"i-{uid}"), uid)
        request = ImageRequest(f"web-{uid}", SIZE, source.sha256, image_tags)
        image = aws.import_image(request, store.get_object(bucket, key))
        assert (image.size_bytes, image.sha256) == (SIZE, source.sha256)
        flt = [{"Name": "tag:reconciler.dev/image", "Values": [image.external_id]}]
        snapshot = str(aws.snapshots(flt)[0]["SnapshotId"])
        assert ebs_snapshot_bytes(snapshot, SIZE) == (source.sha256, True)
        aws.delete_image(image.external_id)
        assert aws.find_image(uid) is None and aws.snapshots(flt) == []
    finally:
        if s3 is not None:
            s3.meta.events.unregister("before-call.s3.UploadPart", unique_id=uid)
        store.delete_object(bucket, key)
        store.delete_bucket(bucket)


def test_bytes_changed_in_staging_are_refused_and_leave_nothing(source: Source) -> None:
    """An object that no longer holds the source's bytes (one byte flipped in the
    bucket, behind the drivers' backs) fails the import with ChecksumMismatch and leaves
    no snapshot and no AMI on EC2."""
    aws = aws_target.make_provider(moto_server().url, settings={"waitDelaySeconds": "1"})
    uid = uuid4().hex[:12]
    tags = ownership_tags("reconciler", ResourceKey("Bucket", "lab", f"stage-{uid}"), uid)
    bucket = aws.create_bucket(BucketRequest(f"stage-{uid}", False, tags)).external_id
    key = "migrations/dp/boot.raw"
    info = aws.put_object(bucket, key, source.provider.read_disk(DiskRef("vm", source.vm_id)), {})
    assert info.sha256 == source.sha256
    changed = bytearray(source.data)
    changed[2**23] ^= 0xFF
    aws.buckets.client.put_object(Bucket=bucket, Key=key, Body=bytes(changed))
    image_tags = ownership_tags("reconciler", ResourceKey("Image", "lab", f"i-{uid}"), uid)
    request = ImageRequest(f"web-{uid}", SIZE, source.sha256, image_tags)
    try:
        with pytest.raises(PermanentError) as err:
            aws.import_image(request, aws.get_object(bucket, key))
        assert err.value.reason == "ChecksumMismatch"
        assert aws.find_image(uid) is None
        assert aws.snapshots([{"Name": "tag:reconciler.dev/uid", "Values": [uid]}]) == []
    finally:
        aws.delete_object(bucket, key)
        aws.delete_bucket(bucket)
