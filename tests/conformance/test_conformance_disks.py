"""Conformance, part two: volume snapshots, disk export and image import.

Optional promises of the Provider contract (reconciler/providers/base.py), tested for
every driver that declares the capability, against the same backends as the core
suite. A driver that declares a capability and fails here fails CI; a driver that
does not declare it must refuse the calls with ``PermanentError`` reason NotSupported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import pytest

from conformance.target import ConformanceTarget
from conformance.test_conformance import capable, new_uid, tags_for, vm_request, volume_request
from reconciler.model.artifacts import DiskRef
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.specs import PowerState
from reconciler.providers.base import ImageRequest, VMRequest, VMUpdate, VolumeRequest

#: Synthetic disk bytes for imports: 1 MiB + 1 byte (not a multiple of any block size).
IMAGE_BYTES = 1024 * 1024 + 1


def digest(chunks: Iterable[bytes], limit: int | None = None) -> tuple[int, str]:
    """(bytes read, sha256 hex) of a stream, optionally of its first ``limit`` bytes."""
    sha, size = hashlib.sha256(), 0
    for chunk in chunks:
        if limit is not None:
            chunk = chunk[: max(0, limit - size)]
        sha.update(chunk)
        size += len(chunk)
        if limit is not None and size >= limit:
            break
    return size, sha.hexdigest()


def synthetic(seed: bytes, size: int = IMAGE_BYTES) -> list[bytes]:
    """Deterministic pseudo-random bytes in uneven chunks."""
    out, counter, left = [], 0, size
    while left > 0:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest() * 2048
        block = block[: min(left, 65_537)]
        out.append(block)
        left -= len(block)
        counter += 1
    return out


class Once:
    """An iterable that fails the test if iterated (a retried import must not read)."""

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("an idempotent retry read the bytes again")


def image_request(target: ConformanceTarget, uid: str, chunks: list[bytes]) -> ImageRequest:
    size, sha = digest(chunks)
    return ImageRequest(f"rc-img-{uid}", size, sha, tags_for(target, "Image", uid))


def stopped_vm(target: ConformanceTarget, image: str | None = None) -> str:
    request = vm_request(target, new_uid())
    if image is not None:
        request = VMRequest(
            request.name, request.instance_type, image, PowerState.RUNNING, request.tags
        )
    vm = target.provider.create_vm(request)
    target.provider.update_vm(vm.external_id, VMUpdate(power_state=PowerState.STOPPED))
    return vm.external_id


def assert_not_supported(call: object) -> None:
    assert callable(call)
    with pytest.raises(PermanentError) as info:
        result = call()
        if isinstance(result, Iterable):  # a generator fails when first read
            list(result)
    assert info.value.reason == "NotSupported"


def test_volume_snapshots(target: ConformanceTarget) -> None:
    provider = target.provider
    if not capable(target, Capability.VOLUME_SNAPSHOTS):
        assert_not_supported(lambda: provider.snapshot_volume("vol-absent", {}))
        return
    assert capable(target, Capability.VOLUMES)
    volume = provider.create_volume(volume_request(target, new_uid()))
    uid = new_uid()
    tags = tags_for(target, "Volume", uid)
    snap = provider.snapshot_volume(volume.external_id, tags)
    assert provider.snapshot_volume(volume.external_id, tags) == snap  # idempotent by uid
    assert snap in provider.list_snapshots(volume.external_id)
    with pytest.raises(PermanentError):
        provider.snapshot_volume("vol-does-not-exist-0", tags_for(target, "Volume", new_uid()))
    provider.delete_snapshot(snap)
    assert snap not in provider.list_snapshots(volume.external_id)
    provider.delete_snapshot(snap)  # absent is success
    provider.delete_volume(volume.external_id)


def test_disk_export(target: ConformanceTarget) -> None:
    provider = target.provider
    if not capable(target, Capability.IMAGE_EXPORT):
        assert_not_supported(lambda: provider.read_disk(DiskRef("vm", "i-absent")))
        return
    running = provider.create_vm(vm_request(target, new_uid()))
    if capable(target, Capability.STOP):
        with pytest.raises(PermanentError) as info:
            list(provider.read_disk(DiskRef("vm", running.external_id)))
        assert info.value.reason == "DiskInUse"
    vm_id = stopped_vm(target)
    ref = DiskRef("vm", vm_id)
    size = provider.disk_size(ref)
    assert size > 0
    first = digest(provider.read_disk(ref))
    assert first == digest(provider.read_disk(ref)) and first[0] == size
    known = provider.disk_sha256(ref)
    assert known in (None, first[1])
    with pytest.raises(PermanentError):
        list(provider.read_disk(DiskRef("vm", "i-does-not-exist-0")))


def test_image_import(target: ConformanceTarget) -> None:
    provider = target.provider
    if not capable(target, Capability.IMAGE_IMPORT):
        assert_not_supported(
            lambda: provider.import_image(ImageRequest("x", 1, "0" * 64, {}), [b"x"])
        )
        assert_not_supported(provider.list_images)
        return
    uid = new_uid()
    chunks = synthetic(uid.encode())
    request = image_request(target, uid, chunks)
    image = provider.import_image(request, chunks)
    assert (image.size_bytes, image.sha256) == (request.size_bytes, request.sha256)
    assert provider.import_image(request, Once()).external_id == image.external_id
    found = provider.find_image(uid)
    assert found is not None and found.external_id == image.external_id
    listed = {i.external_id: i for i in provider.list_images()}
    assert image.external_id in listed  # what the planner and Image status see
    assert (listed[image.external_id].sha256, listed[image.external_id].key) == (
        request.sha256,
        found.key,
    )
    # Bytes that do not match what the request promised leave nothing behind.
    bad_uid = new_uid()
    bad = image_request(target, bad_uid, chunks)
    with pytest.raises(PermanentError) as info:
        provider.import_image(bad, synthetic(b"other bytes"))
    assert info.value.reason == "ChecksumMismatch"
    assert provider.find_image(bad_uid) is None
    # A VM made from the image boots from those bytes.
    vm_id = stopped_vm(target, image.external_id)
    if capable(target, Capability.IMAGE_EXPORT):
        read = digest(provider.read_disk(DiskRef("vm", vm_id)), request.size_bytes)
        assert read == (request.size_bytes, request.sha256)
    if capable(target, Capability.VOLUMES):
        vol_uid = new_uid()
        base = volume_request(target, vol_uid)
        volume = provider.create_volume(
            VolumeRequest(base.name, 1, base.volume_class, base.tags, image.external_id)
        )
        if capable(target, Capability.IMAGE_EXPORT):
            read = digest(provider.read_disk(DiskRef("volume", volume.external_id)), IMAGE_BYTES)
            assert read == (request.size_bytes, request.sha256)
        provider.delete_volume(volume.external_id)
    provider.delete_vm(vm_id)
    provider.delete_image(image.external_id)
    assert provider.find_image(uid) is None
    assert image.external_id not in {i.external_id for i in provider.list_images()}
    provider.delete_image(image.external_id)  # absent is success


def test_disk_export_then_import_roundtrip(target: ConformanceTarget) -> None:
    """Within one cloud: a stopped VM's disk read out and imported again is the same."""
    provider = target.provider
    if not (capable(target, Capability.IMAGE_EXPORT) and capable(target, Capability.IMAGE_IMPORT)):
        pytest.skip(f"{target.name} does not declare both image-export and image-import")
    vm_id = stopped_vm(target)
    ref = DiskRef("vm", vm_id)
    size, sha = digest(provider.read_disk(ref))
    uid = new_uid()
    request = ImageRequest(f"rc-img-{uid}", size, sha, tags_for(target, "Image", uid))
    image = provider.import_image(request, provider.read_disk(ref))
    assert image.sha256 == sha
    copy = stopped_vm(target, image.external_id)
    assert digest(provider.read_disk(DiskRef("vm", copy)), size) == (size, sha)
