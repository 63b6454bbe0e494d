"""Automations (trigger, conditions, actions) and their runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlmodel import Field, SQLModel

from herald.models.base import (
    created_at_field,
    enum_check,
    jsonb_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class TriggerType(StrEnum):
    BIRTHDAY = "birthday"
    DATE_FIELD = "date_field"
    CONTACT_CREATED = "contact_created"
    TAG_ADDED = "tag_added"
    INBOUND_KEYWORD = "inbound_keyword"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Automation(SQLModel, table=True):
    __tablename__ = "automations"
    __table_args__ = (
        enum_check("trigger_type", TriggerType),
        Index("ix_automations_enabled_trigger", "trigger_type", postgresql_where=text("enabled AND deleted_at IS NULL")),
    )

    id: uuid.UUID = uuid_pk()
    name: str = Field(max_length=200)
    description: str = Field(default="")
    enabled: bool = Field(default=False)
    # Copied out of the definition so due automations are found by an indexed query.
    trigger_type: str = Field(max_length=32)
    # {"trigger": {...}, "conditions": [...], "actions": [...]} validated by the automation service.
    definition: dict[str, Any] = jsonb_field()
    version: int = Field(default=1)
    created_by: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    updated_by: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    deleted_at: datetime | None = timestamp_field()


class AutomationRun(SQLModel, table=True):
    """One execution of an automation for one contact; the unique key makes it happen once."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        # Exactly once: birthday "birthday:2026", date "date:anniversary:2026-05-01", event "event:<id>".
        UniqueConstraint("automation_id", "contact_id", "trigger_key"),
        enum_check("status", RunStatus),
        Index("ix_automation_runs_automation_created", "automation_id", "created_at"),
        Index("ix_automation_runs_waiting", "resume_at", postgresql_where=text("status = 'waiting'")),
        # The sweep re-enqueues runs a crash left pending or running.
        Index("ix_automation_runs_unfinished", "updated_at", postgresql_where=text("status IN ('pending', 'running')")),
    )

    id: uuid.UUID = uuid_pk()
    automation_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("automations.id", ondelete="CASCADE"), nullable=False)
    )
    contact_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    trigger_key: str = Field(sa_column=Column(String(255), nullable=False))
    status: str = Field(default=RunStatus.PENDING.value, max_length=16)
    # The definition as it was when the run started: edits never disturb runs in flight.
    definition: dict[str, Any] = jsonb_field()
    definition_version: int = Field(default=1)
    trigger: dict[str, Any] = jsonb_field()
    current_step: int = Field(default=0)
    # Per-step state and log: [{"step": 0, "action": "send_template", "status": "sent", "message_id": ...}]
    steps: list[dict[str, Any]] = jsonb_field(default_factory=list)
    resume_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
