"""Outbound messages and templates the webhook tests send statuses for."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import timedelta

from herald.clock import utcnow
from herald.db import session_scope
from herald.messaging.content import TextContent
from herald.messaging.outbound import queue_message
from herald.models import Contact, MessageTemplate, OptInStatus
from tests.webhook.conftest import Database, next_wamid

_now = itertools.count(int(time.time()) - 3600)


def ts() -> int:
    """Increasing Unix seconds in the recent past (status and message timestamps)."""
    return next(_now)


async def make_contact(wa_id: str, *, opt_in: OptInStatus = OptInStatus.OPTED_IN) -> Contact:
    contact = Contact(phone=f"+{wa_id}", wa_id=wa_id, name="Ada", opt_in_status=opt_in.value,
                      last_inbound_at=utcnow() - timedelta(hours=1))
    async with session_scope() as session:
        session.add(contact)
    return contact


async def sent_message(database: Database, wa_id: str) -> tuple[uuid.UUID, str]:
    """An outbound message that Meta accepted: (message id, wamid)."""
    contact = await make_contact(wa_id)
    async with session_scope() as session:
        message = await queue_message(session, contact=contact, content=TextContent(body="hello"), enqueue=False)
    wamid = next_wamid()
    database.execute("UPDATE messages SET wamid = %s, status = 'sending' WHERE id = %s", wamid, message.id)
    return message.id, wamid


async def make_template(name: str = "order_confirmation", language: str = "en_US", *,
                        status: str = "PENDING", meta_id: str | None = "1689556908129832") -> MessageTemplate:
    template = MessageTemplate(name=name, language=language, category="UTILITY", status=status,
                               meta_template_id=meta_id, components=[{"type": "BODY", "text": "Hi"}])
    async with session_scope() as session:
        session.add(template)
    return template
