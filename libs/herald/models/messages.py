"""Messages in both directions, their status timeline, templates, broadcasts and idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlmodel import Field, SQLModel

from herald.models.base import (
    created_at_field,
    enum_check,
    jsonb_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    RECEIVED = "received"  # inbound messages


class MessageCategory(StrEnum):
    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"
    SERVICE = "service"


class TemplateStatus(StrEnum):
    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    FLAGGED = "FLAGGED"
    REINSTATED = "REINSTATED"
    ARCHIVED = "ARCHIVED"


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        enum_check("direction", Direction),
        enum_check("status", MessageStatus),
        enum_check("category", MessageCategory),
        Index("ix_messages_contact_created", "contact_id", "created_at"),
        Index("ix_messages_status_updated", "status", "updated_at"),
        # The analytics rollup finds hours touched since its last run by updated_at.
        Index("ix_messages_updated_at", "updated_at"),
        # The relay and the stuck-message recovery scan only unfinished outbound work.
        Index(
            "ix_messages_pending",
            "status",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'sending')"),
        ),
        Index("ix_messages_failed_retryable", "failed_at", postgresql_where=text("status = 'failed' AND retryable")),
    )

    id: uuid.UUID = uuid_pk()
    contact_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False)
    )
    direction: str = Field(max_length=8)
    type: str = Field(max_length=24)  # text, template, image, interactive, reaction, ...
    category: str = Field(default=MessageCategory.SERVICE.value, max_length=16)
    status: str = Field(max_length=16)
    # The Cloud API payload we send (outbound) or the message object we received (inbound).
    body: dict[str, Any] = jsonb_field()
    # Plain text for search and keyword matching (text body, button title, caption).
    text: str | None = Field(default=None)
    template_name: str | None = Field(default=None, max_length=512)
    template_language: str | None = Field(default=None, max_length=16)
    wamid: str | None = Field(default=None, sa_column=Column(String(128), unique=True, nullable=True))
    context_wamid: str | None = Field(default=None, max_length=128)
    phone_number_id: str | None = Field(default=None, max_length=32)
    broadcast_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("broadcasts.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    automation_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("automations.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    automation_run_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("automation_runs.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime | None = timestamp_field()
    # When the message was last handed to the broker; the relay re-hands stale ones.
    enqueued_at: datetime | None = timestamp_field()
    retryable: bool | None = Field(default=None)
    error_code: int | None = Field(default=None)
    error_title: str | None = Field(default=None, max_length=512)
    error_details: str | None = Field(default=None)
    error_fbtrace_id: str | None = Field(default=None, max_length=64)
    pricing: dict[str, Any] | None = jsonb_field(nullable=True)
    conversation: dict[str, Any] | None = jsonb_field(nullable=True)
    queued_at: datetime | None = timestamp_field()
    sending_at: datetime | None = timestamp_field()
    sent_at: datetime | None = timestamp_field()
    delivered_at: datetime | None = timestamp_field()
    read_at: datetime | None = timestamp_field()
    failed_at: datetime | None = timestamp_field()
    received_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class MessageStatusEvent(SQLModel, table=True):
    """One row per (message, status): the status timeline, and the dedupe key for webhook statuses."""

    __tablename__ = "message_status_events"
    __table_args__ = (
        UniqueConstraint("message_id", "status"),
        enum_check("status", MessageStatus),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    message_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False)
    )
    status: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)
    error: dict[str, Any] | None = jsonb_field(nullable=True)
    created_at: datetime = created_at_field()


class MessageTemplate(SQLModel, table=True):
    """The WABA's templates as last synced from the Cloud API."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("name", "language"), enum_check("status", TemplateStatus))

    id: uuid.UUID = uuid_pk()
    meta_template_id: str | None = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=512)
    language: str = Field(max_length=16)
    category: str = Field(default="MARKETING", max_length=32)
    status: str = Field(max_length=24)
    # Components exactly as Meta returns them; parameter counts are derived from them.
    components: list[dict[str, Any]] = jsonb_field(default_factory=list)
    parameter_format: str = Field(default="POSITIONAL", max_length=16)
    quality_score: str | None = Field(default=None, max_length=16)
    rejected_reason: str | None = Field(default=None, max_length=64)
    synced_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class Broadcast(SQLModel, table=True):
    __tablename__ = "broadcasts"

    id: uuid.UUID = uuid_pk()
    name: str = Field(default="", max_length=200)
    template_name: str = Field(max_length=512)
    template_language: str = Field(max_length=16)
    # Segment definition (tags, attributes) and parameter mapping as given by the client.
    segment: dict[str, Any] = jsonb_field()
    parameters: dict[str, Any] = jsonb_field()
    audience_count: int = Field(default=0)
    created_by: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = created_at_field()


class IdempotencyKey(SQLModel, table=True):
    """A client's Idempotency-Key and the first answer it got, replayed on repeats."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("scope", "key"),)

    scope: str = Field(max_length=64)  # endpoint and principal
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int = Field(default=0)
    response: dict[str, Any] = jsonb_field()
    created_at: datetime = created_at_field()


class PhoneNumber(SQLModel, table=True):
    """Business phone numbers and the quality/limit Meta reports for them."""

    __tablename__ = "phone_numbers"

    phone_number_id: str = Field(primary_key=True, max_length=32)
    display_phone_number: str | None = Field(default=None, max_length=32)
    quality_rating: str | None = Field(default=None, max_length=16)
    messaging_limit: str | None = Field(default=None, max_length=32)
    last_event: str | None = Field(default=None, max_length=32)
    updated_at: datetime = updated_at_field()
