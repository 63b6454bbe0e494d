"""What every service gets from herald.api: one error shape, request ids, body limits, CORS,
/health, /ready and /metrics."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Request

from herald.api import create_service_app
from herald.settings import get_settings


@pytest.fixture
def client(monkeypatch) -> httpx.AsyncClient:
    monkeypatch.setenv("HERALD_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com, https://admin.example.com")
    get_settings.cache_clear()
    router = APIRouter()

    @router.post("/echo/{item_id}")
    async def echo(item_id: int, request: Request) -> dict[str, int]:
        return {"item_id": item_id, "bytes": len(await request.body())}

    app = create_service_app("conventions", [router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_health_needs_no_dependencies_and_ready_checks_them(client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "service": "conventions"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_errors_are_problem_json_with_the_field_named_and_a_request_id(client) -> None:
    response = await client.post("/echo/not-a-number", headers={"X-Request-ID": "abc123"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"  # pure ASCII body, no charset needed
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "item_id"
    assert body["request_id"] == "abc123" == response.headers["x-request-id"]


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/nowhere", 404, "not_found"),
    ("GET", "/echo/1", 405, "method_not_allowed"),
])
async def test_routing_errors_share_the_shape(client, method, path, status, code) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.json()["code"] == code


async def test_oversize_body_with_a_length_is_413(client) -> None:
    response = await client.post("/echo/1", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_oversize_streamed_body_without_a_length_is_413_not_500(client) -> None:
    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = await client.post("/echo/1", content=chunks())
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_cors_allows_only_configured_origins(client) -> None:
    allowed = await client.options("/echo/1", headers={"Origin": "https://app.example.com",
                                                       "Access-Control-Request-Method": "POST"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    denied = await client.options("/echo/1", headers={"Origin": "https://evil.example.net",
                                                      "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in denied.headers


async def test_metrics_count_requests_by_route_template(client) -> None:
    await client.post("/echo/41", content=b"{}")
    await client.post("/echo/42", content=b"{}")
    text = (await client.get("/metrics")).text
    assert 'route="/echo/{item_id}"' in text
    assert 'route="/echo/41"' not in text


async def test_startup_freezes_the_objects_built_at_start_out_of_full_collections() -> None:
    import gc

    gc.unfreeze()
    app = create_service_app("conventions", [])
    assert gc.get_freeze_count() == 0
    try:
        async with app.router.lifespan_context(app):
            # Import-time objects (modules, models, routes) no longer cost a full collection.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
