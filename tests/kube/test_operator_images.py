"""The operator and Images: an Image imported on demand shows each cloud's id for it
in ``status.clouds``; removing the Image deletes the imported copy."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from kube.ophelp import Env, create, get, image_body, sim_resources, wait_condition, wait_for

pytestmark = pytest.mark.timeout(180)


def _clouds(env: Env, name: str) -> list[dict[str, Any]]:
    obj = get(env.admin, "Image", env.ns, name) or {}
    return list((obj.get("status") or {}).get("clouds") or [])


def test_imported_image_ids_are_kept_in_status_and_removed_with_the_image(
    env: Env, tmp_path: Path
) -> None:
    disk = hashlib.sha256(b"appliance").digest() * 32768  # 1 MiB of raw disk
    path = tmp_path / "appliance.raw"
    path.write_bytes(disk)
    env.basics()
    body = image_body(env.ns, "appliance")
    body["spec"] = {"format": "raw", "url": str(path), "import": "OnDemand"}
    create(env.admin, body)
    env.vm("app", image="appliance")
    env.operator("--resync", "2")
    wait_condition(env.admin, "VirtualMachine", env.ns, "app", "Ready", "True")
    rows = wait_for(lambda: _clouds(env, "appliance"), 30, "Image status.clouds")
    images = sim_resources(env.state, env.cloud, "image")
    assert [(r.id, r.disk) for r in images] == [(rows[0]["imageId"], rows[0]["sha256"])]
    assert rows == [
        {
            "cloud": env.cloud,
            "imageId": images[0].id,
            "sha256": hashlib.sha256(disk).hexdigest(),
            "sizeBytes": len(disk),
        }
    ]
    assert sim_resources(env.state, env.cloud)[0].disk == rows[0]["sha256"]  # VM booted from it
    ready = wait_condition(env.admin, "Image", env.ns, "appliance", "Ready", "True")
    assert ready["status"]["observedGeneration"] == 1
    env.admin.delete(env.path("app"))
    env.admin.delete(env.path("appliance", "Image"))
    wait_for(lambda: not sim_resources(env.state, env.cloud, "image"), 30, "imported copy deleted")
    wait_for(lambda: not sim_resources(env.state, env.cloud), 30, "VM deleted")


def test_a_failing_import_keeps_saying_why_while_it_backs_off(env: Env, tmp_path: Path) -> None:
    """The error of a failed action stays in status (with the retry) on the passes that
    hold the object back, not just on the pass where it failed; fixed, it converges."""
    path = tmp_path / "late.raw"
    env.basics()
    body = image_body(env.ns, "late")
    body["spec"] = {"format": "raw", "url": str(path), "import": "OnDemand"}
    create(env.admin, body)
    env.vm("app", image="late")
    op = env.operator("--resync", "2")

    def retrying() -> dict[str, Any] | None:
        obj = get(env.admin, "Image", env.ns, "late") or {}
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        synced = conds.get("Synced", {})
        return synced if "tried again at" in synced.get("message", "") else None

    synced = wait_for(retrying, 60, "Image Synced with the error and its retry")
    assert synced["reason"] == "ActionFailed"
    assert f"image file {path} not found" in synced["message"]
    # The text stays until the retry: no status rewritten (and echoed back) pass after pass.
    writes = op.metric("reconciler_status_writes_total")
    time.sleep(1.0)
    assert op.metric("reconciler_status_writes_total") - writes <= 4
    path.write_bytes(hashlib.sha256(b"late").digest() * 32768)
    wait_condition(env.admin, "VirtualMachine", env.ns, "app", "Ready", "True", timeout=120)
