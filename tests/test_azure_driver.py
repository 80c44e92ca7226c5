"""Azure driver behaviour the conformance suite does not cover.

Compute runs against the fake ARM (tests/servers/fake_arm.py, HTTP boundary); buckets
against the REAL Azurite (tests/servers/azurite.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from conformance.targets.azure import GROUP, SECRET, make_provider, start_fake
from servers.azurite import azurite
from servers.fake_arm import FakeArm

from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import TAG_OWNER, TAG_UID, ResourceKey, ownership_tags
from reconciler.model.specs import CloudSpec, PowerState
from reconciler.providers.azure import AzureProvider
from reconciler.providers.azure.names import decode_key, encode_meta_key, encode_tag_key
from reconciler.providers.base import BucketRequest, ProviderContext, VMRequest, VolumeRequest
from reconciler.providers.catalog import load_catalog
from reconciler.providers.registry import build_provider


@pytest.fixture
def fake() -> Iterator[FakeArm]:
    server = start_fake()
    yield server
    server.stop()


def _tags(uid: str, kind: str = "VirtualMachine") -> dict[str, str]:
    return ownership_tags("reconciler", ResourceKey(kind, "ns", f"r-{uid}"), uid)


def _vm(provider: AzureProvider, power: PowerState = PowerState.RUNNING) -> str:
    uid = uuid.uuid4().hex[:8]
    request = VMRequest(f"web-{uid}", "Standard_B1s", "a:b:c:latest", power, _tags(uid), 40)
    return provider.create_vm(request).external_id


def test_registry_builds_the_azure_driver(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    built = build_provider(provider.cloud, provider.context)
    assert isinstance(built, AzureProvider)


def test_offers_are_the_catalog_joined_with_vm_sizes(fake: FakeArm) -> None:
    offers = {o.name: o for o in make_provider(fake, None).offers()}
    catalog = {o.name for o in load_catalog("azure-westeurope").offers}
    assert "Standard_NC24ads_A100_v4" in catalog and "Standard_NC24ads_A100_v4" not in offers
    assert "Standard_A1_v2" not in offers  # served, but no price
    assert set(offers) < catalog
    b2s = offers["Standard_B2s"]
    assert (b2s.vcpus, b2s.memory_gib, b2s.price_per_hour) == (2, 4.0, 0.0472)


@pytest.mark.parametrize(
    "key", ["reconciler.dev/owner", "reconciler.dev/deletion-policy", "a_b/c", "9x", "Ünï"]
)
def test_tag_and_metadata_key_encoding_round_trips(key: str) -> None:
    tag, meta = encode_tag_key(key), encode_meta_key(key)
    assert not set("<>%&\\?/") & set(tag)
    assert meta.isidentifier() and meta.isascii()
    assert decode_key(tag) == key and decode_key(meta) == key
    assert decode_key("cost_center") == "cost_center"  # a hand-made tag stays as it is


def test_vm_tags_are_encoded_on_azure_and_decoded_on_read(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    vm_id = _vm(provider)
    raw = fake.state.get("Compute/virtualMachines", vm_id.rsplit("/", 1)[1])
    assert raw["tags"]["reconciler.dev_2fowner"] == "reconciler"
    assert all("/" not in key for key in raw["tags"])
    observed = provider.observe_vm(vm_id)
    assert observed is not None and observed.tags[TAG_OWNER] == "reconciler"
    assert observed.disk_gib == 40 and observed.image == "a:b:c:latest"


def test_stop_is_deallocate_and_create_stopped(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    vm_id = _vm(provider, PowerState.STOPPED)
    name = vm_id.rsplit("/", 1)[1]
    assert ("POST", f"{vm_id}/deallocate") in fake.requests
    statuses = fake.state.instance_view(name)["statuses"]
    assert statuses[1]["code"] == "PowerState/deallocated"
    observed = provider.observe_vm(vm_id)
    assert observed is not None and observed.power_state == PowerState.STOPPED


def test_delete_removes_nic_and_os_disk(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    provider.delete_vm(_vm(provider))
    kinds = {kind for (kind, _), _ in fake.state.snapshot()[0]}  # type: ignore[index]
    assert kinds == set()


def test_disk_attach_detach_and_grow(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    vm_id = _vm(provider)
    uid = uuid.uuid4().hex[:8]
    disk = provider.create_volume(VolumeRequest("data", 8, "standard", _tags(uid, "Volume")))
    assert disk.volume_class == "StandardSSD_LRS" and disk.price_per_hour > 0
    attached = provider.update_volume(disk.external_id, None, vm_id, False)
    assert attached.attached_to == vm_id
    data_disks = fake.state.get("Compute/virtualMachines", vm_id.rsplit("/", 1)[1])["properties"][
        "storageProfile"
    ]["dataDisks"]
    assert [d["managedDisk"]["id"] for d in data_disks] == [disk.external_id]
    with pytest.raises(PermanentError, match="attached"):
        provider.delete_volume(disk.external_id)
    grown = provider.update_volume(disk.external_id, 16, None, True)
    assert (grown.attached_to, grown.size_gib) == (None, 16)
    with pytest.raises(PermanentError, match="shrink"):
        provider.update_volume(disk.external_id, 4, None, False)
    provider.delete_volume(disk.external_id)
    assert provider.list_managed().volumes == ()


def test_bad_volume_class_and_image_are_permanent(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    with pytest.raises(PermanentError) as err:
        provider.create_volume(VolumeRequest("v", 1, "gold", _tags("u1", "Volume")))
    assert err.value.reason == "InvalidVolumeClass"
    request = VMRequest("x", "Standard_B1s", "ubuntu", PowerState.RUNNING, _tags("u2"))
    with pytest.raises(PermanentError) as err:
        provider.create_vm(request)
    assert err.value.reason == "InvalidImage"


def test_throttle_carries_retry_after(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    with fake.failing("throttle"), pytest.raises(TransientError) as err:
        provider.list_managed()
    assert err.value.retry_after == 7.0 and "TooManyRequests" in str(err.value)


def test_wrong_secret_is_unauthorized_naming_the_cloud(fake: FakeArm) -> None:
    provider = make_provider(fake, None, secret="not-the-secret")
    with pytest.raises(PermanentError) as err:
        provider.list_managed()
    assert err.value.reason == "Unauthorized"
    assert "conf-azure" in str(err.value) and "not-the-secret" not in str(err.value)


def test_missing_credentials_and_bad_settings_name_the_cloud(fake: FakeArm) -> None:
    good = make_provider(fake, None)
    with pytest.raises(PermanentError) as err:
        AzureProvider(good.cloud, ProviderContext(credentials={"tenantId": "t", "clientId": "c"}))
    assert err.value.reason == "MissingCredentials" and "clientSecret" in str(err.value)
    assert SECRET not in str(err.value)
    for settings in ({"resourceGroup": GROUP}, {**good.cloud.settings, "subnet": "x"}):
        spec = CloudSpec("bad-azure", "azure", region="westeurope", settings=settings)
        with pytest.raises(PermanentError) as err:
            AzureProvider(spec, good.context)
        assert err.value.reason == "InvalidCloud" and "bad-azure" in str(err.value)
    plain = CloudSpec(
        "plain", "azure", "westeurope", "http://example.com", settings=good.cloud.settings
    )
    with pytest.raises(PermanentError, match="https"):
        AzureProvider(plain, good.context)


def test_blob_container_metadata_round_trip_on_azurite(fake: FakeArm) -> None:
    blob = azurite()
    provider = make_provider(fake, blob)
    caps = provider.describe().capabilities
    assert Capability.BUCKETS in caps and Capability.BUCKET_VERSIONING not in caps
    uid = uuid.uuid4().hex[:8]
    tags = {**_tags(uid, "Bucket"), "team/name": "data_eng"}
    bucket = provider.create_bucket(BucketRequest(f"Logs_{uid}", False, tags))
    assert bucket.external_id == f"logs-{uid}"
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(blob.connection_string)
    raw = service.get_container_client(bucket.external_id).get_container_properties().metadata
    assert raw["reconciler_2edev_2fuid"] == uid and raw["team_2fname"] == "data_eng"
    found = provider.find_by_uid(uid)
    assert found is not None and found.tags == tags
    with pytest.raises(PermanentError) as err:
        provider.update_bucket(bucket.external_id, True)
    assert err.value.reason == "Unsupported"
    provider.forget(bucket.external_id)
    assert provider.find_by_uid(uid) is None
    left = service.get_container_client(bucket.external_id).get_container_properties().metadata
    assert left == {"team_2fname": "data_eng"}
    service.delete_container(bucket.external_id)


def test_account_versioning_setting_is_reported(fake: FakeArm) -> None:
    provider = make_provider(fake, azurite(), blobVersioning="enabled")
    assert Capability.BUCKET_VERSIONING in provider.describe().capabilities
    uid = uuid.uuid4().hex[:8]
    bucket = provider.create_bucket(BucketRequest(f"v-{uid}", True, _tags(uid, "Bucket")))
    assert bucket.versioning and provider.update_bucket(bucket.external_id, True).versioning
    provider.delete_bucket(bucket.external_id)
    assert TAG_UID not in {
        k
        for b in provider.list_managed().buckets
        for k in b.tags
        if b.external_id == bucket.external_id
    }


def _disk(provider: AzureProvider, size: int = 4) -> str:
    uid = uuid.uuid4().hex[:8]
    request = VolumeRequest(f"data-{uid}", size, "standard", _tags(uid, "Volume"))
    return provider.create_volume(request).external_id


def test_snapshot_is_a_tagged_copy_of_the_disk(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    assert Capability.VOLUME_SNAPSHOTS in provider.describe().capabilities
    disk_id, other = _disk(provider, 4), _disk(provider, 2)
    uid = uuid.uuid4().hex[:8]
    snap_id = provider.snapshot_volume(disk_id, _tags(uid, "Volume"))
    raw = fake.state.get("Compute/snapshots", snap_id.rsplit("/", 1)[1])
    disk = fake.state.get("Compute/disks", disk_id.rsplit("/", 1)[1])
    assert raw["properties"]["creationData"] == {
        "createOption": "Copy",
        "sourceResourceId": disk_id,
        "sourceUniqueId": disk["properties"]["uniqueId"],
    }
    assert raw["properties"]["diskSizeGB"] == 4 and raw["properties"]["incremental"] is False
    assert raw["tags"]["reconciler.dev_2fuid"] == uid and raw["tags"]["reconciler.dev_2fowner"]
    other_snap = provider.snapshot_volume(other, _tags(uuid.uuid4().hex[:8], "Volume"))
    assert provider.list_snapshots(disk_id) == [snap_id]
    assert provider.list_snapshots(other) == [other_snap]
    provider.delete_volume(disk_id)  # a full snapshot outlives its disk, as on Azure
    assert provider.list_snapshots(disk_id) == [snap_id]
    provider.delete_snapshot(snap_id)
    provider.delete_snapshot(snap_id)
    assert provider.list_snapshots(disk_id) == []


def test_snapshot_retry_after_a_lost_put_finds_the_first(fake: FakeArm) -> None:
    provider = make_provider(fake, None)
    disk_id = _disk(provider)
    tags = _tags(uuid.uuid4().hex[:8], "Volume")
    with fake.dropping(), pytest.raises(TransientError):
        provider.snapshot_volume(disk_id, tags)
    snap_id = provider.snapshot_volume(disk_id, tags)
    assert provider.list_snapshots(disk_id) == [snap_id]
    attached = provider.update_volume(disk_id, None, _vm(provider), False)
    assert attached.attached_to is not None  # Azure snapshots an attached disk too
    second = provider.snapshot_volume(disk_id, _tags(uuid.uuid4().hex[:8], "Volume"))
    assert sorted(provider.list_snapshots(disk_id)) == sorted([snap_id, second])


def test_snapshot_of_an_absent_or_foreign_disk_is_refused(fake: FakeArm) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.compute.models import Snapshot

    provider = make_provider(fake, None)
    missing = fake.state.arm_id("Compute/disks", "nope")
    with pytest.raises(PermanentError) as err:
        provider.snapshot_volume(missing, _tags("s1", "Volume"))
    assert err.value.reason == "NotFound"
    # The fake refuses what ARM refuses: a copy of a disk that does not exist.
    copy = {"createOption": "Copy", "sourceResourceId": missing}
    body = {"location": "westeurope", "properties": {"creationData": copy}}
    with pytest.raises(ResourceNotFoundError):
        provider.arm.compute.snapshots.begin_create_or_update(GROUP, "x", Snapshot(body)).result()
    # Someone else's snapshot is neither listed nor deleted.
    disk_id = _disk(provider)
    copy["sourceResourceId"] = disk_id
    body["tags"] = {"reconciler.dev_2fowner": "someone-else"}
    theirs = provider.arm.compute.snapshots.begin_create_or_update(
        GROUP, "theirs", Snapshot(body)
    ).result()
    assert provider.list_snapshots(disk_id) == []
    provider.delete_snapshot(str(theirs.id))
    assert fake.state.get("Compute/snapshots", "theirs")["tags"] == body["tags"]
    snapshots = provider.arm.compute.snapshots
    copy["sourceResourceId"] = _disk(provider)  # a snapshot cannot be re-pointed
    with pytest.raises(HttpResponseError, match="PropertyChangeNotAllowed"):
        snapshots.begin_create_or_update(GROUP, "theirs", Snapshot(body)).result()
    bad_sku = {**body, "sku": {"name": "StandardSSD_LRS"}}
    with pytest.raises(HttpResponseError, match=r"sku\.name"):
        snapshots.begin_create_or_update(GROUP, "y", Snapshot(bad_sku)).result()
    with pytest.raises(PermanentError) as err:
        provider.snapshot_volume(disk_id, {})
    assert err.value.reason == "BadRequest"  # no uid: refused before any call
