"""Shared broker state: the prepared world (clouds, sorted offers) and the capacity pool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.broker.filters import Need
from reconciler.model.cloud import CloudInfo, Offer
from reconciler.model.keys import ResourceKey, owning_set
from reconciler.model.observed import ObservedVM
from reconciler.model.specs import Capacity, DesiredState, PolicySpec


def offer_order(offer: Offer) -> tuple[float, str, str]:
    """The deterministic tie-break everywhere: price, cloud, offer name."""
    return (offer.price_per_hour, offer.cloud, offer.name)


@dataclass(frozen=True)
class World:
    """The reachable clouds with merged labels and their offers sorted by price."""

    desired: DesiredState
    infos: Mapping[str, CloudInfo]
    labels: Mapping[str, Mapping[str, str]]
    offers: Mapping[str, tuple[Offer, ...]]
    capacity: Mapping[str, Capacity | None]

    @classmethod
    def build(
        cls,
        desired: DesiredState,
        clouds: Mapping[str, CloudInfo],
        offers: Mapping[str, Sequence[Offer]],
    ) -> World:
        labels: dict[str, Mapping[str, str]] = {}
        caps: dict[str, Capacity | None] = {}
        for name, info in clouds.items():
            spec = desired.clouds.get(name)
            merged = dict(info.labels)
            if spec is not None:
                merged.update(spec.labels)  # the declared labels win
            labels[name] = merged
            caps[name] = info.capacity or (spec.capacity if spec is not None else None)
        sorted_offers = {
            name: tuple(
                sorted((o for o in offers.get(name, ()) if o.cloud == name), key=offer_order)
            )
            for name in clouds
        }
        return cls(desired, dict(clouds), labels, sorted_offers, caps)

    def cloud_names(self) -> list[str]:
        return sorted(self.infos)

    def policy(self, namespace: str, ref: str | None) -> PolicySpec | None:
        return self.desired.policy_for(namespace, ref)

    def find_offer(self, cloud: str, name: str) -> Offer | None:
        return next((o for o in self.offers.get(cloud, ()) if o.name == name), None)

    def capacitated(self, cloud: str) -> bool:
        cap = self.capacity.get(cloud)
        return cap is not None and (
            cap.vcpus is not None or cap.memory_gib is not None or cap.instances is not None
        )


@dataclass
class Pool:
    """What is still free: per-cloud capacity, per-offer availability, spread slots."""

    vcpus: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    instances: dict[str, float] = field(default_factory=dict)
    available: dict[tuple[str, str], int] = field(default_factory=dict)
    spread: dict[tuple[ResourceKey, str], int] = field(default_factory=dict)

    @classmethod
    def from_world(cls, world: World) -> Pool:
        pool = cls()
        for name, cap in world.capacity.items():
            if cap is None:
                continue
            if cap.vcpus is not None:
                pool.vcpus[name] = float(cap.vcpus)
            if cap.memory_gib is not None:
                pool.memory[name] = float(cap.memory_gib)
            if cap.instances is not None:
                pool.instances[name] = float(cap.instances)
        for name, offers in world.offers.items():
            for o in offers:
                if o.available is not None:
                    pool.available[(name, o.name)] = o.available
        return pool

    def consume(self, cloud: str, vcpus: float, memory: float, count: int = 1) -> None:
        """Take capacity without any availability check (sticky VMs already run)."""
        for table, amount in ((self.vcpus, vcpus), (self.memory, memory), (self.instances, 1.0)):
            if cloud in table:
                table[cloud] = max(0.0, table[cloud] - amount * count)

    def give_back(self, cloud: str, vcpus: float, memory: float) -> None:
        """Return what one VM held on ``cloud`` (it moves away)."""
        for table, amount in ((self.vcpus, vcpus), (self.memory, memory), (self.instances, 1.0)):
            if cloud in table:
                table[cloud] += amount

    def release(self, offer: Offer) -> None:
        """Undo one ``take(offer)``."""
        key = (offer.cloud, offer.name)
        if key in self.available:
            self.available[key] += 1
        self.give_back(offer.cloud, offer.vcpus, offer.memory_gib)

    def occupy(self, running: Iterable[ObservedVM]) -> None:
        """Account for VMs that keep running outside this placement: their capacity
        and, for replicas of a set, their spread slot."""
        for vm in running:
            self.consume(vm.cloud, vm.vcpus, vm.memory_gib)
            vm_set = owning_set(vm.key) if vm.key is not None else None
            self.add_spread(vm_set, vm.cloud)

    def blocked(self, offer: Offer) -> str | None:
        """Why one more VM of ``offer`` does not fit, or None if it does."""
        c = offer.cloud
        left = self.available.get((c, offer.name))
        if left is not None and left < 1:
            return f"no {offer.name} left on {c} (offer availability exhausted)"
        if c in self.vcpus and self.vcpus[c] < offer.vcpus - 1e-9:
            return f"no capacity left on {c} (needs {offer.vcpus} vCPU, {self.vcpus[c]:g} free)"
        if c in self.memory and self.memory[c] < offer.memory_gib - 1e-9:
            return (
                f"no capacity left on {c} "
                f"(needs {offer.memory_gib:g} GiB, {self.memory[c]:g} GiB free)"
            )
        if c in self.instances and self.instances[c] < 1:
            return f"no capacity left on {c} (instance limit reached)"
        return None

    def take(self, offer: Offer, count: int = 1) -> None:
        """Use ``count`` VMs of ``offer`` (callers checked it fits)."""
        key = (offer.cloud, offer.name)
        if key in self.available:
            self.available[key] -= count
        self.consume(offer.cloud, offer.vcpus, offer.memory_gib, count)

    def spread_used(self, vm_set: ResourceKey, cloud: str) -> int:
        return self.spread.get((vm_set, cloud), 0)

    def spread_full(self, need: Need, cloud: str) -> bool:
        """Whether ``need``'s set already has its maxPerCloud replicas on ``cloud``."""
        return (
            need.spread_set is not None
            and need.spread_max is not None
            and self.spread_used(need.spread_set, cloud) >= need.spread_max
        )

    def add_spread(self, vm_set: ResourceKey | None, cloud: str, count: int = 1) -> None:
        if vm_set is not None:
            self.spread[(vm_set, cloud)] = self.spread.get((vm_set, cloud), 0) + count
