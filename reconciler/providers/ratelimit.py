"""A thread-safe token bucket: client-side per-cloud limits and the simulator's 429s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second refill a bucket holding at most ``burst`` tokens.

    Each request takes one token. ``try_acquire`` never blocks (it says how long to
    wait); ``acquire`` sleeps until a token is available. ``clock`` and ``sleep`` are
    injectable so tests can run without real time passing.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"token bucket rate must be > 0, got {rate}")
        if burst < 1:
            raise ValueError(f"token bucket burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    def try_acquire(self) -> float:
        """Take a token and return 0.0, or take nothing and return seconds to wait."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def acquire(self) -> None:
        """Block until a token is taken."""
        while True:
            wait = self.try_acquire()
            if wait <= 0.0:
                return
            self._sleep(wait)
