"""Keeping the operator's resident memory close to what it actually holds.

What the operator keeps is small (about 3 KB per cached object, plus the baseline).
What it briefly needs is not: the initial LIST, a full pass over 10k objects and
thousands of status writes allocate far more, and glibc's malloc keeps freed memory
for reuse, so the process would stay near its peak. Two glibc settings address
that: at most two malloc arenas (otherwise each busy thread may get its own and keep
its free memory there), and ``malloc_trim`` after a full pass, which hands free pages
back to the kernel. Both are no-ops where glibc is absent (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import tracemalloc
from functools import cache

log = logging.getLogger(__name__)

#: mallopt(3) parameter number of M_ARENA_MAX in glibc's malloc.h.
M_ARENA_MAX = -8


@cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def limit_arenas(count: int = 2) -> bool:
    """Cap malloc arenas (call before starting threads); False without glibc."""
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, count))
    if not ok:
        log.debug("mallopt(M_ARENA_MAX) refused")
    return ok


def trim() -> bool:
    """Return free heap memory to the kernel; True if any was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def log_top_allocations(limit: int = 25) -> None:
    """Log where live memory was allocated (needs ``PYTHONTRACEMALLOC``); for operators
    chasing memory in a running pod (``kill -USR1``), without stopping it."""
    if not tracemalloc.is_tracing():
        log.info("tracemalloc is off: start the operator with PYTHONTRACEMALLOC=1")
        return
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    log.info("traced memory", extra={"traced_bytes": total, "blocks": sum(s.count for s in stats)})
    for stat in stats[:limit]:
        frame = stat.traceback[0]
        log.info(
            "allocated at",
            extra={
                "where": f"{frame.filename}:{frame.lineno}",
                "bytes": stat.size,
                "blocks": stat.count,
            },
        )
