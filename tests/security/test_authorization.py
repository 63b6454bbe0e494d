"""The authorization matrix: every endpoint of every service (walked from the app's routes) called
with no token, broken and forged tokens, revoked and expired API keys, and each role by JWT and
by API key, against the role the endpoint demands."""

from __future__ import annotations

import httpx
import pytest

from herald.auth import ROLE_RANK
from tests.security.conftest import Credential
from tests.security.routes import SERVICES, Endpoint, endpoints

pytestmark = pytest.mark.usefixtures("dispose_engines")


async def _call(client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    kwargs: dict[str, object] = {"headers": headers}
    if endpoint.has_body:
        kwargs["json"] = {}
    return await client.request(endpoint.method, endpoint.url(), **kwargs)  # type: ignore[arg-type]


def _expected_problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/problem+json")


async def _violations(client: httpx.AsyncClient, endpoint: Endpoint, credentials: list[Credential]) -> list[str]:
    found: list[str] = []
    anonymous = await _call(client, endpoint, {})
    for credential in credentials:
        response = await _call(client, endpoint, credential.headers)
        where = f"{endpoint.id} with {credential.name}: {response.status_code}"
        if response.status_code >= 500:
            found.append(f"{where} (server error) {response.text[:200]}")
        elif endpoint.role is None:
            # Public routes (login, webhook intake, health) carry their own checks; a token changes nothing.
            if response.status_code != anonymous.status_code:
                found.append(f"{where}, but {anonymous.status_code} without credentials")
        elif credential.role is None:
            if response.status_code != 401 or not _expected_problem(response):
                found.append(f"{where}, expected 401 problem+json")
        elif ROLE_RANK[credential.role] < ROLE_RANK[endpoint.role]:
            if response.status_code != 403 or not _expected_problem(response):
                found.append(f"{where}, expected 403 problem+json (needs {endpoint.role.value})")
        elif response.status_code in (401, 403):
            found.append(f"{where}, but {credential.role.value} may call it (needs {endpoint.role.value})")
    return found


@pytest.mark.parametrize("service", SERVICES)
async def test_every_endpoint_admits_exactly_the_roles_it_declares(
    service: str, apps: dict[str, object], clients: dict[str, httpx.AsyncClient], credentials: list[Credential]
) -> None:
    found = endpoints(service, apps[service])  # type: ignore[arg-type]
    assert any(e.role is not None for e in found), f"{service} has no protected endpoint: the walk found nothing"
    violations: list[str] = []
    for endpoint in found:
        violations += await _violations(clients[service], endpoint, credentials)
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("service", SERVICES)
async def test_only_operational_and_meta_facing_routes_are_public(service: str, apps: dict[str, object]) -> None:
    public = {e.path for e in endpoints(service, apps[service]) if e.role is None}  # type: ignore[arg-type]
    allowed = {"/health", "/ready", "/metrics", "/api/v1/auth/token", "/api/v1/auth/refresh", "/webhooks/whatsapp"}
    assert public <= allowed, f"unexpected public routes in {service}: {sorted(public - allowed)}"
