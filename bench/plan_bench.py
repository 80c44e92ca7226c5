"""Benchmark: `plan` over 1k/10k/100k generated VirtualMachine manifests.

Each size is generated as YAML files on disk (1,000 VMs per file), then timed stage by
stage: load+validate, observe, broker, planner, JSON; then the plan is applied on the
simulator and a second plan over the converged world is timed (the no-op path every
reconcile takes). Run: `python bench/plan_bench.py [SIZES...]` (default 1000 10000 100000).
"""

from __future__ import annotations

import json
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from reconciler.broker import place
from reconciler.executor.engine import Settings, apply, make_plan
from reconciler.executor.world import build_providers, observe
from reconciler.manifest import load_desired
from reconciler.planner import PlanInput, build_plan

CATALOGS = ["aws-eu-west-1", "aws-us-east-1", "azure-westeurope", "azure-eastus"]
SHAPES = [(v, m) for v in (1, 2, 4, 8, 16) for m in (1, 2, 4, 8) if m * v <= 64]


def write_clouds(out: Path) -> None:
    docs = []
    for i in range(8):
        juris = "eu" if i % 2 == 0 else "us"
        docs.append(
            "apiVersion: reconciler.dev/v1alpha1\nkind: Cloud\n"
            f"metadata: {{name: cloud-{i}, labels: {{jurisdiction: {juris}}}}}\n"
            f"spec: {{provider: sim, pricing: {{catalog: {CATALOGS[i % 4]}}}}}\n"
        )
    docs.append(
        "apiVersion: reconciler.dev/v1alpha1\nkind: Cloud\n"
        "metadata: {name: private, labels: {jurisdiction: eu}}\n"
        "spec: {provider: sim, pricing: {catalog: sim-private-openstack}, "
        "capacity: {vcpus: 4000, memoryGiB: 16000, instances: 2000}}\n"
    )
    for name, extra in (
        ("eu", "jurisdictions: [eu]"),
        ("cheap", "clouds: {deny: [{name: cloud-3}]}"),
    ):
        docs.append(
            "apiVersion: reconciler.dev/v1alpha1\nkind: BrokerPolicy\n"
            f"metadata: {{name: {name}, namespace: default}}\nspec: {{{extra}}}\n"
        )
    (out / "clouds.yaml").write_text("---\n".join(docs))


def write_vms(out: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    per_file = 1000
    for start in range(0, count, per_file):
        docs = []
        for i in range(start, min(count, start + per_file)):
            vcpus, ratio = SHAPES[rng.randrange(len(SHAPES))]
            policy = ("eu", "cheap")[i % 2]
            docs.append(
                "apiVersion: reconciler.dev/v1alpha1\nkind: VirtualMachine\n"
                f"metadata:\n  name: vm-{i:06d}\n  namespace: default\n"
                f"spec:\n  resources:\n    vcpus: {vcpus}\n    memoryGiB: {vcpus * ratio}\n"
                f"  policyRef:\n    name: {policy}\n"
            )
        (out / f"vms-{start // per_file:04d}.yaml").write_text("---\n".join(docs))


def timed(label: str, results: dict[str, float], fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - start
    return value


def bench(count: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifests = root / "m"
        manifests.mkdir()
        write_clouds(manifests)
        write_vms(manifests, count)
        settings = Settings(state_dir=root / "state", parallelism=16)
        total = time.perf_counter()
        desired = timed("load+validate", results, lambda: load_desired([str(manifests)]))
        world = timed(
            "observe", results, lambda: observe(build_providers(desired.clouds, settings.context))
        )
        placed = timed(
            "broker", results, lambda: place(desired, world.clouds, world.offers, world.inventory)
        )
        plan = timed(
            "planner",
            results,
            lambda: build_plan(
                PlanInput(
                    desired,
                    world.inventory,
                    placed,
                    world.clouds,
                    settings.owner,
                    "2026-11-25T00:00:00Z",
                )
            ),
        )
        timed("json", results, lambda: json.dumps(plan.to_json()))
        results["plan total"] = time.perf_counter() - total
        results["actions"] = len(plan.actions)
        applied = timed("apply (sim)", results, lambda: apply(plan, world, desired, settings))
        assert applied.ok, list(applied.failed.items())[:3]
        total = time.perf_counter()
        replanned = make_plan(desired, settings)
        results["no-op plan total"] = time.perf_counter() - total
        assert not replanned.plan.actions
    results["max RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 100000]
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    rows = {size: bench(size) for size in sizes}
    labels = list(next(iter(rows.values())))
    print("| stage | " + " | ".join(f"{s:,} VMs" for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for label in labels:
        cells = []
        for size in sizes:
            value = rows[size][label]
            cells.append(
                f"{value:,.0f}" if label in ("actions", "max RSS MiB") else f"{value:.2f} s"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
