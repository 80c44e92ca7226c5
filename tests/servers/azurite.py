"""Azurite's Blob server on 127.0.0.1, started once per test session.

The binary comes from scripts/install-cloud-backends.sh (npm, cached under
~/.cache/reconciler/azurite). A missing binary is an error, never a skip. The process is
terminated by its PID at interpreter exit; its data lives in a temporary directory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: The emulator's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_lock = threading.Lock()
_server: Azurite | None = None


@dataclass(frozen=True)
class Azurite:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.url};"
        )


def binary() -> Path:
    cache = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    path = cache / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run scripts/install-cloud-backends.sh")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite-blob exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"azurite-blob did not listen on 127.0.0.1:{port} in {timeout}s")


def azurite() -> Azurite:
    """The session's Azurite, started on first use."""
    global _server
    with _lock:
        if _server is None:
            data = tempfile.mkdtemp(prefix="azurite-")
            port = _free_port()
            proc = subprocess.Popen(
                [
                    str(binary()),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--location",
                    data,
                    "--skipApiVersionCheck",
                    "--loose",
                    "--silent",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

            def stop() -> None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                shutil.rmtree(data, ignore_errors=True)

            atexit.register(stop)
            _wait(port, proc)
            _server = Azurite(port, proc.pid)
        return _server
