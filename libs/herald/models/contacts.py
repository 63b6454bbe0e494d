"""Contacts: the people a business messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from herald.models.base import (
    created_at_field,
    enum_check,
    jsonb_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class OptInStatus(StrEnum):
    UNKNOWN = "unknown"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        enum_check("opt_in_status", OptInStatus),
        CheckConstraint("birthday_month BETWEEN 1 AND 12", name="birthday_month_range"),
        CheckConstraint("birthday_day BETWEEN 1 AND 31", name="birthday_day_range"),
        CheckConstraint(
            "(birthday_month IS NULL) = (birthday_day IS NULL)", name="birthday_month_day_together"
        ),
        CheckConstraint(
            "birthday_year IS NULL OR birthday_month IS NOT NULL", name="birthday_year_needs_day"
        ),
        CheckConstraint("phone ~ '^\\+[1-9][0-9]{6,14}$'", name="phone_e164"),
        # Birthday tick: contacts whose birthday is on a given month/day.
        Index(
            "ix_contacts_birthday",
            "birthday_month",
            "birthday_day",
            postgresql_where=text("birthday_month IS NOT NULL"),
            # The tick reads id and time zone straight from the index (an index-only scan at 1M rows).
            postgresql_include=["id", "timezone"],
        ),
        Index("ix_contacts_tags", "tags", postgresql_using="gin"),
        Index("ix_contacts_attributes", "attributes", postgresql_using="gin", postgresql_ops={"attributes": "jsonb_path_ops"}),
        # Keyset pagination order.
        Index("ix_contacts_created_at_id", "created_at", "id"),
        Index("ix_contacts_updated_at", "updated_at"),
    )

    id: uuid.UUID = uuid_pk()
    # E.164, e.g. +14155550123: the unique identity of a contact.
    phone: str = Field(sa_column=Column(String(16), nullable=False, unique=True))
    # WhatsApp's id for the user (digits), learned from the send response or an inbound message.
    wa_id: str | None = Field(default=None, max_length=32, index=True)
    name: str = Field(default="", max_length=200)
    profile_name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=16)
    timezone: str | None = Field(default=None, max_length=64)
    birthday_month: int | None = Field(default=None)
    birthday_day: int | None = Field(default=None)
    birthday_year: int | None = Field(default=None)
    attributes: dict[str, Any] = jsonb_field()
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(64)), nullable=False, server_default=text("'{}'::varchar[]")),
    )
    opt_in_status: str = Field(default=OptInStatus.UNKNOWN.value, max_length=16)
    opt_in_source: str | None = Field(default=None, max_length=64)
    opted_in_at: datetime | None = timestamp_field()
    opted_out_at: datetime | None = timestamp_field()
    # Start of the 24-hour customer-service window: the contact's last inbound message.
    last_inbound_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
