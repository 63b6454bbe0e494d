from __future__ import annotations

import httpx
import psycopg

from tests.fixtures.auth import TestUser

KEYS = "/api/v1/api-keys"


async def test_key_is_shown_once_and_listed_by_prefix_only(api: httpx.AsyncClient, operator: TestUser, database_url: str) -> None:
    created = await api.post(KEYS, json={"name": "crm sync"}, headers=operator.headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("hk_") and key.startswith(created.json()["prefix"])
    assert created.json()["role"] == "operator"
    listing = (await api.get(KEYS, headers=operator.headers)).json()
    assert len(listing) == 1 and "key" not in listing[0]
    assert key not in str(listing)
    with psycopg.connect(database_url) as connection:
        stored = connection.execute("SELECT key_hash FROM api_keys").fetchone()
    assert stored is not None and key not in stored[0]


async def test_api_key_authenticates_with_its_role(api: httpx.AsyncClient, operator: TestUser) -> None:
    key = (await api.post(KEYS, json={"name": "bot"}, headers=operator.headers)).json()["key"]
    created = await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers={"X-API-Key": key})
    assert created.status_code == 201
    me = (await api.get("/api/v1/auth/me", headers={"X-API-Key": key})).json()
    assert (me["via"], me["effective_role"]) == ("api_key", "operator")


async def test_read_only_key_cannot_write(api: httpx.AsyncClient, operator: TestUser) -> None:
    key = (await api.post(KEYS, json={"name": "dash", "role": "viewer"}, headers=operator.headers)).json()["key"]
    assert (await api.get("/api/v1/contacts", headers={"X-API-Key": key})).status_code == 200
    assert (await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers={"X-API-Key": key})).status_code == 403


async def test_revoked_key_is_401(api: httpx.AsyncClient, operator: TestUser) -> None:
    created = (await api.post(KEYS, json={"name": "bot"}, headers=operator.headers)).json()
    assert (await api.delete(f"{KEYS}/{created['id']}", headers=operator.headers)).status_code == 204
    response = await api.get("/api/v1/contacts", headers={"X-API-Key": created["key"]})
    assert response.status_code == 401


async def test_key_role_cannot_exceed_the_users_role(api: httpx.AsyncClient, viewer: TestUser, database_url: str) -> None:
    response = await api.post(KEYS, json={"name": "sneaky", "role": "admin"}, headers=viewer.headers)
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "role"
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)


async def test_users_cannot_revoke_each_others_keys(api: httpx.AsyncClient, operator: TestUser, viewer: TestUser) -> None:
    created = (await api.post(KEYS, json={"name": "bot"}, headers=operator.headers)).json()
    assert (await api.delete(f"{KEYS}/{created['id']}", headers=viewer.headers)).status_code == 404
    assert (await api.get("/api/v1/contacts", headers={"X-API-Key": created["key"]})).status_code == 200


async def test_expiry_without_timezone_is_422(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await api.post(KEYS, json={"name": "bot", "expires_at": "2099-01-01T00:00:00"}, headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "expires_at"


async def test_expired_key_is_401(api: httpx.AsyncClient, operator: TestUser) -> None:
    from datetime import UTC, datetime, timedelta

    from herald import clock

    created = (
        await api.post(KEYS, json={"name": "bot", "expires_at": "2099-01-01T00:00:00Z"}, headers=operator.headers)
    ).json()
    clock.set_now(datetime(2099, 1, 1, tzinfo=UTC) + timedelta(seconds=1))
    response = await api.get("/api/v1/contacts", headers={"X-API-Key": created["key"]})
    assert response.status_code == 401
