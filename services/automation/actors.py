"""Actors of the `automation` queue (what `herald worker automation` runs).

Every actor is idempotent: runs are keyed by (automation, contact, trigger key) and steps by
the run's row lock and `current_step`, so redelivered messages change nothing.
"""

from __future__ import annotations

from herald.contracts import (
    CONTACT_EVENT,
    INBOUND_MESSAGE,
    MESSAGE_STATUS,
    RUN_AUTOMATION_STEP,
    TRIGGER_AUTOMATION,
    ContactEvent,
    InboundMessageEvent,
    MessageStatusEvent,
    RunAutomationStep,
    TriggerAutomation,
)
from herald.db import session_scope
from herald.queue import actor
from services.automation import engine, triggers


@actor(CONTACT_EVENT)
async def contact_event(event: ContactEvent) -> None:
    """Contact created / tag added: start the matching automations."""
    await triggers.on_contact_event(event)


@actor(INBOUND_MESSAGE)
async def inbound_message(event: InboundMessageEvent) -> None:
    """An inbound message: start the keyword automations its text matches."""
    await triggers.on_inbound_message(event)


@actor(MESSAGE_STATUS)
async def message_status(event: MessageStatusEvent) -> None:
    """A status of an automation message: noted on its run step. Statuses never start runs."""
    if event.automation_run_id is None:
        return
    async with session_scope() as session:
        await engine.record_message_status(
            session, event.automation_run_id, event.message_id, event.status, event.error_code
        )


@actor(RUN_AUTOMATION_STEP)
async def run_step(payload: RunAutomationStep) -> None:
    """Start or resume a run at its current step."""
    await engine.advance_run(payload.run_id)


@actor(TRIGGER_AUTOMATION)
async def trigger(payload: TriggerAutomation) -> None:
    """Start one automation for a batch of contacts under one trigger key."""
    await triggers.on_trigger_request(payload)
