# ruff: noqa: E501  (an OVF descriptor written out as exporters write it)
"""Images imported on demand (simulator as the target cloud): a raw disk file, a qcow2
converted with qemu-img, and the boot disk of an OVA made by `reconciler import-ovf`;
the VM made from the image boots from exactly the image's bytes."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from clirun import run

from reconciler.model.keys import TAG_KEY
from reconciler.providers.sim import drop_worlds, get_world
from reconciler.providers.sim.records import IMAGE, VM, VOLUME

CLOUD = """\
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {name: dc}
spec: {provider: sim, region: r, pricing: {catalog: sim-private-openstack}}
"""
VM_DOC = """\
---
apiVersion: reconciler.dev/v1alpha1
kind: VirtualMachine
metadata: {{name: {name}, namespace: default}}
spec: {{image: {image}, resources: {{vcpus: 1, memoryGiB: 2, diskGiB: 1}}}}
"""
IMAGE_DOC = """\
---
apiVersion: reconciler.dev/v1alpha1
kind: Image
metadata: {{name: {name}, namespace: default}}
spec: {{format: {fmt}, url: {url}, import: OnDemand}}
"""
OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="boot.vmdk" ovf:id="f1" ovf:size="{size}"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="d1" ovf:fileRef="f1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="app"><Info>a VM</Info><Name>app</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:ElementName>1 CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2 GB</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>disk</rasd:ElementName><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def disk_bytes(seed: bytes, size: int = 3 * 1024 * 1024) -> bytes:
    block = hashlib.sha256(seed).digest() * (64 * 1024 // 32)
    return (block * (size // len(block) + 1))[:size]


def sim_vms(state: Path) -> dict[str, str]:
    world = get_world(state)
    with world.reading():
        found = {r.tags[TAG_KEY]: r.disk for r in world.resources() if r.kind == VM}
        images = [r for r in world.resources() if r.kind == IMAGE]
    drop_worlds()
    found["images"] = str(len(images))
    return found


def test_raw_qcow2_and_ova_images_are_imported_on_demand(tmp_path: Path) -> None:
    raw = disk_bytes(b"raw image")
    (tmp_path / "disk.raw").write_bytes(raw)
    (tmp_path / "base.raw").write_bytes(disk_bytes(b"qcow2 image"))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(tmp_path / "base.raw"),
                    str(tmp_path / "disk.qcow2")], check=True)  # fmt: skip
    (tmp_path / "ova.raw").write_bytes(disk_bytes(b"ova boot disk"))
    vmdk = tmp_path / "boot.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                    "subformat=streamOptimized", str(tmp_path / "ova.raw"), str(vmdk)], check=True)  # fmt: skip
    descriptor = OVF.format(size=vmdk.stat().st_size).encode()
    ova = tmp_path / "app.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("app.ovf", descriptor), ("boot.vmdk", vmdk.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    imported = run("import-ovf", str(ova), "--name", "appliance", "--out", str(manifests))
    assert imported.code == 0, imported.err
    docs = CLOUD
    docs += IMAGE_DOC.format(name="plain", fmt="raw", url=tmp_path / "disk.raw")
    docs += IMAGE_DOC.format(name="cow", fmt="qcow2", url=tmp_path / "disk.qcow2")
    for name, image in (("a", "plain"), ("b", "plain"), ("c", "cow")):
        docs += VM_DOC.format(name=name, image=image)
    (manifests / "world.yaml").write_text(docs)
    plan = json.loads(run("plan", str(manifests), "-o", "json", state=state).out)
    images = [a for a in plan["actions"] if a["kind"] == "Image"]
    assert sorted(a["key"] for a in images) == [
        "Image/default/appliance", "Image/default/cow", "Image/default/plain"
    ]  # fmt: skip
    vm_a = next(a for a in plan["actions"] if a["key"] == "VirtualMachine/default/a")
    assert vm_a["dependsOn"] == ["create:Image/default/plain@dc"]
    applied = run("apply", str(manifests), "--auto-approve", state=state)
    assert applied.code == 0, applied.out + applied.err
    disks = sim_vms(state)
    assert disks["VirtualMachine/default/a"] == hashlib.sha256(raw).hexdigest()
    assert disks["VirtualMachine/default/b"] == disks["VirtualMachine/default/a"]
    cow = hashlib.sha256((tmp_path / "base.raw").read_bytes()).hexdigest()
    assert disks["VirtualMachine/default/c"] == cow  # qcow2 converted back to the raw bytes
    ova_boot = hashlib.sha256((tmp_path / "ova.raw").read_bytes()).hexdigest()
    assert disks["VirtualMachine/default/appliance"] == ova_boot
    assert disks["images"] == "3"  # one per Image, though two VMs share one
    assert run("plan", str(manifests), "--detailed-exitcode", state=state).code == 0


OVF_TWO_DISKS = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="boot.raw" ovf:id="f1" ovf:size="{boot}"/><File ovf:href="data.qcow2" ovf:id="f2" ovf:size="{data}"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="boot" ovf:fileRef="f1" ovf:format="http://en.wikipedia.org/wiki/Byte"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="data" ovf:fileRef="f2" ovf:format="http://www.gnome.org/~markmc/qcow-image-format.html"/>
    <Disk ovf:capacity="2" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="scratch" ovf:format="http://en.wikipedia.org/wiki/Byte"/>
  </DiskSection>
  <VirtualSystem ovf:id="db"><Info>a VM</Info><Name>db</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:ElementName>1 CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2 GB</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/boot</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:ElementName>disk 2</rasd:ElementName><rasd:HostResource>ovf:/disk/data</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:ElementName>disk 3</rasd:ElementName><rasd:HostResource>ovf:/disk/scratch</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def sim_volumes(state: Path) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """Each volume's (content sha256, size in bytes) by key, and each image's key."""
    world = get_world(state)
    with world.reading():
        volumes = {
            r.tags[TAG_KEY]: (r.disk, r.size_bytes) for r in world.resources() if r.kind == VOLUME
        }
        images = sorted(r.tags[TAG_KEY] for r in world.resources() if r.kind == IMAGE)
    drop_worlds()
    return volumes, images


def make_two_disk_ova(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """An OVA with a raw boot disk, a qcow2 data disk and a blank scratch disk."""
    boot, data = disk_bytes(b"db boot disk"), disk_bytes(b"db data disk", 2 * 1024 * 1024)
    (tmp_path / "data.raw").write_bytes(data)
    qcow = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(tmp_path / "data.raw"),
                    str(qcow)], check=True)  # fmt: skip
    descriptor = OVF_TWO_DISKS.format(boot=len(boot), data=qcow.stat().st_size).encode()
    ova = tmp_path / "db.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, blob in (
            ("db.ovf", descriptor),
            ("boot.raw", boot),
            ("data.qcow2", qcow.read_bytes()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return ova, boot, data


def test_ova_data_disks_are_copied_into_their_volumes(tmp_path: Path) -> None:
    """import-ovf's Volumes are made from the package's data disks (a blank disk stays
    blank); imports are found again instead of planned anew; copies of an Image that
    is gone are deleted."""
    ova, boot, data = make_two_disk_ova(tmp_path)
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    imported = run("import-ovf", str(ova), "--name", "db", "--out", str(manifests))
    assert imported.code == 0, imported.err
    (manifests / "cloud.yaml").write_text(CLOUD)
    plan = json.loads(run("plan", str(manifests), "-o", "json", state=state).out)
    imports = sorted(a["id"] for a in plan["actions"] if a["kind"] == "Image")
    assert imports == ["create:Image/default/db@dc", "create:Image/default/db@dc#disk:data"]
    data_vol = next(a for a in plan["actions"] if a["key"] == "Volume/default/db-data")
    assert data_vol["dependsOn"] == ["create:Image/default/db@dc#disk:data"]
    applied = run("apply", str(manifests), "--auto-approve", state=state)
    assert applied.code == 0, applied.out + applied.err
    volumes, images = sim_volumes(state)
    assert volumes["Volume/default/db-data"][0] == hashlib.sha256(data).hexdigest()
    blank = get_world(state).blobs.zeros(2)  # the simulator's record of 2 GiB of zeros
    drop_worlds()
    assert volumes["Volume/default/db-scratch"] == blank
    assert sim_vms(state)["VirtualMachine/default/db"] == hashlib.sha256(boot).hexdigest()
    assert images == ["Image/default/db", "Image/default/db"]
    # A second VM from the same Image: the imported copy is used, not planned again.
    (manifests / "more.yaml").write_text(VM_DOC.format(name="db2", image="db"))
    plan = json.loads(run("plan", str(manifests), "-o", "json", state=state).out)
    assert [a["kind"] for a in plan["actions"]] == ["VirtualMachine"]
    assert plan["actions"][0]["dependsOn"] == [] and "imageFrom" not in plan["actions"][0]
    # The Image and everything made from it removed: the copies go too.
    for path in manifests.glob("*.yaml"):
        if path.name != "cloud.yaml":
            path.unlink()
    plan = json.loads(run("plan", str(manifests), "-o", "json", state=state).out)
    gone = [a for a in plan["actions"] if a["kind"] == "Image"]
    assert [a["action"] for a in gone] == ["delete", "delete"]
    assert all("no manifest declares its Image" in a["reason"] for a in gone)
    applied = run("apply", str(manifests), "--auto-approve", state=state)
    assert applied.code == 0, applied.out + applied.err
    assert sim_volumes(state) == ({}, [])


def test_an_image_whose_file_does_not_match_its_checksum_is_not_imported(tmp_path: Path) -> None:
    """The Image's checksum (of the file at url) is verified before anything is
    imported: a replaced or corrupt file fails the apply with both digests, no image
    and no VM are made; the right file then imports."""
    good = disk_bytes(b"the image that was published")
    image = tmp_path / "disk.raw"
    image.write_bytes(disk_bytes(b"a file someone put in its place"))
    digest = hashlib.sha256(good).hexdigest()
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    doc = IMAGE_DOC.format(name="plain", fmt="raw", url=image).replace(
        "import: OnDemand}", f"import: OnDemand, checksum: 'sha256:{digest}'}}"
    )
    (manifests / "world.yaml").write_text(CLOUD + doc + VM_DOC.format(name="a", image="plain"))
    refused = run("apply", str(manifests), "--auto-approve", state=state)
    assert refused.code != 0
    said = refused.out + refused.err
    assert f"its manifest says {digest}; not imported" in said, said
    assert sim_vms(state) == {"images": "0"}
    image.write_bytes(good)
    applied = run("apply", str(manifests), "--auto-approve", state=state)
    assert applied.code == 0, applied.out + applied.err
    assert sim_vms(state)["VirtualMachine/default/a"] == digest


def test_a_package_disk_is_checked_against_its_manifest_digest_and_size(tmp_path: Path) -> None:
    import pytest

    from reconciler.executor.images import bucket_reader, raw_disk
    from reconciler.model.errors import PermanentError

    data = disk_bytes(b"data disk", 1024 * 1024)
    (tmp_path / "data.raw").write_bytes(data)
    disk = {"name": "data", "url": str(tmp_path / "data.raw"), "format": "raw",
            "sha256": hashlib.sha256(data).hexdigest(), "sizeBytes": len(data)}  # fmt: skip
    image = {"key": "Image/default/app", "format": "ovf", "url": "app.ovf", "disk": "data"}
    work = tmp_path / "work"
    work.mkdir()
    assert raw_disk({**image, "disks": [disk]}, work, bucket_reader({}, {})).read_bytes() == data
    for wrong in ({"sha256": "0" * 64}, {"sizeBytes": len(data) + 1}):
        with pytest.raises(PermanentError, match="its manifest says") as refused:
            raw_disk({**image, "disks": [{**disk, **wrong}]}, work, bucket_reader({}, {}))
        assert refused.value.reason == "ChecksumMismatch"


def test_an_image_in_a_declared_bucket_is_read_from_its_copies(tmp_path: Path) -> None:
    """url: bucket:<Bucket>/<key> reads the image from the Bucket's copies, the target
    cloud's first (no egress), going on to the next copy where it is missing."""
    from reconciler.model.specs import CloudSpec, Pricing
    from reconciler.providers.base import ProviderContext
    from reconciler.providers.sim import SimProvider

    def sim(cloud: str) -> SimProvider:
        spec = CloudSpec(cloud, "sim", pricing=Pricing(catalog="sim-private-openstack"))
        return SimProvider(spec, ProviderContext(state_dir=state))

    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    store = CLOUD.replace("name: dc", "name: store")
    bucket = """\
---
apiVersion: reconciler.dev/v1alpha1
kind: Bucket
metadata: {name: images, namespace: default}
spec: {clouds: [dc, store], copies: 2, driftPolicy: Ignore}
"""
    (manifests / "world.yaml").write_text(CLOUD + "---\n" + store + bucket)
    assert run("apply", str(manifests), "--auto-approve", state=state).code == 0
    (tmp_path / "base.raw").write_bytes(disk_bytes(b"image in a bucket"))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(tmp_path / "base.raw"),
                    str(tmp_path / "app.qcow2")], check=True)  # fmt: skip
    qcow2 = (tmp_path / "app.qcow2").read_bytes()
    holder = sim("store")
    (copy,) = holder.list_managed().buckets
    holder.put_object(copy.external_id, "os/app.qcow2", [qcow2], {})  # only on store
    drop_worlds()
    image = IMAGE_DOC.format(name="app", fmt="qcow2", url="bucket:images/os/app.qcow2")
    digest = hashlib.sha256(qcow2).hexdigest()
    image = image.replace("import: OnDemand}", f"import: OnDemand, checksum: 'sha256:{digest}'}}")
    vm = VM_DOC.format(name="a", image="app").replace(
        "diskGiB: 1}", "diskGiB: 1}, placement: {cloud: dc}"
    )
    (manifests / "image.yaml").write_text(image + vm)
    planned = run("plan", str(manifests), "-o", "json", state=state)
    assert planned.code == 0, planned.err
    (action,) = [a for a in json.loads(planned.out)["actions"] if a["kind"] == "Image"]
    copies = action["params"]["image"]["bucketCopies"]["images"]
    assert [c["cloud"] for c in copies] == ["dc", "store"]  # the target cloud's copy first
    applied = run("apply", str(manifests), "--auto-approve", state=state)
    assert applied.code == 0, applied.out + applied.err
    base = hashlib.sha256((tmp_path / "base.raw").read_bytes()).hexdigest()
    assert sim_vms(state)["VirtualMachine/default/a"] == base
