"""OpenStack driver behaviour the conformance suite does not cover.

Nova/Cinder/Glance: the HTTP-boundary fake (tests/servers/fake_openstack.py); Swift: a
REAL all-in-one (tests/servers/swift.py). See docs/providers/openstack.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from urllib.error import HTTPError

import pytest
from conformance.targets.openstack import (
    IMAGE,
    make_cloud,
    make_provider,
    reset_backend,
    sdk_connection,
)
from openstack import exceptions as sdk_exceptions
from servers.fake_openstack import FakeOpenStack
from servers.swift import swift_server

from reconciler.model.errors import CapacityError, PermanentError, TransientError
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import OfferSpec, PowerState, Pricing
from reconciler.providers.base import (
    BucketRequest,
    ImageRequest,
    ProviderContext,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)
from reconciler.providers.openstack import OpenStackProvider


@pytest.fixture
def fake() -> Iterator[FakeOpenStack]:
    backend = reset_backend()
    yield backend
    reset_backend()


def tags(kind: str, name: str) -> dict[str, str]:
    return ownership_tags("reconciler", ResourceKey(kind, "ns", name), f"uid-{kind}-{name}")


def vm_request(name: str, instance_type: str = "m1.small") -> VMRequest:
    return VMRequest(name, instance_type, IMAGE, PowerState.RUNNING, tags("VirtualMachine", name))


def swift_head(name: str) -> dict[str, str]:
    swift = swift_server()
    request = urllib.request.Request(
        f"{swift.storage_url}/{name}", method="HEAD", headers={"X-Auth-Token": swift.token()}
    )
    with urllib.request.urlopen(request) as response:
        return {k.lower(): v for k, v in response.headers.items()}


def swift_put_object(container: str, obj: str, data: bytes) -> None:
    swift = swift_server()
    request = urllib.request.Request(
        f"{swift.storage_url}/{container}/{obj}",
        data=data,
        method="PUT",
        headers={"X-Auth-Token": swift.token()},
    )
    urllib.request.urlopen(request).close()


def test_offers_are_priced_flavors_with_novas_sizes(fake: FakeOpenStack) -> None:
    inline = OfferSpec(name="m1.unpriced", vcpus=99, memory_gib=99.0, price_per_hour=0.01)
    pricing = Pricing(catalog="sim-private-openstack", offers=(inline,))
    cloud = dataclasses.replace(make_cloud(fake), pricing=pricing)
    provider = OpenStackProvider(cloud, ProviderContext(credentials=_creds(fake)))
    offers = {o.name: o for o in provider.offers()}
    # catalog entries without a Nova flavor (m1.2xlarge, c1.large, g1.gpu...) are not offered
    assert set(offers) == {
        "m1.tiny",
        "m1.small",
        "m1.medium",
        "m1.large",
        "m1.xlarge",
        "m1.unpriced",
    }
    assert (offers["m1.unpriced"].vcpus, offers["m1.unpriced"].memory_gib) == (1, 1.0)
    assert offers["m1.tiny"].memory_gib == 0.5 and offers["m1.tiny"].price_as_of
    # without the inline price the flavor has no price and is not offered
    assert "m1.unpriced" not in {o.name for o in make_provider(fake).offers()}


def _creds(fake: FakeOpenStack) -> dict[str, str]:
    acct = fake.account
    return {"username": acct.username, "password": acct.password, "projectName": acct.project}


def test_resize_is_confirmed_and_metadata_keys_are_encoded(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    vm = provider.create_vm(vm_request("web"))
    stored = fake.state.servers[vm.external_id].body["metadata"]
    assert stored["reconciler.dev:uid"] == "uid-VirtualMachine-web"  # Nova refuses "/"
    assert all("/" not in key for key in stored)
    resized = provider.update_vm(vm.external_id, VMUpdate(instance_type="m1.large"))
    assert (resized.instance_type, resized.vcpus, resized.memory_gib) == ("m1.large", 4, 8.0)
    assert fake.state.servers[vm.external_id].body["status"] == "ACTIVE"
    actions = [p for m, p in fake.state.requests if p.endswith("/action")]
    assert len(actions) == 2  # resize, then confirmResize
    # stopped resize stays stopped after the confirm
    provider.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
    again = provider.update_vm(vm.external_id, VMUpdate(instance_type="m1.medium"))
    assert (again.instance_type, again.power_state, again.price_per_hour) == (
        "m1.medium",
        PowerState.STOPPED,
        0.0,
    )


def test_no_valid_host_is_capacity_and_the_error_server_is_removed(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    fake.no_valid_host()
    with pytest.raises(CapacityError, match="No valid host"):
        provider.create_vm(vm_request("big", "m1.xlarge"))
    assert fake.state.servers == {}
    assert provider.create_vm(vm_request("big", "m1.xlarge")).instance_type == "m1.xlarge"


def test_unknown_instance_type_and_image_are_permanent(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    with pytest.raises(PermanentError) as err:
        provider.create_vm(vm_request("x", "g1.gpu"))  # priced, but no such flavor
    assert err.value.reason == "UnknownInstanceType"
    bad_image = VMRequest(
        "y", "m1.small", "no-such-image", PowerState.RUNNING, tags("VirtualMachine", "y")
    )
    with pytest.raises(PermanentError) as err:
        provider.create_vm(bad_image)
    assert err.value.reason == "ImageNotFound"


def test_volume_attach_extend_detach(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    vm = provider.create_vm(vm_request("db"))
    vol = provider.create_volume(VolumeRequest("data", 10, "ssd", tags("Volume", "data")))
    assert (vol.size_gib, vol.volume_class, vol.attached_to) == (10, "ssd", None)
    attached = provider.update_volume(vol.external_id, None, vm.external_id, False)
    assert attached.attached_to == vm.external_id
    assert vol.external_id in fake.state.servers[vm.external_id].attachments
    assert provider.update_volume(vol.external_id, None, vm.external_id, False) == attached
    with pytest.raises(PermanentError) as err:
        provider.delete_volume(vol.external_id)
    assert err.value.reason == "VolumeInUse"
    detached = provider.update_volume(vol.external_id, 20, None, True)
    assert (detached.size_gib, detached.attached_to) == (20, None)
    with pytest.raises(PermanentError) as err:
        provider.update_volume(vol.external_id, 5, None, False)
    assert err.value.reason == "VolumeShrink"
    standard = provider.create_volume(VolumeRequest("logs", 1, "standard", tags("Volume", "logs")))
    assert standard.volume_class == "__DEFAULT__"  # the cloud's default type
    provider.delete_volume(vol.external_id)
    provider.delete_volume(vol.external_id)
    assert [v.external_id for v in provider.list_managed().volumes] == [standard.external_id]


def test_swift_versioning_and_metadata_on_real_swift(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    bucket = provider.create_bucket(BucketRequest("photos", True, tags("Bucket", "photos")))
    assert bucket.versioning and bucket.tags == tags("Bucket", "photos")
    headers = swift_head("photos")
    assert headers["x-versions-enabled"].lower() == "true"
    assert headers["x-container-meta-reconciler.dev--uid"] == "uid-Bucket-photos"
    swift_put_object("photos", "a.txt", b"one")
    swift_put_object("photos", "a.txt", b"two")
    swift = swift_server()
    request = urllib.request.Request(
        f"{swift.storage_url}/photos?format=json&versions",
        headers={"X-Auth-Token": swift.token()},
    )
    with urllib.request.urlopen(request) as response:
        assert len(json.loads(response.read())) == 2  # both versions kept
    with pytest.raises(PermanentError) as err:
        provider.delete_bucket("photos")
    assert err.value.reason == "BucketNotEmpty"
    assert provider.update_bucket("photos", False).versioning is False
    provider.forget("photos")
    assert provider.list_managed().buckets == ()
    assert "x-container-meta-reconciler.dev--owner" not in swift_head("photos")
    with pytest.raises(PermanentError) as err:
        provider.create_bucket(BucketRequest("photos", False, tags("Bucket", "other")))
    assert err.value.reason == "BucketAlreadyExists"


def test_wrong_password_is_a_clear_error_naming_the_cloud(fake: FakeOpenStack) -> None:
    wrong = {**_creds(fake), "password": "hunter2-wrong"}
    provider = OpenStackProvider(make_cloud(fake), ProviderContext(credentials=wrong))
    with pytest.raises(PermanentError) as err:
        provider.list_managed()
    assert err.value.reason == "Unauthorized"
    assert "openstack-test" in str(err.value) and "hunter2" not in str(err.value)
    missing = OpenStackProvider(make_cloud(fake), ProviderContext(credentials={"username": "u"}))
    with pytest.raises(PermanentError, match="password, projectName") as err:
        missing.offers()
    assert err.value.reason == "MissingCredentials" and "openstack-test" in str(err.value)


def test_application_credentials_and_settings_validation(fake: FakeOpenStack) -> None:
    app_id, secret = fake.account.app_credential
    creds = {"applicationCredentialId": app_id, "applicationCredentialSecret": secret}
    provider = OpenStackProvider(
        make_cloud(fake, network="private"), ProviderContext(credentials=creds)
    )
    assert provider.create_vm(vm_request("app")).instance_type == "m1.small"
    with pytest.raises(PermanentError) as err:
        OpenStackProvider(make_cloud(fake, flavour="x"), ProviderContext())
    assert err.value.reason == "InvalidCloud" and "openstack-test" in str(err.value)
    with pytest.raises(PermanentError) as err:
        make_provider(fake, network="nope").create_vm(vm_request("n"))
    assert err.value.reason == "InvalidCloud"


def test_forget_server_removes_only_our_metadata(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    vm = provider.create_vm(vm_request("keep"))
    provider.update_vm(vm.external_id, VMUpdate(tags={"team": "blue"}))
    provider.forget(vm.external_id)
    assert fake.state.servers[vm.external_id].body["metadata"] == {"team": "blue"}
    assert provider.observe_vm(vm.external_id) is None
    provider.forget(vm.external_id)  # already not ours: success


def test_concurrent_calls_share_one_connection(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            provider.create_vm(vm_request(f"t{i}"))
            provider.list_managed()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(provider.list_managed().vms) == 6
    tokens = [p for m, p in fake.state.requests if p.endswith("/auth/tokens")]
    assert len(tokens) == 1


def test_swift_head_of_absent_container_is_none(fake: FakeOpenStack) -> None:
    with pytest.raises(HTTPError):
        swift_head("absent")
    provider = make_provider(fake)
    provider.delete_bucket("absent")
    provider.forget("absent")


# -- Cinder snapshots ------------------------------------------------------------------------
def test_snapshot_metadata_force_lost_response_and_dependent_volume(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    vm = provider.create_vm(vm_request("db2"))
    vol = provider.create_volume(VolumeRequest("data2", 2, "ssd", tags("Volume", "data2")))
    provider.update_volume(vol.external_id, None, vm.external_id, False)
    snap_tags = tags("Volume", "snap1")
    fake.lose_next_post()  # the snapshot is made, its response lost
    with pytest.raises(TransientError):
        provider.snapshot_volume(vol.external_id, snap_tags)
    snap_id = provider.snapshot_volume(vol.external_id, snap_tags)  # in-use: sent with force
    assert list(fake.state.snapshots) == [snap_id]
    stored = fake.state.snapshots[snap_id]
    assert stored["metadata"]["reconciler.dev:uid"] == "uid-Volume-snap1"
    assert (stored["status"], stored["size"], stored["volume_id"]) == (
        "available",
        2,
        vol.external_id,
    )
    assert provider.list_snapshots(vol.external_id) == [snap_id]
    provider.update_volume(vol.external_id, None, None, True)
    with pytest.raises(PermanentError) as err:  # Cinder: a volume with snapshots stays
        provider.delete_volume(vol.external_id)
    assert err.value.reason == "BadRequest"
    provider.delete_snapshot(snap_id)
    assert fake.state.snapshots == {} and provider.list_snapshots(vol.external_id) == []
    provider.delete_volume(vol.external_id)
    with pytest.raises(PermanentError) as err:
        provider.snapshot_volume(vol.external_id, tags("Volume", "snap2"))
    assert err.value.reason == "NotFound"


def test_the_fake_checks_snapshots_as_cinder_does(fake: FakeOpenStack) -> None:
    conn = sdk_connection(fake)
    with pytest.raises(sdk_exceptions.NotFoundException, match="could not be found"):
        conn.block_storage.create_snapshot(volume_id="no-such-volume", name="s")
    provider = make_provider(fake)
    vm = provider.create_vm(vm_request("db3"))
    vol = provider.create_volume(VolumeRequest("data3", 1, "ssd", tags("Volume", "data3")))
    provider.update_volume(vol.external_id, None, vm.external_id, False)
    with pytest.raises(sdk_exceptions.BadRequestException, match="status must be available"):
        conn.block_storage.create_snapshot(volume_id=vol.external_id, name="no-force")
    theirs = conn.block_storage.create_snapshot(
        volume_id=vol.external_id, name="theirs", force=True, metadata={"team": "b"}
    )
    assert theirs.status == "creating"
    assert provider.list_snapshots(vol.external_id) == []  # not ours: invisible
    with pytest.raises(PermanentError) as err:
        provider.delete_snapshot(theirs.id)
    assert err.value.reason == "NotManaged" and theirs.id in fake.state.snapshots
    response = conn.block_storage.get("/snapshots/detail?bogus=1", microversion="3.65")
    assert response.status_code == 400 and "Invalid filters" in response.text


# -- Glance image import ---------------------------------------------------------------------
def image_bytes(seed: bytes, size: int) -> list[bytes]:
    """``size`` deterministic bytes in 1 MiB chunks."""
    block = hashlib.sha256(seed).digest() * (2**20 // 32)
    return [block[: min(2**20, size - start)] for start in range(0, size, 2**20)]


def uploads(fake: FakeOpenStack) -> list[tuple[str, str, int]]:
    """The fake's upload records, once the last upload's handler has finished (it sees a
    cut-off body only when the client's connection closes, a moment after the error)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with fake.state.lock:
            saving = any(i["status"] == "saving" for i in fake.state.images)
        if not saving and fake.state.uploads:
            break
        time.sleep(0.01)
    return list(fake.state.uploads)


def image_request(name: str, chunks: list[bytes]) -> ImageRequest:
    data = b"".join(chunks)
    return ImageRequest(name, len(data), hashlib.sha256(data).hexdigest(), tags("Image", name))


def test_image_import_streams_and_glance_verifies(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    chunks = image_bytes(b"disk", 3 * 2**20 + 5)
    request = image_request("img1", chunks)
    image = provider.import_image(request, iter(chunks))  # a one-shot iterator
    assert (image.size_bytes, image.sha256, image.tags) == (
        request.size_bytes,
        request.sha256,
        request.tags,
    )
    stored = next(i for i in fake.state.images if i["id"] == image.external_id)
    data = b"".join(chunks)
    assert stored["status"] == "active" and stored["visibility"] == "private"
    assert (stored["disk_format"], stored["container_format"]) == ("raw", "bare")
    assert stored["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert stored["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert stored["reconciler.dev:uid"] == "uid-Image-img1"
    assert stored["owner_specified.openstack.sha256"] == request.sha256
    assert fake.state.uploads == [(image.external_id, "chunked", 204)]
    # servers and volumes from the imported image
    vm = provider.create_vm(
        VMRequest("fromimg", "m1.tiny", image.external_id, PowerState.RUNNING, tags("VM", "fi"))
    )
    assert vm.image == image.external_id
    vol = provider.create_volume(
        VolumeRequest("fromimg", 1, "ssd", tags("Volume", "fi"), image.external_id)
    )
    raw = fake.state.volumes[vol.external_id]
    assert raw["bootable"] == "true"
    assert raw["volume_image_metadata"]["image_id"] == image.external_id
    provider.delete_image(image.external_id)
    assert provider.find_image("uid-Image-img1") is None
    provider.delete_image(image.external_id)


@pytest.mark.parametrize("how", ["other bytes", "too many", "too few"])
def test_import_mismatch_aborts_the_upload_and_leaves_nothing(
    fake: FakeOpenStack, how: str
) -> None:
    provider = make_provider(fake)
    chunks = image_bytes(b"right", 2 * 2**20)
    request = image_request("img2", chunks)
    sent = {
        "other bytes": image_bytes(b"wrong", 2 * 2**20),
        "too many": [*chunks, b"x"],
        "too few": chunks[:1],
    }[how]
    with pytest.raises(PermanentError) as err:
        provider.import_image(request, sent)
    assert err.value.reason == "ChecksumMismatch"
    assert [i["id"] for i in fake.state.images] == [i["id"] for i in fake.seed_images]
    # the upload was cut off before its end: Glance never activated the image
    assert [(mode, status) for _, mode, status in uploads(fake)] == [("chunked", -1)]
    assert provider.find_image("uid-Image-img2") is None


def test_interrupted_import_is_started_again(fake: FakeOpenStack) -> None:
    provider = make_provider(fake)
    chunks = image_bytes(b"again", 2 * 2**20)
    request = image_request("img3", chunks)

    def broken() -> Iterator[bytes]:
        yield chunks[0]
        raise ConnectionResetError("the source went away")

    with pytest.raises(TransientError):
        provider.import_image(request, broken())
    assert [status for _, _, status in uploads(fake)] == [-1]
    leftover = [i for i in fake.state.images if i.get("reconciler.dev:uid") == "uid-Image-img3"]
    assert [i["status"] for i in leftover] == ["queued"]  # Glance: back to queued
    assert provider.find_image("uid-Image-img3") is None  # not an image yet
    image = provider.import_image(request, chunks)
    assert image.external_id != leftover[0]["id"]
    assert [i["id"] for i in fake.state.images if "reconciler.dev:uid" in i] == [image.external_id]
    found = provider.find_image("uid-Image-img3")
    assert found is not None and found.external_id == image.external_id


def test_the_fake_checks_images_as_glance_nova_and_cinder_do(fake: FakeOpenStack) -> None:
    conn = sdk_connection(fake)
    queued = conn.image.create_image(
        "empty", disk_format="raw", container_format="bare", allow_duplicates=True
    )
    assert queued.status == "queued" and queued.size is None
    provider = make_provider(fake)
    with pytest.raises(PermanentError, match="not active"):
        provider.create_vm(
            VMRequest("q", "m1.tiny", queued.id, PowerState.RUNNING, tags("VM", "q"))
        )
    with pytest.raises(PermanentError, match="not active"):
        provider.create_volume(VolumeRequest("q", 1, "ssd", tags("Volume", "q"), queued.id))
    with pytest.raises(sdk_exceptions.HttpException) as err:
        conn.image.create_image(
            "ro",
            disk_format="raw",
            container_format="bare",
            allow_duplicates=True,
            meta={"status": "active"},
        )
    assert err.value.status_code == 403
    with pytest.raises(sdk_exceptions.BadRequestException, match="disk format"):
        conn.image.create_image(
            "fl", disk_format="floppy", container_format="bare", allow_duplicates=True
        )
    chunks = image_bytes(b"big", 2 * 2**20)
    big = provider.import_image(image_request("img4", chunks), chunks)
    with fake.state.lock:  # as if the image held 3 GiB: Cinder refuses a 1 GiB volume
        next(i for i in fake.state.images if i["id"] == big.external_id)["size"] = 3 * 2**30
    too_big = VolumeRequest("b", 1, "ssd", tags("Volume", "b"), big.external_id)
    with pytest.raises(PermanentError, match="larger than volume size"):
        provider.create_volume(too_big)
    image = conn.image.get_image(big.external_id)
    response = image.upload(conn.image, data=b"again")
    assert response.status_code == 409  # only a queued image takes data
