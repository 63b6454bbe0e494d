"""Actors of the webhook service (queue `messages`)."""

from __future__ import annotations

from herald.contracts import (
    PROCESS_WEBHOOK_EVENT,
    PROCESS_WEBHOOK_EVENTS,
    ProcessWebhookEvent,
    ProcessWebhookEvents,
)
from herald.queue import actor
from services.webhook.service import process_inbox_event
from services.webhook.status_batch import apply_plain_statuses


@actor(PROCESS_WEBHOOK_EVENT, max_retries=10, min_backoff=1000, max_backoff=300_000)
async def process_webhook_event(payload: ProcessWebhookEvent) -> None:
    """Process one stored webhook body. Only database outages raise (and are retried); every
    other outcome is recorded on the inbox row."""
    await process_inbox_event(payload.event_id)


@actor(PROCESS_WEBHOOK_EVENTS, max_retries=10, min_backoff=1000, max_backoff=300_000)
async def process_webhook_events(payload: ProcessWebhookEvents) -> None:
    """Process one intake batch: its plain statuses together, then every other row in arrival
    order, each in its own transaction. A database outage retries the whole job; rows already
    finished are left alone the second time."""
    for event_id in await apply_plain_statuses(payload.event_ids):
        await process_inbox_event(event_id)
