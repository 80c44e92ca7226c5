"""Planning only what changed: the objects of a few dirty keys, against the baseline.

A full pass costs time in proportion to everything declared (about a second at 10k
VMs on two cores, more with slow clouds); a spec change should not wait for that.
When only workload objects changed, the controller plans just those, closed under
what couples them in the planner:

- a VirtualMachineSet with all its replicas (recorded and declared), and a VM that
  looks like a replica with its set, so names and spread are checked together;
- a VM with the Volumes it lists or that name it in ``attachTo``, and a Volume with
  its VM (a volume follows its VM's placement);
- every Cloud, BrokerPolicy and Image, which the objects refer to.

Every other recorded VM keeps its capacity and spread slots (``occupied``). A change
to any other kind, a VM under a budgeted policy (a budget sums every VM using the
policy), a plan that migrates (a policy's disruption budget and rounds count every
migration), a VM annotated to abort its migration, or a scope larger than
``MAX_SCOPE`` needs a full pass instead. A scoped pass never moves a VM for cost (``rounds=None``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.executor.world import World
from reconciler.model.keys import ResourceKey, owning_set, replica_key
from reconciler.model.plan import ActionType, Plan
from reconciler.model.specs import DesiredState
from reconciler.operator.baseline import Baseline
from reconciler.operator.desired import ClusterDesired, build_desired
from reconciler.operator.informer import Cache, CachedObject
from reconciler.operator.planning import plan_for_operator
from reconciler.operator.report import PassReport

#: Kinds a scoped pass can plan; a change to any other kind needs a full pass.
SCOPED_KINDS = frozenset({"VirtualMachine", "VirtualMachineSet", "Volume", "Bucket"})
#: Kinds every scoped pass reads whole (few objects; everything refers to them).
SHARED_KINDS = ("Cloud", "BrokerPolicy", "Image")
#: Beyond this many keys a full pass is as cheap and simpler to trust.
MAX_SCOPE = 512


@dataclass
class Scope:
    """The objects to plan together and every resource key their plan may touch."""

    objects: list[CachedObject]
    keys: set[ResourceKey]


def _listed_volumes(vm: CachedObject | None) -> list[str]:
    """The Volumes a VM's spec lists (the schema's items are names)."""
    volumes = vm.spec.get("volumes") if vm is not None else None
    return [v for v in volumes if isinstance(v, str)] if isinstance(volumes, list) else []


class _Links:
    """VM <-> Volume links as declared in the cached objects (both directions).

    An object's own links come from its spec; the reverse ones from one scan of the
    cache on first use, so a VM whose scope reaches no Volume costs no scan of every VM.
    """

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._attached: dict[tuple[str, str], set[str]] | None = None  # VM -> Volumes
        self._listing: dict[tuple[str, str], set[str]] | None = None  # Volume -> VMs

    def volumes_of(self, key: ResourceKey, vm: CachedObject | None) -> set[str]:
        """The Volumes ``vm`` lists and those naming it in ``attachTo``."""
        if self._attached is None:
            self._attached = defaultdict(set)
            for vol in self._cache.objects("Volume"):
                target = vol.spec.get("attachTo")
                if isinstance(target, str):
                    self._attached[(vol.namespace, target)].add(vol.name)
        return {*_listed_volumes(vm), *self._attached.get((key.namespace, key.name), ())}

    def vms_of(self, key: ResourceKey, volume: CachedObject | None) -> set[str]:
        """The VM ``volume`` names in ``attachTo`` and the VMs listing it."""
        if self._listing is None:
            self._listing = defaultdict(set)
            for vm in self._cache.objects("VirtualMachine"):
                for name in _listed_volumes(vm):
                    self._listing[(vm.namespace, name)].add(vm.name)
        target = volume.spec.get("attachTo") if volume is not None else None
        own = [target] if isinstance(target, str) else []
        return {*own, *self._listing.get((key.namespace, key.name), ())}


def _replicas(obj: CachedObject | None, key: ResourceKey, baseline: Baseline) -> set[ResourceKey]:
    declared = obj.spec.get("replicas") if obj is not None else None
    count = declared if isinstance(declared, int) and 0 <= declared <= MAX_SCOPE else 0
    return {replica_key(key, i) for i in range(count)} | baseline.set_members(key)


def scope_for(dirty: Iterable[ResourceKey], cache: Cache, baseline: Baseline) -> Scope | None:
    """The closed scope of ``dirty``, or None when only a full pass will do."""
    links: _Links | None = None
    work, keys = deque(dirty), set[ResourceKey]()
    while work:
        key = work.popleft()
        if key in keys:
            continue
        if key.kind not in SCOPED_KINDS or len(keys) >= MAX_SCOPE:
            return None
        keys.add(key)
        obj = cache.get(key)
        if key.kind == "VirtualMachineSet":
            work.extend(_replicas(obj, key, baseline))
            continue
        if key.kind == "Bucket":
            continue
        links = links or _Links(cache)
        ns = key.namespace
        if key.kind == "VirtualMachine":
            parent = owning_set(key)
            if parent is not None and cache.get(parent) is not None:
                work.append(parent)
            work.extend(ResourceKey("Volume", ns, v) for v in links.volumes_of(key, obj))
        else:
            work.extend(ResourceKey("VirtualMachine", ns, vm) for vm in links.vms_of(key, obj))
    objects = [obj for obj in map(cache.get, sorted(keys)) if obj is not None]
    return Scope(objects, keys)


def _budgeted(desired: DesiredState) -> bool:
    """Whether a VM in scope uses a policy with a budget (budgets sum over all VMs)."""
    for vm in desired.vms.values():
        policy = desired.policy_for(vm.key.namespace, vm.policy_ref)
        if policy is not None and policy.max_monthly_budget is not None:
            return True
    return False


def plan_scoped(
    scope: Scope, cache: Cache, baseline: Baseline, owner: str
) -> tuple[Plan, World, ClusterDesired, PassReport] | None:
    """Plan ``scope`` against the baseline; None when a full pass is needed instead.

    The report is filled like a full pass's, for the objects of the scope.
    """
    shared = [obj for kind in SHARED_KINDS for obj in cache.objects(kind)]
    cluster = build_desired([*scope.objects, *shared])
    desired = cluster.desired
    if _budgeted(desired) or cluster.abort & scope.keys:
        return None
    keys = scope.keys | set(desired.vms) | set(desired.volumes) | set(desired.buckets)
    world = World(baseline.providers, baseline.clouds, baseline.offers, baseline.inventory(keys))
    report = PassReport.for_cluster(cluster)
    report.saw(world)
    plan = plan_for_operator(cluster, world, owner, report, occupied=baseline.occupied(keys))
    if any(a.type is ActionType.MIGRATE for a in plan.actions):
        return None
    return plan, world, cluster, report
