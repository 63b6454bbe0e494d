"""Operational tables: the audit/job log, hourly analytics and the webhook inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Identity, Index, String, UniqueConstraint, Uuid, text
from sqlmodel import Field, SQLModel

from herald.models.base import created_at_field, enum_check, jsonb_field, timestamp_field


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Log(SQLModel, table=True):
    """Audit trail (who changed what) and job runs, queryable by time and entity."""

    __tablename__ = "logs"
    __table_args__ = (
        enum_check("level", LogLevel),
        Index("ix_logs_event_created", "event", "created_at"),
        Index("ix_logs_entity", "entity_type", "entity_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    created_at: datetime = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"), index=True),
    )
    level: str = Field(default=LogLevel.INFO.value, max_length=8)
    source: str = Field(max_length=64)  # service or job name
    event: str = Field(max_length=64)  # e.g. automation.updated, job.finished
    message: str = Field(default="")
    user_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    entity_type: str | None = Field(default=None, max_length=32)
    entity_id: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = jsonb_field()


class AnalyticsScope(StrEnum):
    OVERALL = "overall"
    AUTOMATION = "automation"
    TEMPLATE = "template"


class Analytics(SQLModel, table=True):
    """Hourly rollup; re-running an hour replaces its rows."""

    __tablename__ = "analytics"
    __table_args__ = (
        UniqueConstraint("hour", "scope", "scope_key"),
        enum_check("scope", AnalyticsScope),
        Index("ix_analytics_scope_hour", "scope", "scope_key", "hour"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    hour: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    scope: str = Field(max_length=16)
    # '' for overall, the automation id, or "name:language" for a template.
    scope_key: str = Field(default="", sa_column=Column(String(600), nullable=False, server_default=""))
    queued: int = Field(default=0)
    sent: int = Field(default=0)
    delivered: int = Field(default=0)
    read: int = Field(default=0)
    failed: int = Field(default=0)
    inbound: int = Field(default=0)
    replies: int = Field(default=0)
    opt_outs: int = Field(default=0)
    contacts_added: int = Field(default=0)
    failures_by_code: dict[str, Any] = jsonb_field()
    computed_at: datetime = created_at_field()


class InboxStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    SKIPPED = "skipped"


class WebhookEvent(SQLModel, table=True):
    """Durable inbox: every verified webhook body, stored before it is processed."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        enum_check("status", InboxStatus),
        # The relay scans pending rows by when they are due; the admin list filters failed ones.
        Index("ix_webhook_events_unfinished", "due_at", postgresql_where=text("status IN ('pending', 'failed')")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    received_at: datetime = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"), index=True),
    )
    # The raw body exactly as signed; parsed by the processing actor, not the request.
    body: str = Field()
    status: str = Field(default=InboxStatus.PENDING.value, max_length=16)
    attempts: int = Field(default=0)
    error: str | None = Field(default=None)
    processed_at: datetime | None = timestamp_field()
    # When the row should next be processed: the insert time, or the time of a scheduled retry.
    # The relay re-enqueues pending rows whose due time is well past (the broker lost them).
    due_at: datetime = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
