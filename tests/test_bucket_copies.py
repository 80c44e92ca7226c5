"""Bucket copies kept in sync through plan/apply, on the simulator (the real object
stores are covered by tests/test_bucket_sync.py): drift becomes a sync action,
driftPolicy Report only reports it, a new copy is filled in the same apply."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import run

from reconciler.model.specs import CloudSpec, Pricing
from reconciler.providers.base import ProviderContext
from reconciler.providers.sim import SimProvider, drop_worlds

MANIFESTS = """\
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {{name: s3-a}}
spec: {{provider: sim, region: a, pricing: {{catalog: sim-private-openstack}}}}
---
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {{name: s3-b}}
spec: {{provider: sim, region: b, pricing: {{catalog: sim-private-openstack}}}}
---
apiVersion: reconciler.dev/v1alpha1
kind: Cloud
metadata: {{name: s3-c}}
spec: {{provider: sim, region: c, pricing: {{catalog: sim-private-openstack}}}}
---
apiVersion: reconciler.dev/v1alpha1
kind: Bucket
metadata: {{name: backups, namespace: default}}
spec: {{clouds: [s3-a, s3-b, s3-c], copies: {copies}, driftPolicy: {drift}}}
"""


def provider(state: Path, cloud: str) -> SimProvider:
    spec = CloudSpec(cloud, "sim", pricing=Pricing(catalog="sim-private-openstack"))
    return SimProvider(spec, ProviderContext(state_dir=state))


def bucket_of(state: Path, cloud: str) -> str:
    (found,) = provider(state, cloud).list_managed().buckets
    return found.external_id


def contents(state: Path, cloud: str) -> dict[str, bytes]:
    p, bucket = provider(state, cloud), bucket_of(state, cloud)
    return {o.key: b"".join(p.get_object(bucket, o.key)) for o in p.list_objects(bucket)}


def test_copies_are_synced_reported_and_filled(tmp_path: Path) -> None:
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    path = manifests / "b.yaml"
    path.write_text(MANIFESTS.format(copies=2, drift="Correct"))
    assert run("apply", str(manifests), "--auto-approve", state=state).code == 0
    source = provider(state, "s3-a")
    bucket = bucket_of(state, "s3-a")
    for key, data in {"a.txt": b"alpha", "dir/b.bin": bytes(range(256)) * 100}.items():
        source.put_object(bucket, key, [data], {})
    drop_worlds()
    plan = json.loads(run("plan", str(manifests), "-o", "json", state=state).out)
    (action,) = plan["actions"]
    assert action["action"] == "sync" and action["cloud"] == "s3-a"
    assert "s3-b: 2 missing, 0 stale, 0 extra" in action["reason"]
    assert run("apply", str(manifests), "--auto-approve", state=state).code == 0
    assert contents(state, "s3-b") == contents(state, "s3-a")
    assert run("plan", str(manifests), "--detailed-exitcode", state=state).code == 0
    # The source changes; with driftPolicy Report the plan only says so.
    source = provider(state, "s3-a")
    source.put_object(bucket, "a.txt", [b"alpha, revised"], {})
    source.delete_object(bucket, "dir/b.bin")
    drop_worlds()
    path.write_text(MANIFESTS.format(copies=2, drift="Report"))
    report = json.loads(run("plan", str(manifests), "-o", "json", state=state).out)
    assert report["actions"] == [] and report["drift"][0]["cloud"] == "s3-b"
    # Back to Correct with a third copy: one apply creates it and fills both.
    path.write_text(MANIFESTS.format(copies=3, drift="Correct"))
    shown = run("plan", str(manifests), state=state)
    assert "1 to create" in shown.out and "sync" in shown.out
    assert run("apply", str(manifests), "--auto-approve", state=state).code == 0
    want = contents(state, "s3-a")
    assert want == {"a.txt": b"alpha, revised"}
    assert contents(state, "s3-b") == want and contents(state, "s3-c") == want
    assert run("plan", str(manifests), "--detailed-exitcode", state=state).code == 0
