"""Rows the messaging tests build on: contacts and synced templates."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from herald.clock import utcnow
from herald.db import session_scope
from herald.models import Contact, MessageTemplate, OptInStatus

_phones = itertools.count(1)

ORDER_TEMPLATE: list[dict[str, Any]] = [
    {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
    {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way."},
    {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}"}]},
]
NAMED_TEMPLATE: list[dict[str, Any]] = [{"type": "BODY", "text": "Hi {{first_name}}, see you on {{date}}."}]
SALE_TEMPLATE: list[dict[str, Any]] = [{"type": "BODY", "text": "Spring sale! {{1}} off everything."}]


def next_phone() -> str:
    return f"+1415{next(_phones):07d}"


async def make_contact(
    *,
    opted_out: bool = False,
    last_inbound_at: datetime | None = None,
    inbound_hours_ago: float | None = None,
    **fields: Any,
) -> Contact:
    if inbound_hours_ago is not None:
        last_inbound_at = utcnow() - timedelta(hours=inbound_hours_ago)
    contact = Contact(
        phone=fields.pop("phone", None) or next_phone(),
        name=fields.pop("name", "Ada"),
        opt_in_status=OptInStatus.OPTED_OUT.value if opted_out else OptInStatus.OPTED_IN.value,
        last_inbound_at=last_inbound_at,
        **fields,
    )
    async with session_scope() as session:
        session.add(contact)
    return contact


async def make_template(
    name: str = "order_update",
    language: str = "en_US",
    *,
    category: str = "UTILITY",
    status: str = "APPROVED",
    components: list[dict[str, Any]] | None = None,
    parameter_format: str = "POSITIONAL",
) -> MessageTemplate:
    template = MessageTemplate(
        name=name,
        language=language,
        category=category,
        status=status,
        components=components if components is not None else ORDER_TEMPLATE,
        parameter_format=parameter_format,
        synced_at=utcnow(),
    )
    async with session_scope() as session:
        session.add(template)
    return template
