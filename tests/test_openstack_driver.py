"""OpenStack driver behaviour the conformance suite does not cover.

Nova/Cinder/Glance: the HTTP-boundary fake (tests/servers/fake_openstack.py); Swift: a
REAL all-in-one (tests/servers/swift.py). See docs/providers/openstack.md.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from collections.abc import Iterator
from urllib.error import HTTPError

import pytest
from conformance.targets.openstack import IMAGE, make_cloud, make_provider, reset_backend
from servers.fake_openstack import FakeOpenStack
from servers.swift import swift_server

from reconciler.model.errors import CapacityError, PermanentError
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.specs import OfferSpec, PowerState, Pricing
from reconciler.providers.base import (
    BucketRequest,
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
