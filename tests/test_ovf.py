"""OVF/OVA packages: the reader (OVF 1.x and 2.x, .ovf, .ova, directories, .mf digests),
located errors for bad input, and `reconciler import-ovf` writing manifests that
`reconciler validate` accepts. Every package is generated here."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import yaml
from clirun import run

from reconciler.cli.ovf_cmd import exact_gib, gib_up, render, slug
from reconciler.manifest import load_desired
from reconciler.manifest.ovf import file_chunks, read_package
from reconciler.manifest.ovfxml import disk_format, units
from reconciler.model.errors import ManifestError
from reconciler.model.keys import ResourceKey

GIB = 2**30
OVF1 = (
    'xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
    'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" '
    'xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
    'CIM_ResourceAllocationSettingData" '
    'xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
    'CIM_VirtualSystemSettingData" '
    'xmlns:vmw="http://www.vmware.com/schema/ovf"'
)
OVF2 = (
    'xmlns="http://schemas.dmtf.org/ovf/envelope/2" '
    'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2" '
    'xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
    'CIM_ResourceAllocationSettingData" '
    'xmlns:sasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
    'CIM_StorageAllocationSettingData" '
    'xmlns:epasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
    'CIM_EthernetPortAllocationSettingData"'
)
VMDK = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
QCOW2 = "http://www.gnome.org/~markmc/qcow-image-format.html"
POLICY = (
    "apiVersion: reconciler.dev/v1alpha1\nkind: BrokerPolicy\n"
    "metadata:\n  name: cheap\n  namespace: team-a\nspec: {}\n"
)
BOOT = os.urandom(3000)
DATA = os.urandom(5000)


def item(rtype: int, body: str, tag: str = "Item", prefix: str = "rasd", attrs: str = "") -> str:
    return (
        f"      <{tag}{attrs}>\n        {body}\n"
        f"        <{prefix}:ResourceType>{rtype}</{prefix}:ResourceType>\n      </{tag}>\n"
    )


def cpu(n: int, attrs: str = "") -> str:
    return item(3, f"<rasd:VirtualQuantity>{n}</rasd:VirtualQuantity>", attrs=attrs)


def memory(quantity: int, units_text: str = "byte * 2^20") -> str:
    body = (
        f"<rasd:AllocationUnits>{units_text}</rasd:AllocationUnits>\n"
        f"        <rasd:VirtualQuantity>{quantity}</rasd:VirtualQuantity>"
    )
    return item(4, body)


def disk(disk_id: str) -> str:
    return item(17, f"<rasd:HostResource>ovf:/disk/{disk_id}</rasd:HostResource>")


def nic(network: str) -> str:
    return item(10, f"<rasd:Connection>{network}</rasd:Connection>")


def system(sys_id: str, name: str, hardware: str, os_section: str = "") -> str:
    return (
        f'  <VirtualSystem ovf:id="{sys_id}">\n    <Info>A virtual machine</Info>\n'
        f"    <Name>{name}</Name>\n{os_section}"
        "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n"
        f"{hardware}    </VirtualHardwareSection>\n  </VirtualSystem>\n"
    )


UBUNTU = (
    '    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest">\n'
    "      <Info>Guest OS</Info>\n      <Description>Ubuntu Linux (64-bit)</Description>\n"
    "    </OperatingSystemSection>\n"
)


def vmware_ovf(systems: str | None = None, mem: str | None = None) -> str:
    """An OVF 1.0 descriptor as VMware's ovftool exports it: a boot disk (16 GiB in
    'byte * 2^30'), a data disk (1.5 GiB in bytes), a blank disk and one NIC."""
    hardware = cpu(2) + (mem or memory(4096)) + disk("vmdisk1") + disk("vmdisk2") + disk("scratch")
    hardware += nic("VM Network")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Envelope vmw:buildId="build-19003" {OVF1}>\n'
        "  <References>\n"
        f'    <File ovf:href="web-disk1.vmdk" ovf:id="file1" ovf:size="{len(BOOT)}"/>\n'
        f'    <File ovf:href="web-disk2.vmdk" ovf:id="file2" ovf:size="{len(DATA)}"/>\n'
        "  </References>\n"
        "  <DiskSection>\n    <Info>Virtual disk information</Info>\n"
        '    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" '
        f'ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{VMDK}"/>\n'
        f'    <Disk ovf:capacity="{3 * GIB // 2}" ovf:diskId="vmdisk2" ovf:fileRef="file2" '
        f'ovf:format="{VMDK}"/>\n'
        '    <Disk ovf:capacity="4" ovf:capacityAllocationUnits="byte * 2^30" '
        'ovf:diskId="scratch"/>\n'
        "  </DiskSection>\n"
        '  <NetworkSection>\n    <Info>Networks</Info>\n    <Network ovf:name="VM Network">'
        "\n      <Description>The VM Network network</Description>\n    </Network>\n"
        "  </NetworkSection>\n"
        f"{systems if systems is not None else system('web', 'web', hardware, UBUNTU)}"
        "</Envelope>\n"
    )


def ovf2_descriptor(qcow_size: int) -> str:
    """An OVF 2.0 descriptor: StorageItem/EthernetPortItem, a capacity from a
    ProductSection property, deployment configurations and a gzip'd qcow2 disk."""
    hardware = (
        cpu(2, ' ovf:configuration="small"')
        + cpu(8, ' ovf:configuration="large"')
        + memory(2304)
        + item(17, "<sasd:HostResource>ovf:/disk/root</sasd:HostResource>", "StorageItem", "sasd")
        + item(10, "<epasd:Connection>backend</epasd:Connection>", "EthernetPortItem", "epasd")
    )
    product = (
        "    <ProductSection>\n      <Info>Product</Info>\n"
        '      <Property ovf:key="root.size" ovf:type="uint64" ovf:value="20"/>\n'
        "    </ProductSection>\n"
        '    <OperatingSystemSection ovf:id="80">\n      <Info>Guest OS</Info>\n'
        "      <Description>Red Hat Enterprise Linux 9</Description>\n"
        "    </OperatingSystemSection>\n"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Envelope {OVF2}>\n"
        "  <References>\n"
        f'    <File ovf:id="f1" ovf:href="db.qcow2.gz" ovf:size="{qcow_size}" '
        'ovf:compression="gzip"/>\n'
        "  </References>\n"
        "  <DiskSection>\n    <Info>Disks</Info>\n"
        '    <Disk ovf:diskId="root" ovf:fileRef="f1" ovf:capacity="${root.size}" '
        f'ovf:capacityAllocationUnits="byte * 2^30" ovf:format="{QCOW2}"/>\n'
        "  </DiskSection>\n"
        "  <DeploymentOptionSection>\n    <Info>Sizes</Info>\n"
        '    <Configuration ovf:id="small"><Label>Small</Label>'
        "<Description>Small</Description></Configuration>\n"
        '    <Configuration ovf:id="large" ovf:default="true"><Label>Large</Label>'
        "<Description>Large</Description></Configuration>\n"
        "  </DeploymentOptionSection>\n"
        f"{system('db', 'Database', hardware, product)}"
        "</Envelope>\n"
    )


def manifest(files: dict[str, bytes], algorithm: str = "SHA256") -> bytes:
    lines = [
        f"{algorithm}({name})= {hashlib.new(algorithm.lower(), data).hexdigest()}\n"
        for name, data in files.items()
    ]
    return "".join(lines).encode()


def write_ovf(
    folder: Path, descriptor: str, files: dict[str, bytes], algorithm: str | None = "SHA1"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "web.ovf"
    path.write_text(descriptor)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if algorithm:
        listed = {"web.ovf": descriptor.encode(), **files}
        (folder / "web.mf").write_bytes(manifest(listed, algorithm))
    return path


def write_ova(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """An OVA: members in the order given (descriptor first, per DSP0243)."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def vmware_ova(path: Path, mf: bytes | None = None) -> Path:
    descriptor = vmware_ovf().encode()
    files = {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}
    mf = mf if mf is not None else manifest({"web.ovf": descriptor, **files})
    return write_ova(path, [("web.ovf", descriptor), ("web.mf", mf), *files.items()])


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def errors(path: Path | str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        read_package(str(path))
    return [str(d) for d in info.value.diagnostics]


# -- the reader ------------------------------------------------------------------


def test_ovf1_vmware_export_with_sha1_manifest(tmp_path: Path) -> None:
    """Every field is read, units convert exactly, the SHA1 .mf is verified, and each
    disk's SHA-256 is computed from its bytes."""
    files = {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}
    path = write_ovf(tmp_path / "pkg", vmware_ovf(), files)
    pkg = read_package(str(path))
    assert (pkg.kind, pkg.version, pkg.descriptor, pkg.manifest) == (
        "ovf",
        "1.x",
        "web.ovf",
        "web.mf",
    )
    assert pkg.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    (web,) = pkg.systems
    assert (web.system_id, web.name, web.vcpus, web.memory_bytes) == ("web", "web", 2, 4 * GIB)
    assert (web.os_id, web.os_type, web.os_description) == (
        94,
        "ubuntu64Guest",
        "Ubuntu Linux (64-bit)",
    )
    assert web.nics == ("VM Network",)
    boot, data, scratch = web.disks
    assert (boot.disk_id, boot.format, boot.capacity_bytes) == ("vmdisk1", "vmdk", 16 * GIB)
    assert boot.file is not None and boot.file.sha256 == hashlib.sha256(BOOT).hexdigest()
    assert data.capacity_bytes == 3 * GIB // 2 and data.file is not None
    assert data.file.sha256 == hashlib.sha256(DATA).hexdigest()
    assert (scratch.file, scratch.capacity_bytes, scratch.format) == (None, 4 * GIB, "raw")
    assert read_package(str(path.parent)).systems == pkg.systems  # the directory form


def test_ovf2_storage_items_properties_configurations_gzip(tmp_path: Path) -> None:
    qcow = gzip.compress(b"QFI\xfb" + os.urandom(2000))
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "db.qcow2.gz").write_bytes(qcow)
    descriptor = ovf2_descriptor(len(qcow))
    (folder / "db.ovf").write_text(descriptor)
    files = {"db.ovf": descriptor.encode(), "db.qcow2.gz": qcow}
    (folder / "db.mf").write_bytes(manifest(files, "SHA512"))
    pkg = read_package(str(folder / "db.ovf"))
    (db,) = pkg.systems
    assert pkg.version == "2.x" and pkg.manifest == "db.mf"
    assert db.vcpus == 8  # the default configuration ("large") is the one in force
    assert db.memory_bytes == 2304 * 2**20  # 2.25 GiB, exactly
    assert db.nics == ("backend",) and db.os_id == 80 and db.name == "Database"
    (root,) = db.disks
    assert (root.format, root.capacity_bytes) == ("qcow2", 20 * GIB)  # ${root.size} GiB
    assert root.file is not None and root.file.compression == "gzip"
    assert root.file.sha256 == hashlib.sha256(qcow).hexdigest()


def test_ova_streamed_with_sha256_manifest(tmp_path: Path) -> None:
    path = vmware_ova(tmp_path / "web.ova")
    pkg = read_package(str(path))
    assert (pkg.kind, pkg.descriptor, pkg.manifest) == ("ova", "web.ovf", "web.mf")
    assert pkg.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    boot = pkg.systems[0].disks[0]
    assert boot.file is not None and boot.file.sha256 == hashlib.sha256(BOOT).hexdigest()
    assert b"".join(file_chunks(pkg, "web-disk2.vmdk")) == DATA  # streamed back out
    assert not list(tmp_path.glob("*.vmdk"))  # nothing was extracted


def test_ova_manifest_after_the_disks_is_still_verified(tmp_path: Path) -> None:
    descriptor = vmware_ovf().encode()
    files = {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}
    mf = manifest({"web.ovf": descriptor, **files}, "SHA1")
    members = [("web.ovf", descriptor), *files.items(), ("web.mf", mf)]
    assert read_package(str(write_ova(tmp_path / "late.ova", members))).manifest == "web.mf"
    bad = mf.replace(hashlib.sha1(DATA).hexdigest().encode(), b"0" * 40)
    members[-1] = ("web.mf", bad)
    (message,) = errors(write_ova(tmp_path / "bad.ova", members))
    assert "bad.ova[web.mf]:3:1: SHA1(web-disk2.vmdk): digest mismatch" in message


def test_ova_wrong_digest_is_located_in_the_manifest(tmp_path: Path) -> None:
    descriptor = vmware_ovf().encode()
    good = manifest({"web.ovf": descriptor, "web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA})
    wrong = good.replace(hashlib.sha256(BOOT).hexdigest().encode(), b"a" * 64)
    path = vmware_ova(tmp_path / "web.ova", wrong)
    (message,) = errors(path)
    assert message.startswith(f"{path}[web.mf]:2:1: SHA256(web-disk1.vmdk): digest mismatch")
    assert "a" * 64 in message and hashlib.sha256(BOOT).hexdigest() in message


def test_virtual_system_collection_gives_one_vm_each(tmp_path: Path) -> None:
    web = system("web", "Web", cpu(2) + memory(2048) + disk("vmdisk1"), UBUNTU)
    db = system("db", "DB", cpu(4) + memory(8192) + disk("vmdisk2") + disk("scratch"))
    collection = (
        '  <VirtualSystemCollection ovf:id="shop">\n    <Info>Shop</Info>\n'
        f"{web}{db}  </VirtualSystemCollection>\n"
    )
    files = {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}
    pkg = read_package(str(write_ovf(tmp_path, vmware_ovf(collection), files)))
    assert [(s.system_id, s.vcpus, s.memory_bytes) for s in pkg.systems] == [
        ("web", 2, 2 * GIB),
        ("db", 4, 8 * GIB),
    ]
    assert [d.disk_id for d in pkg.systems[1].disks] == ["vmdisk2", "scratch"]
    text, count = render(pkg, "team-a", "shop", None)
    docs = list(yaml.safe_load_all(text))
    assert count == 5 == len(docs)  # 2 Images, 2 VMs, 1 Volume (db's scratch disk)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert names == [
        ("Image", "shop-web"),
        ("VirtualMachine", "shop-web"),
        ("Image", "shop-db"),
        ("VirtualMachine", "shop-db"),
        ("Volume", "shop-db-scratch"),
    ]
    assert docs[2]["spec"]["ovf"]["virtualSystem"] == "db"
    assert docs[3]["spec"]["resources"]["diskGiB"] == 2  # 1.5 GiB boot disk, rounded up


@pytest.mark.parametrize(
    ("text", "factor"),
    [
        ("byte", 1),
        ("byte * 2^10", 1024),
        ("byte * 2^20", 2**20),
        ("byte*2^30", 2**30),
        ("byte * 1024", 1024),
        ("byte * 10^9", 10**9),
        ("MegaBytes", 2**20),
        ("GigaBytes", 2**30),
        ("furlongs", None),
        ("hertz * 10^6", None),
        ("byte * 2^x", None),
    ],
)
def test_allocation_units_are_exact(text: str, factor: int | None) -> None:
    assert units(text) == factor


def test_formats_and_rounding_rules() -> None:
    assert disk_format(VMDK) == "vmdk" and disk_format(QCOW2) == "qcow2"
    assert disk_format("http://go.microsoft.com/fwlink/?LinkId=137171") == "vhd"
    assert disk_format("http://en.wikipedia.org/wiki/Byte") == "raw"
    assert disk_format("http://www.virtualbox.org/manual/ch12.html#vdidetails") == ""
    assert exact_gib(4 * GIB) == 4 and isinstance(exact_gib(4 * GIB), int)
    assert exact_gib(1000 * 2**20) == 0.9765625  # exact: bytes / 2^30 is a binary fraction
    assert (gib_up(GIB), gib_up(GIB + 1), gib_up(1)) == (1, 2, 1)
    assert slug("Ubuntu Linux (64-bit)") == "ubuntu-linux-64-bit" and slug("!!") == "vm"
    assert (slug("Web_Server..v2"), slug("x.-y")) == ("web-server.v2", "x.y")  # DNS-1123


# -- located errors ------------------------------------------------------------------


def test_missing_cpu_item(tmp_path: Path) -> None:
    hardware = memory(4096) + disk("vmdisk1")
    text = vmware_ovf(system("web", "web", hardware))
    path = write_ovf(tmp_path, text, {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}, None)
    (message,) = errors(path)
    line = line_of(text, "<VirtualHardwareSection>")
    assert message == (
        f"{path}:{line}:5: VirtualSystem[@id='web']/VirtualHardwareSection: "
        "expected one Item with ResourceType 3 (CPU), found 0"
    )


def test_unknown_memory_units_and_bad_quantity_reported_together(tmp_path: Path) -> None:
    text = vmware_ovf(mem=memory(4096, "furlongs * 2^20"))
    text = text.replace("<rasd:VirtualQuantity>2<", "<rasd:VirtualQuantity>two<")
    path = write_ovf(tmp_path, text, {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}, None)
    found = errors(path)
    base = "VirtualSystem[@id='web']/VirtualHardwareSection"
    assert found == [
        f"{path}:{line_of(text, '>two<')}:9: {base}/Item[1]/VirtualQuantity: "
        "expected a positive integer, got 'two'",
        f"{path}:{line_of(text, 'furlongs')}:9: {base}/Item[2]/AllocationUnits: "
        "expected byte units such as 'byte * 2^20', 'byte * 1024', 'byte' or 'MegaBytes', "
        "got 'furlongs * 2^20'",
    ]


def test_doctype_entity_bomb_is_refused(tmp_path: Path) -> None:
    lol = "".join(f'  <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE Envelope [\n  <!ENTITY lol0 "lol">\n'
        f"{lol}]>\n<Envelope {OVF1}><Info>&lol9;</Info></Envelope>\n"
    )
    path = tmp_path / "bomb.ovf"
    path.write_text(bomb)
    (message,) = errors(path)
    assert message.startswith(f"{path}:2:") and "a DOCTYPE is not allowed" in message


def test_truncated_tar(tmp_path: Path) -> None:
    whole = vmware_ova(tmp_path / "whole.ova").read_bytes()
    cut = tmp_path / "cut.ova"
    cut.write_bytes(whole[: whole.index(DATA[:64]) + 100])  # inside the last disk
    (message,) = errors(cut)
    assert message.startswith(f"{cut}:0:0: member 'web-disk2.vmdk': not a complete tar")
    assert "truncated" in message
    cut.write_bytes(whole[: whole.index(DATA[:64]) - 512])  # before the last disk's header
    (message,) = errors(cut)
    assert message == (
        f"{cut}:0:0: after 'web-disk1.vmdk': no end-of-archive marker: the OVA is truncated"
    )


@pytest.mark.parametrize(
    ("edit", "where", "expected"),
    [
        (("<Item>", "<Item"), "<rasd:VirtualQuantity>2<", "not well-formed XML"),
        (('ovf:size="3000"', 'ovf:size="3001"'), 'ovf:size="3001"', "References/File[1]/@size:"),
        (("web-disk2.vmdk", "../etc/passwd"), "../etc/passwd", "expected a relative path"),
        ((VMDK, "http://example.com/vdi"), "example.com/vdi", "Disk[1]/@format: expected a vmdk"),
        (("ovf:/disk/vmdisk2", "ovf:/disk/nope"), "ovf:/disk/nope", "diskId 'nope'"),
        (('envelope/1" xmlns:ovf', 'envelope/9" xmlns:ovf'), "<Envelope", "OVF Envelope"),
    ],
)
def test_other_bad_descriptors_are_located(
    tmp_path: Path, edit: tuple[str, str], where: str, expected: str
) -> None:
    text = vmware_ovf().replace(*edit, 1)
    path = write_ovf(tmp_path, text, {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}, None)
    found = errors(path)
    assert any(f"{path}:{line_of(text, where)}:" in m and expected in m for m in found), found


# -- the command ---------------------------------------------------------------------


def test_import_ova_writes_manifests_that_validate(tmp_path: Path) -> None:
    ova = vmware_ova(tmp_path / "web-appliance.ova")
    out = tmp_path / "out"
    args = ("import-ovf", str(ova), "--namespace", "team-a", "--policy", "cheap")
    result = run(*args, "--out", str(out))
    assert result.code == 0, result.err
    written = out / "web-appliance.yaml"
    text = written.read_text()
    assert text.startswith(f"# Generated by `reconciler import-ovf` from {ova}\n")
    assert "digests verified against web.mf" in text
    (tmp_path / "policy.yaml").write_text(POLICY)
    checked = run("validate", str(written), str(tmp_path / "policy.yaml"))
    assert checked.code == 0, checked.err
    assert "5 objects valid" in checked.out  # Image, VM, 2 Volumes and the policy
    state = load_desired([str(written), str(tmp_path / "policy.yaml")])
    image = state.images[ResourceKey("Image", "team-a", "web-appliance")]
    assert (image.format, image.url, image.os, image.min_disk_gib) == (
        "ova",
        str(ova),
        "ubuntu-linux-64-bit",
        16,
    )
    assert image.checksum == "sha256:" + hashlib.sha256(ova.read_bytes()).hexdigest()
    assert [(d.name, d.format, d.capacity_gib) for d in image.disks] == [
        ("vmdisk1", "vmdk", 16.0),
        ("vmdisk2", "vmdk", 1.5),
        ("scratch", "raw", 4.0),
    ]
    assert image.disks[1].sha256 == hashlib.sha256(DATA).hexdigest() and image.ovf_system == "web"
    vm = state.vms[ResourceKey("VirtualMachine", "team-a", "web-appliance")]
    assert (vm.resources.vcpus, vm.resources.memory_gib, vm.resources.disk_gib) == (2, 4.0, 16)
    assert (vm.image, vm.policy_ref) == ("web-appliance", "cheap")
    sizes = {
        k.name: (v.size_gib, v.attach_to, v.image, v.image_disk) for k, v in state.volumes.items()
    }
    assert sizes == {  # 1.5 GiB rounded up; made from the package's disk (scratch: blank)
        "web-appliance-vmdisk2": (2, "web-appliance", "web-appliance", "vmdisk2"),
        "web-appliance-scratch": (4, "web-appliance", None, None),
    }
    again = run(*args, "--out", str(out))
    assert again.code == 1 and "exists" in again.err  # never overwritten


def test_import_to_stdout_with_fractional_memory(tmp_path: Path) -> None:
    text = vmware_ovf(mem=memory(1000))
    path = write_ovf(tmp_path / "pkg", text, {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA})
    result = run("import-ovf", str(path), "--name", "web")
    assert result.code == 0, result.err
    docs = list(yaml.safe_load_all(result.out))
    assert docs[1]["spec"]["resources"]["memoryGiB"] == 0.9765625  # 1000 MiB, exact
    assert "Wrote 4 objects from 1 virtual system" in result.err
    (tmp_path / "all.yaml").write_text(result.out)
    assert run("validate", str(tmp_path / "all.yaml")).code == 0


@pytest.mark.parametrize("case", ["missing-cpu", "units", "bomb", "truncated", "no-file"])
def test_cli_errors_are_located_with_exit_1(tmp_path: Path, case: str) -> None:
    files = {"web-disk1.vmdk": BOOT, "web-disk2.vmdk": DATA}
    if case == "missing-cpu":
        text = vmware_ovf(system("web", "web", memory(512)))
        path, line = write_ovf(tmp_path, text, files), line_of(text, "<VirtualHardwareSection>")
    elif case == "units":
        text = vmware_ovf(mem=memory(512, "nibbles"))
        path, line = write_ovf(tmp_path, text, files), line_of(text, "nibbles")
    elif case == "bomb":
        path, line = tmp_path / "b.ovf", 2
        path.write_text('<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<x>&a;</x>\n')
    elif case == "truncated":
        whole = vmware_ova(tmp_path / "whole.ova").read_bytes()
        path, line = tmp_path / "cut.ova", 0
        path.write_bytes(whole[: whole.index(DATA[:64]) + 100])
    else:
        text = vmware_ovf()
        path = write_ovf(tmp_path, text, {"web-disk1.vmdk": BOOT}, None)
        line = line_of(text, "web-disk2.vmdk")
    result = run("import-ovf", str(path))
    assert result.code == 1
    assert f"error: {path}:{line}:" in result.err, result.err
    assert "nothing was changed" in result.err and result.out == ""
