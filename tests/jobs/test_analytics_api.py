"""The analytics API over real rollup rows: ranges in a time zone, filters, funnel, failures, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from herald.analytics.rollup import rollup
from tests.jobs.factories import insert_automation, insert_contact, insert_message

DAY = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def client():
    from services.messaging.app import create_app

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://test")


@pytest.fixture
def traffic(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        automation = insert_automation(conn)
        contact = insert_contact(conn, created_at=DAY - timedelta(days=3))
        # 23:30 UTC on 2 March is 00:30 on 3 March in Madrid (UTC+1).
        late = DAY + timedelta(hours=23, minutes=30)
        insert_message(conn, contact, status="read", queued_at=late, sent_at=late, delivered_at=late, read_at=late,
                       automation_id=automation)
        early = DAY + timedelta(hours=8)
        insert_message(conn, contact, status="delivered", queued_at=early, sent_at=early, delivered_at=early)
        insert_message(conn, contact, status="failed", queued_at=early, failed_at=early, error_code=131026)
    rollup(hours=[DAY + timedelta(hours=h) for h in range(0, 26)])
    return {"automation": str(automation)}


async def test_daily_series_uses_the_callers_time_zone(client, viewer, traffic) -> None:
    params = {"from": "2026-03-02", "to": "2026-03-03", "granularity": "day"}
    utc = (await client.get("/api/v1/analytics/timeseries", params=params, headers=viewer.headers)).json()
    madrid = (await client.get("/api/v1/analytics/timeseries", params={**params, "tz": "Europe/Madrid"},
                               headers=viewer.headers)).json()
    assert [p["sent"] for p in utc["points"]] == [2, 0]
    assert [(p["bucket"][:10], p["sent"]) for p in madrid["points"]] == [("2026-03-02", 1), ("2026-03-03", 1)]


async def test_totals_rates_and_failures_by_code(client, viewer, traffic) -> None:
    response = await client.get("/api/v1/analytics/totals", params={"from": "2026-03-02", "to": "2026-03-02"},
                                headers=viewer.headers)
    body = response.json()
    assert body["counts"]["sent"] == 2 and body["counts"]["failed"] == 1 and body["counts"]["read"] == 1
    assert body["rates"]["delivery_rate"] == 1.0
    assert body["rates"]["failure_rate"] == round(1 / 3, 4)
    assert body["failures_by_code"] == {"131026": 1}


async def test_filter_by_automation(client, viewer, traffic) -> None:
    response = await client.get(
        "/api/v1/analytics/totals",
        params={"from": "2026-03-02", "to": "2026-03-02", "automation_id": traffic["automation"]},
        headers=viewer.headers,
    )
    assert response.json()["counts"]["sent"] == 1


async def test_funnel_and_top_failures(client, viewer, traffic) -> None:
    params = {"from": "2026-03-02", "to": "2026-03-02"}
    funnel = (await client.get("/api/v1/analytics/funnel", params=params, headers=viewer.headers)).json()
    assert [(s["stage"], s["count"]) for s in funnel] == [("sent", 2), ("delivered", 2), ("read", 1), ("replied", 0)]
    failures = (await client.get("/api/v1/analytics/failures", params=params, headers=viewer.headers)).json()
    assert failures[0]["error_code"] == 131026 and failures[0]["count"] == 1


async def test_csv_export(client, viewer, traffic) -> None:
    response = await client.get("/api/v1/analytics/export.csv", params={"from": "2026-03-02", "to": "2026-03-02"},
                                headers=viewer.headers)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["sent"] == "2"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "from"),
        ({"template": "no-language"}, "template"),
        ({"from": "2026-01-01", "to": "2026-03-01", "granularity": "hour"}, "to"),
        ({"from": "2026-02-31"}, "from"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(client, viewer, params, field) -> None:
    response = await client.get("/api/v1/analytics/timeseries", params=params, headers=viewer.headers)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_analytics_needs_credentials(client) -> None:
    response = await client.get("/api/v1/analytics/totals")
    assert response.status_code == 401
