"""The AWS driver beyond the conformance suite, against a REAL moto server over HTTP."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from conformance.targets.aws import failing_call, first_ami, lost_response, make_provider, raw_ec2
from servers.moto import SECRET_KEY, MotoServer, moto_server

from reconciler.model.artifacts import DiskRef
from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError, TransientError
from reconciler.model.keys import TAG_OWNER, TAG_UID, ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, OfferSpec, PowerState, Pricing
from reconciler.providers.aws import AwsProvider, blocks
from reconciler.providers.aws.core import tag_list
from reconciler.providers.base import (
    BucketRequest,
    ImageRequest,
    ProviderContext,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)
from reconciler.providers.catalog import CatalogOffer, load_catalog


@pytest.fixture
def server() -> Iterator[MotoServer]:
    server = moto_server()
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def aws(server: MotoServer) -> AwsProvider:
    return make_provider(server.url, settings={"waitDelaySeconds": "1"})


def tags(kind: str, uid: str) -> dict[str, str]:
    return ownership_tags("reconciler", ResourceKey(kind, "ns", f"r-{uid}"), uid)


def vm(aws: AwsProvider, server: MotoServer, itype: str = "t3.micro", **kw: Any) -> VMRequest:
    uid = uuid.uuid4().hex[:10]
    kw.setdefault("power_state", PowerState.RUNNING)
    return VMRequest(
        f"vm-{uid}", itype, first_ami(server.url), tags=tags("VirtualMachine", uid), **kw
    )


def calls(aws: AwsProvider) -> list[str]:
    """Operation names the provider's EC2 client sends from now on."""
    seen: list[str] = []
    aws.clients.client("ec2").meta.events.register(
        "before-call.ec2", lambda model, **_: seen.append(model.name)
    )
    return seen


def test_offers_join_catalog_with_describe_instance_types(server: MotoServer) -> None:
    inline = OfferSpec("private.big", vcpus=64, memory_gib=512, price_per_hour=9.5)
    aws = make_provider(server.url, pricing=Pricing(offers=(inline,)))
    real = load_catalog("aws-us-east-1")
    wrong = replace(real.offers[0], vcpus=99)  # AWS's sizes win over the catalog's
    fake = CatalogOffer("x9.nonexistent", vcpus=2, memory_gib=4, price_per_hour=0.01)
    aws.catalog = replace(real, offers=(wrong, *real.offers[1:], fake))
    offers = {o.name: o for o in aws.offers()}
    assert "x9.nonexistent" not in offers
    assert (
        offers[wrong.name].vcpus == 2 and offers[wrong.name].price_per_hour == wrong.price_per_hour
    )
    assert offers["t3.large"].memory_gib == 8 and offers["g5.12xlarge"].gpus == 4
    assert offers["private.big"].vcpus == 64 and offers["private.big"].price_as_of == ""
    assert offers["t3.micro"].price_as_of == real.as_of
    assert aws.offers() == list(offers.values())  # cached for the provider's lifetime


def test_describe(aws: AwsProvider) -> None:
    info = aws.describe()
    assert info.capabilities == frozenset(
        {Capability.STOP, Capability.RESIZE, Capability.VOLUMES, Capability.BUCKETS}
        | {Capability.BUCKET_VERSIONING, Capability.VOLUME_SNAPSHOTS, Capability.IMAGE_IMPORT}
    )  # IMAGE_EXPORT only with settings.imageExport (test_disk_export_through_ebs_direct)
    assert info.capacity is None and not info.simulated
    assert info.price_source.startswith("https://aws.amazon.com")
    assert info.block_storage_per_gib_month == 0.08


def test_resize_running_instance_stops_modifies_starts(
    aws: AwsProvider, server: MotoServer
) -> None:
    made = aws.create_vm(vm(aws, server))
    seen = calls(aws)
    resized = aws.update_vm(made.external_id, VMUpdate(instance_type="t3.large"))
    order = [c for c in seen if c in ("StopInstances", "ModifyInstanceAttribute", "StartInstances")]
    assert order == ["StopInstances", "ModifyInstanceAttribute", "StartInstances"]
    assert (resized.instance_type, resized.memory_gib, resized.power_state) == (
        "t3.large",
        8,
        PowerState.RUNNING,
    )
    stopped_resize = aws.update_vm(
        made.external_id, VMUpdate(instance_type="t3.micro", power_state=PowerState.STOPPED)
    )
    assert stopped_resize.power_state == PowerState.STOPPED and stopped_resize.price_per_hour == 0


def test_create_stopped_with_disk_and_image_by_name(aws: AwsProvider, server: MotoServer) -> None:
    ami = raw_ec2(server.url).describe_images(ImageIds=[first_ami(server.url)])["Images"][0]
    request = replace(vm(aws, server, disk_gib=30), image=ami["Name"])
    made = aws.create_vm(replace(request, power_state=PowerState.STOPPED))
    assert made.power_state == PowerState.STOPPED and made.disk_gib == 30
    assert made.image == ami["ImageId"]
    inventory = aws.list_managed()
    assert [v.external_id for v in inventory.vms] == [made.external_id]
    assert inventory.volumes == (), "a VM's boot disk is part of the VM, not a Volume"
    with pytest.raises(PermanentError) as err:
        aws.create_vm(replace(vm(aws, server), image="no-such-image-name"))
    assert err.value.reason.startswith("InvalidAMIID")


def test_forget_untags_instance_and_boot_disk(aws: AwsProvider, server: MotoServer) -> None:
    made = aws.create_vm(vm(aws, server, disk_gib=8))
    aws.forget(made.external_id)
    ec2 = raw_ec2(server.url)
    volumes = ec2.describe_volumes()["Volumes"]
    inst = ec2.describe_instances(InstanceIds=[made.external_id])["Reservations"][0]["Instances"][0]
    for tagged in [inst, *volumes]:
        assert not any(t["Key"].startswith("reconciler.dev/") for t in tagged.get("Tags", []))
    assert inst["State"]["Name"] == "running" and aws.list_managed().vms == ()


def test_ebs_attach_detach_grow_snapshot(aws: AwsProvider, server: MotoServer) -> None:
    machine = aws.create_vm(vm(aws, server))
    uid = uuid.uuid4().hex[:10]
    vol = aws.create_volume(VolumeRequest("data", 1, "gp3", tags("Volume", uid)))
    assert (vol.size_gib, vol.volume_class, vol.attached_to) == (1, "gp3", None)
    assert vol.price_per_hour == pytest.approx(0.08 / 730)
    attached = aws.update_volume(vol.external_id, 5, machine.external_id, False)
    assert (attached.size_gib, attached.attached_to) == (5, machine.external_id)
    ec2 = raw_ec2(server.url)
    att = ec2.describe_volumes(VolumeIds=[vol.external_id])["Volumes"][0]["Attachments"][0]
    assert att["Device"] == "/dev/sdf"
    with pytest.raises(PermanentError) as err:
        aws.delete_volume(vol.external_id)
    assert err.value.reason == "VolumeInUse"
    with pytest.raises(PermanentError) as err:
        aws.update_volume(vol.external_id, 2, None, False)
    assert err.value.reason == "VolumeShrink"
    snap = aws.snapshot_volume(vol.external_id, {"purpose": "migration", **tags("Volume", "s1")})
    boot = aws.snapshot_volume(machine.external_id, tags("Volume", "s2"))
    shots = {s["SnapshotId"]: s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert {snap, boot} <= set(shots)
    assert {"Key": TAG_OWNER, "Value": "reconciler"} in shots[snap]["Tags"]
    assert aws.update_volume(vol.external_id, None, None, True).attached_to is None
    aws.delete_volume(vol.external_id)
    assert aws.find_by_uid(uid) is None


def test_bucket_versioning_and_lost_create(aws: AwsProvider) -> None:
    uid = uuid.uuid4().hex[:10]
    request = BucketRequest(f"NS-Data-{uid}", True, tags("Bucket", uid))
    with pytest.raises(TransientError), lost_response(aws):
        aws.create_bucket(request)
    made = aws.create_bucket(request)
    assert made.external_id == f"ns-data-{uid}" and made.versioning
    assert not aws.update_bucket(made.external_id, False).versioning
    assert aws.find_by_uid(uid) == aws.list_managed().buckets[0]
    aws.forget(made.external_id)
    assert aws.list_managed().buckets == ()


def test_missing_region_and_bad_settings_are_clear() -> None:
    for spec, words in (
        (CloudSpec("east", "aws"), "spec.region is required"),
        (
            CloudSpec("east", "aws", region="us-east-1", settings={"zone": "a"}),
            "unknown settings zone",
        ),
        (CloudSpec("east", "aws", region="x", settings={"waitDelaySeconds": "soon"}), "positive"),
    ):
        with pytest.raises(PermanentError, match=words) as err:
            AwsProvider(spec, ProviderContext())
        assert err.value.reason == "InvalidCloud" and "east" in str(err.value)


def test_missing_credentials_are_clear(server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    spec = CloudSpec("east", "aws", region="us-east-1", endpoint=server.url)
    with pytest.raises(PermanentError) as err:
        AwsProvider(spec, ProviderContext()).list_managed()
    assert err.value.reason == "MissingCredentials" and "east" in str(err.value)
    half = ProviderContext(credentials={"accessKeyId": "AKIA-half"})
    with pytest.raises(PermanentError, match="secretAccessKey") as err:
        AwsProvider(spec, half)
    assert err.value.reason == "MissingCredentials"


@pytest.mark.parametrize("kind", ["auth", "capacity", "bad_request"])
def test_error_mapping_on_s3(aws: AwsProvider, kind: Any) -> None:
    """S3's own error documents (AccessDenied, TooManyBuckets, InvalidArgument) map too."""
    aws.buckets  # noqa: B018 - build the S3 client so the hook is on it
    with pytest.raises(PermanentError) as err, failing_call(aws, kind):
        aws.update_bucket(f"b-{uuid.uuid4().hex[:8]}", True)
    assert SECRET_KEY not in str(err.value) and aws.cloud.name in str(err.value)
    if kind == "auth":
        assert err.value.reason == "Unauthorized"
    assert isinstance(err.value, CapacityError) == (kind == "capacity")


def test_wrong_credentials_map_to_unauthorized(aws: AwsProvider) -> None:
    with pytest.raises(PermanentError) as err, failing_call(aws, "auth"):
        aws.list_managed()
    assert err.value.reason == "Unauthorized" and err.value.__cause__ is None
    assert "conf-aws" in str(err.value) and SECRET_KEY not in str(err.value)


def test_retry_after_header_is_honoured() -> None:
    from botocore.exceptions import ClientError

    from reconciler.providers.botoerrors import map_error

    response: dict[str, Any] = {
        "Error": {"Code": "SlowDown", "Message": "slow"},
        "ResponseMetadata": {"HTTPStatusCode": 503, "HTTPHeaders": {"retry-after": "7"}},
    }
    error = map_error(ClientError(response, "PutObject"), "c", "put")
    assert isinstance(error, TransientError) and error.retry_after == 7
    response["Error"]["Code"] = "IdempotentParameterMismatch"
    response["ResponseMetadata"] = {"HTTPStatusCode": 400}
    error = map_error(ClientError(response, "RunInstances"), "c", "run")
    assert isinstance(error, PermanentError) and error.reason == "IdempotentParameterMismatch"


def test_foreign_volume_untouched(aws: AwsProvider, server: MotoServer) -> None:
    ec2 = raw_ec2(server.url)
    foreign = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    with pytest.raises(PermanentError) as err:
        aws.delete_volume(foreign)
    assert err.value.reason == "NotManaged"
    aws.forget(foreign)
    assert ec2.describe_volumes(VolumeIds=[foreign])["Volumes"][0]["State"] == "available"
    assert aws.find_by_uid(TAG_UID) is None


# -- images, snapshots and disk reads (EBS direct API) --------------------------------------
def pseudo(seed: bytes, size: int) -> bytes:
    blocks = (hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def image_request(uid: str, data: bytes, name: str = "") -> ImageRequest:
    sha = hashlib.sha256(data).hexdigest()
    return ImageRequest(name or f"img-{uid}", len(data), sha, tags("Image", uid))


def ebs_calls(aws: AwsProvider) -> list[str]:
    """Operation names the provider's EBS direct client sends from now on."""
    seen: list[str] = []
    aws.ebs.meta.events.register("before-call.ebs", lambda model, **_: seen.append(model.name))
    return seen


def our_snapshots(server: MotoServer, uid: str) -> list[dict[str, Any]]:
    flt = [{"Name": f"tag:{TAG_UID}", "Values": [uid]}]
    return list(raw_ec2(server.url).describe_snapshots(OwnerIds=["self"], Filters=flt)["Snapshots"])


def test_import_image_streams_blocks_and_registers_an_ami(
    aws: AwsProvider, server: MotoServer
) -> None:
    """The bytes land in EBS-direct blocks (zero blocks skipped, the last one padded)
    that read back equal, in a snapshot registered as the AMI's root; a retry reads
    nothing; VMs and volumes are made from it; delete removes AMI and snapshot."""
    block = 512  # moto's BlockSize (AWS: 512 KiB); the driver uses what StartSnapshot says
    data = pseudo(b"a", 40 * block) + bytes(60 * block) + pseudo(b"b", 7 * block + 5)
    request = image_request("i1", data)
    sent = ebs_calls(aws)
    image = aws.import_image(request, [data[i : i + 3000] for i in range(0, len(data), 3000)])
    assert (image.size_bytes, image.sha256, image.name) == (len(data), request.sha256, "img-i1-i1")
    assert sent.count("PutSnapshotBlock") == 48  # 40 + 8 (7 and a padded partial one)
    assert aws.import_image(request, Once()) == image == aws.find_image("i1")
    snap = our_snapshots(server, "i1")[0]
    snap_tags = {t["Key"]: t["Value"] for t in snap["Tags"]}
    assert snap_tags["reconciler.dev/image"] == image.external_id and snap["VolumeSize"] == 1
    size = len(data) + 3 * block  # the padding of the last block, then unwritten blocks
    read = b"".join(blocks.read_blocks(aws.ebs, snap["SnapshotId"], size, "conf-aws"))
    assert read[: len(data)] == data and read[len(data) :] == bytes(size - len(data))
    machine = aws.create_vm(replace(vm(aws, server), image=image.external_id))
    assert machine.image == image.external_id
    request_volume = VolumeRequest("data", 1, "gp3", tags("Volume", "v1"), image.external_id)
    volume = aws.create_volume(request_volume)
    made = raw_ec2(server.url).describe_volumes(VolumeIds=[volume.external_id])["Volumes"][0]
    assert made["SnapshotId"] == snap["SnapshotId"]
    aws.delete_image(image.external_id)
    aws.delete_image(image.external_id)
    assert aws.find_image("i1") is None and our_snapshots(server, "i1") == []
    assert aws.create_volume(request_volume) == volume  # a retry after the image went
    with pytest.raises(PermanentError) as err:
        aws.create_volume(replace(request_volume, tags=tags("Volume", "v2")))
    assert err.value.reason == "NotFound"


class Once:
    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("a retry read the bytes again")


def test_import_image_mismatch_or_failure_leaves_nothing(
    aws: AwsProvider, server: MotoServer
) -> None:
    data = pseudo(b"c", 20_000)
    request = image_request("m1", data)
    sent = ebs_calls(aws)
    with pytest.raises(PermanentError) as err:  # too long: stops at the first extra byte
        aws.import_image(request, [data, b"x" * 10_000, b"never read" * 10_000])
    assert err.value.reason == "ChecksumMismatch" and sent.count("PutSnapshotBlock") <= 40
    for chunks in ([data[:-1] + b"!"], [data[:100]]):
        with pytest.raises(PermanentError) as err:
            aws.import_image(request, chunks)
        assert err.value.reason == "ChecksumMismatch"
    assert "CompleteSnapshot" not in sent

    def broken() -> Iterator[bytes]:
        yield data[:5000]
        raise TransientError("the staging store went away", cloud="stage")

    with pytest.raises(TransientError, match="went away"):
        aws.import_image(request, broken())
    assert our_snapshots(server, "m1") == [] and aws.find_image("m1") is None
    ec2 = raw_ec2(server.url)
    assert ec2.describe_images(Owners=["self"])["Images"] == []


def test_import_image_lost_register_response_and_dead_attempt(
    aws: AwsProvider, server: MotoServer
) -> None:
    """A RegisterImage whose response was lost is found again by its name (which carries
    the uid) without reading the bytes again; an unregistered snapshot a dead attempt
    left is deleted before a new upload."""
    data = pseudo(b"d", 3000)
    ebs = aws.ebs
    dead = {**tags("Image", "l2"), "reconciler.dev/sha256": "0" * 64}  # as import tags it
    stale = ebs.start_snapshot(VolumeSize=1, Tags=tag_list(dead))["SnapshotId"]
    ec2 = aws.clients.client("ec2")

    def lose(**_: Any) -> None:
        ec2.meta.events.unregister("after-call.ec2.RegisterImage", unique_id="lose")
        raise ReadTimeoutError(endpoint_url="http://moto.test/")

    ec2.meta.events.register("after-call.ec2.RegisterImage", lose, unique_id="lose")
    with pytest.raises(TransientError):
        aws.import_image(image_request("l1", data), [data])
    image = aws.import_image(image_request("l1", data), Once())
    assert image.sha256 == hashlib.sha256(data).hexdigest() and aws.find_image("l1") == image
    assert len(raw_ec2(server.url).describe_images(Owners=["self"])["Images"]) == 1
    assert len(our_snapshots(server, "l1")) == 1  # kept: the AMI was registered
    request_volume = VolumeRequest("data", 2, "gp3", tags("Volume", "l3"), image.external_id)
    assert aws.create_volume(request_volume).size_gib == 2
    again = aws.import_image(image_request("l2", data), [data])
    assert [s["SnapshotId"] for s in our_snapshots(server, "l2")] != [stale]
    assert len(our_snapshots(server, "l2")) == 1 and again.size_bytes == len(data)


def test_volume_snapshots_idempotent_and_scoped(aws: AwsProvider, server: MotoServer) -> None:
    vol = aws.create_volume(VolumeRequest("data", 1, "gp3", tags("Volume", "sv")))
    first = aws.snapshot_volume(vol.external_id, tags("Volume", "s1"))
    assert aws.snapshot_volume(vol.external_id, tags("Volume", "s1")) == first
    second = aws.snapshot_volume(vol.external_id, tags("Volume", "s2"))
    aws.import_image(image_request("s3", b"x" * 700), [b"x" * 700])  # not a volume snapshot
    assert aws.list_snapshots(vol.external_id) == sorted([first, second])
    foreign = raw_ec2(server.url).create_snapshot(VolumeId=vol.external_id)["SnapshotId"]
    with pytest.raises(PermanentError) as err:
        aws.delete_snapshot(foreign)
    assert err.value.reason == "NotManaged"
    for snap in (first, first, "snap-0000000000000000f", "not-a-snapshot"):
        aws.delete_snapshot(snap)
    assert aws.list_snapshots(vol.external_id) == [second]


def test_disk_export_through_ebs_direct(server: MotoServer) -> None:
    """settings.imageExport declares IMAGE_EXPORT. A disk is read only while not in use,
    through a temporary snapshot that is deleted afterwards. moto keeps no bytes in EBS
    volumes and serves EBS-direct blocks only for snapshots made with StartSnapshot: for
    the snapshot of a volume it answers ListSnapshotBlocks with HTTP 500, so the read
    itself is verified only up to that call (blocks.read_blocks is verified on image
    snapshots above and in tests/test_migration_datapath.py)."""
    aws = make_provider(server.url, settings={"waitDelaySeconds": "1", "imageExport": "true"})
    assert Capability.IMAGE_EXPORT in aws.describe().capabilities
    machine = aws.create_vm(vm(aws, server))
    ref = DiskRef("vm", machine.external_id)
    with pytest.raises(PermanentError) as err:
        aws.read_disk(ref)
    assert err.value.reason == "DiskInUse"
    aws.update_vm(machine.external_id, VMUpdate(power_state=PowerState.STOPPED))
    raw_ec2(server.url).get_waiter("instance_stopped").wait(InstanceIds=[machine.external_id])
    assert aws.disk_size(ref) == 8 * 2**30  # moto's default root volume
    sent = ebs_calls(aws)
    with pytest.raises(TransientError, match="500"):  # moto: no blocks for this snapshot
        list(aws.read_disk(ref))
    assert sent[0] == "ListSnapshotBlocks"
    exports = [
        s
        for s in raw_ec2(server.url).describe_snapshots(OwnerIds=["self"])["Snapshots"]
        if {"Key": "reconciler.dev/system", "Value": "disk-export"} in s.get("Tags", [])
    ]
    assert exports == []  # the temporary snapshot is gone
    with pytest.raises(PermanentError) as err:
        list(aws.read_disk(DiskRef("volume", "vol-0000000000000000f")))
    assert err.value.reason == "NotFound"
    with pytest.raises(PermanentError, match="imageExport must be true or false"):
        make_provider(server.url, settings={"imageExport": "yes"})
