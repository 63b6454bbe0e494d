"""Time in the contact's own zone: birthdays, date fields, quiet hours and waits.

Storage stays UTC; these functions convert at the edge. A contact without a (valid) time zone
uses HERALD_DEFAULT_TIMEZONE.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Every civil time zone lies between UTC-12:00 and UTC+14:00.
_MIN_OFFSET = timedelta(hours=-12)
_MAX_OFFSET = timedelta(hours=14)
_OFFSET_STEP = timedelta(minutes=15)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def contact_zone(timezone_name: str | None, default: str) -> ZoneInfo:
    """The contact's zone, or the default one when it is missing or unknown."""
    zone = _zone(timezone_name) if timezone_name else None
    return zone or _zone(default) or ZoneInfo("UTC")


def falls_on(month: int, day: int, local_date: date) -> bool:
    """True when a yearly (month, day) is celebrated on `local_date`; 29 February falls on
    28 February in years without one."""
    if (month, day) == (local_date.month, local_date.day):
        return True
    return (
        (month, day) == (2, 29)
        and (local_date.month, local_date.day) == (2, 28)
        and not calendar.isleap(local_date.year)
    )


def month_days_on(local_date: date) -> list[tuple[int, int]]:
    """The (month, day) pairs celebrated on `local_date` (two on 28 February of common years)."""
    pairs = [(local_date.month, local_date.day)]
    if (local_date.month, local_date.day) == (2, 28) and not calendar.isleap(local_date.year):
        pairs.append((2, 29))
    return pairs


def local_dates_past_hour(now: datetime, hour: int) -> list[date]:
    """Every local date, somewhere on Earth, whose clock has reached `hour` at the UTC instant `now`.

    The tick only looks at contacts whose yearly date is one of these (at most three dates), so
    the indexed (month, day) lookup touches a few thousandths of the contacts.
    """
    found: list[date] = []
    offset = _MIN_OFFSET
    while offset <= _MAX_OFFSET:
        local = now.astimezone(UTC).replace(tzinfo=None) + offset
        if local.hour >= hour and local.date() not in found:
            found.append(local.date())
        offset += _OFFSET_STEP
    return found


def candidate_month_days(now: datetime, hour: int) -> list[tuple[int, int]]:
    """(month, day) pairs that may be due somewhere at `now` for a trigger at local `hour`."""
    pairs: list[tuple[int, int]] = []
    for local_date in local_dates_past_hour(now, hour):
        for pair in month_days_on(local_date):
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def occurrence_in_year(month: int, day: int, year: int) -> date:
    """The date a yearly (month, day) is celebrated in `year` (29 Feb -> 28 Feb in common years)."""
    if (month, day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, month, day)


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """True inside [start, end); the window may span midnight (21:00-08:00)."""
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet window around `now` opens again (UTC), or None when `now` is not quiet."""
    local = now.astimezone(zone)
    if not in_quiet_hours(local.time().replace(tzinfo=None), start, end):
        return None
    return next_local_time(now, zone, end)


def next_local_time(now: datetime, zone: ZoneInfo, at: time) -> datetime:
    """The next instant (UTC, strictly after `now`) at which the local clock in `zone` reads `at`.

    A local time skipped by a daylight-saving jump resolves (fold=0, PEP 495) to the instant as if
    the jump had not happened yet, which lands just after it; a repeated local time takes its
    first occurrence.
    """
    local = now.astimezone(zone)
    candidate_date = local.date()
    for _ in range(3):
        resolved = datetime.combine(candidate_date, at).replace(tzinfo=zone).astimezone(UTC)
        if resolved > now:
            return resolved
        candidate_date += timedelta(days=1)
    raise AssertionError("unreachable: a local time recurs every day")
