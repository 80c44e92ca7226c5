"""What one reconcile pass learned, per object: the input of status and events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.cloud import CloudInfo, Offer
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Inventory, ObservedBucket, ObservedVM, ObservedVolume
from reconciler.model.placement import BrokerResult
from reconciler.model.plan import Action


@dataclass
class PassReport:
    """Everything status needs, gathered by the controller; read-only afterwards.

    ``pending`` are actions planned for a key but not carried out in this pass
    (observe-only, paused, or left for the next pass); ``failed`` holds the error of
    an action that was tried; ``applying`` the keys with actions carried out now.
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
    _vms: dict[ResourceKey, list[ObservedVM]] | None = None
    _volumes: dict[ResourceKey, list[ObservedVolume]] | None = None
    _buckets: dict[ResourceKey, list[ObservedBucket]] | None = None

    def vms(self, key: ResourceKey) -> list[ObservedVM]:
        if self._vms is None:
            self._vms = defaultdict(list)
            for vm in self.inventory.all_vms():
                if vm.key is not None:
                    self._vms[vm.key].append(vm)
        return self._vms.get(key, [])

    def volumes(self, key: ResourceKey) -> list[ObservedVolume]:
        if self._volumes is None:
            self._volumes = defaultdict(list)
            for vol in self.inventory.all_volumes():
                if vol.key is not None:
                    self._volumes[vol.key].append(vol)
        return self._volumes.get(key, [])

    def buckets(self, key: ResourceKey) -> list[ObservedBucket]:
        if self._buckets is None:
            self._buckets = defaultdict(list)
            for bucket in self.inventory.all_buckets():
                if bucket.key is not None:
                    self._buckets[bucket.key].append(bucket)
        return self._buckets.get(key, [])

    def resources_on(self, cloud: str) -> int:
        """How many managed resources the cloud holds."""
        inv = self.inventory.clouds.get(cloud)
        return 0 if inv is None else len(inv.vms) + len(inv.volumes) + len(inv.buckets)

    def has_resources(self, key: ResourceKey) -> bool:
        """Whether any cloud still holds a resource of ``key`` (a set: of a replica)."""
        if key.kind == "VirtualMachineSet":
            prefix = key.name + "-"
            return any(
                vm.key is not None
                and vm.key.namespace == key.namespace
                and vm.key.name.startswith(prefix)
                and vm.key.name[len(prefix) :].isdigit()
                for vm in self.inventory.all_vms()
            )
        if key.kind == "Cloud":
            return self.resources_on(key.name) > 0
        return bool(self.vms(key) or self.volumes(key) or self.buckets(key))
