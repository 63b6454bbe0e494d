"""Credentials of every kind (good, bad and forged), the four service apps over ASGI, and the
simulator standing in for Meta so no request leaves the machine."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import jwt
import psycopg
import pytest

from herald import clock
from herald.auth import create_token, new_api_key
from herald.models import Role
from tests.fixtures.auth import create_user
from tests.fixtures.simulator import SimulatorHandle, simulator_process
from tests.security.routes import SERVICES, service_app

__all__ = ["simulator_process"]


@pytest.fixture(scope="session", autouse=True)
def cloud_api_is_the_simulator(
    herald_environment: dict[str, str], simulator_process: SimulatorHandle
) -> Iterator[None]:
    """Template sync, test sends and the like reach the simulator, never graph.facebook.com."""
    env = {
        "WHATSAPP_API_BASE_URL": simulator_process.url,
        "WHATSAPP_TOKEN": simulator_process.token,
        "PHONE_NUMBER_ID": simulator_process.phone_number_id,
        "BUSINESS_ID": simulator_process.waba_id,
        "WHATSAPP_TIMEOUT_SECONDS": "3",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass(frozen=True)
class Credential:
    name: str
    headers: dict[str, str]
    # None: must be refused as unauthenticated (401); otherwise the role it acts with.
    role: Role | None


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _api_key(database_url: str, user_id: uuid.UUID, role: Role, *, revoked: bool = False, expired: bool = False) -> str:
    key, prefix, key_hash = new_api_key()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, role, revoked_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END,"
            " CASE WHEN %s THEN now() - interval '1 day' END)",
            (uuid.uuid4(), user_id, f"{role.value} key", prefix, key_hash, role.value, revoked, expired),
        )
    return key


@pytest.fixture
def credentials(database_url: str) -> list[Credential]:
    """No token, broken tokens of every kind, each role by JWT, and each role by API key."""
    users = {role: create_user(database_url, role) for role in Role}
    admin = users[Role.ADMIN]
    secret = os.environ["SECRET_KEY"]
    claims = {"sub": str(admin.id), "role": "admin", "type": "access", "jti": uuid.uuid4().hex}
    now = clock.utcnow()
    live = {**claims, "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=5)).timestamp())}

    clock.set_now(now - timedelta(days=1))
    try:
        expired = create_token(admin.id, Role.ADMIN, "access")
    finally:
        clock.set_now(None)
    viewer_header, _, viewer_signature = users[Role.VIEWER].token.split(".")
    escalated = ".".join(
        [
            viewer_header,
            _b64({**jwt.decode(users[Role.VIEWER].token, options={"verify_signature": False}), "role": "admin"}),
            viewer_signature,
        ]
    )
    bad: dict[str, str] = {
        "expired token": expired,
        "forged token (wrong key)": jwt.encode(
            live, "not-the-secret-key-0123456789-abcdefghijklmno", algorithm="HS256"
        ),
        "alg none token": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(live)}.",
        "alg none token, signature kept": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(live)}.{viewer_signature}",
        "HS512 token with the real key": jwt.encode(live, secret, algorithm="HS512"),
        "viewer token with role edited to admin": escalated,
        "refresh token as access token": create_token(admin.id, Role.ADMIN, "refresh"),
        "garbage token": "not.a.jwt",
        "unknown API key as bearer": "hk_" + "A" * 43,
    }
    result = [Credential("no credentials", {}, None)]
    result += [Credential(name, {"Authorization": f"Bearer {token}"}, None) for name, token in bad.items()]
    result.append(Credential("unknown API key", {"X-API-Key": "hk_" + "B" * 43}, None))
    result.append(
        Credential("revoked API key", {"X-API-Key": _api_key(database_url, admin.id, Role.ADMIN, revoked=True)}, None)
    )
    result.append(
        Credential("expired API key", {"X-API-Key": _api_key(database_url, admin.id, Role.ADMIN, expired=True)}, None)
    )
    for role, user in users.items():
        result.append(Credential(f"{role.value} JWT", user.headers, role))
        result.append(Credential(f"{role.value} API key", {"X-API-Key": _api_key(database_url, user.id, role)}, role))
    return result


@pytest.fixture(scope="session")
def apps(herald_environment: dict[str, str], cloud_api_is_the_simulator: None) -> dict[str, object]:
    return {service: service_app(service) for service in SERVICES}


@pytest.fixture
async def clients(apps: dict[str, object], dispose_engines: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    opened = {
        service: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}.test")  # type: ignore[arg-type]
        for service, app in apps.items()
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()
