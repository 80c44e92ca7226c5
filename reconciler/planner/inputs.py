"""Everything one planning run reads; all of it already gathered (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.model.artifacts import BucketDrift
from reconciler.model.cloud import CloudInfo, Offer
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Inventory
from reconciler.model.placement import BrokerResult
from reconciler.model.specs import DesiredState


@dataclass(frozen=True)
class PlanInput:
    """Desired state, observed inventory, the broker's decisions and the clouds.

    ``created_at`` is passed in (the planner reads no clock) and ``owner`` is the
    ownership-tag value of this installation. ``refuse_protected`` makes a plan that
    would destroy a protected resource fail (the CLI); the operator sets it False so
    one protected orphan keeps its resource (with a warning) instead of halting all.

    ``hold`` names undeclared objects whose resources must be left exactly as they are
    (paused, invalid, or deletion-blocked objects in a cluster). ``retire_as`` gives
    objects being deleted the deletionPolicy their last spec declared ("Delete" or
    "Orphan", not protected): it wins over the tags on the resource, which may be
    older than the spec. A VirtualMachineSet's key covers its replicas ``<set>-<i>``.
    """

    desired: DesiredState
    inventory: Inventory
    result: BrokerResult
    clouds: Mapping[str, CloudInfo]
    owner: str
    created_at: str
    refuse_protected: bool = True
    hold: frozenset[ResourceKey] = frozenset()
    retire_as: Mapping[ResourceKey, str] = field(default_factory=dict)
    #: VMs whose migration in flight is to be rolled back (``reconciler migrate abort``).
    abort: frozenset[ResourceKey] = frozenset()
    #: How each replicated Bucket's copies differ from its source copy (observed).
    bucket_drift: Mapping[ResourceKey, BucketDrift] = field(default_factory=dict)
    #: Each cloud's instance types (what a stopped VM will cost when started again).
    offers: Mapping[str, Sequence[Offer]] = field(default_factory=dict)

    def running_price(self, cloud: str, instance_type: str, observed: float) -> float:
        """$/hour of ``instance_type`` running in ``cloud`` (``observed`` if unknown)."""
        for offer in self.offers.get(cloud, ()):
            if offer.name == instance_type:
                return offer.price_per_hour
        return observed
