"""Run the real `reconciler` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(
    *args: str,
    state: Path | None = None,
    stdin: str = "",
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    cmd = [sys.executable, "-m", "reconciler", *args]
    if state is not None:
        cmd += ["--state", str(state)]
    proc = subprocess.run(
        cmd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        cwd=ROOT,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)
