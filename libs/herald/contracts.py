"""The API between services: queue names, actor names and payload models.

A service asks another for work by enqueuing one of these contracts with `herald.queue.enqueue`;
the consuming service declares its actor with `herald.queue.actor(CONTRACT)`. Neither imports
the other's code. Payloads carry ids, not rows: the actor reloads state from the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Queue(StrEnum):
    MESSAGES = "messages"
    AUTOMATION = "automation"
    ANALYTICS = "analytics"


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class Contract(Generic[P]):
    actor_name: str
    queue: Queue
    payload: type[P]


# --- messages queue -------------------------------------------------------------------------


class SendMessages(Payload):
    """Send these queued outbound messages (a batch keeps per-message overhead low)."""

    message_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)


class ProcessWebhookEvent(Payload):
    """Process one stored webhook body from the inbox."""

    event_id: int


class ProcessWebhookEvents(Payload):
    """Process stored webhook bodies in order: one job per intake batch, so the Redis work per
    event stays small when Meta sends thousands per second."""

    event_ids: list[int] = Field(min_length=1, max_length=1000)


# --- automation queue -----------------------------------------------------------------------


ContactEventKind = Literal["created", "updated", "tag_added", "tag_removed", "attribute_changed", "opted_out", "opted_in"]


class ContactEvent(Payload):
    """Something happened to a contact (emitted by the contacts service and the webhook service)."""

    event_id: uuid.UUID
    kind: ContactEventKind
    contact_id: uuid.UUID
    occurred_at: datetime
    # kind-specific: {"tag": "vip"} / {"attribute": "plan", "old": ..., "new": ...} / {"source": "keyword"}
    data: dict[str, Any] = Field(default_factory=dict)


class InboundMessageEvent(Payload):
    """A customer wrote to us (keyword triggers, reply tracking)."""

    message_id: uuid.UUID
    contact_id: uuid.UUID
    text: str | None = None
    message_type: str
    context_wamid: str | None = None
    received_at: datetime


class MessageStatusEvent(Payload):
    """An outbound message changed status (never starts a message automation: only reply/perf tracking)."""

    message_id: uuid.UUID
    contact_id: uuid.UUID
    status: str
    automation_run_id: uuid.UUID | None = None
    error_code: int | None = None
    occurred_at: datetime


class RunAutomationStep(Payload):
    """Start or resume an automation run at its current step (also used for delayed waits)."""

    run_id: uuid.UUID


class TriggerAutomation(Payload):
    """Start one automation for a batch of contacts with a given trigger key (tick, manual, schedule)."""

    automation_id: uuid.UUID
    contact_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    trigger_key: str
    trigger: dict[str, Any] = Field(default_factory=dict)


# --- analytics queue ------------------------------------------------------------------------


class RollupHour(Payload):
    """Recompute the analytics rows of one hour (UTC, truncated)."""

    hour: datetime


SEND_MESSAGES = Contract("messaging.send_messages", Queue.MESSAGES, SendMessages)
PROCESS_WEBHOOK_EVENT = Contract("webhook.process_event", Queue.MESSAGES, ProcessWebhookEvent)
PROCESS_WEBHOOK_EVENTS = Contract("webhook.process_events", Queue.MESSAGES, ProcessWebhookEvents)
CONTACT_EVENT = Contract("automation.contact_event", Queue.AUTOMATION, ContactEvent)
INBOUND_MESSAGE = Contract("automation.inbound_message", Queue.AUTOMATION, InboundMessageEvent)
MESSAGE_STATUS = Contract("automation.message_status", Queue.AUTOMATION, MessageStatusEvent)
RUN_AUTOMATION_STEP = Contract("automation.run_step", Queue.AUTOMATION, RunAutomationStep)
TRIGGER_AUTOMATION = Contract("automation.trigger", Queue.AUTOMATION, TriggerAutomation)
ROLLUP_HOUR = Contract("analytics.rollup_hour", Queue.ANALYTICS, RollupHour)

ALL_CONTRACTS: tuple[Contract[Any], ...] = (
    SEND_MESSAGES,
    PROCESS_WEBHOOK_EVENT,
    PROCESS_WEBHOOK_EVENTS,
    CONTACT_EVENT,
    INBOUND_MESSAGE,
    MESSAGE_STATUS,
    RUN_AUTOMATION_STEP,
    TRIGGER_AUTOMATION,
    ROLLUP_HOUR,
)

# Which service modules hold the actors of each queue (what `herald worker <queue>` imports).
QUEUE_ACTOR_MODULES: dict[Queue, tuple[str, ...]] = {
    Queue.MESSAGES: ("services.messaging.actors", "services.webhook.actors"),
    Queue.AUTOMATION: ("services.automation.actors",),
    Queue.ANALYTICS: ("services.messaging.analytics_actors",),
}
