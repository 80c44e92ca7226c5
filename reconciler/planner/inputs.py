"""Everything one planning run reads; all of it already gathered (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.cloud import CloudInfo
from reconciler.model.observed import Inventory
from reconciler.model.placement import BrokerResult
from reconciler.model.specs import DesiredState


@dataclass(frozen=True)
class PlanInput:
    """Desired state, observed inventory, the broker's decisions and the clouds.

    ``created_at`` is passed in (the planner reads no clock) and ``owner`` is the
    ownership-tag value of this installation.
    """

    desired: DesiredState
    inventory: Inventory
    result: BrokerResult
    clouds: Mapping[str, CloudInfo]
    owner: str
    created_at: str
