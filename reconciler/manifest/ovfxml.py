"""The OVF descriptor (DMTF DSP0243, OVF 1.x and 2.x): XML with positions, then meaning.

Parsed with the standard library's expat (what xml.etree uses underneath) so every
element keeps its line and column for diagnostics; a DOCTYPE, and so any entity
declaration, is refused, which rules out entity-expansion attacks. Units are converted
exactly (integers, bytes). Every problem found is collected into one ManifestError whose
Diagnostics carry the descriptor's file, line, column and OVF path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.parsers import expat

from reconciler.model.errors import Diagnostic, ManifestError

NAMESPACES = {
    "http://schemas.dmtf.org/ovf/envelope/1": "1.x",
    "http://schemas.dmtf.org/ovf/envelope/2": "2.x",
}
#: Substrings of Disk ovf:format URIs -> our format names, first match wins (VMware,
#: VirtualBox, XenServer and oVirt spellings). vhdx and vdi are not supported.
_FORMATS = (
    ("vhdx", ""),
    ("vdi", ""),
    ("vmdk", "vmdk"),
    ("qcow", "qcow2"),
    ("vhd", "vhd"),
    ("linkid=137171", "vhd"),
    ("virtualserver", "vhd"),
    ("wiki/byte", "raw"),
    ("#raw", "raw"),
)
#: Pre-DSP0004 unit names some tools still write; binary multiples, as they mean them.
_NAMED_UNITS = {
    "byte": 1,
    "bytes": 1,
    "kilobytes": 2**10,
    "megabytes": 2**20,
    "gigabytes": 2**30,
    "terabytes": 2**40,
}
_UNIT_FACTOR = re.compile(r"(\d+)(?:\s*\^\s*(\d+))?")
_UNITS_HINT = "expected byte units such as 'byte * 2^20', 'byte * 1024', 'byte' or 'MegaBytes'"
_CPU, _MEMORY, _NIC, _DISKS = "3", "4", "10", ("17", "31")
_ITEMS = ("Item", "StorageItem", "EthernetPortItem")


@dataclass(frozen=True, slots=True)
class OvfFile:
    """A References/File: ``href`` inside the package, its declared ``size`` (bytes, if
    given), ``compression`` ("" or "gzip") and the SHA-256 of the bytes as stored."""

    file_id: str
    href: str
    size: int | None = None
    compression: str = ""
    sha256: str = ""


@dataclass(frozen=True, slots=True)
class OvfDisk:
    """A DiskSection/Disk: virtual capacity in bytes, format (vmdk, qcow2, raw, vhd) and
    its backing file (None: a blank disk of that capacity)."""

    disk_id: str
    capacity_bytes: int
    format: str
    file: OvfFile | None = None


@dataclass(frozen=True, slots=True)
class OvfSystem:
    """A VirtualSystem. ``disks`` in VirtualHardwareSection order (the first is the boot
    disk); ``nics`` the network each NIC connects to; ``os_id`` the CIM OS code."""

    system_id: str
    name: str
    vcpus: int
    memory_bytes: int
    disks: tuple[OvfDisk, ...] = ()
    nics: tuple[str, ...] = ()
    os_id: int | None = None
    os_description: str = ""
    os_type: str = ""


# -- XML with positions ------------------------------------------------------------


@dataclass
class Node:
    """An element: tag as "{namespace}local", attributes, position and children."""

    tag: str
    attrs: dict[str, str]
    line: int
    column: int
    children: list[Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.tag.rpartition("}")[2]

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    def all(self, name: str) -> list[Node]:
        return [c for c in self.children if c.name == name]

    def first(self, name: str) -> Node | None:
        return next((c for c in self.children if c.name == name), None)

    def attr(self, name: str) -> str | None:
        """Attribute by local name (ovf:, vmw: or unqualified)."""
        return next((v for k, v in self.attrs.items() if k.rpartition("}")[2] == name), None)


class _Refused(Exception):
    """Raised from an expat handler to stop at a DOCTYPE or entity declaration."""


def _qname(name: str) -> str:
    return "{" + name if "}" in name else name


def _parse_xml(data: bytes, file: str) -> Node:
    """The element tree of ``data``; refuses DOCTYPE (and so every entity)."""
    parser = expat.ParserCreate(namespace_separator="}")
    stack: list[Node] = []
    roots: list[Node] = []

    def refuse(*_: object) -> None:
        raise _Refused("a DOCTYPE is not allowed in an OVF descriptor (entities are refused)")

    def start(tag: str, attrs: dict[str, str]) -> None:
        line, column = parser.CurrentLineNumber, parser.CurrentColumnNumber + 1
        node = Node(_qname(tag), {_qname(k): v for k, v in attrs.items()}, line, column)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def text(data: str) -> None:
        if stack:
            stack[-1].parts.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _tag: stack.pop()
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        line, column = parser.CurrentLineNumber, parser.CurrentColumnNumber + 1
        raise ManifestError([Diagnostic(file, line, column, "", str(exc))]) from None
    except expat.ExpatError as exc:
        message = f"not well-formed XML: {expat.ErrorString(exc.code)}"
        raise ManifestError([Diagnostic(file, exc.lineno, exc.offset + 1, "", message)]) from None
    return roots[0]


# -- the descriptor ----------------------------------------------------------------


@dataclass
class Descriptor:
    """What a descriptor declares; ``where`` locates each File (node, OVF path)."""

    file: str
    version: str = ""
    files: dict[str, OvfFile] = field(default_factory=dict)
    where: dict[str, tuple[Node, str]] = field(default_factory=dict)
    disks: dict[str, OvfDisk] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    config: str = ""
    systems: list[OvfSystem] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)

    def fail(self, node: Node, path: str, message: str) -> None:
        self.problems.append(Diagnostic(self.file, node.line, node.column, path, message))


def units(text: str) -> int | None:
    """Bytes per unit of a DSP0004 programmatic unit ("byte * 2^30", "byte*1024"), or of
    an old unit name ("MegaBytes"); None when it is not a byte unit we know."""
    parts = [p.strip() for p in text.split("*")]
    base = parts[0].lower()
    if len(parts) == 1:
        return _NAMED_UNITS.get(base)
    if base not in ("byte", "bytes"):
        return None
    factor = 1
    for part in parts[1:]:
        match = _UNIT_FACTOR.fullmatch(part)
        if match is None or int(match[2] or 1) > 64:
            return None
        factor *= int(match[1]) ** int(match[2] or 1)
    return factor


def disk_format(uri: str) -> str:
    """Our format name for a Disk ovf:format URI; "" when unsupported."""
    low = uri.lower()
    return next((fmt for needle, fmt in _FORMATS if needle in low), "")


def parse_descriptor(data: bytes, file: str) -> Descriptor:
    """Everything ``data`` (the descriptor, named ``file``) declares; every problem at once."""
    root = _parse_xml(data, file)
    found = Descriptor(file)
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if root.name != "Envelope" or namespace not in NAMESPACES:
        expected = " or ".join(NAMESPACES)
        found.fail(root, root.name, f"expected an OVF Envelope in namespace {expected}")
        raise ManifestError(found.problems)
    found.version = NAMESPACES[namespace]
    for prop in _descendants(root, "Property"):
        key, value = prop.attr("key"), prop.attr("value")
        if key is not None and value is not None:
            found.properties[key] = value
    found.config = _default_config(root)
    _references(root, found)
    for index, section in enumerate(root.all("DiskSection"), 1):
        for n, disk in enumerate(section.all("Disk"), 1):
            _disk(disk, f"DiskSection[{index}]/Disk[{n}]", found)
    for system, path in _virtual_systems(root, ""):
        _system(system, path, found)
    if not found.systems and not found.problems:
        found.fail(root, "Envelope", "expected a VirtualSystem or VirtualSystemCollection")
    if found.problems:
        raise ManifestError(found.problems)
    return found


def _descendants(node: Node, name: str) -> Iterator[Node]:
    """Every element called ``name`` below ``node`` (ProductSection properties)."""
    for child in node.children:
        if child.name == name:
            yield child
        yield from _descendants(child, name)


def _default_config(root: Node) -> str:
    """The DeploymentOptionSection configuration in force (the default one, else first)."""
    section = root.first("DeploymentOptionSection")
    configs = section.all("Configuration") if section else []
    chosen = next((c for c in configs if c.attr("default") == "true"), None)
    chosen = chosen or (configs[0] if configs else None)
    return (chosen.attr("id") or "") if chosen else ""


def _references(root: Node, found: Descriptor) -> None:
    refs = root.first("References")
    for n, node in enumerate(refs.all("File") if refs else [], 1):
        path = f"References/File[{n}]"
        file_id, href, size = node.attr("id"), node.attr("href"), node.attr("size")
        compression = node.attr("compression") or ""
        if not file_id or not href:
            found.fail(node, path, "expected ovf:id and ovf:href")
        elif "://" in href or href.startswith("/") or ".." in href.split("/"):
            message = f"expected a relative path inside the package, got {href!r}"
            found.fail(node, f"{path}/@href", message)
        elif node.attr("chunkSize"):
            found.fail(node, f"{path}/@chunkSize", "chunked files are not supported")
        elif size is not None and not size.isdigit():
            found.fail(node, f"{path}/@size", f"expected a size in bytes, got {size!r}")
        elif compression not in ("", "identity", "gzip"):
            found.fail(node, f"{path}/@compression", f"expected gzip, got {compression!r}")
        elif file_id in found.files:
            found.fail(node, f"{path}/@id", f"duplicate File id '{file_id}'")
        else:
            compression = "" if compression == "identity" else compression
            size_bytes = int(size) if size is not None else None
            found.files[file_id] = OvfFile(file_id, href, size_bytes, compression)
            found.where[file_id] = (node, path)


def _disk(node: Node, path: str, found: Descriptor) -> None:
    disk_id, file_ref = node.attr("diskId"), node.attr("fileRef")
    capacity = node.attr("capacity") or ""
    if capacity.startswith("${") and capacity.endswith("}"):
        capacity = found.properties.get(capacity[2:-1], capacity)
    unit_text = node.attr("capacityAllocationUnits") or "byte"
    factor = units(unit_text)
    uri = node.attr("format") or ""
    fmt = disk_format(uri) if file_ref else "raw"
    if not disk_id:
        found.fail(node, path, "expected ovf:diskId")
    elif disk_id in found.disks:
        found.fail(node, f"{path}/@diskId", f"duplicate Disk id '{disk_id}'")
    elif not capacity.isdigit() or int(capacity) == 0:
        found.fail(node, f"{path}/@capacity", f"expected a positive integer, got {capacity!r}")
    elif factor is None:
        found.fail(node, f"{path}/@capacityAllocationUnits", f"{_UNITS_HINT}, got {unit_text!r}")
    elif file_ref and file_ref not in found.files:
        found.fail(node, f"{path}/@fileRef", f"no References/File with id '{file_ref}'")
    elif not fmt:
        expected = "a vmdk, qcow2, raw or vhd format URI"
        found.fail(node, f"{path}/@format", f"expected {expected}, got {uri!r}")
    else:
        file = found.files[file_ref] if file_ref else None
        found.disks[disk_id] = OvfDisk(disk_id, int(capacity) * factor, fmt, file)


def _virtual_systems(node: Node, base: str) -> Iterator[tuple[Node, str]]:
    """Every VirtualSystem, also inside (nested) VirtualSystemCollections, with its path."""
    for child in node.children:
        path = f"{base}{child.name}[@id='{child.attr('id') or ''}']"
        if child.name == "VirtualSystem":
            yield child, path
        elif child.name == "VirtualSystemCollection":
            yield from _virtual_systems(child, path + "/")


def _system(node: Node, path: str, found: Descriptor) -> None:
    system_id = node.attr("id")
    if not system_id:
        found.fail(node, path, "expected ovf:id")
        return
    name_node = node.first("Name")
    os_section = node.first("OperatingSystemSection")
    os_id: int | None = None
    os_description = os_type = ""
    if os_section is not None:
        code = os_section.attr("id") or ""
        os_id = int(code) if code.isdigit() else None
        os_description = _child_text(os_section, "Description")
        os_type = os_section.attr("osType") or ""
    section = node.first("VirtualHardwareSection")
    if section is None:
        found.fail(node, path, "expected a VirtualHardwareSection")
        return
    hardware = _hardware(section, f"{path}/VirtualHardwareSection", found)
    if hardware is not None:
        vcpus, memory, disks, nics = hardware
        name = name_node.text if name_node is not None and name_node.text else system_id
        found.systems.append(
            OvfSystem(system_id, name, vcpus, memory, disks, nics, os_id, os_description, os_type)
        )


def _child_text(node: Node, name: str) -> str:
    child = node.first(name)
    return child.text if child is not None else ""


def _items(section: Node, path: str, config: str) -> Iterator[tuple[Node, str]]:
    """The section's items (Item, StorageItem, EthernetPortItem) in force, with paths."""
    counts: dict[str, int] = {}
    for child in section.children:
        if child.name not in _ITEMS:
            continue
        counts[child.name] = counts.get(child.name, 0) + 1
        configs = (child.attr("configuration") or "").split()
        if not configs or config in configs:
            yield child, f"{path}/{child.name}[{counts[child.name]}]"


Hardware = tuple[int, int, tuple[OvfDisk, ...], tuple[str, ...]]


def _hardware(section: Node, path: str, found: Descriptor) -> Hardware | None:
    """(vcpus, memory bytes, disks, NIC networks) of a VirtualHardwareSection."""
    by_type: dict[str, list[tuple[Node, str]]] = {}
    for item, item_path in _items(section, path, found.config):
        kind = _child_text(item, "ResourceType")
        if not kind:
            found.fail(item, item_path, "expected a ResourceType")
        by_type.setdefault("disk" if kind in _DISKS else kind, []).append((item, item_path))
    before = len(found.problems)
    vcpus = _quantity(section, path, by_type.get(_CPU, []), "CPU", found)
    memory = _quantity(section, path, by_type.get(_MEMORY, []), "memory", found)
    disks = [_disk_item(item, item_path, found) for item, item_path in by_type.get("disk", [])]
    nics = tuple(_child_text(item, "Connection") for item, _ in by_type.get(_NIC, []))
    if len(found.problems) > before or vcpus is None or memory is None:
        return None
    return vcpus, memory, tuple(d for d in disks if d is not None), nics


def _quantity(
    section: Node, path: str, items: list[tuple[Node, str]], what: str, found: Descriptor
) -> int | None:
    """The CPU count, or the memory in bytes, of the one item of that ResourceType."""
    code = _CPU if what == "CPU" else _MEMORY
    if len(items) != 1:
        message = f"expected one Item with ResourceType {code} ({what}), found {len(items)}"
        found.fail(section, path, message)
        return None
    item, item_path = items[0]
    node = item.first("VirtualQuantity")
    text = node.text if node is not None else ""
    if node is None or not text.isdigit() or int(text) == 0:
        found.fail(
            node or item,
            f"{item_path}/VirtualQuantity",
            f"expected a positive integer, got {text!r}",
        )
        return None
    if what == "CPU":
        return int(text)
    unit_node = item.first("AllocationUnits")
    factor = units(unit_node.text) if unit_node is not None else None
    if factor is None:
        got = repr(unit_node.text) if unit_node is not None else "none"
        found.fail(unit_node or item, f"{item_path}/AllocationUnits", f"{_UNITS_HINT}, got {got}")
        return None
    return int(text) * factor


def _disk_item(item: Node, path: str, found: Descriptor) -> OvfDisk | None:
    node = item.first("HostResource")
    text = node.text if node is not None else ""
    match = re.fullmatch(r"(?:ovf:)?/+disk/(.+)", text)
    if node is None or match is None:
        found.fail(
            node or item, f"{path}/HostResource", f"expected ovf:/disk/<diskId>, got {text!r}"
        )
        return None
    disk = found.disks.get(match[1])
    if disk is None:
        found.fail(node, f"{path}/HostResource", f"no DiskSection/Disk with diskId '{match[1]}'")
    return disk
