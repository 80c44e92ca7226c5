"""A REAL moto server (EC2, EBS, S3 over HTTP) on 127.0.0.1, started once per test session.

Instance-type and AMI validation are on, so unknown types and AMIs fail as on AWS.
``reset`` clears every backend between targets (POST /moto-api/reset). The process is
ours: terminated by PID at interpreter exit.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from servers.process import (
    find_binary,
    free_port,
    once_per_session,
    spawn,
    stop_processes,
    wait_until,
)

#: Fake credentials moto accepts (test data, not secrets).
ACCESS_KEY, SECRET_KEY = "testing", "testing-secret"


@dataclass
class MotoServer:
    """A running moto server: its URL and process."""

    port: int
    process: subprocess.Popen[bytes]
    log_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every resource of every service."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        stop_processes([self.process], self.log_dir)


def start_moto(timeout: float = 20.0) -> MotoServer:
    """Start a new moto server (callers normally use ``moto_server``)."""
    log_dir = Path(tempfile.mkdtemp(prefix="reconciler-moto-"))
    port = free_port()
    env = {
        **os.environ,
        "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
        "MOTO_ENABLE_AMI_VALIDATION": "true",
    }
    binary = find_binary("moto_server", "pip install 'moto[server]'")
    process = spawn([binary, "-H", "127.0.0.1", "-p", str(port)], log_dir / "moto.log", env=env)
    server = MotoServer(port, process, log_dir)

    def answers() -> bool:
        try:
            server.reset()
            return True
        except OSError:
            return False

    wait_until(answers, [process], "moto_server", timeout, logs=log_dir / "moto.log")
    return server


@once_per_session
def moto_server() -> MotoServer:
    """The session's moto server, started on first use and stopped at exit."""
    return start_moto()
