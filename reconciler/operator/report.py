"""What one reconcile pass learned, per object: the input of status and events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.executor.world import World
from reconciler.model.artifacts import ObservedImage
from reconciler.model.cloud import CloudInfo, Offer
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import ResourceKey, owning_set
from reconciler.model.moves import RebalanceRound
from reconciler.model.observed import (
    Inventory,
    Observed,
    ObservedBucket,
    ObservedVM,
    ObservedVolume,
)
from reconciler.model.placement import BrokerResult
from reconciler.model.plan import Action
from reconciler.operator.desired import ClusterDesired


class MigrationLookup(Protocol):
    """Where status reads a migration's record (the state ConfigMap); never raises."""

    def cached(self, migration_id: str) -> dict[str, Any] | None: ...


@dataclass
class PassReport:
    """Everything status needs, gathered by the controller; read-only afterwards.

    ``pending`` are actions planned for a key but not carried out in this pass
    (observe-only, paused, or left for the next pass); ``failed`` holds the error of
    an action that was tried; ``applying`` the keys with actions carried out now.
    ``abort`` are the VMs annotated to roll their migration back; ``rounds`` each
    BrokerPolicy's rebalancing round (None: not known in this pass); ``records`` where
    migration records are read.
    """

    inventory: Inventory = field(default_factory=Inventory)
    clouds: Mapping[str, CloudInfo] = field(default_factory=dict)
    offers: Mapping[str, tuple[Offer, ...]] = field(default_factory=dict)
    result: BrokerResult | None = None
    pending: dict[ResourceKey, list[Action]] = field(default_factory=lambda: defaultdict(list))
    applying: dict[ResourceKey, list[Action]] = field(default_factory=lambda: defaultdict(list))
    failed: dict[ResourceKey, str] = field(default_factory=dict)
    invalid: dict[str, list[Diagnostic]] = field(default_factory=dict)
    blocked: dict[ResourceKey, str] = field(default_factory=dict)
    paused: set[ResourceKey] = field(default_factory=set)
    cloud_errors: dict[str, str] = field(default_factory=dict)
    plan_error: str = ""
    observe_only: bool = False
    abort: frozenset[ResourceKey] = frozenset()
    rounds: Mapping[ResourceKey, RebalanceRound] | None = None
    records: MigrationLookup | None = None
    _by_key: dict[ResourceKey, list[Observed]] | None = None

    @classmethod
    def for_cluster(cls, cluster: ClusterDesired, observe_only: bool = False) -> PassReport:
        """A report that starts with what the desired state said per object."""
        return cls(
            invalid=cluster.invalid,
            paused=set(cluster.paused),
            blocked=dict(cluster.blocked),
            observe_only=observe_only,
            abort=cluster.abort,
        )

    def saw(self, world: World) -> None:
        """Record what the clouds reported (or, in a scoped pass, the baseline holds)."""
        self.inventory, self.clouds, self.offers = world.inventory, world.clouds, world.offers

    def _observed(self, key: ResourceKey) -> list[Observed]:
        """Every observed VM, volume and bucket of ``key`` (indexed on first use).

        Status writers call this from several threads: the index is published only
        once complete (two threads may both build it; both results are equal).
        """
        index = self._by_key
        if index is None:
            index = defaultdict(list)
            for item in self.inventory.records():
                if item.key is not None:
                    index[item.key].append(item)
            self._by_key = index
        return index.get(key, [])

    def vms(self, key: ResourceKey) -> list[ObservedVM]:
        return [o for o in self._observed(key) if isinstance(o, ObservedVM)]

    def volumes(self, key: ResourceKey) -> list[ObservedVolume]:
        return [o for o in self._observed(key) if isinstance(o, ObservedVolume)]

    def buckets(self, key: ResourceKey) -> list[ObservedBucket]:
        return [o for o in self._observed(key) if isinstance(o, ObservedBucket)]

    def images(self, key: ResourceKey) -> list[ObservedImage]:
        """The copies of Image ``key`` imported into clouds (boot disk and data disks)."""
        return [i for i in self.inventory.all_images() if i.key == key]

    def resources_on(self, cloud: str) -> int:
        """How many managed resources the cloud holds."""
        inv = self.inventory.clouds.get(cloud)
        return 0 if inv is None else len(inv.vms) + len(inv.volumes) + len(inv.buckets)

    def has_resources(self, key: ResourceKey) -> bool:
        """Whether any cloud still holds a resource of ``key`` (a set: of a replica)."""
        if key.kind == "VirtualMachineSet":
            return any(vm.key and owning_set(vm.key) == key for vm in self.inventory.all_vms())
        if key.kind == "Cloud":
            return self.resources_on(key.name) > 0
        return bool(self._observed(key))
