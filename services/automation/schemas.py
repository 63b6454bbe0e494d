"""Request and response models of the automation API (never the table models)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFINITION_EXAMPLE: dict[str, Any] = {
    "trigger": {"type": "birthday", "hour": 9},
    "conditions": [{"type": "opted_in"}, {"type": "quiet_hours", "start": "21:00", "end": "08:00"}],
    "actions": [
        {
            "type": "send_template",
            "template": "happy_birthday",
            "language": "en_US",
            "body": [{"field": "first_name", "default": "friend"}],
        },
        {"type": "add_tag", "tag": "birthday-greeted"},
    ],
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutomationCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    enabled: bool = False
    definition: dict[str, Any] = Field(
        description="trigger, conditions and actions; see docs/automations.md",
        examples=[DEFINITION_EXAMPLE],
    )


class AutomationUpdate(_Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    definition: dict[str, Any] | None = None
    # Optimistic concurrency: refuse the edit (409) when someone changed the automation since.
    expected_version: int | None = Field(None, ge=1)


class AutomationPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    enabled: bool
    trigger_type: str
    definition: dict[str, Any]
    version: int
    created_by: uuid.UUID | None
    updated_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    # HMAC key of the webhook actions' signatures (shown to operators and admins only).
    webhook_secret: str | None = None


class AutomationList(BaseModel):
    data: list[AutomationPublic]
    count: int


class ContactSample(BaseModel):
    id: uuid.UUID
    name: str
    phone: str
    timezone: str | None
    language: str | None


class AudiencePreview(BaseModel):
    automation_id: uuid.UUID
    trigger_type: str
    date: date | None
    count: int
    sample: list[ContactSample]
    note: str


class TestSendRequest(_Body):
    contact_id: uuid.UUID


class StepResult(BaseModel):
    step: int
    action: str
    status: str
    message_id: uuid.UUID | None = None
    reason: str | None = None
    detail: str | None = None


class TestSendResult(BaseModel):
    automation_id: uuid.UUID
    contact_id: uuid.UUID
    results: list[StepResult]


class RunRequest(_Body):
    contact_id: uuid.UUID | None = None
    segment: list[dict[str, Any]] | None = Field(None, max_length=20)
    # Repeating a request with the same id starts nothing new.
    request_id: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")


class RunStarted(BaseModel):
    automation_id: uuid.UUID
    trigger_key: str
    contacts: int
    runs_created: int


class RunPublic(BaseModel):
    id: uuid.UUID
    automation_id: uuid.UUID
    contact_id: uuid.UUID
    trigger_key: str
    status: str
    definition_version: int
    trigger: dict[str, Any]
    current_step: int
    steps: list[dict[str, Any]]
    resume_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RunDetail(RunPublic):
    definition: dict[str, Any]


class RunList(BaseModel):
    data: list[RunPublic]
    count: int


class Rates(BaseModel):
    sent: float | None
    delivered: float | None
    read: float | None
    replied: float | None
    failed: float | None
    opted_out_after: float | None


class Performance(BaseModel):
    automation_id: uuid.UUID
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    reply_window_hours: int
    triggered: int
    runs_completed: int
    runs_skipped: int
    runs_failed: int
    runs_in_progress: int
    messages: int
    sent: int
    delivered: int
    read: int
    replied: int
    failed: int
    opted_out_after: int
    rates: Rates

    model_config = ConfigDict(populate_by_name=True)
