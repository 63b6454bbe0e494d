"""Reading the analytics table: time series, totals, funnel and failure reasons for a date range
given in any time zone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

COUNTERS = ("queued", "sent", "delivered", "read", "failed", "inbound", "replies", "opt_outs", "contacts_added")
Granularity = Literal["hour", "day"]


@dataclass(frozen=True)
class AnalyticsFilter:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    tz: str
    scope: str
    scope_key: str

    @classmethod
    def build(
        cls, start_date: date, end_date: date, tz: str, automation_id: uuid.UUID | None, template: str | None
    ) -> AnalyticsFilter:
        zone = ZoneInfo(tz)
        # Local midnight to local midnight, so "today in Madrid" means Madrid's day.
        start = datetime.combine(start_date, time.min, zone)
        end = datetime.combine(end_date + timedelta(days=1), time.min, zone)
        if automation_id is not None:
            scope, key = "automation", str(automation_id)
        elif template is not None:
            scope, key = "template", template
        else:
            scope, key = "overall", ""
        return cls(start, end, tz, scope, key)

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "tz": self.tz, "scope": self.scope, "key": self.scope_key}


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    """Delivery, read, failure and reply rates; None where the denominator is zero."""

    def ratio(numerator: int, denominator: int) -> float | None:
        return round(numerator / denominator, 4) if denominator else None

    attempted = counts["sent"] + counts["failed"]
    return {
        "delivery_rate": ratio(counts["delivered"], counts["sent"]),
        "read_rate": ratio(counts["read"], counts["delivered"]),
        "failure_rate": ratio(counts["failed"], attempted),
        "reply_rate": ratio(counts["replies"], counts["sent"]),
    }


async def time_series(session: AsyncSession, filters: AnalyticsFilter, granularity: Granularity) -> list[dict[str, Any]]:
    # The bucket is computed in the requested zone, then reported back as an aware timestamp.
    sums = ", ".join(f"sum({name})::bigint AS {name}" for name in COUNTERS)
    result = await session.execute(
        text(
            f"SELECT date_trunc(:granularity, hour AT TIME ZONE :tz) AS bucket, {sums}"  # noqa: S608 - fixed names  # nosec B608
            " FROM analytics WHERE scope = :scope AND scope_key = :key AND hour >= :start AND hour < :end"
            " GROUP BY 1 ORDER BY 1"
        ),
        {**filters.params, "granularity": granularity},
    )
    zone = ZoneInfo(filters.tz)
    return [
        {"bucket": row.bucket.replace(tzinfo=zone).isoformat(), **{name: getattr(row, name) for name in COUNTERS}}
        for row in result
    ]


async def totals(session: AsyncSession, filters: AnalyticsFilter) -> dict[str, int]:
    sums = ", ".join(f"coalesce(sum({name}), 0)::bigint AS {name}" for name in COUNTERS)
    row = (
        await session.execute(
            text(
                f"SELECT {sums} FROM analytics"  # noqa: S608 - fixed names  # nosec B608
                " WHERE scope = :scope AND scope_key = :key AND hour >= :start AND hour < :end"
            ),
            filters.params,
        )
    ).one()
    return {name: getattr(row, name) for name in COUNTERS}


async def failures_by_code(session: AsyncSession, filters: AnalyticsFilter) -> dict[str, int]:
    result = await session.execute(
        text(
            "SELECT code, sum(value::bigint)::bigint AS failed FROM analytics, jsonb_each_text(failures_by_code) AS f(code, value)"
            " WHERE scope = :scope AND scope_key = :key AND hour >= :start AND hour < :end GROUP BY code"
        ),
        filters.params,
    )
    return {row.code: row.failed for row in result}


async def top_failure_reasons(
    session: AsyncSession, filters: AnalyticsFilter, limit: int
) -> list[dict[str, Any]]:
    """Failure codes with Meta's title and a recent example detail, most frequent first.

    Titles live on the messages, so this one reads messages directly (failed_at is indexed
    through the partial retryable index only; the range keeps the scan bounded).
    """
    scope_clause = ""
    if filters.scope == "automation":
        scope_clause = " AND automation_id = CAST(:key AS uuid)"
    elif filters.scope == "template":
        scope_clause = " AND template_name || ':' || template_language = :key"
    result = await session.execute(
        text(
            "SELECT error_code, max(error_title) AS title, max(error_details) AS example_details, count(*) AS failed"  # noqa: S608 - the clause is one of two fixed strings  # nosec B608
            " FROM messages WHERE direction = 'outbound' AND failed_at >= :start AND failed_at < :end"
            f"{scope_clause} GROUP BY error_code ORDER BY count(*) DESC, error_code LIMIT :limit"
        ),
        {**filters.params, "limit": limit},
    )
    return [
        {"error_code": row.error_code, "title": row.title, "example_details": row.example_details, "count": row.failed}
        for row in result
    ]
