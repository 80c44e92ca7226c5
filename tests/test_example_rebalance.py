"""examples/rebalance walked through as its README does (on a copy of the manifests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from clirun import ROOT, run


def test_readme_walkthrough(tmp_path: Path) -> None:
    example, state = tmp_path / "rebalance", tmp_path / "state"
    shutil.copytree(ROOT / "examples" / "rebalance", example)
    assert run("apply", str(example), "--auto-approve", state=state).code == 0
    clouds = example / "clouds.yaml"
    clouds.write_text(clouds.read_text().replace("pricePerHour: 0.26", "pricePerHour: 0.15"))

    def at(when: str, *args: str) -> str:
        result = run(*args, str(example), state=state, env={"RECONCILER_NOW": when})
        assert result.code in (0, 2), result.err
        return result.out

    weekday = at("2026-12-09T10:00:00Z", "plan")
    assert "waiting-for-window" in weekday and "No changes" in weekday
    saturday = at("2026-12-12T02:00:00Z", "plan")
    assert "=> migrate VirtualMachine/default/ledger on west" in saturday
    assert "egress 150 GiB x $0.05 = $7.50" in saturday and "1 to migrate" in saturday
    assert "1 migrate; 0 failed" in at("2026-12-12T02:00:00Z", "apply", "--auto-approve")
    assert "No changes" in at("2026-12-12T02:05:00Z", "plan")
    # The retained source goes with its volume (detached, deleted, then the VM).
    expired = at("2026-12-14T03:00:00Z", "apply", "--auto-approve")
    assert "2 delete, 1 detach; 0 failed" in expired
    assert "No changes" in at("2026-12-14T03:05:00Z", "plan")
