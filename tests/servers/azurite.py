"""Azurite's Blob server on 127.0.0.1, started once per test session.

The binary comes from scripts/install-cloud-backends.sh (npm, cached under
~/.cache/reconciler/azurite). A missing binary is an error, never a skip. The process is
terminated by its PID at interpreter exit; its data lives in a temporary directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from servers.process import free_port, once_per_session, stop_processes, wait_until

#: The emulator's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    port: int
    process: subprocess.Popen[bytes]
    data: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.url};"
        )

    def stop(self) -> None:
        stop_processes([self.process], self.data)


def binary() -> Path:
    cache = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    path = cache / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run scripts/install-cloud-backends.sh")
    return path


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@once_per_session
def azurite() -> Azurite:
    """The session's Azurite, started on first use and stopped at exit."""
    data = Path(tempfile.mkdtemp(prefix="azurite-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            str(binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(data),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: _listens(port), [proc], "azurite-blob", 20.0, interval=0.05)
    return Azurite(port, proc, data)
