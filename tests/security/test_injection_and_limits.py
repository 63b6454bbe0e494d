"""Hostile input: SQL and operator injection in filters, sorting and search; oversize and deeply
nested JSON. Nothing gets a 500, nothing leaks past a filter, nothing is dropped or altered."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.fixtures.auth import TestUser
from tests.security.routes import SERVICES

pytestmark = pytest.mark.usefixtures("dispose_engines")

INJECTIONS = [
    "' OR '1'='1",
    "1' OR 1=1 --",
    "x'; DROP TABLE contacts; --",
    '") OR 1=1 --',
    "1; SELECT pg_sleep(5)",
    "%' OR name LIKE '%",
    "%",
    "_",
    "\\",
    "' UNION SELECT email, password_hash FROM users --",
    '{"$gt": ""}',
    "created_at desc; DELETE FROM contacts",
    "-name",
    "../../etc/passwd",
    "ä' OR 'ä'='ä",
]
TAUTOLOGIES = ["' OR '1'='1", "1' OR 1=1 --", "%' OR name LIKE '%", '") OR 1=1 --']


def _seed(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        for index, name in enumerate(("Alice Example", "Bob Example", "Carol Example")):
            connection.execute(
                "INSERT INTO contacts (id, phone, name, opt_in_status, attributes, tags)"
                " VALUES (gen_random_uuid(), %s, %s, 'opted_in', %s, %s)",
                (f"+1415555{index:04d}", name, '{"city": "Lisbon"}', ["vip"]),
            )


def _table_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("contacts", "users", "api_keys")
        }


def _string_query_params(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, parameter) for every GET operation's string query parameter, from the live OpenAPI."""
    found = []
    for path, operations in openapi["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        for parameter in get.get("parameters", []):
            schema = parameter.get("schema", {})
            types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
            items = schema.get("items", {}) or next(
                (s.get("items", {}) for s in schema.get("anyOf", []) if "items" in s), {}
            )
            if parameter["in"] == "query" and ("string" in types or items.get("type") == "string"):
                found.append((path, parameter["name"]))
    return found


@pytest.mark.parametrize("service", SERVICES)
async def test_injection_in_every_string_query_parameter_is_inert(
    service: str,
    apps: dict[str, Any],
    clients: dict[str, httpx.AsyncClient],
    admin: TestUser,
    database_url: str,
) -> None:
    _seed(database_url)
    before = _table_counts(database_url)
    targets = _string_query_params(apps[service].openapi())
    failures = []
    for path, name in targets:
        for payload in INJECTIONS:
            response = await clients[service].get(path, params={name: payload}, headers=admin.headers)
            if response.status_code >= 500:
                failures.append(f"GET {path}?{name}={payload!r}: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert _table_counts(database_url) == before


@pytest.mark.parametrize("payload", TAUTOLOGIES)
async def test_sql_tautology_in_contact_search_tag_and_attribute_filters_matches_nothing(
    payload: str, clients: dict[str, httpx.AsyncClient], admin: TestUser, database_url: str
) -> None:
    _seed(database_url)
    contacts = clients["contacts"]
    for params in ({"q": payload}, {"tag": payload}, {"attr.city": payload}, {"q": "Example", "tag": payload}):
        response = await contacts.get("/api/v1/contacts", params=params, headers=admin.headers)
        assert response.status_code in (200, 400, 422), (params, response.text)
        if response.status_code == 200:
            assert response.json()["data"] == [], params


async def test_attribute_filter_names_cannot_carry_sql(
    clients: dict[str, httpx.AsyncClient], admin: TestUser, database_url: str
) -> None:
    _seed(database_url)
    before = _table_counts(database_url)
    for name in ("attr.city') OR 1=1 --", 'attr.city"; DROP TABLE contacts; --', "attr.", "attr.a.b.c"):
        response = await clients["contacts"].get("/api/v1/contacts", params={name: "Lisbon"}, headers=admin.headers)
        assert response.status_code < 500, (name, response.text)
        if response.status_code == 200:
            assert len(response.json()["data"]) in (0, 3)
    assert _table_counts(database_url) == before


async def test_forged_pagination_cursor_is_a_client_error(
    clients: dict[str, httpx.AsyncClient], admin: TestUser, database_url: str
) -> None:
    _seed(database_url)
    for cursor in ("' OR 1=1 --", "eyJ4IjoiJyBPUiAxPTEgLS0ifQ", "A" * 199, "%00"):
        response = await clients["contacts"].get("/api/v1/contacts", params={"cursor": cursor}, headers=admin.headers)
        assert 400 <= response.status_code < 500, (cursor, response.status_code, response.text)


def _json_endpoints(apps: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, method, path) of every operation taking a JSON body without path parameters."""
    found = []
    for service in SERVICES:
        for path, operations in apps[service].openapi()["paths"].items():
            for method, operation in operations.items():
                content = operation.get("requestBody", {}).get("content", {})
                if "application/json" in content and "{" not in path:
                    found.append((service, method.upper(), path))
    return found


async def test_oversize_json_bodies_are_refused_with_413_everywhere(
    apps: dict[str, Any], clients: dict[str, httpx.AsyncClient], admin: TestUser
) -> None:
    body = b'{"name": "' + b"a" * (2 * 1_048_576) + b'"}'

    async def chunked() -> Any:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    headers = {**admin.headers, "Content-Type": "application/json"}
    failures = []
    for service, method, path in _json_endpoints(apps):
        declared = await clients[service].request(method, path, content=body, headers=headers)
        streamed = await clients[service].request(method, path, content=chunked(), headers=headers)
        for how, response in (("with Content-Length", declared), ("chunked", streamed)):
            if response.status_code != 413 or response.json().get("code") != "payload_too_large":
                failures.append(f"{method} {path} {how}: {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("depth", [64, 5_000, 100_000])
async def test_deeply_nested_json_is_a_client_error(
    depth: int, apps: dict[str, Any], clients: dict[str, httpx.AsyncClient], admin: TestUser, database_url: str
) -> None:
    arrays = b"[" * depth + b"]" * depth
    objects = b'{"a":' * depth + b"1" + b"}" * depth
    attributes = b'{"phone": "+14155550999", "attributes": ' + objects + b"}"
    headers = {**admin.headers, "Content-Type": "application/json"}
    failures = []
    for service, method, path in _json_endpoints(apps):
        for body in (arrays, objects):
            response = await clients[service].request(method, path, content=body, headers=headers)
            if response.status_code >= 500 or response.status_code < 400:
                failures.append(f"{method} {path} depth {depth}: {response.status_code}")
    response = await clients["contacts"].post("/api/v1/contacts", content=attributes, headers=headers)
    if response.status_code >= 500:
        failures.append(f"POST /api/v1/contacts with attributes nested {depth} deep: {response.status_code}")
    assert not failures, "\n".join(failures)
