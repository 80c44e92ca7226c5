"""What the last full pass observed, kept current by the outcomes of our own actions.

A full pass observes every cloud (every VM, volume and bucket we own). Between full
passes the controller plans only the objects that changed, against this record: the
resources of those objects as last seen, and every other running VM, which keeps
using capacity and spread slots. Each action that succeeds updates the record with
what the provider returned; an action that fails, or whose result is unknown, makes
the record untrustworthy, and the next pass is a full one. Drift made by others (a VM
deleted by hand) is seen at the next full pass: the resync interval bounds how stale
this record may get.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from reconciler.executor.world import World
from reconciler.model.keys import ResourceKey, owning_set
from reconciler.model.observed import (
    CloudInventory,
    Inventory,
    Observed,
    ObservedBucket,
    ObservedVM,
    ObservedVolume,
)
from reconciler.model.plan import Action, ActionType

GONE = frozenset({ActionType.DELETE, ActionType.FORGET})


class Baseline:
    """Managed resources by key, as of the last full observation plus our own changes."""

    def __init__(self, world: World) -> None:
        self.providers = world.providers
        self.clouds = world.clouds
        self.offers = world.offers
        self.valid = True
        self._by_key: dict[ResourceKey, tuple[Observed, ...]] = {}
        self._unkeyed: list[Observed] = []
        #: Imported images as last observed (an import invalidates the record).
        self._images = {name: inv.images for name, inv in world.inventory.clouds.items()}
        for record in world.inventory.records():
            if record.key is None:
                self._unkeyed.append(record)
            else:
                self._by_key[record.key] = (*self._by_key.get(record.key, ()), record)

    def invalidate(self) -> None:
        self.valid = False

    def record(self, action: Action, observed: Observed | None) -> None:
        """Fold the outcome of an action that succeeded into the record."""
        if action.key.kind == "Image":  # imports and clean-ups are rare: re-observe
            self.invalidate()
            return
        if action.type in GONE:
            self._drop(action.key, action.cloud, action.external_id)
            return
        if action.type is ActionType.REPLACE:
            source = action.params
            self._drop(action.key, str(source["fromCloud"]), str(source["fromExternalId"]))
        if observed is None:
            self.invalidate()  # a provider that returns nothing: we no longer know
            return
        key = observed.key or action.key
        kept = self._by_key.get(key, ())
        same = (observed.cloud, observed.external_id)
        rest = tuple(r for r in kept if (r.cloud, r.external_id) != same)
        self._by_key[key] = (*rest, observed)

    def _drop(self, key: ResourceKey, cloud: str, external_id: str | None) -> None:
        if external_id is None:
            self.invalidate()  # made and removed within one apply: re-observe
            return
        kept = self._by_key.get(key, ())
        rest = tuple(r for r in kept if (r.cloud, r.external_id) != (cloud, external_id))
        if rest:
            self._by_key[key] = rest
        else:
            self._by_key.pop(key, None)

    def set_members(self, vm_set: ResourceKey) -> set[ResourceKey]:
        """Keys of recorded VMs that are replicas of ``vm_set``."""
        return {k for k in self._by_key if k.kind == "VirtualMachine" and owning_set(k) == vm_set}

    def inventory(self, keys: Iterable[ResourceKey]) -> Inventory:
        """The recorded resources of ``keys``, as a (partial) observed inventory."""
        vms: dict[str, list[ObservedVM]] = defaultdict(list)
        volumes: dict[str, list[ObservedVolume]] = defaultdict(list)
        buckets: dict[str, list[ObservedBucket]] = defaultdict(list)
        for key in keys:
            for record in self._by_key.get(key, ()):
                if isinstance(record, ObservedVM):
                    vms[record.cloud].append(record)
                elif isinstance(record, ObservedVolume):
                    volumes[record.cloud].append(record)
                else:
                    buckets[record.cloud].append(record)
        return Inventory(
            {
                name: CloudInventory(
                    name,
                    tuple(vms[name]),
                    tuple(volumes[name]),
                    tuple(buckets[name]),
                    self._images.get(name, ()),
                )
                for name in self.clouds
            }
        )

    def cost_per_hour(self) -> dict[str, float]:
        """$/h per cloud of every recorded VM and volume (what runs now)."""
        out = dict.fromkeys(self.clouds, 0.0)
        for records in (*self._by_key.values(), self._unkeyed):
            for record in records:
                if not isinstance(record, ObservedBucket):
                    out[record.cloud] = out.get(record.cloud, 0.0) + record.price_per_hour
        return out

    def occupied(self, excluded: set[ResourceKey]) -> list[ObservedVM]:
        """Every recorded VM outside ``excluded``: it keeps running, using capacity."""
        out: list[ObservedVM] = []
        for key, records in self._by_key.items():
            if key not in excluded:
                out.extend(r for r in records if isinstance(r, ObservedVM))
        out.extend(r for r in self._unkeyed if isinstance(r, ObservedVM))
        return out
