"""Retrying provider calls: transient errors back off, permanent ones surface at once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reconciler.model.errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, never shorter than the cloud's retry_after."""

    attempts: int = 6
    base_seconds: float = 0.2
    max_seconds: float = 10.0

    def delay(self, attempt: int, retry_after: float) -> float:
        backoff = min(self.max_seconds, self.base_seconds * (2**attempt))
        return max(retry_after, random.uniform(0.0, backoff))


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    on_retry: Callable[[int, TransientError], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``; on TransientError wait and retry up to ``policy.attempts`` times."""
    for attempt in range(policy.attempts):
        try:
            return fn()
        except TransientError as exc:
            if attempt == policy.attempts - 1:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            sleep(policy.delay(attempt, exc.retry_after))
    raise AssertionError("unreachable")
