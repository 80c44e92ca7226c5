"""Broker output: where each resource should live, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.model.cloud import Offer
from reconciler.model.keys import ResourceKey
from reconciler.model.moves import MoveEconomics, RebalanceRound


class Outcome(StrEnum):
    """Why a candidate offer was or was not chosen."""

    CHOSEN = "chosen"
    MORE_EXPENSIVE = "more-expensive"
    DENIED = "denied-by-policy"
    NOT_ALLOWED = "not-in-allow-list"
    JURISDICTION = "jurisdiction"
    PINNED_ELSEWHERE = "pinned-elsewhere"
    TOO_SMALL = "too-small"
    INSTANCE_TYPE = "instance-type-mismatch"
    MISSING_CAPABILITY = "missing-capability"
    NO_CAPACITY = "no-capacity"
    SPREAD_LIMIT = "spread-limit"
    KEPT_RUNNING = "kept-running"  # cheaper, but a running VM is not moved for cost (yet)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One offer the broker considered for a VM, with its price and the verdict."""

    cloud: str
    offer: str
    price_per_hour: float
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Placement:
    """The decision for one VM. ``candidates`` is shared by identical VMs."""

    key: ResourceKey
    offer: Offer
    reason: str
    sticky: bool = False
    candidates: tuple[Candidate, ...] = ()

    @property
    def cloud(self) -> str:
        return self.offer.cloud


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A VM no offer can host, with every reason."""

    key: ResourceKey
    reasons: tuple[str, ...]
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class StoragePlacement:
    """Where a Volume or one copy set of a Bucket lives."""

    key: ResourceKey
    clouds: tuple[str, ...]
    reason: str
    price_per_gib_month: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SolverStats:
    solver: str
    groups: int
    variables: int
    seconds: float
    objective_per_hour: float
    lp_bound_per_hour: float | None = None
    status: str = "optimal"


@dataclass(frozen=True)
class BrokerResult:
    """Placements and what could not be placed. ``moves`` are cost-driven moves (with
    their arithmetic); ``held`` moves a VM must make but that wait for their policy's
    window or budget (the VM's placement stays where it runs); ``notes`` say why a
    running VM was not moved for cost; ``rounds`` each policy's rebalancing status."""

    placements: Mapping[ResourceKey, Placement]
    unplaced: Mapping[ResourceKey, Unplaced]
    storage: Mapping[ResourceKey, StoragePlacement] = field(default_factory=dict)
    storage_unplaced: Mapping[ResourceKey, Unplaced] = field(default_factory=dict)
    stats: SolverStats | None = None
    moves: Mapping[ResourceKey, MoveEconomics] = field(default_factory=dict)
    held: Mapping[ResourceKey, str] = field(default_factory=dict)
    notes: Mapping[ResourceKey, str] = field(default_factory=dict)
    rounds: tuple[RebalanceRound, ...] = ()
