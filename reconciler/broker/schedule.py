"""Time for the rebalancer: rounds per interval and maintenance windows (UTC, pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from reconciler.model.specs import Window

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def period_of(interval: str, now: dt.datetime) -> str:
    """The round ``now`` falls in: 2026-12-03 (Daily), 2026-W49 (Weekly, ISO weeks),
    2026-12 (Monthly); "" for Never."""
    day = now.astimezone(dt.UTC).date()
    if interval == "Daily":
        return day.isoformat()
    if interval == "Weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if interval == "Monthly":
        return f"{day.year}-{day.month:02d}"
    return ""


def next_round(interval: str, now: dt.datetime) -> dt.datetime | None:
    """When the round after the one ``now`` falls in starts (None for Never)."""
    day = now.astimezone(dt.UTC).date()
    if interval == "Daily":
        start = day + dt.timedelta(days=1)
    elif interval == "Weekly":
        start = day + dt.timedelta(days=7 - day.weekday())
    elif interval == "Monthly":
        start = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    else:
        return None
    return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)


def in_window(windows: Sequence[Window], now: dt.datetime) -> bool:
    """Whether ``now`` is inside any window (no windows: always)."""
    if not windows:
        return True
    now = now.astimezone(dt.UTC)
    for window in windows:
        for back in (0, 1):  # a window that started yesterday may still be open
            day = now.date() - dt.timedelta(days=back)
            if window.days and DAYS[day.weekday()] not in window.days:
                continue
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
                minutes=window.start_minute
            )
            if start <= now < start + dt.timedelta(hours=window.duration_hours):
                return True
    return False


def parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 timestamp (``Z`` allowed) as an aware UTC datetime; None if bad."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
