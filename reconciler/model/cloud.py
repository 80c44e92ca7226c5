"""What a cloud offers: capabilities, instance types with prices, capacity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.model.specs import Capacity


class Capability(StrEnum):
    """What a provider can do; the broker and planner only use what a cloud declares."""

    STOP = "stop"
    RESIZE = "resize"
    RESIZE_LIVE = "resize-live"
    GPUS = "gpus"
    VOLUMES = "volumes"
    BUCKETS = "buckets"
    BUCKET_VERSIONING = "bucket-versioning"
    VOLUME_SNAPSHOTS = "volume-snapshots"
    IMAGE_IMPORT = "image-import"  # import_image, VMs and volumes from imported images
    IMAGE_EXPORT = "image-export"  # disk_size and read_disk of boot disks and volumes


@dataclass(frozen=True, slots=True)
class Offer:
    """One instance type in one cloud at one price.

    ``available`` caps how many of this type the cloud can still start (None: no
    per-type limit); ``price_as_of`` is an ISO date, ``price_source`` a URL or text.
    """

    cloud: str
    name: str
    vcpus: int
    memory_gib: float
    price_per_hour: float
    gpus: int = 0
    available: int | None = None
    price_source: str = ""
    price_as_of: str = ""


@dataclass(frozen=True, slots=True)
class CloudInfo:
    """A cloud as its provider describes it (no secrets)."""

    name: str
    provider: str
    region: str
    labels: Mapping[str, str]
    capabilities: frozenset[Capability]
    capacity: Capacity | None = None
    price_source: str = ""
    price_as_of: str = ""
    egress_per_gib: float = 0.0
    block_storage_per_gib_month: float = 0.0
    object_storage_per_gib_month: float = 0.0
    simulated: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)
