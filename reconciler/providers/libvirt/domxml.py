"""Domain and volume XML: what the driver writes and what it reads back.

Ownership lives in the domain's ``<metadata>`` as one element in our namespace::

    <reconciler:tags xmlns:reconciler="https://reconciler.dev/xmlns/1"
                     instanceType="m1.small" image="ubuntu" bootVolume="web-1a2b3c4d-boot">
      <tag key="reconciler.dev/owner" value="reconciler"/> ...
    </reconciler:tags>

libvirt has no flavors, so the instance type (and image, boot volume) ride along as
attributes. Volume ownership lives in a ledger (see ledger.py) in a second namespace,
images and volume snapshots in a third (see artifacts.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

NS = "https://reconciler.dev/xmlns/1"
LEDGER_NS = "https://reconciler.dev/xmlns/1/volumes"
ARTIFACTS_NS = "https://reconciler.dev/xmlns/1/artifacts"
PREFIX = "reconciler"
KIB_PER_GIB = 1024 * 1024
GIB = 1024**3


ET.register_namespace(PREFIX, NS)
ET.register_namespace("reconcilervol", LEDGER_NS)
ET.register_namespace("reconcilerart", ARTIFACTS_NS)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(frozen=True, slots=True)
class VMRecord:
    """What our metadata element says about a VM besides its tags."""

    instance_type: str
    image: str = ""
    boot_volume: str = ""
    disk_gib: int = 0


_NO_RECORD = VMRecord("")


def tags_element(tags: Mapping[str, str], record: VMRecord) -> str:
    """The ``<tags>`` element setMetadata stores under NS (libvirt adds the prefix)."""
    attrs = {
        "instanceType": record.instance_type,
        "image": record.image,
        "bootVolume": record.boot_volume,
        "diskGiB": str(record.disk_gib),
    }
    root = ET.Element("tags", attrs)
    for key in sorted(tags):
        ET.SubElement(root, "tag", {"key": key, "value": tags[key]})
    return ET.tostring(root, encoding="unicode")


def read_tags(element: ET.Element) -> dict[str, str]:
    return {
        t.get("key", ""): t.get("value", "")
        for t in element
        if _local(t.tag) == "tag" and t.get("key")
    }


@dataclass(frozen=True, slots=True)
class Disk:
    """A disk of a domain backed by a pool volume."""

    target: str
    pool: str
    volume: str


@dataclass(frozen=True, slots=True)
class DomainView:
    """What the driver needs from one domain's XML."""

    uuid: str
    name: str
    vcpus: int
    memory_kib: int
    #: Our metadata element's tags; None when the domain has none (not ours to see).
    tags: dict[str, str] | None
    record: VMRecord = _NO_RECORD
    disks: tuple[Disk, ...] = ()
    #: True for a volume or artifacts ledger (never a VM; uses no capacity).
    ledger: bool = False
    ledger_xml: str = field(default="", repr=False)
    artifacts_xml: str = field(default="", repr=False)

    @property
    def memory_gib(self) -> float:
        return self.memory_kib / KIB_PER_GIB


def parse_domain(xml: str) -> DomainView:
    """Parse ``virDomain.XMLDesc()`` into a DomainView."""
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    current = vcpu.get("current") if vcpu is not None else None
    vcpus = int(current or (vcpu.text if vcpu is not None and vcpu.text else "1"))
    mem = root.find("currentMemory")
    if mem is None:
        mem = root.find("memory")
    memory_kib = _kib(mem)
    ours: ET.Element | None = None
    ledger: ET.Element | None = None
    artifacts: ET.Element | None = None
    metadata = root.find("metadata")
    for child in metadata if metadata is not None else ():
        if child.tag == f"{{{NS}}}tags":
            ours = child
        elif child.tag == f"{{{LEDGER_NS}}}volumes":
            ledger = child
        elif child.tag == f"{{{ARTIFACTS_NS}}}artifacts":
            artifacts = child
    disks = []
    for disk in root.iterfind("devices/disk"):
        source, target = disk.find("source"), disk.find("target")
        if source is not None and target is not None and source.get("volume"):
            disks.append(
                Disk(target.get("dev", ""), source.get("pool", ""), source.get("volume", ""))
            )
    return DomainView(
        uuid=root.findtext("uuid", ""),
        name=root.findtext("name", ""),
        vcpus=vcpus,
        memory_kib=memory_kib,
        tags=read_tags(ours) if ours is not None else None,
        record=_record(ours),
        disks=tuple(disks),
        ledger=ledger is not None or artifacts is not None,
        ledger_xml=ET.tostring(ledger, encoding="unicode") if ledger is not None else "",
        artifacts_xml=ET.tostring(artifacts, encoding="unicode") if artifacts is not None else "",
    )


def _record(element: ET.Element | None) -> VMRecord:
    if element is None:
        return _NO_RECORD
    disk = element.get("diskGiB", "0")
    return VMRecord(
        instance_type=element.get("instanceType", ""),
        image=element.get("image", ""),
        boot_volume=element.get("bootVolume", ""),
        disk_gib=int(disk) if disk.isdigit() else 0,
    )


def _kib(element: ET.Element | None) -> int:
    if element is None or not element.text:
        return 0
    factor = _UNITS.get(element.get("unit", "KiB"), 1.0)
    return int(int(element.text) * factor)


#: libvirt memory units in KiB (XMLDesc always writes KiB; hand-written XML may not).
_UNITS = {"b": 1 / 1024, "bytes": 1 / 1024, "KiB": 1.0, "k": 1.0, "MiB": 1024.0, "M": 1024.0}
_UNITS.update({"GiB": float(KIB_PER_GIB), "G": float(KIB_PER_GIB)})


def domain_xml(
    *,
    domain_type: str,
    name: str,
    vcpus: int,
    memory_kib: int,
    metadata: str,
    boot: Disk | None,
    network: str,
) -> str:
    """A persistent domain definition with our metadata element in NS."""
    root = ET.Element("domain", {"type": domain_type})
    ET.SubElement(root, "name").text = name
    meta = ET.SubElement(root, "metadata")
    meta_root = ET.fromstring(metadata)
    meta_root.tag = f"{{{NS}}}{meta_root.tag}"
    meta.append(meta_root)
    ET.SubElement(root, "memory", {"unit": "KiB"}).text = str(memory_kib)
    ET.SubElement(root, "currentMemory", {"unit": "KiB"}).text = str(memory_kib)
    ET.SubElement(root, "vcpu").text = str(vcpus)
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type").text = "hvm"
    ET.SubElement(os_el, "boot", {"dev": "hd"})
    # Without <acpi/> libvirt starts qemu with -no-acpi: the guest never sees the power
    # button, so every graceful shutdown() would run into shutdownTimeout and destroy.
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    devices = ET.SubElement(root, "devices")
    if boot is not None:
        devices.append(ET.fromstring(disk_xml(boot)))
    if network != "none":
        iface = ET.SubElement(devices, "interface", {"type": "network"})
        ET.SubElement(iface, "source", {"network": network})
    return ET.tostring(root, encoding="unicode")


def disk_xml(disk: Disk) -> str:
    """A ``<disk>`` device for a pool volume (for define and attach/detach)."""
    root = ET.Element("disk", {"type": "volume", "device": "disk"})
    ET.SubElement(root, "driver", {"name": "qemu", "type": "raw"})
    ET.SubElement(root, "source", {"pool": disk.pool, "volume": disk.volume})
    ET.SubElement(root, "target", {"dev": disk.target, "bus": "virtio"})
    return ET.tostring(root, encoding="unicode")


def volume_xml(name: str, size_gib: int, size_bytes: int | None = None) -> str:
    """A raw, sparse volume of ``size_gib`` (or exactly ``size_bytes``) for
    virStoragePool.createXML and createXMLFrom."""
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    capacity = size_gib * GIB if size_bytes is None else size_bytes
    ET.SubElement(root, "capacity", {"unit": "bytes"}).text = str(capacity)
    ET.SubElement(root, "allocation", {"unit": "bytes"}).text = "0"
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", {"type": "raw"})
    return ET.tostring(root, encoding="unicode")


def ledger_domain_xml(
    domain_type: str, name: str, content: str, ns: str = LEDGER_NS, what: str = "volume"
) -> str:
    """A never-started 1-vCPU/1-MiB domain that only carries a ledger (``content`` in
    namespace ``ns``): the volume ledger, or the artifacts ledger of images and snapshots."""
    root = ET.Element("domain", {"type": domain_type})
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "title").text = f"reconciler {what} ledger (never started)"
    meta = ET.SubElement(root, "metadata")
    element = ET.fromstring(content)
    element.tag = f"{{{ns}}}{element.tag}"
    meta.append(element)
    ET.SubElement(root, "memory", {"unit": "KiB"}).text = "1024"
    ET.SubElement(root, "vcpu").text = "1"
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type").text = "hvm"
    return ET.tostring(root, encoding="unicode")
