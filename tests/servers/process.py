"""Server processes for tests: free ports, starting, waiting until ready, stopping by PID,
and the once-per-session singleton (used by every server here and scripts/emulators.py).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar


class _Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def find_binary(name: str, install: str) -> str:
    """A console script from this interpreter's venv, else from PATH; ``install`` says how
    to get it when it is in neither."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"'{name}' not found: {install}")
    return found


def spawn(command: Sequence[str], log: Path, **options: Any) -> subprocess.Popen[bytes]:
    """Start ``command`` with its stdout and stderr going to the file ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **options)


def wait_until(
    ready: Callable[[], bool],
    processes: Sequence[subprocess.Popen[bytes]],
    what: str,
    timeout: float,
    interval: float = 0.1,
    logs: Path | None = None,
) -> None:
    """Poll ``ready()`` until it is true. If one of ``processes`` exits first, or after
    ``timeout`` seconds, stop them all (their logs stay) and raise RuntimeError naming
    ``logs``, if given."""
    see = f"; see {logs}" if logs is not None else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = next((proc for proc in processes if proc.poll() is not None), None)
        if exited is not None:
            stop_processes(processes)
            status = exited.returncode
            raise RuntimeError(f"{what} exited early with {status}: {exited.args!r}{see}")
        if ready():
            return
        time.sleep(interval)
    stop_processes(processes)
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f} s{see}")


def stop_processes(
    processes: Sequence[subprocess.Popen[bytes]], root: Path | None = None, timeout: float = 5.0
) -> None:
    """SIGTERM each live process we started, SIGKILL it after ``timeout`` s, then remove
    its tmp dir ``root`` (if given)."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def once_per_session(start: Callable[[], S]) -> Callable[[], S]:
    """Decorate ``start`` so that it runs on the first call only (thread-safe) and what
    it returns is stopped at interpreter exit; later calls return the same server."""
    lock = threading.Lock()
    started: list[S] = []

    def session() -> S:
        with lock:
            if not started:
                started.append(start())
                atexit.register(started[0].stop)
            return started[0]

    return functools.wraps(start)(session)
