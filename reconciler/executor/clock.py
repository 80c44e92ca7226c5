"""The reconciler's clock. ``RECONCILER_NOW`` (an ISO 8601 time) fixes it, for what-if
plans and tests: rebalancing rounds, maintenance windows, cooldowns and retention are
then judged as of that time, and a migration's retention counts from it."""

from __future__ import annotations

import datetime as dt
import os

NOW_ENV = "RECONCILER_NOW"


def now() -> dt.datetime:
    fixed = os.environ.get(NOW_ENV)
    if fixed:
        return dt.datetime.fromisoformat(fixed.replace("Z", "+00:00")).astimezone(dt.UTC)
    return dt.datetime.now(dt.UTC)


def now_iso() -> str:
    return now().replace(microsecond=0).isoformat().replace("+00:00", "Z")
