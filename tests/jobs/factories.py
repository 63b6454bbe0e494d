"""Rows for job tests, written with plain SQL so the tests depend only on the schema."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

import psycopg


def insert_contact(conn: psycopg.Connection, *, created_at: datetime, opted_out_at: datetime | None = None) -> uuid.UUID:
    contact_id = uuid.uuid4()
    phone = "+1415" + "".join(random.choices("0123456789", k=7))
    conn.execute(
        "INSERT INTO contacts (id, phone, name, attributes, tags, opt_in_status, opted_out_at, created_at, updated_at)"
        " VALUES (%s, %s, 'Test', '{}', '{}', %s, %s, %s, %s)",
        (contact_id, phone, "opted_out" if opted_out_at else "opted_in", opted_out_at, created_at, created_at),
    )
    return contact_id


def insert_message(
    conn: psycopg.Connection,
    contact_id: uuid.UUID,
    *,
    direction: str = "outbound",
    status: str = "sent",
    template: tuple[str, str] | None = ("birthday_greeting", "en_US"),
    automation_id: uuid.UUID | None = None,
    queued_at: datetime | None = None,
    sent_at: datetime | None = None,
    delivered_at: datetime | None = None,
    read_at: datetime | None = None,
    failed_at: datetime | None = None,
    received_at: datetime | None = None,
    error_code: int | None = None,
    retryable: bool | None = None,
    attempts: int = 1,
    created_at: datetime | None = None,
) -> uuid.UUID:
    message_id = uuid.uuid4()
    created = created_at or queued_at or received_at or sent_at
    conn.execute(
        "INSERT INTO messages (id, contact_id, direction, type, category, status, body, template_name,"
        " template_language, automation_id, attempts, queued_at, sent_at, delivered_at, read_at, failed_at,"
        " received_at, error_code, retryable, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, '{}', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            message_id, contact_id, direction, "template" if template and direction == "outbound" else "text",
            "marketing" if direction == "outbound" else "service", status,
            template[0] if template and direction == "outbound" else None,
            template[1] if template and direction == "outbound" else None,
            automation_id, attempts, queued_at, sent_at, delivered_at, read_at, failed_at, received_at,
            error_code, retryable, created, created,
        ),
    )
    return message_id


def insert_automation(conn: psycopg.Connection, name: str = "Birthday") -> uuid.UUID:
    automation_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO automations (id, name, description, enabled, trigger_type, definition, version)"
        " VALUES (%s, %s, '', true, 'birthday', '{}', 1)",
        (automation_id, name),
    )
    return automation_id
