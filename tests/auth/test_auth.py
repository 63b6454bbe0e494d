from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import psycopg
import pytest

from tests.fixtures.auth import PASSWORD, TestUser

TOKEN = "/api/v1/auth/token"


async def _login(api: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await api.post(TOKEN, data={"username": email, "password": password})


async def test_password_login_returns_a_working_token_pair(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await _login(api, operator.email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["refresh_token"]
    me = await api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert (me.json()["email"], me.json()["role"], me.json()["via"]) == (operator.email, "operator", "jwt")


async def test_login_email_is_case_insensitive(api: httpx.AsyncClient, operator: TestUser) -> None:
    assert (await _login(api, operator.email.upper())).status_code == 200


async def test_wrong_password_is_401(api: httpx.AsyncClient, operator: TestUser) -> None:
    response = await _login(api, operator.email, "wrong password!")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


async def test_unknown_email_is_401(api: httpx.AsyncClient) -> None:
    assert (await _login(api, "nobody@example.com")).status_code == 401


async def test_too_many_attempts_are_429_with_retry_after_even_with_the_right_password(
    api: httpx.AsyncClient, operator: TestUser
) -> None:
    from herald.settings import get_settings

    for _ in range(get_settings().login_attempts_per_minute):
        assert (await _login(api, operator.email, "wrong password!")).status_code == 401
    blocked = await _login(api, operator.email)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 60


async def test_rate_limit_is_per_email(api: httpx.AsyncClient, operator: TestUser, viewer: TestUser) -> None:
    from herald.settings import get_settings

    for _ in range(get_settings().login_attempts_per_minute + 1):
        await _login(api, operator.email, "wrong password!")
    assert (await _login(api, viewer.email)).status_code == 200


async def test_expired_access_token_is_401(api: httpx.AsyncClient, operator: TestUser) -> None:
    from herald import clock
    from herald.auth import create_token
    from herald.models import Role

    clock.set_now(datetime.now(UTC) - timedelta(hours=2))
    token = create_token(operator.id, Role.OPERATOR, "access")
    clock.set_now(None)
    response = await api.get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def _claims(user: TestUser) -> dict:
    now = datetime.now(UTC)
    return {"sub": str(user.id), "role": "admin", "type": "access", "iat": now, "exp": now + timedelta(minutes=5)}


async def test_token_signed_with_another_key_is_401(api: httpx.AsyncClient, viewer: TestUser, database_url: str) -> None:
    forged = jwt.encode(_claims(viewer), "another-key-another-key-another-key!", algorithm="HS256")
    response = await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM contacts").fetchone() == (0,)


async def test_unsigned_alg_none_token_is_401(api: httpx.AsyncClient, viewer: TestUser) -> None:
    forged = jwt.encode(_claims(viewer), None, algorithm="none")  # type: ignore[arg-type]
    response = await api.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_refresh_token_is_not_an_access_token(api: httpx.AsyncClient, operator: TestUser) -> None:
    pair = (await _login(api, operator.email)).json()
    response = await api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['refresh_token']}"})
    assert response.status_code == 401


async def test_refresh_rotates_and_the_old_refresh_token_stops_working(api: httpx.AsyncClient, operator: TestUser) -> None:
    pair = (await _login(api, operator.email)).json()
    rotated = await api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != pair["refresh_token"]
    reused = await api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_reused"


async def test_refresh_after_password_reset_is_401(api: httpx.AsyncClient, operator: TestUser, admin: TestUser) -> None:
    pair = (await _login(api, operator.email)).json()
    reset = await api.post(
        f"/api/v1/users/{operator.id}/reset-password", json={"password": "a brand new password"}, headers=admin.headers
    )
    assert reset.status_code == 200
    response = await api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    assert (await _login(api, operator.email, "a brand new password")).status_code == 200


async def test_refresh_with_a_garbage_token_is_401(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/auth/refresh", json={"refresh_token": "x.y.z"})).status_code == 401


async def test_disabled_user_cannot_log_in_or_refresh(api: httpx.AsyncClient, operator: TestUser, admin: TestUser) -> None:
    pair = (await _login(api, operator.email)).json()
    await api.patch(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert (await _login(api, operator.email)).status_code == 401
    assert (await api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401


@pytest.mark.parametrize("role_name", ["operator", "viewer"])
async def test_only_admins_manage_users(api: httpx.AsyncClient, request: pytest.FixtureRequest, role_name: str) -> None:
    user: TestUser = request.getfixturevalue(role_name)
    listing = await api.get("/api/v1/users", headers=user.headers)
    created = await api.post(
        "/api/v1/users", json={"email": "x@example.com", "password": "long enough pw"}, headers=user.headers
    )
    assert (listing.status_code, created.status_code) == (403, 403)


async def test_admin_creates_user_who_can_log_in(api: httpx.AsyncClient, admin: TestUser) -> None:
    response = await api.post(
        "/api/v1/users",
        json={"email": "New.Person@Example.com", "password": "long enough pw", "role": "operator"},
        headers=admin.headers,
    )
    assert response.status_code == 201
    assert response.json()["email"] == "new.person@example.com"
    assert "password_hash" not in response.json()
    assert (await _login(api, "new.person@example.com", "long enough pw")).status_code == 200


async def test_duplicate_user_email_is_409(api: httpx.AsyncClient, admin: TestUser, operator: TestUser) -> None:
    response = await api.post(
        "/api/v1/users", json={"email": operator.email, "password": "long enough pw"}, headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "email"


async def test_short_password_is_422_naming_password(api: httpx.AsyncClient, admin: TestUser) -> None:
    response = await api.post("/api/v1/users", json={"email": "a@example.com", "password": "short"}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


async def test_admin_changes_a_role(api: httpx.AsyncClient, admin: TestUser, viewer: TestUser) -> None:
    response = await api.patch(f"/api/v1/users/{viewer.id}", json={"role": "operator"}, headers=admin.headers)
    assert response.json()["role"] == "operator"


async def test_admin_cannot_demote_themselves(api: httpx.AsyncClient, admin: TestUser) -> None:
    response = await api.patch(f"/api/v1/users/{admin.id}", json={"role": "viewer"}, headers=admin.headers)
    assert response.status_code == 403


async def test_unknown_user_is_404(api: httpx.AsyncClient, admin: TestUser) -> None:
    assert (await api.get(f"/api/v1/users/{uuid.uuid4()}", headers=admin.headers)).status_code == 404
