"""The volume ledger: where volume ownership lives, since libvirt volumes carry no
metadata (no tags, no description, on every pool type and the test driver alike).

Each host that holds our volumes has one never-started domain
``reconciler-volumes-<owner>`` whose ``<metadata>`` (namespace LEDGER_NS) lists them::

    <volumes owner="reconciler">
      <volume name="rcl-<uid>" class="standard" used="false">
        <tag key="..." value="..."/>...
      </volume>
    </volumes>

Volume names are deterministic (``rcl-<uid>``), the entry is written before the volume
is created, and a volume counts as ours only if it exists AND our ledger lists it: a
lost response on either step is repaired by the next create with the same uid.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

import libvirt

from reconciler.providers.libvirt.domxml import (
    LEDGER_NS,
    DomainView,
    ledger_domain_xml,
    parse_domain,
    read_tags,
)
from reconciler.providers.libvirt.errors import is_absent

LEDGER_PREFIX = "reconcilervol"


@dataclass(frozen=True, slots=True)
class Entry:
    """One volume we own on a host."""

    name: str
    volume_class: str
    tags: dict[str, str]
    #: Set once the volume was attached to a VM: from then on it may hold data and is
    #: never relocated to another host.
    used: bool = False


def ledger_name(owner: str) -> str:
    return "reconciler-volumes-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", owner) or "owner")


def volume_name(uid: str) -> str:
    """The deterministic pool volume name for a volume uid."""
    return "rcl-" + re.sub(r"[^A-Za-z0-9_.-]", "-", uid)


def parse_entries(xml: str, owner: str) -> dict[str, Entry]:
    """Entries of a ledger element; empty if it belongs to another owner."""
    if not xml:
        return {}
    root = ET.fromstring(xml)
    if root.get("owner") != owner:
        return {}
    entries = {}
    for item in root:
        name = item.get("name", "")
        if name:
            used = item.get("used") == "true"
            entries[name] = Entry(name, item.get("class", ""), read_tags(item), used)
    return entries


def render(entries: Mapping[str, Entry], owner: str) -> str:
    root = ET.Element("volumes", {"owner": owner})
    for name in sorted(entries):
        entry = entries[name]
        attrs = {"name": name, "class": entry.volume_class, "used": str(entry.used).lower()}
        item = ET.SubElement(root, "volume", attrs)
        for key in sorted(entry.tags):
            ET.SubElement(item, "tag", {"key": key, "value": entry.tags[key]})
    return ET.tostring(root, encoding="unicode")


def ledger_view(conn: libvirt.virConnect, name: str) -> DomainView | None:
    """The ledger domain ``name`` on the host of ``conn``, parsed (None if absent)."""
    try:
        domain = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if is_absent(exc):
            return None
        raise
    return parse_domain(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def store(
    conn: libvirt.virConnect,
    domain_type: str,
    name: str,
    content: str | None,
    namespace: str = LEDGER_NS,
    prefix: str = LEDGER_PREFIX,
    what: str = "volume",
) -> None:
    """Put ``content`` into the ledger domain ``name`` (None: it lists nothing): defined
    when it is new, undefined when it would list nothing any more."""
    try:
        domain = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if not is_absent(exc):
            raise
        if content is not None:
            conn.defineXML(ledger_domain_xml(domain_type, name, content, namespace, what))
        return
    if content is None:
        domain.undefine()
        return
    domain.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        content,
        prefix,
        namespace,
        libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )


def read(conn: libvirt.virConnect, owner: str) -> dict[str, Entry]:
    """Our entries on the host of ``conn`` (empty when it has no ledger)."""
    view = ledger_view(conn, ledger_name(owner))
    return parse_entries(view.ledger_xml, owner) if view is not None else {}


def write(
    conn: libvirt.virConnect, owner: str, domain_type: str, entries: Mapping[str, Entry]
) -> None:
    """Replace the ledger's content: define the ledger domain when it is new, undefine
    it when it lists nothing any more."""
    store(conn, domain_type, ledger_name(owner), render(entries, owner) if entries else None)
