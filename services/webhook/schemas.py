"""Response models of the webhook admin API (never the table model)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WebhookEventSummary(BaseModel):
    id: int
    received_at: datetime
    status: str
    attempts: int
    error: str | None
    processed_at: datetime | None
    due_at: datetime


class WebhookEventDetail(WebhookEventSummary):
    body: str = Field(description="The raw body exactly as received and signed")


class WebhookEventList(BaseModel):
    data: list[WebhookEventSummary]
    count: int = Field(description="Total rows matching the filters")
    next_before_id: int | None = Field(description="Pass as before_id for the next page; null on the last")


class ReplayResult(BaseModel):
    replayed: int
    ids: list[int]


class Received(BaseModel):
    received: bool = True
