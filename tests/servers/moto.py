"""A REAL moto server (EC2, EBS, S3 over HTTP) on 127.0.0.1, started once per test session.

Instance-type and AMI validation are on, so unknown types and AMIs fail as on AWS.
``reset`` clears every backend between targets (POST /moto-api/reset). The process is
ours: terminated by PID at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: Fake credentials moto accepts (test data, not secrets).
ACCESS_KEY, SECRET_KEY = "testing", "testing-secret"

_LOCK = threading.Lock()
_SERVER: MotoServer | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> str:
    local = Path(sys.executable).parent / "moto_server"
    if local.exists():
        return str(local)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("'moto_server' not found: pip install 'moto[server]'")
    return found


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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def start_moto(timeout: float = 20.0) -> MotoServer:
    """Start a new moto server (callers normally use ``moto_server``)."""
    log_dir = Path(tempfile.mkdtemp(prefix="reconciler-moto-"))
    port = free_port()
    env = {
        **os.environ,
        "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
        "MOTO_ENABLE_AMI_VALIDATION": "true",
    }
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [_binary(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = MotoServer(port, process, log_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited early; see {log_dir / 'moto.log'}")
        try:
            server.reset()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto_server did not become ready in {timeout:.0f} s")


def moto_server() -> MotoServer:
    """The session's moto server, started on first use and stopped at exit."""
    global _SERVER
    with _LOCK:
        if _SERVER is None:
            _SERVER = start_moto()
            atexit.register(_SERVER.stop)
        return _SERVER
