"""The messaging HTTP API: sends, refusals, idempotency, listings, broadcasts, templates."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.fixtures.auth import TestUser
from tests.fixtures.simulator import SimulatorHandle, start_simulator
from tests.messaging.factories import SALE_TEMPLATE, make_contact, make_template

pytestmark = pytest.mark.usefixtures("dispose_engines")

ORDER_CONTENT: dict[str, Any] = {
    "type": "template",
    "name": "order_update",
    "language": "en_US",
    "header_parameters": ["#42"],
    "body_parameters": ["Ada", "#42"],
    "button_parameters": [{"index": 0, "value": "42"}],
}


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    from services.messaging.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://test") as client:
        yield client


def _count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


async def _send(api: httpx.AsyncClient, user: TestUser, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await api.post("/api/v1/messages", json=body, headers={**user.headers, **headers})


async def test_send_template_is_accepted_and_queued(api: httpx.AsyncClient, operator: TestUser) -> None:
    contact = await make_contact()
    await make_template()
    response = await _send(api, operator, {"contact_id": str(contact.id), "content": ORDER_CONTENT})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued" and response.json()["category"] == "utility"


async def test_viewer_cannot_send(api: httpx.AsyncClient, viewer: TestUser) -> None:
    contact = await make_contact()
    response = await _send(api, viewer, {"contact_id": str(contact.id), "content": ORDER_CONTENT})
    assert response.status_code == 403


async def test_unknown_contact_is_a_clear_422(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    await make_template()
    body = {"contact_id": "00000000-0000-0000-0000-000000000001", "content": ORDER_CONTENT}
    response = await _send(api, operator, body)
    assert response.status_code == 422
    assert response.json()["code"] == "contact_not_found" and response.json()["errors"][0]["field"] == "contact_id"
    assert _count(database_url, "messages") == 0


async def test_opted_out_contact_is_409(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    contact = await make_contact(opted_out=True)
    await make_template("spring_sale", category="MARKETING", components=SALE_TEMPLATE)
    content = {"type": "template", "name": "spring_sale", "language": "en_US", "body_parameters": ["20%"]}
    response = await _send(api, operator, {"contact_id": str(contact.id), "content": content})
    assert response.status_code == 409 and response.json()["code"] == "contact_opted_out"
    assert _count(database_url, "messages") == 0


async def test_template_with_missing_parameters_is_422_naming_the_field(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    contact = await make_contact()
    await make_template()
    content = {**ORDER_CONTENT, "body_parameters": ["Ada"]}
    response = await _send(api, operator, {"contact_id": str(contact.id), "content": content})
    assert response.status_code == 422
    assert response.json()["code"] == "template_parameter_mismatch"
    assert response.json()["errors"][0]["field"] == "content.body_parameters"
    assert _count(database_url, "messages") == 0


async def test_text_outside_window_is_422(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    contact = await make_contact(inbound_hours_ago=30)
    response = await _send(api, operator, {"contact_id": str(contact.id), "content": {"type": "text", "body": "hi"}})
    assert response.status_code == 422 and response.json()["code"] == "window_closed"
    assert _count(database_url, "messages") == 0


async def test_oversize_text_is_422_naming_the_body(api: httpx.AsyncClient, operator: TestUser) -> None:
    contact = await make_contact(inbound_hours_ago=1)
    body = {"contact_id": str(contact.id), "content": {"type": "text", "body": "x" * 4097}}
    response = await _send(api, operator, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("content.text.body")


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_malformed_idempotency_key_is_400(
    api: httpx.AsyncClient, operator: TestUser, database_url: str, key: str
) -> None:
    contact = await make_contact()
    await make_template()
    response = await api.post(
        "/api/v1/messages",
        json={"contact_id": str(contact.id), "content": ORDER_CONTENT},
        headers={**operator.headers, "Idempotency-Key": key.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"
    assert _count(database_url, "messages") == 0


async def test_repeat_with_same_idempotency_key_replays_and_stores_once(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    contact = await make_contact()
    await make_template()
    body = {"contact_id": str(contact.id), "content": ORDER_CONTENT}
    first = await _send(api, operator, body, **{"Idempotency-Key": "order-42"})
    second = await _send(api, operator, body, **{"Idempotency-Key": "order-42"})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
    assert _count(database_url, "messages") == 1


async def test_same_idempotency_key_with_another_body_is_422(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    contact = await make_contact()
    await make_template()
    body = {"contact_id": str(contact.id), "content": ORDER_CONTENT}
    await _send(api, operator, body, **{"Idempotency-Key": "k1"})
    other = {"contact_id": str(contact.id), "content": {**ORDER_CONTENT, "body_parameters": ["Bob", "#43"]}}
    response = await _send(api, operator, other, **{"Idempotency-Key": "k1"})
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    assert _count(database_url, "messages") == 1


async def test_refused_request_leaves_its_idempotency_key_free(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    contact = await make_contact()
    body = {"contact_id": str(contact.id), "content": ORDER_CONTENT}
    assert (await _send(api, operator, body, **{"Idempotency-Key": "k2"})).status_code == 422
    assert _count(database_url, "idempotency_keys") == 0


async def test_message_detail_has_the_timeline(api: httpx.AsyncClient, operator: TestUser, viewer: TestUser) -> None:
    contact = await make_contact()
    await make_template()
    sent = await _send(api, operator, {"contact_id": str(contact.id), "content": ORDER_CONTENT})
    detail = await api.get(f"/api/v1/messages/{sent.json()['id']}", headers=viewer.headers)
    assert detail.status_code == 200
    assert [e["status"] for e in detail.json()["timeline"]] == ["queued"]
    assert detail.json()["body"]["template"]["name"] == "order_update"


async def test_list_filters_and_paginates(api: httpx.AsyncClient, operator: TestUser) -> None:
    contacts = [await make_contact() for _ in range(3)]
    await make_template()
    for contact in contacts:
        await _send(api, operator, {"contact_id": str(contact.id), "content": ORDER_CONTENT})
    page = await api.get("/api/v1/messages", params={"limit": 2, "status": "queued"}, headers=operator.headers)
    assert len(page.json()["data"]) == 2 and page.json()["next_cursor"]
    rest = await api.get(
        "/api/v1/messages", params={"limit": 2, "cursor": page.json()["next_cursor"]}, headers=operator.headers
    )
    assert len(rest.json()["data"]) == 1 and rest.json()["next_cursor"] is None
    one = await api.get("/api/v1/messages", params={"contact_id": str(contacts[0].id)}, headers=operator.headers)
    assert [m["contact_id"] for m in one.json()["data"]] == [str(contacts[0].id)]
    none = await api.get("/api/v1/messages", params={"status": "read"}, headers=operator.headers)
    assert none.json()["data"] == []


async def test_conversation_of_unknown_contact_is_404(api: httpx.AsyncClient, viewer: TestUser) -> None:
    response = await api.get("/api/v1/conversations/00000000-0000-0000-0000-000000000001", headers=viewer.headers)
    assert response.status_code == 404


async def test_broadcast_dry_run_counts_the_segment_and_stores_nothing(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    for _ in range(3):
        await make_contact(tags=["vip"], attributes={"plan": "pro"})
    await make_contact(tags=["vip"], attributes={"plan": "free"})
    await make_contact(tags=["vip"], attributes={"plan": "pro"}, opted_out=True)
    await make_template("spring_sale", category="MARKETING", components=SALE_TEMPLATE)
    body = {
        "template": {"name": "spring_sale", "language": "en_US", "body_parameters": ["20%"]},
        "segment": {"tags_all": ["vip"], "attributes": {"plan": "pro"}},
        "dry_run": True,
    }
    response = await api.post("/api/v1/broadcasts", json=body, headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["audience_size"] == 3 and response.json()["excluded_opted_out"] == 1
    assert len(response.json()["sample"]) == 3
    assert _count(database_url, "messages") == 0 and _count(database_url, "broadcasts") == 0


async def test_broadcast_queues_one_personalised_message_per_contact(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    for name in ("Ada", "Bob"):
        await make_contact(name=name, tags=["vip"])
    await make_template("spring_sale", category="MARKETING", components=SALE_TEMPLATE)
    body = {
        "name": "spring",
        "template": {"name": "spring_sale", "language": "en_US", "body_parameters": ["{name}: 20%"]},
        "segment": {"tags_any": ["vip"]},
    }
    response = await api.post("/api/v1/broadcasts", json=body, headers=operator.headers)
    assert response.status_code == 202, response.text
    summary = await api.get(f"/api/v1/broadcasts/{response.json()['id']}", headers=operator.headers)
    assert summary.json()["counts"] == {"queued": 2} and summary.json()["audience_count"] == 2
    with psycopg.connect(database_url) as connection:
        texts = sorted(r[0] for r in connection.execute("SELECT text FROM messages").fetchall())
    assert texts == ["Spring sale! Ada: 20% off everything.", "Spring sale! Bob: 20% off everything."]


@pytest.fixture
def sim_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorHandle]:
    from herald.settings import get_settings

    handle = start_simulator()
    monkeypatch.setenv("WHATSAPP_API_BASE_URL", handle.url)
    monkeypatch.setenv("WHATSAPP_TOKEN", handle.token)
    monkeypatch.setenv("BUSINESS_ID", handle.waba_id)
    get_settings.cache_clear()
    yield handle
    handle.stop()
    get_settings.cache_clear()


async def test_template_sync_stores_the_wabas_templates(
    api: httpx.AsyncClient, operator: TestUser, sim_settings: SimulatorHandle
) -> None:
    await make_template("gone_template")
    response = await api.post("/api/v1/templates/sync", headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 1 and response.json()["created"] >= 5
    listed = await api.get("/api/v1/templates", params={"name": "spring_sale"}, headers=operator.headers)
    assert listed.json()["data"][0]["status"] == "PAUSED"
    gone = await api.get("/api/v1/templates", params={"name": "gone_template"}, headers=operator.headers)
    assert gone.json()["data"][0]["status"] == "DELETED"


async def test_template_create_needs_admin(api: httpx.AsyncClient, operator: TestUser) -> None:
    body = {
        "name": "new_one",
        "language": "en_US",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi"}],
    }
    response = await api.post("/api/v1/templates", json=body, headers=operator.headers)
    assert response.status_code == 403


async def test_admin_creates_a_template_through_the_cloud_api(
    api: httpx.AsyncClient, admin: TestUser, sim_settings: SimulatorHandle
) -> None:
    body = {
        "name": "new_one",
        "language": "en_US",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi"}],
    }
    response = await api.post("/api/v1/templates", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "PENDING" and response.json()["meta_template_id"]
