"""A service's /metrics after real requests: counted by route template, never by raw path."""

from __future__ import annotations

import httpx
from fastapi import APIRouter

from herald.api import create_service_app
from herald.errors import NotFound
from tests.observability.promtext import label_values, value

router = APIRouter()


@router.get("/api/v1/widgets/{widget_id}")
async def get_widget(widget_id: str) -> dict[str, str]:
    if widget_id == "missing":
        raise NotFound("widget not found")
    return {"id": widget_id}


def _client() -> httpx.AsyncClient:
    app = create_service_app("metrics-test", [router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template_and_status() -> None:
    route = "/api/v1/widgets/{widget_id}"
    async with _client() as client:
        before = await _scrape(client)
        for widget_id in ("a1", "b2", "c3"):
            assert (await client.get(f"/api/v1/widgets/{widget_id}")).status_code == 200
        assert (await client.get("/api/v1/widgets/missing")).status_code == 404
        after = await _scrape(client)

    labels = {"service": "metrics-test", "route": route, "method": "GET"}
    ok = value(after, "herald_http_requests_total", status="200", **labels)
    ok_before = value(before, "herald_http_requests_total", status="200", **labels)
    assert ok - ok_before == 3
    missing = value(after, "herald_http_requests_total", status="404", **labels)
    assert missing - value(before, "herald_http_requests_total", status="404", **labels) == 1
    latency = value(after, "herald_http_request_duration_seconds_count", **labels)
    assert latency - value(before, "herald_http_request_duration_seconds_count", **labels) == 4


async def test_raw_paths_never_become_labels() -> None:
    async with _client() as client:
        await client.get("/api/v1/widgets/raw-path-value-123")
        await client.get("/no/such/route/raw-path-value-456")
        text = await _scrape(client)

    routes = label_values(text, "herald_http_requests_total", "route")
    assert "/api/v1/widgets/{widget_id}" in routes
    assert "unmatched" in routes
    assert not any("raw-path-value" in route for route in routes)


async def test_in_flight_returns_to_zero_after_requests() -> None:
    async with _client() as client:
        await client.get("/api/v1/widgets/x")
        text = await _scrape(client)
    # The scrape itself is the only request in flight while the body is rendered.
    assert value(text, "herald_http_requests_in_flight", service="metrics-test") == 1
