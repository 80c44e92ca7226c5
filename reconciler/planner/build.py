"""build_plan: the planner's one entry point."""

from __future__ import annotations

from collections import defaultdict

from reconciler.model.cloudjson import cloud_to_json
from reconciler.model.errors import PlanError
from reconciler.model.keys import HOURS_PER_MONTH, ResourceKey
from reconciler.model.plan import CloudPrices, Plan, UnplacedEntry
from reconciler.planner.buckets import plan_buckets
from reconciler.planner.collect import Collector
from reconciler.planner.images import plan_image_cleanup
from reconciler.planner.inputs import PlanInput
from reconciler.planner.storage import plan_volumes
from reconciler.planner.vms import plan_vms

__all__ = ["PlanInput", "build_plan"]


def build_plan(inp: PlanInput) -> Plan:
    """Turn desired x observed x placements into a Plan.

    Raises PlanError naming every protected resource the plan would destroy, and when
    a policy's budget would be exceeded by a plan that raises its cost.
    """
    fingerprint = inp.inventory.fingerprint()
    col = Collector(owner=inp.owner, salt=fingerprint[:16], hold=inp.hold, retire_as=inp.retire_as)
    vm_targets = plan_vms(inp, col)
    plan_volumes(inp, col, vm_targets)
    plan_buckets(inp, col)
    plan_image_cleanup(inp, col)
    if col.protected and not inp.refuse_protected:
        col.warnings.extend(f"kept because protect: true: {item}" for item in col.protected)
    elif col.protected:
        raise PlanError(
            "the plan would destroy protected resources (protect: true); set protect: false "
            "in their manifest and apply first, or keep them declared:\n  - "
            + "\n  - ".join(sorted(col.protected))
        )
    _check_budgets(inp, col)
    unplaced = [
        UnplacedEntry(key, u.reasons)
        for key, u in sorted({**inp.result.unplaced, **inp.result.storage_unplaced}.items())
    ]
    return Plan(
        created_at=inp.created_at,
        owner=inp.owner,
        inventory_fingerprint=fingerprint,
        clouds=_cloud_prices(inp, col),
        actions=tuple(col.actions),
        current_per_hour=round(sum(col.current.values()), 6),
        planned_per_hour=round(sum(col.planned.values()), 6),
        unplaced=tuple(unplaced),
        warnings=tuple(col.warnings),
        forgotten=tuple(col.forgotten),
        cloud_specs=tuple(cloud_to_json(c) for _, c in sorted(inp.desired.clouds.items())),
        drift=tuple(col.drift),
        rebalance=tuple(r.to_json() for r in inp.result.rounds),
    )


def _cloud_prices(inp: PlanInput, col: Collector) -> tuple[CloudPrices, ...]:
    rows = []
    for name in sorted(set(inp.clouds) | set(col.current) | set(col.planned)):
        info = inp.clouds.get(name)
        spec = inp.desired.clouds.get(name)
        rows.append(
            CloudPrices(
                name=name,
                provider=info.provider if info else (spec.provider if spec else "unknown"),
                region=info.region if info else (spec.region if spec else ""),
                price_source=info.price_source if info else "unreachable",
                price_as_of=info.price_as_of if info else "",
                simulated=info.simulated if info else False,
                current_per_hour=round(col.current.get(name, 0.0), 6),
                planned_per_hour=round(col.planned.get(name, 0.0), 6),
            )
        )
    return tuple(rows)


def _check_budgets(inp: PlanInput, col: Collector) -> None:
    """A policy's budget.maxMonthly caps the planned VM cost of the VMs using it."""
    budgets = {
        key: p.max_monthly_budget
        for key, p in inp.desired.policies.items()
        if p.max_monthly_budget is not None
    }
    if not budgets:
        return
    planned: dict[ResourceKey, float] = defaultdict(float)
    current: dict[ResourceKey, float] = defaultdict(float)
    running = {vm.key: vm.price_per_hour for vm in inp.inventory.all_vms() if vm.key}
    for key, vm in inp.desired.vms.items():
        pkey = ResourceKey("BrokerPolicy", key.namespace, vm.policy_ref or "")
        if pkey not in budgets:
            continue
        placement = inp.result.placements.get(key)
        if placement is not None and vm.power_state.value == "Running":
            planned[pkey] += placement.offer.price_per_hour * HOURS_PER_MONTH
        current[pkey] += running.get(key, 0.0) * HOURS_PER_MONTH
    over = [
        f"{key}: planned ${planned[key]:,.2f}/mo > budget.maxMonthly ${limit:,.2f}"
        for key, limit in budgets.items()
        if limit is not None and planned[key] > limit + 1e-9 and planned[key] > current[key]
    ]
    if over:
        raise PlanError("the plan exceeds a policy budget:\n  - " + "\n  - ".join(sorted(over)))
