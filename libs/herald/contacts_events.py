"""Contact events for the automation queue, shared by the contacts and webhook services."""

from __future__ import annotations

import uuid
from typing import Any

from herald import queue
from herald.clock import utcnow
from herald.contracts import CONTACT_EVENT, ContactEvent, ContactEventKind


def build_contact_event(
    kind: ContactEventKind, contact_id: uuid.UUID, data: dict[str, Any] | None = None
) -> ContactEvent:
    """The payload of one contact event, stamped with a fresh id and the current time."""
    return ContactEvent(
        event_id=uuid.uuid4(), kind=kind, contact_id=contact_id, occurred_at=utcnow(), data=data or {}
    )


def emit_contact_event(
    kind: ContactEventKind, contact_id: uuid.UUID, data: dict[str, Any] | None = None
) -> ContactEvent:
    """Enqueue `automation.contact_event`; inside a transaction scope it leaves only after commit.

    `data` is kind-specific: {"tag": "vip"}, {"attribute": "plan", "old": ..., "new": ...},
    {"source": "keyword"}. Returns the payload sent.
    """
    event = build_contact_event(kind, contact_id, data)
    queue.enqueue(CONTACT_EVENT, event)
    return event
