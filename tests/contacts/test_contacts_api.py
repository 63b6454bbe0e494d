from __future__ import annotations

import uuid

import httpx
import psycopg

from tests.fixtures.auth import TestUser


def _count_contacts(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM contacts").fetchone()
    assert row is not None
    return int(row[0])


def _field_errors(response: httpx.Response) -> set[str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return {error["field"] for error in response.json()["errors"]}


async def test_create_stores_phone_as_e164(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(
        "/api/v1/contacts",
        json={
            "phone": "(415) 555-0123",
            "name": "Ada",
            "language": "en",
            "timezone": "America/Los_Angeles",
            "birthday": "12-10",
            "attributes": {"plan": "gold"},
            "tags": ["VIP", "vip", "beta"],
        },
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["phone"] == "+14155550123"
    assert body["birthday"] == "12-10"
    assert body["tags"] == ["vip", "beta"]
    assert body["opt_in_status"] == "unknown"


async def test_birthday_with_year_round_trips(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "birthday": "1990-5-7"}, headers=operator.headers
    )
    assert response.status_code == 201
    assert response.json()["birthday"] == "1990-05-07"


async def test_invalid_phone_is_422_naming_phone(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    response = await api.post("/api/v1/contacts", json={"phone": "12"}, headers=operator.headers)
    assert response.status_code == 422
    assert _field_errors(response) == {"phone"}
    assert _count_contacts(database_url) == 0


async def test_unknown_timezone_is_422_naming_timezone(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    response = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "timezone": "Mars/Olympus"}, headers=operator.headers
    )
    assert response.status_code == 422
    assert _field_errors(response) == {"timezone"}
    assert _count_contacts(database_url) == 0


async def test_february_31_is_422_naming_birthday(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    response = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "birthday": "02-31"}, headers=operator.headers
    )
    assert response.status_code == 422
    assert _field_errors(response) == {"birthday"}
    assert _count_contacts(database_url) == 0


async def test_february_29_without_year_is_a_valid_birthday(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "birthday": "02-29"}, headers=operator.headers
    )
    assert response.status_code == 201


async def test_february_29_of_a_common_year_is_refused(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "birthday": "2023-02-29"}, headers=operator.headers
    )
    assert response.status_code == 422
    assert _field_errors(response) == {"birthday"}


async def test_duplicate_phone_in_another_format_is_409(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    first = await api.post("/api/v1/contacts", json={"phone": "+1 415 555 0123", "name": "A"}, headers=operator.headers)
    assert first.status_code == 201
    second = await api.post("/api/v1/contacts", json={"phone": "4155550123", "name": "B"}, headers=operator.headers)
    assert second.status_code == 409
    assert _field_errors(second) == {"phone"}
    assert _count_contacts(database_url) == 1
    stored = await api.get(f"/api/v1/contacts/{first.json()['id']}", headers=operator.headers)
    assert stored.json()["name"] == "A"


async def test_viewer_cannot_create(api: httpx.AsyncClient, viewer: TestUser, database_url: str) -> None:
    response = await api.post("/api/v1/contacts", json={"phone": "+14155550123"}, headers=viewer.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_role"
    assert _count_contacts(database_url) == 0


async def test_viewer_can_read(api: httpx.AsyncClient, operator: TestUser, viewer: TestUser) -> None:
    created = await api.post("/api/v1/contacts", json={"phone": "+14155550123"}, headers=operator.headers)
    response = await api.get(f"/api/v1/contacts/{created.json()['id']}", headers=viewer.headers)
    assert response.status_code == 200


async def test_anonymous_request_is_401(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/contacts")
    assert response.status_code == 401


async def test_unknown_contact_is_404(api: httpx.AsyncClient, viewer: TestUser) -> None:
    response = await api.get(f"/api/v1/contacts/{uuid.uuid4()}", headers=viewer.headers)
    assert response.status_code == 404


async def test_unknown_field_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "favourite": "tea"}, headers=operator.headers
    )
    assert response.status_code == 422
    assert _field_errors(response) == {"favourite"}


async def test_patch_merges_attributes_and_null_removes_one(api: httpx.AsyncClient, operator: TestUser) -> None:
    created = await api.post(
        "/api/v1/contacts",
        json={"phone": "+14155550123", "attributes": {"plan": "gold", "city": "Lisbon"}},
        headers=operator.headers,
    )
    contact_id = created.json()["id"]
    response = await api.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"attributes": {"plan": "silver", "city": None, "seats": 3}},
        headers=operator.headers,
    )
    assert response.status_code == 200
    assert response.json()["attributes"] == {"plan": "silver", "seats": 3}


async def test_patch_to_a_taken_phone_is_409_and_changes_nothing(api: httpx.AsyncClient, operator: TestUser) -> None:
    await api.post("/api/v1/contacts", json={"phone": "+14155550123"}, headers=operator.headers)
    other = await api.post("/api/v1/contacts", json={"phone": "+14155550124", "name": "Bo"}, headers=operator.headers)
    contact_id = other.json()["id"]
    response = await api.patch(
        f"/api/v1/contacts/{contact_id}", json={"phone": "+14155550123", "name": "Changed"}, headers=operator.headers
    )
    assert response.status_code == 409
    assert _field_errors(response) == {"phone"}
    stored = (await api.get(f"/api/v1/contacts/{contact_id}", headers=operator.headers)).json()
    assert (stored["phone"], stored["name"]) == ("+14155550124", "Bo")


async def test_patch_can_clear_the_birthday(api: httpx.AsyncClient, operator: TestUser) -> None:
    created = await api.post("/api/v1/contacts", json={"phone": "+14155550123", "birthday": "1990-01-02"}, headers=operator.headers)
    response = await api.patch(f"/api/v1/contacts/{created.json()['id']}", json={"birthday": None}, headers=operator.headers)
    assert response.json()["birthday"] is None


async def test_tags_are_added_and_removed(api: httpx.AsyncClient, operator: TestUser) -> None:
    created = await api.post("/api/v1/contacts", json={"phone": "+14155550123", "tags": ["a"]}, headers=operator.headers)
    contact_id = created.json()["id"]
    added = await api.post(f"/api/v1/contacts/{contact_id}/tags", json={"tags": ["B", "a"]}, headers=operator.headers)
    assert added.json()["tags"] == ["a", "b"]
    removed = await api.delete(f"/api/v1/contacts/{contact_id}/tags/a", headers=operator.headers)
    assert removed.json()["tags"] == ["b"]


async def test_opt_in_then_out_records_source_and_time(api: httpx.AsyncClient, operator: TestUser) -> None:
    created = await api.post("/api/v1/contacts", json={"phone": "+14155550123"}, headers=operator.headers)
    contact_id = created.json()["id"]
    opted_in = (await api.post(f"/api/v1/contacts/{contact_id}/opt-in", json={"source": "web_form"}, headers=operator.headers)).json()
    assert (opted_in["opt_in_status"], opted_in["opt_in_source"]) == ("opted_in", "web_form")
    assert opted_in["opted_in_at"] is not None
    opted_out = (await api.post(f"/api/v1/contacts/{contact_id}/opt-out", json={"source": "keyword"}, headers=operator.headers)).json()
    assert (opted_out["opt_in_status"], opted_out["opt_in_source"]) == ("opted_out", "keyword")
    assert opted_out["opted_out_at"] is not None


async def test_erase_removes_contact_and_messages_and_logs_without_phone(
    api: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    created = await api.post("/api/v1/contacts", json={"phone": "+14155550123"}, headers=operator.headers)
    contact_id = created.json()["id"]
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO messages (id, contact_id, direction, type, category, status, text, attempts, created_at, updated_at)"
            " VALUES (%s, %s, 'outbound', 'text', 'service', 'queued', 'hi', 0, now(), now())",
            (uuid.uuid4(), contact_id),
        )
    response = await api.delete(f"/api/v1/contacts/{contact_id}", headers=operator.headers)
    assert response.status_code == 204
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        log = connection.execute(
            "SELECT user_id, entity_id, message, data::text FROM logs WHERE event = 'contact.erased'"
        ).fetchone()
    assert log is not None
    assert (str(log[0]), log[1]) == (str(operator.id), contact_id)
    assert "4155550123" not in f"{log[2]} {log[3]}"
    assert _count_contacts(database_url) == 0


async def test_erasing_an_unknown_contact_is_404(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.delete(f"/api/v1/contacts/{uuid.uuid4()}", headers=operator.headers)
    assert response.status_code == 404


async def test_nul_characters_are_422_not_a_crash(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    bad_name = await api.post("/api/v1/contacts", json={"phone": "+14155550123", "name": "a\u0000b"}, headers=operator.headers)
    bad_attr = await api.post(
        "/api/v1/contacts", json={"phone": "+14155550123", "attributes": {"k": "a\u0000"}}, headers=operator.headers
    )
    bad_query = await api.get("/api/v1/contacts", params={"q": "a\u0000"}, headers=operator.headers)
    assert (bad_name.status_code, bad_attr.status_code, bad_query.status_code) == (422, 422, 422)
    assert _count_contacts(database_url) == 0
