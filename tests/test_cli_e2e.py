"""End-to-end: the CLI through a subprocess on the quickstart's simulated clouds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clirun import QUICKSTART, run


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "manifests"
    shutil.copytree(QUICKSTART, dest, ignore=shutil.ignore_patterns("*.md"))
    return dest


def test_version_and_help() -> None:
    assert run("--version").out.startswith("reconciler, version")
    helped = run("--help")
    assert helped.code == 0
    for command in ("validate", "plan", "apply", "show", "explain"):
        assert command in helped.out


def test_validate_quickstart() -> None:
    result = run("validate", str(QUICKSTART))
    assert result.code == 0, result.err
    assert "objects valid" in result.out


def test_validate_reports_every_error_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: reconciler.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: a\n"
        "spec:\n  resources:\n    vcpus: 0\n    memoryGiB: 4\n  policyRef:\n    name: nope\n"
    )
    result = run("validate", str(bad))
    assert result.code == 1
    assert f"{bad}:7:" in result.err and "spec.resources.vcpus" in result.err
    assert "nope" in result.err  # the dangling policyRef, reported in the same run


def test_plan_in_three_formats(tmp_path: Path, project: Path) -> None:
    state = tmp_path / "state"
    text = run("plan", str(project), state=state)
    assert text.code == 0, text.err
    assert "Plan: " in text.out and "to create" in text.out and "/mo" in text.out
    assert "days old" in text.out
    as_json = run("plan", str(project), "-o", "json", state=state)
    data = json.loads(as_json.out)
    assert data["formatVersion"] == "1"
    assert data["summary"]["create"] + data["summary"]["attach"] == len(data["actions"])
    assert data["summary"]["attach"] == 1  # db-data onto db, after both exist
    assert {a["kind"] for a in data["actions"]} == {"VirtualMachine", "Volume", "Bucket"}
    md = run("plan", str(project), "-o", "markdown", state=state)
    assert md.out.startswith("### reconciler plan") and "| cloud |" in md.out
    assert run("plan", str(project), "--detailed-exitcode", state=state).code == 2


def test_policy_is_respected_in_plan(tmp_path: Path, project: Path) -> None:
    data = json.loads(run("plan", str(project), "-o", "json", state=tmp_path / "s").out)
    where = {a["key"]: a["cloud"] for a in data["actions"] if a["kind"] == "VirtualMachine"}
    assert where["VirtualMachine/default/batch"] != "private-dc"  # denied by policy batch
    web = [c for k, c in where.items() if "/web-" in k]
    assert len(web) == 5 and "azure-us" not in web  # jurisdiction eu
    assert max(web.count(c) for c in set(web)) <= 3  # spread


def test_apply_then_plan_has_no_changes(tmp_path: Path, project: Path) -> None:
    state = tmp_path / "state"
    applied = run("apply", str(project), "--auto-approve", state=state)
    assert applied.code == 0, applied.out + applied.err
    assert "Apply finished" in applied.out
    again = run("plan", str(project), "--detailed-exitcode", state=state)
    assert again.code == 0, again.out
    assert "No changes" in again.out
    shown = run("show", str(project), state=state)
    assert shown.code == 0 and "web-4" in shown.out and "total" in shown.out
    explained = run("explain", "vm/default/batch", str(project), state=state)
    assert explained.code == 0 and "denied-by-policy" in explained.out


def test_apply_refuses_without_approval_off_a_tty(tmp_path: Path, project: Path) -> None:
    result = run("apply", str(project), state=tmp_path / "s")
    assert result.code == 1 and "--auto-approve" in result.err


def test_saved_plan_applies_exactly(tmp_path: Path, project: Path) -> None:
    state, saved = tmp_path / "state", tmp_path / "plan.json"
    assert run("plan", str(project), "--out", str(saved), state=state).code == 0
    applied = run("apply", str(saved), state=state)
    assert applied.code == 0, applied.out + applied.err
    assert run("plan", str(project), "--detailed-exitcode", state=state).code == 0


def test_stale_saved_plan_is_refused(tmp_path: Path, project: Path) -> None:
    state, saved = tmp_path / "state", tmp_path / "plan.json"
    assert run("plan", str(project), "--out", str(saved), state=state).code == 0
    assert run("apply", str(project), "--auto-approve", state=state).code == 0
    before = run("show", str(project), "-o", "json", state=state).out
    stale = run("apply", str(saved), state=state)
    assert stale.code == 1 and "changed since this plan was made" in stale.err
    assert run("show", str(project), "-o", "json", state=state).out == before


def test_removed_resources_are_deleted_but_protected_ones_refused(
    tmp_path: Path, project: Path
) -> None:
    state = tmp_path / "state"
    assert run("apply", str(project), "--auto-approve", state=state).code == 0
    workloads = project / "workloads.yaml"
    docs = workloads.read_text().split("\n---\n")
    keep = [d for d in docs if "name: batch\n" not in d]
    workloads.write_text("\n---\n".join(keep))
    plan = json.loads(run("plan", str(project), "-o", "json", state=state).out)
    assert [(a["action"], a["key"]) for a in plan["actions"]] == [
        ("delete", "VirtualMachine/default/batch")
    ]
    keep = [d for d in keep if "name: db\n" not in d and "attachTo: db" not in d]
    workloads.write_text("\n---\n".join(keep))
    refused = run("plan", str(project), state=state)
    assert refused.code == 1 and "protected" in refused.err and "default/db" in refused.err
