"""Moves between clouds: the arithmetic that justifies one, and rebalancing rounds.

A cost-driven move is worth making only when what it saves over the policy's horizon
exceeds what it costs (egress for the data moved, plus the conversion and downtime
costs the policy declares) plus the policy's thresholds. ``MoveEconomics`` keeps every
term so the plan can show the sum, not just its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.model.keys import HOURS_PER_MONTH, ResourceKey

DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0


@dataclass(frozen=True, slots=True)
class MoveEconomics:
    """Why a VM should (or should not) move, in USD.

    ``threshold`` is the least net gain the policy asks for over the horizon:
    ``min_savings_per_month`` scaled to the horizon."""

    current_per_hour: float
    target_per_hour: float
    horizon_days: int
    data_gib: float
    egress_per_gib: float
    conversion_cost: float
    downtime_cost: float
    min_savings_per_month: float
    min_savings_percent: float

    @property
    def saving_per_hour(self) -> float:
        return self.current_per_hour - self.target_per_hour

    @property
    def savings_per_month(self) -> float:
        return self.saving_per_hour * HOURS_PER_MONTH

    @property
    def savings_percent(self) -> float:
        if self.current_per_hour <= 0:
            return 0.0
        return 100.0 * self.saving_per_hour / self.current_per_hour

    @property
    def savings_over_horizon(self) -> float:
        return self.saving_per_hour * 24.0 * self.horizon_days

    @property
    def egress_cost(self) -> float:
        return self.data_gib * self.egress_per_gib

    @property
    def migration_cost(self) -> float:
        return self.egress_cost + self.conversion_cost + self.downtime_cost

    @property
    def threshold(self) -> float:
        return self.min_savings_per_month * self.horizon_days / DAYS_PER_MONTH

    @property
    def net_over_horizon(self) -> float:
        """Savings over the horizon minus the move's cost."""
        return self.savings_over_horizon - self.migration_cost

    def verdict(self) -> str | None:
        """None when the move is worth making, else why not (first failing test)."""
        if self.saving_per_hour <= 0:
            return "not cheaper"
        if self.savings_percent < self.min_savings_percent:
            return (
                f"saves {self.savings_percent:.1f}%, below minSavingsPercent "
                f"{self.min_savings_percent:g}%"
            )
        if self.savings_per_month < self.min_savings_per_month:
            return (
                f"saves ${self.savings_per_month:.2f}/mo, below minSavingsPerMonth "
                f"${self.min_savings_per_month:.2f}"
            )
        if self.net_over_horizon <= self.threshold:
            return (
                f"saves ${self.savings_over_horizon:.2f} over {self.horizon_days} d, not more "
                f"than the move's cost ${self.migration_cost:.2f}"
                + (f" + threshold ${self.threshold:.2f}" if self.threshold else "")
            )
        return None

    def arithmetic(self) -> str:
        """The sum, as the plan shows it."""
        parts = [f"egress {self.data_gib:g} GiB x ${self.egress_per_gib:g}"]
        if self.conversion_cost:
            parts.append(f"conversion ${self.conversion_cost:.2f}")
        if self.downtime_cost:
            parts.append(f"downtime ${self.downtime_cost:.2f}")
        text = (
            f"${self.current_per_hour:.4f}/h -> ${self.target_per_hour:.4f}/h saves "
            f"${self.savings_per_month:.2f}/mo ({self.savings_percent:.1f}%); over "
            f"{self.horizon_days} d ${self.savings_over_horizon:.2f} > cost "
            f"${self.migration_cost:.2f} ({', '.join(parts)})"
        )
        if self.threshold:
            text += f" + threshold ${self.threshold:.2f}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "currentPerHour": round(self.current_per_hour, 6),
            "targetPerHour": round(self.target_per_hour, 6),
            "savingsPerMonth": round(self.savings_per_month, 2),
            "savingsPercent": round(self.savings_percent, 2),
            "horizonDays": self.horizon_days,
            "savingsOverHorizon": round(self.savings_over_horizon, 2),
            "dataGiB": self.data_gib,
            "egressPerGiB": self.egress_per_gib,
            "egressCost": round(self.egress_cost, 2),
            "conversionCost": round(self.conversion_cost, 2),
            "downtimeCost": round(self.downtime_cost, 2),
            "migrationCost": round(self.migration_cost, 2),
            "threshold": round(self.threshold, 2),
            "netOverHorizon": round(self.net_over_horizon, 2),
        }


class RoundState(StrEnum):
    """Where a policy's rebalancing round stands at plan time."""

    NEVER = "never"  # interval Never: running VMs move only when they must
    DONE = "done"  # this period's round finished; the next starts with the next period
    OPEN = "open"  # moves proposed in this plan, or in flight
    COMPLETES = "completes"  # nothing (more) worth moving: the round ends when applied
    WAITING_WINDOW = "waiting-for-window"  # due, but outside every maintenance window


@dataclass(frozen=True, slots=True)
class RebalanceRound:
    """One policy's rebalancing status in a plan (``period``: e.g. 2026-12-03, 2026-W49,
    2026-12)."""

    policy: ResourceKey
    interval: str
    period: str
    state: RoundState
    moves: int = 0
    in_flight: int = 0
    max_concurrent: int = 0
    held: int = 0
    next_round: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": str(self.policy),
            "interval": self.interval,
            "period": self.period,
            "state": self.state.value,
            "moves": self.moves,
            "inFlight": self.in_flight,
            "maxConcurrent": self.max_concurrent,
            "held": self.held,
            "nextRound": self.next_round,
        }
