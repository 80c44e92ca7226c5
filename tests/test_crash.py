"""SIGKILL `reconciler apply` at many points; re-running must converge with no
duplicate and no lost resource.

The kill points are chosen by watching the apply journal grow: killing when it holds
K lines lands between an intent and its outcome, or between two calls, for every K.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from clirun import ROOT, run

CLOUDS = """
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {{name: {name}, labels: {{jurisdiction: eu}}}}
spec:
  provider: sim
  pricing: {{catalog: {catalog}}}
  capacity: {{vcpus: {vcpus}}}
  simulation: {{latencyMs: 15}}
"""

WORKLOAD = """
apiVersion: reconciler.dev/v1alpha1
kind: VirtualMachineSet
metadata: {name: fleet, namespace: default}
spec:
  replicas: 24
  spread: {maxPerCloud: 12}
  template:
    spec:
      resources: {vcpus: 2, memoryGiB: 4}
---
apiVersion: reconciler.dev/v1alpha1
kind: VirtualMachine
metadata: {name: db, namespace: default}
spec:
  resources: {vcpus: 4, memoryGiB: 16}
  volumes: [data]
---
apiVersion: reconciler.dev/v1alpha1
kind: Volume
metadata: {name: data, namespace: default}
spec: {sizeGiB: 50, attachTo: db}
---
apiVersion: reconciler.dev/v1alpha1
kind: Bucket
metadata: {name: logs, namespace: default}
spec: {copies: 2}
"""


def write_manifests(path: Path) -> Path:
    path.mkdir()
    clouds = [
        CLOUDS.format(name="private", catalog="sim-private-openstack", vcpus=20),
        CLOUDS.format(name="aws", catalog="aws-eu-west-1", vcpus=1000),
        CLOUDS.format(name="azure", catalog="azure-westeurope", vcpus=1000),
    ]
    (path / "clouds.yaml").write_text("---".join(clouds))
    (path / "workload.yaml").write_text(WORKLOAD)
    return path


def kill_at(manifests: Path, state: Path, journal_lines: int) -> None:
    """Start apply and SIGKILL it once the journal has ``journal_lines`` new lines."""
    journal = state / "journal.jsonl"
    start = len(journal.read_text().splitlines()) if journal.exists() else 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            str(manifests),
            "--auto-approve",
            "--state",
            str(state),
            "--parallelism",
            "4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if journal.exists() and len(journal.read_text().splitlines()) - start >= journal_lines:
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def managed(manifests: Path, state: Path) -> list[tuple[str, str]]:
    shown = run("show", str(manifests), "-o", "json", state=state)
    assert shown.code == 0, shown.err
    report = json.loads(shown.out)
    return [(c["name"], r["key"]) for c in report["clouds"] for r in c["resources"]]


@pytest.mark.slow
@pytest.mark.parametrize("kill_points", [(1, 2, 3), (5, 9, 17), (26, 41, 60)])
def test_sigkill_apply_then_rerun_converges(tmp_path: Path, kill_points: tuple[int, ...]) -> None:
    manifests, state = write_manifests(tmp_path / "m"), tmp_path / "state"
    for point in kill_points:
        kill_at(manifests, state, point)
        keys = [k for _, k in managed(manifests, state)]
        dupes = [k for k, n in Counter(keys).items() if n > 1 and not k.startswith("Bucket/")]
        assert not dupes, f"duplicates after a kill at journal line {point}: {dupes}"
    final = run("apply", str(manifests), "--auto-approve", state=state)
    assert final.code == 0, final.out + final.err
    assert run("plan", str(manifests), "--detailed-exitcode", state=state).code == 0
    resources = managed(manifests, state)
    vms = Counter(k for _, k in resources if k.startswith("VirtualMachine/"))
    assert len(vms) == 25 and set(vms.values()) == {1}
    buckets = Counter(k for _, k in resources if k.startswith("Bucket/"))
    assert buckets == {"Bucket/default/logs": 2}
    assert Counter(k for _, k in resources if k.startswith("Volume/")) == {"Volume/default/data": 1}
