"""The AWS driver beyond the conformance suite, against a REAL moto server over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from conformance.targets.aws import failing_call, first_ami, lost_response, make_provider, raw_ec2
from servers.moto import SECRET_KEY, MotoServer, moto_server

from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError, TransientError
from reconciler.model.keys import TAG_OWNER, TAG_UID, ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, OfferSpec, PowerState, Pricing
from reconciler.providers.aws import AwsProvider
from reconciler.providers.base import (
    BucketRequest,
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
        | {Capability.BUCKET_VERSIONING}
    )
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
    snap = aws.snapshot_volume(vol.external_id, {"purpose": "migration"})
    boot = aws.snapshot_volume(machine.external_id, {})
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
