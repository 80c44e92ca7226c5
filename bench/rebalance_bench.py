"""Benchmark rebalancing: 10k running VMs, 30 days of changing prices.

Each day every cloud's prices drift (a random walk of a few percent, now and then a
cut), and two rebalancers decide what to move:
* ours: ``place(..., rebalance=...)`` with a Daily round, minSavingsPercent,
  minSavingsPerMonth, a 30-day horizon, egress priced per GiB, a 72 h cooldown and a
  disruption budget;
* greedy, no hysteresis: every VM goes wherever the fresh optimum puts it today
  (``place`` on an empty inventory), whatever the move costs.
Both pay egress for every GiB they move. Reported: time per daily pass at 10k, moves,
compute + egress cost over the month. Run: ``python bench/rebalance_bench.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.broker import RebalanceContext, place
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import TAG_KEY, TAG_OWNER, TAG_PLACED_AT, ResourceKey
from reconciler.model.observed import CloudInventory, Inventory, ObservedVM
from reconciler.model.specs import (
    DesiredState,
    PolicySpec,
    PowerState,
    Rebalance,
    Resources,
    VMSpec,
)

NS = "bench"
POLICY = ResourceKey("BrokerPolicy", NS, "cost")
SHAPES = [(2, 4.0), (2, 8.0), (4, 8.0), (4, 16.0), (8, 32.0), (16, 64.0)]
START = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)


@dataclass
class Market:
    clouds: dict[str, CloudInfo]
    base: dict[str, dict[str, float]]  # cloud -> type -> $/h

    def offers(self) -> dict[str, list[Offer]]:
        return {
            c: [
                Offer(c, t, int(t.split("x")[0]), float(t.split("x")[1]), p)
                for t, p in rows.items()
            ]
            for c, rows in self.base.items()
        }

    def drift(self, rng: random.Random) -> None:
        for rows in self.base.values():
            cut = rng.random() < 0.05
            factor = rng.uniform(0.97, 1.03) * (0.85 if cut else 1.0)
            for t in rows:
                rows[t] = round(rows[t] * factor, 6)


def market(rng: random.Random, n_clouds: int) -> Market:
    clouds, base = {}, {}
    for i in range(n_clouds):
        name = f"cloud-{i:02d}"
        clouds[name] = CloudInfo(name, "sim", "r", {}, frozenset(Capability), egress_per_gib=0.09)
        factor = rng.uniform(0.8, 1.2)
        base[name] = {f"{v}x{m:g}": round(factor * (0.02 * v + 0.004 * m), 6) for v, m in SHAPES}
    return Market(clouds, base)


def observed(key: ResourceKey, offer: Offer, placed: dt.datetime) -> ObservedVM:
    tags = {TAG_OWNER: "reconciler", TAG_KEY: str(key), TAG_PLACED_AT: placed.isoformat()}
    return ObservedVM(offer.cloud, f"i-{key.name}", offer.name, offer.vcpus, offer.memory_gib,
                      PowerState.RUNNING, offer.price_per_hour, tags, disk_gib=40)  # fmt: skip


def inventory(vms: dict[ResourceKey, ObservedVM], clouds: dict[str, CloudInfo]) -> Inventory:
    per: dict[str, list[ObservedVM]] = {c: [] for c in clouds}
    for vm in vms.values():
        per[vm.cloud].append(vm)
    return Inventory({c: CloudInventory(c, tuple(v)) for c, v in per.items()})


@dataclass
class Tally:
    name: str
    moves: int = 0
    egress: float = 0.0
    compute: float = 0.0
    seconds: float = 0.0
    passes: int = 0


def simulate(n_vms: int, days: int, seed: int) -> tuple[Tally, Tally]:
    rng = random.Random(seed)
    m = market(rng, 20)
    reb = Rebalance(interval="Daily", min_savings_percent=5, min_savings_per_month=2,
                    horizon_days=30, cooldown_hours=72, max_concurrent_migrations=500)  # fmt: skip
    specs = {}
    for i in range(n_vms):
        v, mem = SHAPES[i % len(SHAPES)]
        key = ResourceKey("VirtualMachine", NS, f"vm-{i:05d}")
        specs[key] = VMSpec(key, Resources(v, mem, 40), policy_ref="cost")
    desired = DesiredState(policies={POLICY: PolicySpec(POLICY, rebalance=reb)}, vms=specs)
    first = place(desired, m.clouds, m.offers(), Inventory({}))
    old = START - dt.timedelta(days=30)
    ours = {k: observed(k, p.offer, old) for k, p in first.placements.items()}
    greedy = dict(ours)
    t_ours, t_greedy = Tally("ours (thresholds, horizon, cooldown)"), Tally("greedy, no hysteresis")
    for day in range(days):
        now = START + dt.timedelta(days=day)
        m.drift(rng)
        offers = m.offers()
        price = {(o.cloud, o.name): o.price_per_hour for rows in offers.values() for o in rows}
        started = time.perf_counter()
        result = place(desired, m.clouds, offers, inventory(ours, m.clouds),
                       rebalance=RebalanceContext(now))  # fmt: skip
        t_ours.seconds += time.perf_counter() - started
        step(ours, result.placements, now, t_ours)
        started = time.perf_counter()
        fresh = place(desired, m.clouds, offers, Inventory({}))
        t_greedy.seconds += time.perf_counter() - started
        step(greedy, fresh.placements, now, t_greedy)
        for tally, vms in ((t_ours, ours), (t_greedy, greedy)):
            tally.passes += 1
            tally.compute += 24 * sum(price[(v.cloud, v.instance_type)] for v in vms.values())
    return t_ours, t_greedy


def step(
    vms: dict[ResourceKey, ObservedVM], placements: dict, now: dt.datetime, tally: Tally
) -> None:  # type: ignore[type-arg]
    for key, placement in placements.items():
        vm = vms[key]
        if placement.cloud != vm.cloud:
            tally.moves += 1
            tally.egress += vm.disk_gib * 0.09
            vms[key] = observed(key, placement.offer, now)
        elif placement.offer.name != vm.instance_type:
            vms[key] = replace(vm, instance_type=placement.offer.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ours, greedy = simulate(args.vms, args.days, args.seed)
    print(
        f"{args.vms:,} VMs, 20 clouds x {len(SHAPES)} types, {args.days} days, seed {args.seed}\n"
    )
    print("| rebalancer | s per daily pass | moves | compute $ | egress $ | total $ |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in (ours, greedy):
        total = t.compute + t.egress
        print(f"| {t.name} | {t.seconds / t.passes:.2f} | {t.moves:,} | {t.compute:,.0f} | "
              f"{t.egress:,.0f} | {total:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
