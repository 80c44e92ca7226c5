"""The provider conformance suite: every promise of the Provider contract, per driver.

Each test runs once per known provider (see conftest.py) against the driver's real
backend or its HTTP-boundary fake. What each promise means is in docs/conformance.md.
Assertions filter by the test's own uids, so a session-shared server stays usable.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from conformance.target import ERROR_KINDS, ConformanceTarget, ErrorKind
from reconciler.model.cloud import Capability
from reconciler.model.errors import CapacityError, PermanentError, ProviderError, TransientError
from reconciler.model.keys import TAG_UID, ResourceKey, ownership_tags
from reconciler.model.observed import Observed, ObservedVM
from reconciler.model.specs import PowerState
from reconciler.providers.base import BucketRequest, VMRequest, VMUpdate, VolumeRequest
from reconciler.providers.registry import KNOWN_PROVIDERS

TARGETS_DIR = Path(__file__).parent / "targets"


# -- request helpers ---------------------------------------------------------------------
def new_uid() -> str:
    """A fresh uid, lowercase hex: valid in every backend's names (S3 buckets too)."""
    return uuid.uuid4().hex[:12]


def tags_for(target: ConformanceTarget, kind: str, uid: str) -> dict[str, str]:
    owner = target.provider.context.owner
    return ownership_tags(owner, ResourceKey(kind, "conformance", f"r-{uid}"), uid)


def vm_request(target: ConformanceTarget, uid: str, itype: int = 0) -> VMRequest:
    tags = tags_for(target, "VirtualMachine", uid)
    instance_type = target.instance_types[itype]
    return VMRequest(f"rc-{uid}", instance_type, target.image, PowerState.RUNNING, tags)


def volume_request(target: ConformanceTarget, uid: str, size_gib: int = 1) -> VolumeRequest:
    tags = tags_for(target, "Volume", uid)
    return VolumeRequest(f"rc-{uid}", size_gib, target.volume_class, tags)


def bucket_request(target: ConformanceTarget, uid: str) -> BucketRequest:
    return BucketRequest(f"rc-conf-{uid}", False, tags_for(target, "Bucket", uid))


def managed_vms(target: ConformanceTarget, uid: str) -> list[ObservedVM]:
    return [vm for vm in target.provider.list_managed().vms if vm.uid == uid]


def managed_ids(target: ConformanceTarget) -> set[str]:
    """External ids of every managed VM, volume and bucket."""
    inventory = target.provider.list_managed()
    records: list[Observed] = [*inventory.vms, *inventory.volumes, *inventory.buckets]
    return {record.external_id for record in records}


def capable(target: ConformanceTarget, capability: Capability) -> bool:
    return capability in target.provider.describe().capabilities


def offer_of(target: ConformanceTarget, instance_type: str) -> tuple[int, float, float]:
    """(vcpus, memory GiB, $/hour) of an instance type."""
    for offer in target.provider.offers():
        if offer.name == instance_type:
            return offer.vcpus, offer.memory_gib, offer.price_per_hour
    raise AssertionError(f"{instance_type} is not offered")


# -- the promises ------------------------------------------------------------------------
def test_every_provider_has_a_target() -> None:
    missing = [n for n in KNOWN_PROVIDERS if not (TARGETS_DIR / f"{n}.py").is_file()]
    assert not missing, f"providers without tests/conformance/targets/<name>.py: {missing}"


def test_describe_and_offers(target: ConformanceTarget) -> None:
    provider, name = target.provider, target.provider.cloud.name
    info = provider.describe()
    assert (info.name, info.provider) == (name, target.name)
    assert isinstance(info.capabilities, frozenset)
    assert all(isinstance(c, Capability) for c in info.capabilities)
    offers = provider.offers()
    assert offers, "offers() is empty"
    for offer in offers:
        assert offer.cloud == name, offer
        assert offer.vcpus > 0 and offer.memory_gib > 0 and offer.price_per_hour > 0, offer
        assert offer.price_as_of and offer.price_source, offer
    names = {offer.name for offer in offers}
    assert set(target.instance_types) <= names


def test_create_is_idempotent(target: ConformanceTarget) -> None:
    uid, provider = new_uid(), target.provider
    request = vm_request(target, uid)
    first = provider.create_vm(request)
    second = provider.create_vm(request)
    assert second.external_id == first.external_id
    assert [vm.external_id for vm in managed_vms(target, uid)] == [first.external_id]
    vm = provider.observe_vm(first.external_id)
    assert vm is not None and vm.cloud == provider.cloud.name
    assert request.tags.items() <= vm.tags.items()
    vcpus, memory, _ = offer_of(target, request.instance_type)
    assert (vm.instance_type, vm.vcpus, vm.memory_gib) == (request.instance_type, vcpus, memory)
    assert vm.power_state == PowerState.RUNNING and vm.price_per_hour > 0


def test_lost_response_retry_finds_the_vm(target: ConformanceTarget) -> None:
    uid, provider = new_uid(), target.provider
    request = vm_request(target, uid)
    with pytest.raises(TransientError), target.lose_next_response():
        provider.create_vm(request)
    made = managed_vms(target, uid)
    assert len(made) == 1, "the lost create must have taken effect"
    retried = provider.create_vm(request)
    assert retried.external_id == made[0].external_id
    assert len(managed_vms(target, uid)) == 1
    found = provider.find_by_uid(uid)
    assert found is not None and found.external_id == retried.external_id


def test_reads_never_mutate(target: ConformanceTarget) -> None:
    uid, provider = new_uid(), target.provider
    vm = provider.create_vm(vm_request(target, uid))
    before = target.backend_state()
    provider.describe()
    provider.offers()
    provider.list_managed()
    assert provider.observe_vm(vm.external_id) is not None
    assert provider.observe_vm("absent-id") is None
    assert provider.find_by_uid(uid) is not None
    assert provider.find_by_uid("nope") is None
    assert target.backend_state() == before


def test_update_converges(target: ConformanceTarget) -> None:
    uid, provider = new_uid(), target.provider
    vm_id = provider.create_vm(vm_request(target, uid)).external_id
    if capable(target, Capability.RESIZE):
        bigger = target.instance_types[1]
        vcpus, memory, _ = offer_of(target, bigger)
        for _ in range(2):
            resized = provider.update_vm(vm_id, VMUpdate(instance_type=bigger))
            assert (resized.instance_type, resized.vcpus, resized.memory_gib) == (
                bigger,
                vcpus,
                memory,
            )
        observed = provider.observe_vm(vm_id)
        assert observed is not None and observed.instance_type == bigger
    if capable(target, Capability.STOP):
        for _ in range(2):
            stopped = provider.update_vm(vm_id, VMUpdate(power_state=PowerState.STOPPED))
            assert stopped.power_state == PowerState.STOPPED
        observed = provider.observe_vm(vm_id)
        assert observed is not None and observed.power_state == PowerState.STOPPED
        started = provider.update_vm(vm_id, VMUpdate(power_state=PowerState.RUNNING))
        assert started.power_state == PowerState.RUNNING
    provider.delete_vm(vm_id)
    with pytest.raises(PermanentError):
        provider.update_vm(vm_id, VMUpdate(power_state=PowerState.RUNNING))


def test_delete_is_idempotent(target: ConformanceTarget) -> None:
    uid, provider = new_uid(), target.provider
    vm_id = provider.create_vm(vm_request(target, uid)).external_id
    provider.delete_vm(vm_id)
    assert managed_vms(target, uid) == []
    assert provider.observe_vm(vm_id) is None
    provider.delete_vm(vm_id)
    provider.delete_vm("never-existed-0000")


def test_foreign_vm_is_invisible_and_untouched(target: ConformanceTarget) -> None:
    provider = target.provider
    ours = provider.create_vm(vm_request(target, new_uid()))
    foreign = target.make_foreign_vm()
    state = target.foreign_vm_state(foreign)
    assert state is not None
    assert foreign not in {vm.external_id for vm in provider.list_managed().vms}
    assert provider.observe_vm(foreign) is None
    for uid in (ours.uid, "", "nope"):
        found = provider.find_by_uid(uid)
        assert found is None or found.external_id != foreign
    with pytest.raises(PermanentError):
        provider.update_vm(foreign, VMUpdate(power_state=PowerState.STOPPED))
    try:
        provider.delete_vm(foreign)
    except PermanentError as err:
        assert not isinstance(err, CapacityError)
    provider.forget(foreign)
    assert target.foreign_vm_state(foreign) == state


def test_forget_keeps_the_vm(target: ConformanceTarget) -> None:
    uid, provider = new_uid(), target.provider
    vm_id = provider.create_vm(vm_request(target, uid)).external_id
    provider.forget(vm_id)
    assert target.foreign_vm_state(vm_id) is not None, "forget must not delete the VM"
    assert managed_vms(target, uid) == []
    assert provider.observe_vm(vm_id) is None and provider.find_by_uid(uid) is None
    provider.forget(vm_id)
    provider.forget("never-existed-0000")


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_error_mapping(target: ConformanceTarget, kind: ErrorKind) -> None:
    """The next backend call fails during create_vm (the call every kind can hit)."""
    if kind in target.unsupported_errors:
        pytest.skip(f"{target.name} cannot return {kind}: {target.unsupported_errors[kind]}")
    uid, provider = new_uid(), target.provider
    before = managed_ids(target)
    with pytest.raises(ProviderError) as err, target.fail_next_call(kind):
        provider.create_vm(vm_request(target, uid))
    check_mapped(target, kind, err.value)
    assert managed_ids(target) == before, "a failed create must not leave anything"
    assert provider.find_by_uid(uid) is None


def check_mapped(target: ConformanceTarget, kind: ErrorKind, error: ProviderError) -> None:
    """The error class, retry_after, Cloud name and secrecy of one mapped error."""
    message = str(error)
    assert target.provider.cloud.name in message, message
    assert not any(secret in message for secret in target.secrets if secret)
    if kind in ("throttle", "unavailable"):
        assert isinstance(error, TransientError) and error.retry_after >= 0
    elif kind == "capacity":
        assert isinstance(error, CapacityError)
    else:
        assert isinstance(error, PermanentError) and not isinstance(error, CapacityError)


def test_volumes(target: ConformanceTarget) -> None:
    if not capable(target, Capability.VOLUMES):
        pytest.skip(f"{target.name} declares no '{Capability.VOLUMES}' capability")
    uid, provider = new_uid(), target.provider
    vm_id = provider.create_vm(vm_request(target, new_uid())).external_id
    volume = provider.create_volume(volume_request(target, uid))
    assert provider.create_volume(volume_request(target, uid)).external_id == volume.external_id
    vol_id = volume.external_id
    assert [
        v.external_id for v in provider.list_managed().volumes if v.tags.get(TAG_UID) == uid
    ] == [vol_id]
    for _ in range(2):
        attached = provider.update_volume(vol_id, None, vm_id, False)
        assert attached.attached_to == vm_id
    assert provider.update_volume(vol_id, None, None, True).attached_to is None
    try:
        grown = provider.update_volume(vol_id, volume.size_gib + 1, None, False)
    except PermanentError as err:  # a backend that cannot grow says so, and changes nothing
        assert not isinstance(err, CapacityError) and target.provider.cloud.name in str(err)
    else:
        assert grown.size_gib == volume.size_gib + 1
    provider.delete_volume(vol_id)
    assert vol_id not in {v.external_id for v in provider.list_managed().volumes}
    provider.delete_volume(vol_id)


def test_buckets(target: ConformanceTarget) -> None:
    if not capable(target, Capability.BUCKETS):
        pytest.skip(f"{target.name} declares no '{Capability.BUCKETS}' capability")
    uid, provider = new_uid(), target.provider
    bucket = provider.create_bucket(bucket_request(target, uid))
    assert provider.create_bucket(bucket_request(target, uid)).external_id == bucket.external_id
    assert not bucket.versioning
    if capable(target, Capability.BUCKET_VERSIONING):
        for _ in range(2):
            assert provider.update_bucket(bucket.external_id, True).versioning
    listed = [b for b in provider.list_managed().buckets if b.external_id == bucket.external_id]
    assert len(listed) == 1 and listed[0].tags.get(TAG_UID) == uid
    found = provider.find_by_uid(uid)
    assert found is not None and found.external_id == bucket.external_id
    provider.delete_bucket(bucket.external_id)
    assert bucket.external_id not in {b.external_id for b in provider.list_managed().buckets}
    provider.delete_bucket(bucket.external_id)


def test_no_secret_in_reprs(target: ConformanceTarget) -> None:
    provider = target.provider
    provider.create_vm(vm_request(target, new_uid()))
    shown = [repr(provider), repr(provider.describe()), repr(provider.offers())]
    shown += [repr(provider.list_managed()), repr(provider.cloud)]
    for secret in (s for s in target.secrets if s):
        assert not any(secret in text for text in shown), "a secret leaked into a repr"
