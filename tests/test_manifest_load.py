"""Good manifests load into the model; directories, stdin and timing."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from reconciler.manifest import load_desired, validate_paths
from reconciler.model.keys import ResourceKey
from reconciler.model.specs import DeletionPolicy, PowerState

GOOD = """\
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata:
  name: aws-eu
  labels:
    jurisdiction: eu
spec:
  provider: sim
  region: eu-west-1
  credentialsSecretRef:
    name: aws-creds
  capacity:
    vcpus: 64
    memoryGiB: 256
  pricing:
    catalog: aws-eu-west-1
    mode: Extend
    offers:
    - name: private.small
      vcpus: 2
      memoryGiB: 4
      pricePerHour: 0.01
    egressPerGiB: 0.09
  rateLimit:
    requestsPerSecond: 10
    burst: 5
  simulation:
    latencyMs: 1
    capabilities: [stop, volumes]
    faults:
      transientRate: 0.1
      seed: 7
      operations: [create]
---
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata:
  name: onprem
  labels: {tier: private}
spec:
  provider: libvirt
---
apiVersion: reconciler.dev/v1alpha1
kind: BrokerPolicy
metadata:
  name: cheapest
  namespace: team-a
spec:
  clouds:
    allow:
    - selector:
        matchLabels:
          jurisdiction: eu
        matchExpressions:
        - key: tier
          operator: NotIn
          values: [gpu]
    deny:
    - name: onprem
  jurisdictions: [eu]
  spread:
    maxPerCloud: 10
  rebalance:
    interval: Daily
    minSavingsPercent: 10
    windows:
    - days: [Sat, Sun]
      start: "02:00"
      durationHours: 4
  budget:
    maxMonthly: 1000
---
apiVersion: reconciler.dev/v1alpha1
kind: Image
metadata: {name: ubuntu, namespace: team-a}
spec:
  format: ova
  url: https://example.com/ubuntu.ova
---
apiVersion: reconciler.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: db
  namespace: team-a
  labels: {app: db}
spec:
  resources: {vcpus: 4, memoryGiB: 16, diskGiB: 100}
  image: ubuntu
  policyRef: {name: cheapest}
  powerState: Stopped
  volumes: [db-data]
  deletionPolicy: Orphan
  protect: true
  migration: {strategy: Cold, retainSourceFor: 7d}
---
apiVersion: reconciler.dev/v1alpha1
kind: VirtualMachineSet
metadata: {name: web, namespace: team-a}
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: web}
    spec:
      resources: {vcpus: 2, memoryGiB: 4}
      policyRef: {name: cheapest}
  spread: {maxPerCloud: 2}
---
apiVersion: reconciler.dev/v1alpha1
kind: Volume
metadata: {name: db-data, namespace: team-a}
spec:
  sizeGiB: 50
---
apiVersion: reconciler.dev/v1alpha1
kind: Volume
metadata: {name: logs, namespace: team-a}
spec:
  sizeGiB: 10
  attachTo: web-2
---
apiVersion: reconciler.dev/v1alpha1
kind: Bucket
metadata: {name: backups, namespace: team-a}
spec:
  clouds: [aws-eu, onprem]
  copies: 2
  versioning: true
"""


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


def test_every_kind_builds(good: Path) -> None:
    state = load_desired([str(good)])
    cloud = state.clouds["aws-eu"]
    assert cloud.labels == {"jurisdiction": "eu"}
    assert cloud.capacity is not None and cloud.capacity.memory_gib == 256.0
    assert cloud.pricing.offers[0].memory_gib == 4.0
    assert cloud.rate_limit is not None and cloud.rate_limit.burst == 5
    assert cloud.simulation is not None and cloud.simulation.faults.seed == 7
    assert cloud.simulation.capabilities == ("stop", "volumes")
    assert cloud.simulation.faults.operations == ("create",)
    assert cloud.source.file == str(good) and cloud.source.line == 1
    policy = state.policies[ResourceKey("BrokerPolicy", "team-a", "cheapest")]
    assert policy.max_per_cloud == 10 and policy.jurisdictions == ("eu",)
    assert policy.deny[0].name == "onprem"
    assert policy.allow[0].match_expressions[0].values == ("gpu",)
    assert policy.rebalance.interval == "Daily" and policy.max_monthly_budget == 1000.0
    db = state.vms[ResourceKey("VirtualMachine", "team-a", "db")]
    assert db.power_state is PowerState.STOPPED
    assert db.deletion_policy is DeletionPolicy.ORPHAN and db.protect
    assert isinstance(db.resources.memory_gib, float) and db.labels == {"app": "db"}
    replicas = [k.name for k in state.vms if k.name.startswith("web-")]
    assert replicas == ["web-0", "web-1", "web-2"]
    web2 = state.vms[ResourceKey("VirtualMachine", "team-a", "web-2")]
    assert web2.owner_set == ResourceKey("VirtualMachineSet", "team-a", "web")
    assert web2.labels == {"app": "web"}
    vm_set = state.vm_sets[ResourceKey("VirtualMachineSet", "team-a", "web")]
    assert vm_set.replicas == 3 and vm_set.max_per_cloud == 2
    assert state.volumes[ResourceKey("Volume", "team-a", "db-data")].attach_to == "db"
    assert state.volumes[ResourceKey("Volume", "team-a", "logs")].attach_to == "web-2"
    bucket = state.buckets[ResourceKey("Bucket", "team-a", "backups")]
    assert bucket.copies == 2 and bucket.versioning
    assert state.images[ResourceKey("Image", "team-a", "ubuntu")].format == "ova"


def test_directory_recursive_sorted_hidden_skipped(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "img.yml").write_text(
        "apiVersion: reconciler.dev/v1alpha1\nkind: Image\nmetadata: {name: i}\n"
        "spec: {format: raw}\n"
    )
    (tmp_path / ".git" / "junk.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    count, problems = validate_paths([str(tmp_path)])
    assert (count, problems) == (1, [])


def test_stdin_and_empty_documents() -> None:
    text = "---\n---\n# only a comment\n---\n" + GOOD + "\n---\n"
    state = load_desired(["-"], stdin=io.StringIO(text))
    assert len(state.vms) == 4
    assert next(iter(state.clouds.values())).source.file == "<stdin>"


def test_fast_and_exact_paths_agree(tmp_path: Path) -> None:
    """The same objects in flow style (libyaml path) build the same state."""
    import json

    import yaml

    block = tmp_path / "block.yaml"
    block.write_text(GOOD)
    docs = list(yaml.safe_load_all(GOOD))
    flow = tmp_path / "flow.yaml"
    flow.write_text("---\n".join(json.dumps(d) + "\n" for d in docs))
    a, b = load_desired([str(block)]), load_desired([str(flow)])
    assert a.vms.keys() == b.vms.keys()
    for key in a.vms:
        assert a.vms[key].resources == b.vms[key].resources
    assert a.clouds["aws-eu"].pricing == b.clouds["aws-eu"].pricing


def test_timing_10k_vms(tmp_path: Path) -> None:
    head = (
        "apiVersion: reconciler.dev/v1alpha1\nkind: BrokerPolicy\n"
        "metadata: {name: p}\nspec: {objective: Cost}\n"
    )
    vms = [
        f"apiVersion: reconciler.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n"
        f"  name: vm-{i}\nspec:\n  resources:\n    vcpus: {1 + i % 8}\n"
        f"    memoryGiB: {2 * (1 + i % 8)}\n  policyRef:\n    name: p\n"
        for i in range(10_000)
    ]
    path = tmp_path / "vms.yaml"
    path.write_text("---\n".join([head, *vms]))
    started = time.perf_counter()
    state = load_desired([str(path)])
    elapsed = time.perf_counter() - started
    assert len(state.vms) == 10_000
    print(f"\nload_desired: 10k VirtualMachines in {elapsed:.2f} s")
