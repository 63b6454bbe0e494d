"""Analytics API: time series, totals, funnel, failure reasons and CSV export over the hourly
rollup, for a date range in the caller's time zone."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from herald.analytics import queries
from herald.analytics.queries import COUNTERS, AnalyticsFilter
from herald.api import SessionDep
from herald.auth import Viewer
from herald.clock import utcnow
from herald.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

MAX_DAYS = {"hour": 31, "day": 731}


def analytics_filter(
    start: Annotated[
        date | None, Query(alias="from", description="First local day (YYYY-MM-DD); default 7 days ago")
    ] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last local day, inclusive; default today")
    ] = None,
    tz: Annotated[str, Query(description="IANA time zone the days are in")] = "UTC",
    automation_id: uuid.UUID | None = None,
    template: Annotated[str | None, Query(description="Template as name:language", max_length=600)] = None,
) -> AnalyticsFilter:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed.on_field("tz", f"unknown IANA time zone {tz!r}") from None
    today = utcnow().astimezone(zone).date()
    end = end or today
    start = start or date.fromordinal(end.toordinal() - 6)
    if start > end:
        raise ValidationFailed.on_field("from", "`from` must not be after `to`")
    if automation_id is not None and template is not None:
        raise ValidationFailed.on_field("template", "filter by automation_id or by template, not both")
    if template is not None and ":" not in template:
        raise ValidationFailed.on_field("template", "use name:language, e.g. birthday_greeting:en_US")
    return AnalyticsFilter.build(start, end, tz, automation_id, template)


FilterDep = Annotated[AnalyticsFilter, Depends(analytics_filter)]


def _check_span(filters: AnalyticsFilter, granularity: str) -> None:
    days = (filters.end - filters.start).days
    if days > MAX_DAYS[granularity]:
        raise ValidationFailed.on_field(
            "to", f"at most {MAX_DAYS[granularity]} days at {granularity} granularity"
        )


class Counts(BaseModel):
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    inbound: int
    replies: int
    opt_outs: int
    contacts_added: int


class Point(Counts):
    bucket: str


class TimeSeries(BaseModel):
    tz: str
    granularity: str
    scope: str
    scope_key: str
    points: list[Point]


class Totals(BaseModel):
    tz: str
    scope: str
    scope_key: str
    counts: Counts
    rates: dict[str, float | None]
    failures_by_code: dict[str, int]


class FunnelStage(BaseModel):
    stage: str
    count: int
    of_previous: float | None
    of_first: float | None


class FailureReason(BaseModel):
    error_code: int | None
    title: str | None
    example_details: str | None
    count: int


@router.get("/timeseries", response_model=TimeSeries, summary="Counts per hour or per local day")
async def time_series(
    session: SessionDep, _: Viewer, filters: FilterDep, granularity: Literal["hour", "day"] = "day"
) -> dict[str, Any]:
    _check_span(filters, granularity)
    points = await queries.time_series(session, filters, granularity)
    return {
        "tz": filters.tz,
        "granularity": granularity,
        "scope": filters.scope,
        "scope_key": filters.scope_key,
        "points": points,
    }


@router.get("/totals", response_model=Totals, summary="Totals and rates over the range")
async def totals(session: SessionDep, _: Viewer, filters: FilterDep) -> dict[str, Any]:
    counts = await queries.totals(session, filters)
    return {
        "tz": filters.tz,
        "scope": filters.scope,
        "scope_key": filters.scope_key,
        "counts": counts,
        "rates": queries.rates(counts),
        "failures_by_code": await queries.failures_by_code(session, filters),
    }


@router.get("/funnel", response_model=list[FunnelStage], summary="Delivery and read funnel")
async def funnel(session: SessionDep, _: Viewer, filters: FilterDep) -> list[dict[str, Any]]:
    counts = await queries.totals(session, filters)
    stages = [
        ("sent", counts["sent"]),
        ("delivered", counts["delivered"]),
        ("read", counts["read"]),
        ("replied", counts["replies"]),
    ]
    first = stages[0][1]
    funnel_rows = []
    previous = None
    for name, count in stages:
        funnel_rows.append(
            {
                "stage": name,
                "count": count,
                "of_previous": round(count / previous, 4) if previous else None,
                "of_first": round(count / first, 4) if first else None,
            }
        )
        previous = count
    return funnel_rows


@router.get("/failures", response_model=list[FailureReason], summary="Top failure reasons")
async def failures(
    session: SessionDep, _: Viewer, filters: FilterDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[dict[str, Any]]:
    return await queries.top_failure_reasons(session, filters, limit)


@router.get("/export.csv", summary="Time series as CSV", response_class=StreamingResponse)
async def export_csv(
    session: SessionDep, _: Viewer, filters: FilterDep, granularity: Literal["hour", "day"] = "day"
) -> StreamingResponse:
    _check_span(filters, granularity)
    points = await queries.time_series(session, filters, granularity)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["bucket", *COUNTERS])
        for point in points:
            writer.writerow([point["bucket"], *(point[name] for name in COUNTERS)])
        yield buffer.getvalue()

    filename = f"herald-analytics-{filters.scope}-{granularity}.csv"
    return StreamingResponse(
        rows(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
