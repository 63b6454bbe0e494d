"""Request and response models of the messaging API (never the table models)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald.messaging.content import ButtonParameter, HeaderMedia, OutboundContent, TemplateValues
from herald.models import MessageCategory


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendMessageIn(_In):
    contact_id: uuid.UUID
    content: OutboundContent
    # Free-form messages are `service` unless told otherwise; templates use their own category.
    category: MessageCategory | None = None


class StatusEventPublic(BaseModel):
    status: str
    occurred_at: datetime
    error: dict[str, Any] | None = None


class MessagePublic(BaseModel):
    id: uuid.UUID
    contact_id: uuid.UUID
    direction: str
    type: str
    category: str
    status: str
    text: str | None
    template_name: str | None
    template_language: str | None
    wamid: str | None
    broadcast_id: uuid.UUID | None
    automation_id: uuid.UUID | None
    automation_run_id: uuid.UUID | None
    attempts: int
    error_code: int | None
    error_title: str | None
    error_details: str | None
    retryable: bool | None
    queued_at: datetime | None
    sending_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    received_at: datetime | None
    created_at: datetime


class MessageDetail(MessagePublic):
    body: dict[str, Any]
    pricing: dict[str, Any] | None
    timeline: list[StatusEventPublic]


class MessageList(BaseModel):
    data: list[MessagePublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Segment(_In):
    """Who a broadcast goes to: every filter must match (tags are case-sensitive)."""

    tags_all: list[str] = Field(default_factory=list, max_length=20, description="contacts having every tag")
    tags_any: list[str] = Field(default_factory=list, max_length=20, description="contacts having any tag")
    exclude_tags: list[str] = Field(default_factory=list, max_length=20)
    attributes: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description='attribute equality filters, e.g. {"plan": "pro"}'
    )


class BroadcastTemplate(_In):
    """Template parameters for every recipient; `{name}`, `{phone}` or `{attributes.KEY}` are filled per contact."""

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16)
    body_parameters: TemplateValues = Field(default_factory=list)
    header_parameters: TemplateValues = Field(default_factory=list)
    header_media: HeaderMedia | None = None
    button_parameters: list[ButtonParameter] = Field(default_factory=list, max_length=10)


class BroadcastIn(_In):
    name: str = Field("", max_length=200)
    template: BroadcastTemplate
    segment: Segment = Field(default_factory=Segment)
    dry_run: bool = False


class ContactSample(BaseModel):
    id: uuid.UUID
    name: str
    phone_masked: str


class BroadcastDryRun(BaseModel):
    dry_run: Literal[True] = True
    audience_size: int
    excluded_opted_out: int
    sample: list[ContactSample]


class BroadcastPublic(BaseModel):
    id: uuid.UUID
    name: str
    template_name: str
    template_language: str
    segment: dict[str, Any]
    audience_count: int
    excluded_opted_out: int | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="messages by status")
    created_at: datetime


class TemplatePublic(BaseModel):
    id: uuid.UUID
    meta_template_id: str | None
    name: str
    language: str
    category: str
    status: str
    parameter_format: str
    components: list[dict[str, Any]]
    quality_score: str | None
    rejected_reason: str | None
    synced_at: datetime | None


class TemplateList(BaseModel):
    data: list[TemplatePublic]
    count: int


class TemplateCreate(_In):
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(min_length=2, max_length=16)
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    components: list[dict[str, Any]] = Field(min_length=1, max_length=10)
    parameter_format: Literal["POSITIONAL", "NAMED"] | None = None

    @field_validator("components")
    @classmethod
    def _encodable(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The Cloud API client encodes with orjson, which refuses integers beyond 64 bits.
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"components must be plain JSON: {exc}") from exc
        return value


class SyncReportPublic(BaseModel):
    fetched: int
    created: int
    updated: int
    deleted: int
