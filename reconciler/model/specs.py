"""Desired state: frozen dataclasses built from validated manifests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.model.keys import ResourceKey


class PowerState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    ORPHAN = "Orphan"


class DriftPolicy(StrEnum):
    """What to do when a resource differs from its spec: fix it, only say so, or not look."""

    CORRECT = "Correct"
    REPORT = "Report"
    IGNORE = "Ignore"


class MigrationStrategy(StrEnum):
    """Cold: stop, copy the disks to the target, start there (data kept). Replace: a new
    VM from the image in the target, then the old one deleted (disk contents lost)."""

    COLD = "Cold"
    REPLACE = "Replace"


@dataclass(frozen=True, slots=True)
class Source:
    """Where an object was declared, for error messages."""

    file: str = "<memory>"
    line: int = 0


@dataclass(frozen=True, slots=True)
class Resources:
    """What a VM needs. Memory in GiB; disk is the boot disk in GiB."""

    vcpus: int
    memory_gib: float
    disk_gib: int = 0
    gpus: int = 0


@dataclass(frozen=True, slots=True)
class OfferSpec:
    """An instance type declared inline on a Cloud (private prices, what-if runs)."""

    name: str
    vcpus: int
    memory_gib: float
    price_per_hour: float
    gpus: int = 0
    available: int | None = None


@dataclass(frozen=True, slots=True)
class Capacity:
    """Finite capacity of a (private) cloud; None means unlimited."""

    vcpus: int | None = None
    memory_gib: float | None = None
    instances: int | None = None


@dataclass(frozen=True, slots=True)
class Pricing:
    """Where a cloud's prices come from.

    ``catalog`` names a catalog shipped with reconciler; ``offers`` extend it, or replace
    it when ``mode`` is "Replace". Storage prices are $/GiB-month, egress $/GiB.
    """

    catalog: str | None = None
    offers: tuple[OfferSpec, ...] = ()
    mode: str = "Extend"
    egress_per_gib: float | None = None
    block_storage_per_gib_month: float | None = None
    object_storage_per_gib_month: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests_per_second: float
    burst: int = 1


@dataclass(frozen=True, slots=True)
class FaultInjection:
    """Simulator only: probability per call of a transient or a permanent error."""

    transient_rate: float = 0.0
    permanent_rate: float = 0.0
    seed: int = 0
    #: Which calls may fail: any of "list", "create", "update", "delete"; empty means
    #: the simulator's default (create, update, delete).
    operations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Simulation:
    """Simulator only: latency per call, server-side throttling, faults."""

    latency_ms: float = 0.0
    server_rate_limit: float | None = None
    faults: FaultInjection = field(default_factory=FaultInjection)
    #: Capability values (see model.cloud.Capability) the simulated cloud offers; empty
    #: means all of them.
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecretRef:
    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class ObjectStorage:
    """An S3-compatible object store serving a cloud's buckets (private clouds: SeaweedFS,
    MinIO, Ceph RGW). Credentials come from the Cloud's Secret."""

    endpoint: str
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class CloudSpec:
    """One account/endpoint of one provider. Labels come from metadata.labels.

    ``hosts`` are hypervisor URIs (libvirt); ``settings`` are provider-specific
    non-secret options (e.g. Azure subscriptionId and resourceGroup, OpenStack
    project), validated by the driver; ``object_storage`` adds an S3-compatible store.
    """

    name: str
    provider: str
    region: str = ""
    endpoint: str = ""
    hosts: tuple[str, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)
    object_storage: ObjectStorage | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    credentials_secret_ref: SecretRef | None = None
    capacity: Capacity | None = None
    pricing: Pricing = field(default_factory=Pricing)
    rate_limit: RateLimit | None = None
    simulation: Simulation | None = None
    source: Source = field(default_factory=Source)

    @property
    def key(self) -> ResourceKey:
        return ResourceKey("Cloud", "", self.name)


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CloudSelector:
    """Matches clouds by name or by labels (Kubernetes label-selector semantics)."""

    name: str | None = None
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly maintenance window in UTC: on ``days`` (Mon..Sun; empty: every day),
    from ``start_minute`` after midnight, for ``duration_hours`` (may pass midnight)."""

    days: tuple[str, ...]
    start_minute: int
    duration_hours: int


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Cost-driven moves: at most one round per ``interval`` (Never, Daily, Weekly,
    Monthly); a move must save ``min_savings_percent`` and ``min_savings_per_month`` and
    pay for itself (egress, ``conversion_cost``, ``downtime_cost``, USD per move) within
    ``horizon_days``; a VM moves at most once per ``cooldown_hours``; at most
    ``max_concurrent_migrations`` at once, starting only inside ``windows`` (if any).
    The budget and windows hold for every migration of the policy's VMs."""

    interval: str = "Never"
    min_savings_percent: float = 0.0
    min_savings_per_month: float = 0.0
    horizon_days: int = 30
    cooldown_hours: int = 24
    max_concurrent_migrations: int = 1
    windows: tuple[Window, ...] = ()
    conversion_cost: float = 0.0
    downtime_cost: float = 0.0


@dataclass(frozen=True, slots=True)
class PolicySpec:
    key: ResourceKey
    allow: tuple[CloudSelector, ...] = ()
    deny: tuple[CloudSelector, ...] = ()
    jurisdictions: tuple[str, ...] = ()
    max_per_cloud: int | None = None
    objective: str = "Cost"
    rebalance: Rebalance = field(default_factory=Rebalance)
    max_monthly_budget: float | None = None
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class VMSpec:
    """One VirtualMachine, or one replica of a VirtualMachineSet (``owner_set``)."""

    key: ResourceKey
    resources: Resources
    image: str | None = None
    policy_ref: str | None = None
    pinned_cloud: str | None = None
    instance_type: str | None = None
    power_state: PowerState = PowerState.RUNNING
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    protect: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    owner_set: ResourceKey | None = None
    migration_strategy: MigrationStrategy = MigrationStrategy.COLD
    #: Seconds the stopped source is kept after a verified migration.
    retain_source_seconds: int = 86_400
    drift_policy: DriftPolicy = DriftPolicy.CORRECT
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class VMSetSpec:
    key: ResourceKey
    replicas: int
    template: VMSpec
    max_per_cloud: int | None = None
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    key: ResourceKey
    size_gib: int
    volume_class: str = "standard"
    attach_to: str | None = None  # VM name in the same namespace
    cloud: str | None = None  # only for unattached volumes
    policy_ref: str | None = None
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    protect: bool = False
    drift_policy: DriftPolicy = DriftPolicy.CORRECT
    source: Source = field(default_factory=Source)
    #: Made from a disk of this Image (same namespace): its boot disk, or the disk
    #: named ``image_disk`` (an OVF package's data disk). Only read at creation.
    image: str | None = None
    image_disk: str | None = None


@dataclass(frozen=True, slots=True)
class BucketSpec:
    key: ResourceKey
    policy_ref: str | None = None
    clouds: tuple[str, ...] = ()
    copies: int = 1
    versioning: bool = False
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    protect: bool = False
    drift_policy: DriftPolicy = DriftPolicy.CORRECT
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class ImageDisk:
    """One disk of an Image: ``file`` inside the package (or ``url``), its format,
    exact virtual size in GiB, stored size and SHA-256 ("" and None when unknown)."""

    name: str
    format: str  # vmdk, qcow2, raw, vhd
    capacity_gib: float
    file: str = ""
    url: str = ""
    size_bytes: int | None = None
    compression: str = ""  # "" or gzip
    sha256: str = ""


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """A portable image. ``disks`` has the boot disk first; ``checksum`` is
    "algorithm:hex" of the file at ``url``; ``ovf_system`` the VirtualSystem id (OVF/OVA)."""

    key: ResourceKey
    format: str  # ovf, ova, qcow2, vhd, raw, vmdk
    url: str = ""
    os: str = ""
    min_disk_gib: int = 0
    checksum: str = ""
    disks: tuple[ImageDisk, ...] = ()
    ovf_system: str = ""
    #: Imported into a cloud before the first VM there (spec.import, see images.yaml).
    import_on_demand: bool = False
    source: Source = field(default_factory=Source)


@dataclass(frozen=True)
class DesiredState:
    """Everything the manifests declare. ``vms`` has every VirtualMachineSet replica
    expanded, so downstream layers see one VMSpec per VM."""

    clouds: Mapping[str, CloudSpec] = field(default_factory=dict)
    policies: Mapping[ResourceKey, PolicySpec] = field(default_factory=dict)
    vms: Mapping[ResourceKey, VMSpec] = field(default_factory=dict)
    vm_sets: Mapping[ResourceKey, VMSetSpec] = field(default_factory=dict)
    volumes: Mapping[ResourceKey, VolumeSpec] = field(default_factory=dict)
    buckets: Mapping[ResourceKey, BucketSpec] = field(default_factory=dict)
    images: Mapping[ResourceKey, ImageSpec] = field(default_factory=dict)

    def policy_for(self, namespace: str, name: str | None) -> PolicySpec | None:
        if name is None:
            return None
        return self.policies.get(ResourceKey("BrokerPolicy", namespace, name))
