"""Rows the automation tests build on, written with plain psycopg (no event loop needed)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

import orjson
import psycopg

from herald.clock import utcnow

_phones = itertools.count(1)

BIRTHDAY_TEMPLATE: list[dict[str, Any]] = [{"type": "BODY", "text": "Happy birthday, {{1}}!"}]
WELCOME_TEMPLATE: list[dict[str, Any]] = [{"type": "BODY", "text": "Welcome {{1}}, thanks for writing."}]


def next_phone() -> str:
    return f"+1212{next(_phones):07d}"


def make_contact(
    database_url: str,
    *,
    name: str = "Ada Lovelace",
    timezone: str | None = None,
    birthday: tuple[int, int] | None = None,
    opted_out: bool = False,
    last_inbound_at: datetime | None = None,
    tags: list[str] | None = None,
    attributes: dict[str, Any] | None = None,
    language: str | None = "en",
) -> uuid.UUID:
    contact_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO contacts (id, phone, name, language, timezone, birthday_month, birthday_day,"
            " attributes, tags, opt_in_status, opted_out_at, last_inbound_at, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)",
            (
                contact_id,
                next_phone(),
                name,
                language,
                timezone,
                birthday[0] if birthday else None,
                birthday[1] if birthday else None,
                orjson.dumps(attributes or {}).decode(),
                tags or [],
                "opted_out" if opted_out else "opted_in",
                utcnow() if opted_out else None,
                last_inbound_at,
                utcnow(),
                utcnow(),
            ),
        )
    return contact_id


def make_template(
    database_url: str,
    name: str = "happy_birthday",
    language: str = "en_US",
    *,
    components: list[dict[str, Any]] | None = None,
    category: str = "MARKETING",
    status: str = "APPROVED",
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO message_templates (id, name, language, category, status, components, parameter_format,"
            " synced_at, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, 'POSITIONAL', now(), now(), now())",
            (uuid.uuid4(), name, language, category, status, orjson.dumps(components or BIRTHDAY_TEMPLATE).decode()),
        )


def make_automation(
    database_url: str, definition: dict[str, Any], *, enabled: bool = True, name: str = "test automation"
) -> uuid.UUID:
    """Store a definition as the API would (tests of the API itself go through HTTP)."""
    from herald.automation.definitions import parse_definition

    parsed = parse_definition(definition)
    automation_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO automations (id, name, description, enabled, trigger_type, definition, version,"
            " created_at, updated_at) VALUES (%s, %s, '', %s, %s, %s::jsonb, 1, %s, %s)",
            (
                automation_id,
                name,
                enabled,
                parsed.trigger.type,
                orjson.dumps(parsed.model_dump(mode="json")).decode(),
                utcnow(),
                utcnow(),
            ),
        )
    return automation_id


def fetch(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(sql, params).fetchall()


def birthday_definition(hour: int = 9, **extra: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "trigger": {"type": "birthday", "hour": hour},
        "actions": [
            {
                "type": "send_template",
                "template": "happy_birthday",
                "language": "en_US",
                "body": [{"field": "first_name", "default": "friend"}],
            }
        ],
    }
    definition.update(extra)
    return definition
