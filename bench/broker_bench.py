"""Benchmark the broker: 10k VMs x 1,000 offers across 20 clouds.

Times place() (exact, HiGHS), place_greedy() and lp_lower_bound() on a seeded synthetic
world (~40 VM shapes, sets with spread, several policies, capacitated private clouds)
and prints a markdown table. Run: ``python bench/broker_bench.py [--vms N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.broker import lp_lower_bound, place, place_greedy
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import Inventory
from reconciler.model.specs import (
    Capacity,
    CloudSelector,
    DesiredState,
    PolicySpec,
    Resources,
    VMSetSpec,
    VMSpec,
)

ALL_CAPS = frozenset(Capability)


def make_clouds(
    rng: random.Random, n_clouds: int, n_offers: int
) -> tuple[dict[str, CloudInfo], dict[str, list[Offer]]]:
    """``n_clouds`` clouds (every fourth private and capacitated), ``n_offers`` offers."""
    clouds: dict[str, CloudInfo] = {}
    offers: dict[str, list[Offer]] = {}
    per_cloud = n_offers // n_clouds
    for i in range(n_clouds):
        name = f"cloud-{i:02d}"
        private = i % 4 == 0
        juris = ("eu", "us", "ch")[i % 3]
        cap = (
            Capacity(vcpus=rng.randint(800, 3000), memory_gib=rng.randint(3000, 12000))
            if private
            else None
        )
        labels = {"jurisdiction": juris, "tier": "private" if private else "public"}
        clouds[name] = CloudInfo(name, "sim", f"r{i}", labels, ALL_CAPS, capacity=cap)
        factor = rng.uniform(0.6, 1.4) * (0.5 if private else 1.0)
        rows = []
        for j in range(per_cloud):
            vcpus = rng.choice([1, 2, 4, 8, 16, 32, 48, 64, 96])
            mem = vcpus * rng.choice([1, 2, 4, 8])
            gpus = rng.choice([0] * 9 + [1, 4])
            price = round(
                factor * (0.02 * vcpus + 0.004 * mem + 0.9 * gpus) * rng.uniform(0.9, 1.1), 5
            )
            avail = rng.randint(5, 200) if rng.random() < 0.05 else None
            rows.append(
                Offer(name, f"t{j:03d}.{vcpus}x{mem}", vcpus, float(mem), price, gpus, avail)
            )
        offers[name] = rows
    return clouds, offers


def make_desired(rng: random.Random, clouds: dict[str, CloudInfo], n_vms: int) -> DesiredState:
    """~40 shapes, 4 policies, about a third of the VMs in sets with spread."""
    ns = "bench"
    policies = {
        ResourceKey("BrokerPolicy", ns, "any"): PolicySpec(ResourceKey("BrokerPolicy", ns, "any")),
        ResourceKey("BrokerPolicy", ns, "eu"): PolicySpec(
            ResourceKey("BrokerPolicy", ns, "eu"), jurisdictions=("eu", "ch")
        ),
        ResourceKey("BrokerPolicy", ns, "no-private"): PolicySpec(
            ResourceKey("BrokerPolicy", ns, "no-private"),
            deny=(CloudSelector(match_labels={"tier": "private"}),),
        ),
        ResourceKey("BrokerPolicy", ns, "spread"): PolicySpec(
            ResourceKey("BrokerPolicy", ns, "spread"), max_per_cloud=40
        ),
    }
    shapes = [
        Resources(rng.choice([1, 2, 4, 8, 16]), float(rng.choice([1, 2, 4, 8, 16, 32])), 20, 0)
        for _ in range(38)
    ] + [Resources(8, 32.0, 50, 1), Resources(16, 64.0, 50, 4)]
    vms: dict[ResourceKey, VMSpec] = {}
    sets: dict[ResourceKey, VMSetSpec] = {}
    i = 0
    while len(vms) < n_vms:
        shape = rng.choice(shapes)
        pol = rng.choice(["any", "eu", "no-private", "spread"])
        if rng.random() < 0.3:
            set_key = ResourceKey("VirtualMachineSet", ns, f"set-{i}")
            replicas = rng.randint(20, 200)
            template = VMSpec(ResourceKey("VirtualMachine", ns, f"set-{i}"), shape, policy_ref=pol)
            sets[set_key] = VMSetSpec(
                set_key, replicas, template, max_per_cloud=rng.choice([None, 25])
            )
            for r in range(replicas):
                key = ResourceKey("VirtualMachine", ns, f"set-{i}-{r}")
                vms[key] = VMSpec(key, shape, policy_ref=pol, owner_set=set_key)
        else:
            key = ResourceKey("VirtualMachine", ns, f"vm-{i}")
            vms[key] = VMSpec(key, shape, policy_ref=pol)
        i += 1
    return DesiredState(policies=policies, vms=vms, vm_sets=sets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--offers", type=int, default=1_000)
    parser.add_argument("--clouds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    clouds, offers = make_clouds(rng, args.clouds, args.offers)
    desired = make_desired(rng, clouds, args.vms)
    inv = Inventory()
    rows = []
    for label, fn in (("place (exact)", place), ("place_greedy", place_greedy)):
        t0 = time.perf_counter()
        res = fn(desired, clouds, offers, inv)
        secs = time.perf_counter() - t0
        rows.append((label, secs, res))
    t0 = time.perf_counter()
    bound = lp_lower_bound(desired, clouds, offers, inv)
    lp_secs = time.perf_counter() - t0
    print(
        f"{len(desired.vms)} VMs ({len(desired.vm_sets)} sets), {args.offers} offers, "
        f"{len(clouds)} clouds, seed {args.seed}\n"
    )
    print(
        "| run | seconds | placed | unplaced | $/hour | vs LP bound | groups | variables | status |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, secs, res in rows:
        st = res.stats
        cost = sum(p.offer.price_per_hour for p in res.placements.values())
        gap = (cost - bound) / bound * 100 if bound else 0.0
        print(
            f"| {label} | {secs:.3f} | {len(res.placements)} | {len(res.unplaced)} | "
            f"{cost:.2f} | +{gap:.3f}% | {st.groups if st else '-'} | "
            f"{st.variables if st else '-'} | {st.status if st else '-'} |"
        )
    print(f"| lp_lower_bound | {lp_secs:.3f} | | | {bound:.2f} | | | | LP relaxation |")


if __name__ == "__main__":
    main()
