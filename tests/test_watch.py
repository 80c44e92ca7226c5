"""`reconciler watch`: the local GitOps loop, run as a real subprocess on a temp copy of
examples/quickstart: initial plan and apply, an edit converges, an invalid edit changes
nothing, SIGTERM exits 0."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import QUICKSTART, ROOT, run

from reconciler.cli.watch_cmd import is_manifest, loaded_from

WAITING = "waiting for changes"


class Watcher:
    """A running `reconciler watch` whose stdout/stderr are collected by reader threads."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_cycles(self, n: int, timeout: float = 20) -> str:
        """Wait until ``n`` cycles finished; return the stdout of the last one."""
        deadline = time.monotonic() + timeout
        while self.stdout.count(WAITING) < n:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no cycle {n}:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.05)
        return self.stdout.split(WAITING)[n - 1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    shutil.copytree(QUICKSTART, tmp_path / "qs")
    return tmp_path


@pytest.fixture()
def watcher(site: Path) -> Iterator[Watcher]:
    w = Watcher(str(site / "qs"), "--apply", "--debounce-ms", "100", "--state", str(site / "state"))
    yield w
    w.stop()


def _edit(path: Path, old: str, new: str) -> None:
    """Replace text atomically (as editors do), via a temp file the watcher ignores."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text.replace(old, new), encoding="utf-8")
    os.replace(tmp, path)


def test_watch_applies_converges_rejects_and_stops(site: Path, watcher: Watcher) -> None:
    first = watcher.wait_cycles(1, timeout=30)
    assert "watching" in first
    assert "Plan: 10 to create, 1 to change, 0 to delete" in first
    assert "Apply finished: 1 attach, 10 create; 0 failed, 0 skipped." in first

    workloads = site / "qs" / "workloads.yaml"
    _edit(workloads, "replicas: 5", "replicas: 4")
    second = watcher.wait_cycles(2)
    assert re.search(r"\[\d\d:\d\d:\d\d\] change in workloads\.yaml: re-planning", second)
    assert "Plan: 0 to create, 0 to change, 1 to delete" in second
    assert "delete VirtualMachine/default/web-4" in second
    assert "Apply finished: 1 delete; 0 failed, 0 skipped." in second

    _edit(workloads, "replicas: 4", "replicas: lots")
    third = watcher.wait_cycles(3)
    assert "Apply finished" not in third and "Plan:" not in third
    assert re.search(r"error: .*workloads\.yaml:\d+:\d+: spec\.replicas: ", watcher.stderr)
    assert "1 error; nothing was changed." in watcher.stderr

    (site / "qs" / "notes.txt").write_text("not a manifest\n", encoding="utf-8")
    _edit(workloads, "replicas: lots", "replicas: 4")
    fourth = watcher.wait_cycles(4)
    assert "change in workloads.yaml: re-planning" in fourth
    assert "notes.txt" not in fourth
    assert "No changes." in fourth

    faults = "  simulation:\n    faults: {permanentRate: 1.0, operations: [create]}\n"
    _edit(site / "qs" / "clouds.yaml", "  region: eu-west-1\n", "  region: eu-west-1\n" + faults)
    assert "No changes." in watcher.wait_cycles(5)
    _edit(workloads, "replicas: 4", "replicas: 5")
    sixth = watcher.wait_cycles(6)
    assert "create VirtualMachine/default/web-4 on aws-eu: failed" in sixth
    assert "Apply finished: nothing; 1 failed, 0 skipped." in sixth
    assert watcher.proc.poll() is None

    watcher.proc.send_signal(signal.SIGTERM)
    assert watcher.proc.wait(10) == 0
    time.sleep(0.1)
    assert "stopped" in watcher.stdout
    assert "Traceback" not in watcher.stderr


def test_watch_once_plans_without_applying(site: Path) -> None:
    state = site / "state"
    for _ in range(2):
        res = run("watch", str(site / "qs"), "--once", state=state, timeout=60)
        assert res.code == 0, res.err
        assert "Plan: 10 to create" in res.out
        assert "Apply finished" not in res.out
    _edit(site / "qs" / "workloads.yaml", "replicas: 5", "replicas: -1")
    res = run("watch", str(site / "qs"), "--once", state=state, timeout=60)
    assert res.code == 1
    assert "workloads.yaml:" in res.err and "nothing was changed" in res.err


def test_only_visible_yaml_files_count() -> None:
    assert is_manifest("/x/web.yaml") and is_manifest("web.yml")
    assert not is_manifest("/x/.web.yaml") and not is_manifest("web.yaml.tmp")
    assert not is_manifest("web.yaml~") and not is_manifest("notes.txt")


def test_hidden_directories_under_a_root_are_ignored(tmp_path: Path) -> None:
    roots = [tmp_path]
    assert loaded_from(str(tmp_path / "apps" / "web.yaml"), roots)
    assert not loaded_from(str(tmp_path / ".github" / "workflows" / "ci.yml"), roots)
    assert loaded_from(str(tmp_path.parent / "elsewhere.yaml"), roots)
