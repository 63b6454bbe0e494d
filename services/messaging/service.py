"""Messaging domain logic for the HTTP layer: sends, broadcasts, listings, templates."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.clock import utcnow
from herald.errors import NotFound
from herald.messaging.content import TemplateContent
from herald.messaging.errors import ContactNotFound
from herald.messaging.outbound import (
    build_message_row,
    check_template,
    enqueue_send,
    insert_queued,
    message_category,
    queue_message,
)
from herald.messaging.templates import find_template
from herald.models import Broadcast, Contact, Message, MessageCategory, MessageStatusEvent, OptInStatus
from herald.observability.logging import mask_phone
from herald.pagination import decode_cursor, encode_cursor
from services.messaging.schemas import (
    BroadcastDryRun,
    BroadcastIn,
    BroadcastPublic,
    ContactSample,
    MessageDetail,
    MessagePublic,
    Segment,
    SendMessageIn,
    StatusEventPublic,
)

messages = Message.__table__  # type: ignore[attr-defined]
contacts = Contact.__table__  # type: ignore[attr-defined]
events = MessageStatusEvent.__table__  # type: ignore[attr-defined]
INSERT_CHUNK = 1000
SAMPLE_SIZE = 10
CONTACT_FIELD = re.compile(r"\{(name|phone|attributes\.[A-Za-z0-9_.-]{1,64})\}")


# --- one message ----------------------------------------------------------------------------


async def send_message(session: AsyncSession, request: SendMessageIn) -> Message:
    """Queue one message to one contact (validated now, re-checked at send time)."""
    contact = await session.get(Contact, request.contact_id)
    if contact is None:
        raise ContactNotFound(f"no contact {request.contact_id}", field="contact_id")
    return await queue_message(session, contact=contact, content=request.content, category=request.category)


def to_public(row: Any) -> MessagePublic:
    return MessagePublic.model_validate(row, from_attributes=True)


# --- listings ---------------------------------------------------------------------------------


@dataclass
class MessageFilters:
    status: str | None = None
    direction: str | None = None
    contact_id: uuid.UUID | None = None
    template: str | None = None
    automation_id: uuid.UUID | None = None
    broadcast_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        c = messages.c
        found: list[ColumnElement[bool]] = []
        for column, value in (
            (c.status, self.status),
            (c.direction, self.direction),
            (c.contact_id, self.contact_id),
            (c.template_name, self.template),
            (c.automation_id, self.automation_id),
            (c.broadcast_id, self.broadcast_id),
        ):
            if value is not None:
                found.append(column == value)
        if self.created_from is not None:
            found.append(c.created_at >= self.created_from)
        if self.created_to is not None:
            found.append(c.created_at < self.created_to)
        return found


async def list_messages(
    session: AsyncSession, filters: MessageFilters, limit: int, cursor: str | None
) -> tuple[list[MessagePublic], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    c = messages.c
    statement = select(messages).where(*filters.conditions())
    if cursor:
        created_at, message_id = decode_cursor(cursor)
        statement = statement.where(tuple_(c.created_at, c.id) < tuple_(created_at, message_id))
    statement = statement.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
    rows = list((await session.execute(statement)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return [to_public(row) for row in rows], next_cursor


async def message_detail(session: AsyncSession, message_id: uuid.UUID) -> MessageDetail:
    row = (await session.execute(select(messages).where(messages.c.id == message_id))).first()
    if row is None:
        raise NotFound(f"no message {message_id}", code="message_not_found")
    timeline = (
        await session.execute(
            select(events.c.status, events.c.occurred_at, events.c.error)
            .where(events.c.message_id == message_id)
            .order_by(events.c.occurred_at, events.c.id)
        )
    ).all()
    detail = MessageDetail.model_validate(
        {**row._mapping, "timeline": [StatusEventPublic.model_validate(e, from_attributes=True) for e in timeline]}
    )
    return detail


async def require_contact(session: AsyncSession, contact_id: uuid.UUID) -> None:
    if (await session.execute(select(contacts.c.id).where(contacts.c.id == contact_id))).first() is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")


# --- broadcasts -------------------------------------------------------------------------------


def segment_conditions(segment: Segment) -> list[ColumnElement[bool]]:
    c = contacts.c
    found: list[ColumnElement[bool]] = []
    if segment.tags_all:
        found.append(c.tags.contains(segment.tags_all))
    if segment.tags_any:
        found.append(c.tags.overlap(segment.tags_any))
    if segment.exclude_tags:
        found.append(~c.tags.overlap(segment.exclude_tags))
    if segment.attributes:
        found.append(c.attributes.contains(segment.attributes))
    return found


def _template_content(request: BroadcastIn) -> TemplateContent:
    data = request.template.model_dump()
    return TemplateContent.model_validate(data)


def _per_contact(value: str, contact: Any) -> str:
    def fill(match: re.Match[str]) -> str:
        field = match.group(1)
        if field == "name":
            return str(contact.name or "")
        if field == "phone":
            return str(contact.phone)
        found: Any = contact.attributes or {}
        for part in field.removeprefix("attributes.").split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return "" if found is None else str(found)

    return CONTACT_FIELD.sub(fill, value)


def _personalise(content: TemplateContent, contact: Any, personal: bool) -> TemplateContent:
    if not personal:
        return content

    def values(given: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if isinstance(given, dict):
            return {k: _per_contact(v, contact) or "-" for k, v in given.items()}
        return [_per_contact(v, contact) or "-" for v in given]

    return content.model_copy(
        update={
            "body_parameters": values(content.body_parameters),
            "header_parameters": values(content.header_parameters),
            "button_parameters": [
                b.model_copy(update={"value": _per_contact(b.value, contact) or "-"}) for b in content.button_parameters
            ],
        }
    )


async def create_broadcast(
    session: AsyncSession, request: BroadcastIn, created_by: uuid.UUID | None
) -> BroadcastDryRun | BroadcastPublic:
    """Validate the template, select the segment, and queue one message per contact (or count them)."""
    content = _template_content(request)
    template = await find_template(session, content.name, content.language)
    check_template(template, content)
    category = message_category(template, None)
    conditions = segment_conditions(request.segment)
    opted_out = contacts.c.opt_in_status == OptInStatus.OPTED_OUT.value
    marketing = category == MessageCategory.MARKETING
    total = int((await session.execute(select(func.count()).select_from(contacts).where(*conditions))).scalar_one())
    excluded = 0
    if marketing:
        excluded = int(
            (
                await session.execute(select(func.count()).select_from(contacts).where(*conditions, opted_out))
            ).scalar_one()
        )
        conditions.append(~opted_out)
    if request.dry_run:
        sample = (
            await session.execute(
                select(contacts.c.id, contacts.c.name, contacts.c.phone)
                .where(*conditions)
                .order_by(contacts.c.created_at, contacts.c.id)
                .limit(SAMPLE_SIZE)
            )
        ).all()
        return BroadcastDryRun(
            audience_size=total - excluded,
            excluded_opted_out=excluded,
            sample=[ContactSample(id=r.id, name=r.name, phone_masked=mask_phone(r.phone)) for r in sample],
        )
    now = utcnow()
    broadcast = Broadcast(
        name=request.name,
        template_name=content.name,
        template_language=content.language,
        segment=request.segment.model_dump(),
        parameters=request.template.model_dump(mode="json"),
        created_by=created_by,
        created_at=now,
    )
    session.add(broadcast)
    await session.flush()
    personal = CONTACT_FIELD.search(orjson.dumps(request.template.model_dump(mode="json")).decode()) is not None
    audience = await session.stream(
        select(contacts.c.id, contacts.c.name, contacts.c.phone, contacts.c.attributes)
        .where(*conditions)
        .order_by(contacts.c.created_at, contacts.c.id)
        .execution_options(yield_per=INSERT_CHUNK)
    )
    count = 0
    async for chunk in audience.partitions(INSERT_CHUNK):
        rows = [
            build_message_row(
                contact_id=contact.id,
                content=_personalise(content, contact, personal),
                category=category,
                template=template,
                now=now,
                broadcast_id=broadcast.id,
            )
            for contact in chunk
        ]
        await insert_queued(session, rows)
        enqueue_send([row["id"] for row in rows])
        count += len(rows)
    broadcast.audience_count = count
    await session.flush()
    return BroadcastPublic(
        id=broadcast.id,
        name=broadcast.name,
        template_name=broadcast.template_name,
        template_language=broadcast.template_language,
        segment=broadcast.segment,
        audience_count=count,
        excluded_opted_out=excluded,
        counts={"queued": count},
        created_at=broadcast.created_at,
    )


async def broadcast_summary(session: AsyncSession, broadcast_id: uuid.UUID) -> BroadcastPublic:
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"no broadcast {broadcast_id}", code="broadcast_not_found")
    counts = (
        await session.execute(
            select(messages.c.status, func.count())
            .where(messages.c.broadcast_id == broadcast_id)
            .group_by(messages.c.status)
        )
    ).all()
    return BroadcastPublic(
        id=broadcast.id,
        name=broadcast.name,
        template_name=broadcast.template_name,
        template_language=broadcast.template_language,
        segment=broadcast.segment,
        audience_count=broadcast.audience_count,
        counts={status: int(n) for status, n in counts},
        created_at=broadcast.created_at,
    )
