"""Resource keys and ownership tags: how a declared object is named everywhere."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "reconciler.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: Tags every resource reconciler creates carries, so it can adopt what it made,
#: find orphans, and never touch what it does not own.
TAG_OWNER = "reconciler.dev/owner"
TAG_KEY = "reconciler.dev/key"
TAG_UID = "reconciler.dev/uid"
#: Recorded on the resource itself, because once a manifest is deleted the cloud is the
#: only place left that remembers whether its resource was protected or to be orphaned.
TAG_PROTECT = "reconciler.dev/protect"
TAG_DELETION_POLICY = "reconciler.dev/deletion-policy"
#: When the VM was placed where it runs (ISO 8601 UTC): the rebalancer's cooldown.
TAG_PLACED_AT = "reconciler.dev/placed-at"
#: A migration in flight: its id, on the source and on everything made for the target.
TAG_MIGRATION = "reconciler.dev/migration"
#: On the source VM of a migration in flight: "<target cloud>/<instance type>", so the
#: migration can resume from what the cloud says even if every local record is lost.
TAG_MIGRATION_TARGET = "reconciler.dev/migration-target"
#: On the source of a finished migration: kept (stopped) until this time, then deleted.
TAG_RETAIN_UNTIL = "reconciler.dev/retain-until"
#: On the source of a finished migration: "<cloud>/<external id>" of its successor.
TAG_MIGRATED_TO = "reconciler.dev/migrated-to"
#: On resources reconciler makes for itself (staging buckets): never planned for.
TAG_SYSTEM = "reconciler.dev/system"

KINDS = (
    "Cloud",
    "BrokerPolicy",
    "VirtualMachine",
    "VirtualMachineSet",
    "Volume",
    "Bucket",
    "Image",
)
CLUSTER_SCOPED = frozenset({"Cloud"})

HOURS_PER_MONTH = 730.0
"""Hours in a billing month, the convention AWS and Azure price calculators use."""


@dataclass(frozen=True, slots=True, order=True)
class ResourceKey:
    """Identity of a declared object: kind, namespace ('' for cluster scope), name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ResourceKey:
        """Parse ``Kind/ns/name`` or ``Kind/name`` (cluster scope)."""
        parts = text.split("/")
        if len(parts) == 3 and all(parts):
            return cls(parts[0], parts[1], parts[2])
        if len(parts) == 2 and all(parts):
            return cls(parts[0], "", parts[1])
        raise ValueError(f"not a resource key (expected Kind/namespace/name): {text!r}")


def replica_key(vm_set: ResourceKey, index: int) -> ResourceKey:
    """The key of a set's replica ``<set>-<i>`` (the inverse of ``owning_set``)."""
    return ResourceKey("VirtualMachine", vm_set.namespace, f"{vm_set.name}-{index}")


def owning_set(key: ResourceKey) -> ResourceKey | None:
    """The VirtualMachineSet a replica key ``<set>-<i>`` would belong to, if any."""
    prefix, dash, index = key.name.rpartition("-")
    if key.kind == "VirtualMachine" and dash and index.isdigit():
        return ResourceKey("VirtualMachineSet", key.namespace, prefix)
    return None


def ownership_tags(
    owner: str, key: ResourceKey, uid: str, protect: bool = False, deletion_policy: str = "Delete"
) -> dict[str, str]:
    """The tags that mark a cloud resource as made by ``owner`` for ``key``."""
    return {
        TAG_OWNER: owner,
        TAG_KEY: str(key),
        TAG_UID: uid,
        TAG_PROTECT: "true" if protect else "false",
        TAG_DELETION_POLICY: deletion_policy,
    }
