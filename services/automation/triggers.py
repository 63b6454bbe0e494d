"""Start runs from events: contacts created or tagged, and inbound keyword messages.

Keys: `event:<event id>` for contact events and `inbound:<message id>` for inbound messages, so a
redelivered event finds its runs already there and starts nothing.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import select

from herald.automation.definitions import InboundKeywordTrigger, TagAddedTrigger, load_definition
from herald.automation.keywords import keyword_matches
from herald.contracts import ContactEvent, InboundMessageEvent, TriggerAutomation
from herald.db import session_scope
from herald.models import Automation, TriggerType
from services.automation.runs import start_runs

log = structlog.get_logger("herald.automation.triggers")

CONTACT_EVENT_TRIGGERS = {"created": TriggerType.CONTACT_CREATED, "tag_added": TriggerType.TAG_ADDED}


def _enabled(trigger_type: TriggerType):  # type: ignore[no-untyped-def]
    return select(Automation).where(
        Automation.enabled.is_(True),  # type: ignore[attr-defined]
        Automation.deleted_at.is_(None),  # type: ignore[union-attr]
        Automation.trigger_type == trigger_type.value,  # type: ignore[arg-type]
    )


async def on_contact_event(event: ContactEvent) -> list[uuid.UUID]:
    """Start the automations a contact event triggers; returns the runs created."""
    trigger_type = CONTACT_EVENT_TRIGGERS.get(event.kind)
    if trigger_type is None:
        return []
    created: list[uuid.UUID] = []
    async with session_scope() as session:
        for automation in (await session.execute(_enabled(trigger_type))).scalars():
            trigger = load_definition(automation.definition).trigger
            if isinstance(trigger, TagAddedTrigger) and trigger.tag != event.data.get("tag"):
                continue
            created += await start_runs(
                session,
                automation,
                [event.contact_id],
                f"event:{event.event_id}",
                {
                    "type": trigger_type.value,
                    "event_id": str(event.event_id),
                    "kind": event.kind,
                    "data": event.data,
                },
            )
    return created


async def on_inbound_message(event: InboundMessageEvent) -> list[uuid.UUID]:
    """Start every keyword automation the message text matches."""
    if not event.text:
        return []
    created: list[uuid.UUID] = []
    async with session_scope() as session:
        for automation in (await session.execute(_enabled(TriggerType.INBOUND_KEYWORD))).scalars():
            trigger = load_definition(automation.definition).trigger
            assert isinstance(trigger, InboundKeywordTrigger)
            if not keyword_matches(event.text, trigger.match, trigger.keywords, trigger.pattern):
                continue
            created += await start_runs(
                session,
                automation,
                [event.contact_id],
                f"inbound:{event.message_id}",
                {
                    "type": TriggerType.INBOUND_KEYWORD.value,
                    "message_id": str(event.message_id),
                    "text": event.text[:500],
                },
            )
    return created


async def on_trigger_request(request: TriggerAutomation) -> list[uuid.UUID]:
    """Start one automation for a batch of contacts under one key (manual and scheduled fan-out)."""
    async with session_scope() as session:
        automation = await session.get(Automation, request.automation_id)
        if automation is None or automation.deleted_at is not None or not automation.enabled:
            log.info("automation_trigger_ignored", automation_id=str(request.automation_id), reason="not_enabled")
            return []
        return await start_runs(session, automation, request.contact_ids, request.trigger_key, request.trigger)
