"""The simulated world's records: one flat, JSON-serializable record per resource."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields
from typing import Any

from reconciler.model.keys import TAG_OWNER

VM = "vm"
VOLUME = "volume"
BUCKET = "bucket"
IMAGE = "image"
SNAPSHOT = "snapshot"
OBJECT = "object"
#: Kinds list_managed reports (images, snapshots and objects are reached otherwise).
MANAGED_KINDS = frozenset({VM, VOLUME, BUCKET})

_ID_PREFIX = {VM: "i-", VOLUME: "vol-", IMAGE: "img-", SNAPSHOT: "snap-"}


def new_id(kind: str) -> str:
    """A fresh external id in the style of a real cloud ("i-" + 12 hex digits)."""
    return _ID_PREFIX[kind] + secrets.token_hex(6)


def bucket_key(cloud: str, name: str) -> str:
    """The world key of a bucket: bucket names are unique per cloud, not globally."""
    return f"bucket/{cloud}/{name}"


def object_key(bucket: str, key: str) -> str:
    """The world key of an object in the bucket whose world key is ``bucket``."""
    return f"object/{bucket}/{key}"


@dataclass(frozen=True, slots=True)
class SimResource:
    """A VM, volume or bucket in some simulated cloud (every owner, ours or not).

    ``id`` is the world key: the external id for VMs and volumes, ``bucket_key`` for
    buckets (whose external id is their ``name``). VMs keep the vcpus/memory/gpus and
    price of their instance type as of the last create or resize, so capacity
    accounting never depends on a catalog.

    ``disk`` is the SHA-256 of the content of a VM's boot disk, a volume, an image, a
    snapshot or an object (the bytes live in the world's blob store); ``size_bytes`` its
    length; ``parent`` the bucket of an object or the volume of a snapshot; ``meta`` an
    object's user metadata.
    """

    id: str
    kind: str
    cloud: str
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    instance_type: str = ""
    vcpus: int = 0
    memory_gib: float = 0.0
    gpus: int = 0
    price_per_hour: float = 0.0
    power_state: str = "Running"
    image: str = ""
    disk_gib: int = 0
    size_gib: int = 0
    volume_class: str = ""
    attached_to: str | None = None
    versioning: bool = False
    disk: str = ""
    size_bytes: int = 0
    parent: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        """The ``reconciler.dev/owner`` tag, or "" for untagged resources."""
        return self.tags.get(TAG_OWNER, "")

    def to_json(self) -> dict[str, Any]:
        """A compact dict: only fields that differ from their defaults."""
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if name in _ALWAYS or value != _DEFAULTS[name]:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimResource:
        return cls(**raw)


_FIELD_NAMES = tuple(f.name for f in fields(SimResource))
_ALWAYS = frozenset({"id", "kind", "cloud"})
_DEFAULTS: dict[str, Any] = {
    f.name: (f.default_factory() if callable(f.default_factory) else f.default)
    for f in fields(SimResource)
}


@dataclass(slots=True)
class Usage:
    """Compute in use: counted over VMs whatever their power state (a stopped VM keeps
    its allocation, as in OpenStack)."""

    vcpus: int = 0
    memory_gib: float = 0.0
    instances: int = 0

    def add(self, rec: SimResource, sign: int) -> None:
        self.vcpus += sign * rec.vcpus
        self.memory_gib += sign * rec.memory_gib
        self.instances += sign
