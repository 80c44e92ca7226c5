"""Actual state: what providers report running, as plain frozen records.

Each record's ``key`` is parsed from its ``reconciler.dev/key`` tag once, when the record
is made: the broker and the planner both read it for every resource, on every plan.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from reconciler.model.artifacts import ObservedImage
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


@functools.cache
def _observed_fields(type_name: str) -> tuple[str, ...]:
    """Names of a record type's observed fields; derived ones (the parsed key) add
    nothing the tags do not say."""
    cls = {c.__name__: c for c in (ObservedVM, ObservedVolume, ObservedBucket)}[type_name]
    return tuple(f.name for f in fields(cls) if f.init)


def _row(record: Observed) -> str:
    """A canonical text of one observed record (tags sorted) for fingerprints."""
    kind = type(record).__name__
    values = []
    for name in _observed_fields(kind):
        value = getattr(record, name)
        values.append(sorted(value.items()) if isinstance(value, Mapping) else value)
    return f"{kind}{values!r}"


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
    key: ResourceKey | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key_from_tags(self.tags))

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
    key: ResourceKey | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key_from_tags(self.tags))


@dataclass(frozen=True, slots=True)
class ObservedBucket:
    cloud: str
    external_id: str
    versioning: bool
    price_per_hour: float
    tags: Mapping[str, str] = field(default_factory=dict)
    key: ResourceKey | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key_from_tags(self.tags))


#: Any observed managed resource.
Observed = ObservedVM | ObservedVolume | ObservedBucket


@dataclass(frozen=True)
class CloudInventory:
    """Managed resources in one cloud (only those carrying this owner's tag)."""

    cloud: str
    vms: tuple[ObservedVM, ...] = ()
    volumes: tuple[ObservedVolume, ...] = ()
    buckets: tuple[ObservedBucket, ...] = ()
    #: Images we imported there (Images on demand, migrations in flight); only on
    #: clouds that can import images.
    images: tuple[ObservedImage, ...] = ()


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

    def all_images(self) -> list[ObservedImage]:
        return [i for inv in self.clouds.values() for i in inv.images]

    def records(self) -> list[Observed]:
        """Every VM, volume and bucket, in that order."""
        return [*self.all_vms(), *self.all_volumes(), *self.all_buckets()]

    def fingerprint(self) -> str:
        """A digest of everything observed; a saved plan is stale when it differs."""
        digest = hashlib.sha256()
        for name in sorted(self.clouds):
            inv = self.clouds[name]
            records: list[Observed] = [
                *inv.vms,
                *inv.volumes,
                *inv.buckets,
            ]
            rows = sorted(_row(r) for r in records)
            rows.extend(sorted(f"image {i.external_id} {i.sha256} {i.tags}" for i in inv.images))
            digest.update(name.encode())
            for row in rows:
                digest.update(row.encode())
        return digest.hexdigest()
