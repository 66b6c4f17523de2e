"""Cron schedules of plugins' jobs, read by cronsim (DST-aware; six fields: seconds first).

A schedule is a cron expression read in an IANA time zone; :func:`next_tick` gives the
first tick strictly after a moment, as naive UTC (how plugdock's tables store time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)


def check_cron(expression: str) -> str:
    """``expression`` if cronsim reads it; else ValueError saying what is wrong."""
    if len(expression) > 100:
        raise ValueError("a cron expression is at most 100 characters")
    try:
        CronSim(expression, _ANCHOR)
    except CronSimError as exc:
        raise ValueError(f"{expression!r} is not a cron expression: {exc}") from None
    return expression


def check_timezone(name: str) -> str:
    """``name`` if it is a known IANA time zone (``Europe/Paris``); else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (IANA names: Europe/Paris, UTC)") from None
    return name


def next_tick(expression: str, timezone: str, after: datetime) -> datetime:
    """The first tick of ``expression`` in ``timezone`` strictly after ``after`` (naive UTC)."""
    zone = ZoneInfo(timezone)
    start = after.replace(tzinfo=UTC).astimezone(zone)
    tick = next(CronSim(expression, start))
    return tick.astimezone(UTC).replace(tzinfo=None)
