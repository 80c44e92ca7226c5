"""Group identical VMs and compute each group's feasible, non-dominated offers."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.broker.filters import Need, cloud_verdict, offer_verdict
from reconciler.broker.state import World, offer_order
from reconciler.broker.sticky import FreeVM
from reconciler.model.cloud import Offer
from reconciler.model.placement import Outcome

#: How many offer-level rejections (too small, wrong type) a group remembers.
REJECT_SAMPLE = 10


@dataclass
class CloudFit:
    """Offers of one cloud checked against one resource need (cached across groups)."""

    fitting: list[Offer]
    options: list[Offer]
    rejects: list[tuple[Offer, Outcome, str]]
    largest: dict[str, float]


@dataclass
class Group:
    """Identical VMs: same need, so the same feasible offers and the same candidates."""

    need: Need
    vms: list[FreeVM]
    fitting: list[Offer] = field(default_factory=list)
    options: list[Offer] = field(default_factory=list)
    cloud_rejects: list[tuple[str, Outcome, str]] = field(default_factory=list)
    offer_rejects: list[tuple[Offer, Outcome, str]] = field(default_factory=list)
    largest: dict[str, tuple[float, str]] = field(default_factory=dict)
    coupled: bool = False

    @property
    def size(self) -> int:
        return len(self.vms)


def prune(offers: list[Offer], by_vcpus: bool, by_memory: bool) -> list[Offer]:
    """Drop offers dominated by an unlimited offer that is no dearer and uses no more
    of any capacity the cloud limits. Exact: a dominated offer never beats its dominator."""
    kept: list[Offer] = []
    dominators: list[Offer] = []
    for o in offers:  # sorted by price, then name
        if any(
            d.price_per_hour <= o.price_per_hour
            and (not by_vcpus or d.vcpus <= o.vcpus)
            and (not by_memory or d.memory_gib <= o.memory_gib)
            for d in dominators
        ):
            continue
        kept.append(o)
        if o.available is None:
            dominators.append(o)
    return kept


class Grouper:
    """Builds groups; caches per (cloud, resources, instance type) fit results."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._fits: dict[tuple[str, int, float, int, str | None], CloudFit] = {}

    def _fit(self, cloud: str, need: Need) -> CloudFit:
        key = (cloud, need.vcpus, need.memory_gib, need.gpus, need.instance_type)
        hit = self._fits.get(key)
        if hit is not None:
            return hit
        fitting: list[Offer] = []
        rejects: list[tuple[Offer, Outcome, str]] = []
        largest = {"vcpus": 0.0, "memory": 0.0, "gpus": 0.0}
        for o in self.world.offers[cloud]:
            if need.instance_type is None or o.name == need.instance_type:
                largest["vcpus"] = max(largest["vcpus"], o.vcpus)
                largest["memory"] = max(largest["memory"], o.memory_gib)
                largest["gpus"] = max(largest["gpus"], o.gpus)
            verdict = offer_verdict(need, o)
            if verdict is None:
                fitting.append(o)
            elif len(rejects) < REJECT_SAMPLE:
                rejects.append((o, verdict[0], verdict[1]))
        cap = self.world.capacity.get(cloud)
        by_v = cap is not None and cap.vcpus is not None
        by_m = cap is not None and cap.memory_gib is not None
        fit = CloudFit(fitting, prune(fitting, by_v, by_m), rejects, largest)
        self._fits[key] = fit
        return fit

    def build(self, free: list[FreeVM]) -> list[Group]:
        """One group per distinct need, in a deterministic order."""
        by_need: dict[Need, list[FreeVM]] = {}
        for vm in free:
            by_need.setdefault(vm.need, []).append(vm)
        groups = [Group(n, sorted(vms, key=lambda f: f.spec.key)) for n, vms in by_need.items()]
        groups.sort(key=lambda g: g.vms[0].spec.key)
        for group in groups:
            self._fill(group)
        return groups

    def describe(self, need: Need) -> Group:
        """A group with no VMs: the filters' view of one need (for explanations)."""
        group = Group(need, [])
        self._fill(group)
        return group

    def _fill(self, group: Group) -> None:
        need = group.need
        policy = self.world.policy(need.namespace, need.policy_ref)
        for cloud in self.world.cloud_names():
            info = self.world.infos[cloud]
            verdict = cloud_verdict(need, policy, info, self.world.labels[cloud])
            if verdict is not None:
                group.cloud_rejects.append((cloud, *verdict))
                continue
            fit = self._fit(cloud, need)
            group.fitting.extend(fit.fitting)
            group.options.extend(fit.options)
            group.offer_rejects.extend(fit.rejects)
            for dim, value in fit.largest.items():
                if value > group.largest.get(dim, (-1.0, ""))[0]:
                    group.largest[dim] = (value, cloud)
        group.fitting.sort(key=offer_order)
        group.options.sort(key=offer_order)
        group.offer_rejects.sort(key=lambda r: offer_order(r[0]))
        del group.offer_rejects[REJECT_SAMPLE:]
        group.coupled = need.spread_set is not None or any(
            o.available is not None or self.world.capacitated(o.cloud) for o in group.options
        )
