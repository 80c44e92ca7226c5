"""`reconciler snapshot create|list|delete` on the simulator."""

from __future__ import annotations

from pathlib import Path

from clirun import run
from test_migration_sim import MANIFESTS


def test_snapshot_create_list_delete(tmp_path: Path) -> None:
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    (manifests / "app.yaml").write_text(MANIFESTS.format(price_a=0.2))
    missing = run("snapshot", "create", "vol/default/data", str(manifests), state=state)
    assert missing.code == 1 and "does not exist in any cloud yet" in missing.err
    assert run("apply", str(manifests), "--auto-approve", state=state).code == 0
    made = run("snapshot", "create", "vol/default/data", str(manifests), state=state)
    assert made.code == 0, made.err
    snap = made.out.split("snapshot ")[1].split()[0]
    listed = run("snapshot", "list", "vol/default/data", str(manifests), state=state)
    assert snap in listed.out
    plan = run("plan", str(manifests), "--detailed-exitcode", state=state)
    assert plan.code == 0, plan.out  # snapshots are not resources the plan manages
    wrong = run("snapshot", "create", "vm/default/app", str(manifests), state=state)
    assert wrong.code == 1 and "is not a Volume" in wrong.err
    gone = run("snapshot", "delete", "vol/default/data", snap, str(manifests), state=state)
    assert gone.code == 0 and f"deleted {snap}" in gone.out
    listed = run("snapshot", "list", "vol/default/data", str(manifests), state=state)
    assert "has no snapshots" in listed.out
