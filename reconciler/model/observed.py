"""Actual state: what providers report running, as plain frozen records."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from reconciler.model.keys import TAG_KEY, TAG_UID, ResourceKey
from reconciler.model.specs import PowerState


def _key_from_tags(tags: Mapping[str, str]) -> ResourceKey | None:
    raw = tags.get(TAG_KEY)
    if not raw:
        return None
    try:
        return ResourceKey.parse(raw)
    except ValueError:
        return None


def _row(record: ObservedVM | ObservedVolume | ObservedBucket) -> str:
    """A canonical text of one observed record (tags sorted) for fingerprints."""
    values = []
    for f in fields(record):
        value = getattr(record, f.name)
        values.append(sorted(value.items()) if isinstance(value, Mapping) else value)
    return f"{type(record).__name__}{values!r}"


@dataclass(frozen=True, slots=True)
class ObservedVM:
    cloud: str
    external_id: str
    instance_type: str
    vcpus: int
    memory_gib: float
    power_state: PowerState
    price_per_hour: float
    tags: Mapping[str, str] = field(default_factory=dict)
    image: str = ""
    disk_gib: int = 0
    gpus: int = 0

    @property
    def key(self) -> ResourceKey | None:
        return _key_from_tags(self.tags)

    @property
    def uid(self) -> str:
        return self.tags.get(TAG_UID, "")


@dataclass(frozen=True, slots=True)
class ObservedVolume:
    cloud: str
    external_id: str
    size_gib: int
    volume_class: str
    attached_to: str | None  # external id of the VM
    price_per_hour: float
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ResourceKey | None:
        return _key_from_tags(self.tags)


@dataclass(frozen=True, slots=True)
class ObservedBucket:
    cloud: str
    external_id: str
    versioning: bool
    price_per_hour: float
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ResourceKey | None:
        return _key_from_tags(self.tags)


@dataclass(frozen=True)
class CloudInventory:
    """Managed resources in one cloud (only those carrying this owner's tag)."""

    cloud: str
    vms: tuple[ObservedVM, ...] = ()
    volumes: tuple[ObservedVolume, ...] = ()
    buckets: tuple[ObservedBucket, ...] = ()


@dataclass(frozen=True)
class Inventory:
    """Managed resources across all clouds, keyed by cloud name."""

    clouds: Mapping[str, CloudInventory] = field(default_factory=dict)

    def all_vms(self) -> list[ObservedVM]:
        return [vm for inv in self.clouds.values() for vm in inv.vms]

    def all_volumes(self) -> list[ObservedVolume]:
        return [v for inv in self.clouds.values() for v in inv.volumes]

    def all_buckets(self) -> list[ObservedBucket]:
        return [b for inv in self.clouds.values() for b in inv.buckets]

    def fingerprint(self) -> str:
        """A digest of everything observed; a saved plan is stale when it differs."""
        digest = hashlib.sha256()
        for name in sorted(self.clouds):
            inv = self.clouds[name]
            records: list[ObservedVM | ObservedVolume | ObservedBucket] = [
                *inv.vms,
                *inv.volumes,
                *inv.buckets,
            ]
            rows = sorted(_row(r) for r in records)
            digest.update(name.encode())
            for row in rows:
                digest.update(row.encode())
        return digest.hexdigest()
