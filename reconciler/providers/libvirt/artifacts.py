"""The artifacts ledger: which pool volumes are our images and volume snapshots.

Like volumes (see ledger.py), libvirt volumes carry no metadata, so each host that holds
our images or snapshots has one never-started domain ``reconciler-artifacts-<owner>``
whose ``<metadata>`` (namespace ARTIFACTS_NS) lists them::

    <artifacts owner="reconciler">
      <image name="rci-<uid>" label="web-1a2b" size="1048577" sha256="ab12...">
        <tag key="..." value="..."/>...
      </image>
      <snapshot name="rcs-<uid>" volume="rcl-<uid>" size="1073741824">...</snapshot>
    </artifacts>

Names are deterministic (``rci-<uid>`` for images, ``rcs-<uid>`` for snapshots). Unlike
a volume's, the entry is written AFTER the volume is complete (uploaded and verified, or
copied): a volume of that name without an entry is a half-made artifact of an attempt
that died, which the next attempt with the same uid deletes and makes again.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

import libvirt

from reconciler.providers.libvirt.domxml import ARTIFACTS_NS, read_tags
from reconciler.providers.libvirt.ledger import ledger_view, store

PREFIX = "reconcilerart"
IMAGE = "image"
SNAPSHOT = "snapshot"
#: external id prefixes: ``img/<volume name>`` and ``snap/<volume name>``.
IMAGE_ID = "img/"
SNAPSHOT_ID = "snap/"
#: Name prefixes of the pool volumes the driver makes (never used as base images).
OUR_PREFIXES = ("rcl-", "rci-", "rcs-")


@dataclass(frozen=True, slots=True)
class Artifact:
    """One image or snapshot we own on a host (a pool volume of that ``name``)."""

    kind: str
    name: str
    tags: dict[str, str]
    size: int = 0
    #: Images: the SHA-256 of the bytes imported (verified while they streamed in).
    sha256: str = ""
    #: Images: the name given at import.
    label: str = ""
    #: Snapshots: the pool volume name of the volume it copies.
    volume: str = ""

    @property
    def external_id(self) -> str:
        return (IMAGE_ID if self.kind == IMAGE else SNAPSHOT_ID) + self.name


def ledger_name(owner: str) -> str:
    return "reconciler-artifacts-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", owner) or "owner")


def artifact_name(kind: str, uid: str) -> str:
    """The deterministic pool volume name of an image or snapshot with ``uid``."""
    prefix = "rci-" if kind == IMAGE else "rcs-"
    return prefix + re.sub(r"[^A-Za-z0-9_.-]", "-", uid)


def name_of(external_id: str, kind: str) -> str | None:
    """The volume name an image or snapshot id names, None if it is not such an id."""
    prefix = IMAGE_ID if kind == IMAGE else SNAPSHOT_ID
    name = external_id.removeprefix(prefix)
    if not external_id.startswith(prefix) or not name or "/" in name:
        return None
    return name


def parse(xml: str, owner: str) -> dict[str, Artifact]:
    """Artifacts of a ledger element by volume name; empty if another owner's."""
    if not xml:
        return {}
    root = ET.fromstring(xml)
    if root.get("owner") != owner:
        return {}
    found = {}
    for item in root:
        kind = item.tag.rsplit("}", 1)[-1]
        name = item.get("name", "")
        if kind in (IMAGE, SNAPSHOT) and name:
            size = item.get("size", "0")
            found[name] = Artifact(
                kind,
                name,
                read_tags(item),
                size=int(size) if size.isdigit() else 0,
                sha256=item.get("sha256", ""),
                label=item.get("label", ""),
                volume=item.get("volume", ""),
            )
    return found


def render(artifacts: Mapping[str, Artifact], owner: str) -> str:
    root = ET.Element("artifacts", {"owner": owner})
    for name in sorted(artifacts):
        art = artifacts[name]
        attrs = {"name": name, "size": str(art.size)}
        if art.kind == IMAGE:
            attrs.update(label=art.label, sha256=art.sha256)
        else:
            attrs["volume"] = art.volume
        item = ET.SubElement(root, art.kind, attrs)
        for key in sorted(art.tags):
            ET.SubElement(item, "tag", {"key": key, "value": art.tags[key]})
    return ET.tostring(root, encoding="unicode")


def read(conn: libvirt.virConnect, owner: str) -> dict[str, Artifact]:
    """Our artifacts on the host of ``conn`` (empty when it has no ledger)."""
    view = ledger_view(conn, ledger_name(owner))
    return parse(view.artifacts_xml, owner) if view is not None else {}


def put(
    conn: libvirt.virConnect, owner: str, domain_type: str, name: str, art: Artifact | None
) -> None:
    """Set (None: drop) the entry ``name``; the ledger domain is defined when it gets its
    first entry and undefined when its last one goes. No write if nothing changes."""
    entries = read(conn, owner)
    if entries.get(name) == art:
        return
    if art is None:
        entries.pop(name, None)
    else:
        entries[name] = art
    content = render(entries, owner) if entries else None
    what = "image and snapshot"
    store(conn, domain_type, ledger_name(owner), content, ARTIFACTS_NS, PREFIX, what)
