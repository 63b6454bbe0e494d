"""apply_status: the monotonic state machine and its timeline."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from herald.clock import utcnow
from herald.db import session_scope
from herald.messaging.content import TextContent
from herald.messaging.outbound import queue_message
from herald.messaging.status import MessageNotFound, apply_status
from herald.models import Message, MessageStatusEvent
from tests.messaging.factories import make_contact

pytestmark = pytest.mark.usefixtures("dispose_engines")


async def _queued() -> Message:
    contact = await make_contact(inbound_hours_ago=1)
    async with session_scope() as session:
        return await queue_message(session, contact=contact, content=TextContent(body="hi"), enqueue=False)


async def _apply(message: Message, status: str, seconds: int = 0, **kwargs: object) -> bool:
    async with session_scope() as session:
        return await apply_status(
            session,
            message_id=message.id,
            status=status,
            occurred_at=utcnow() + timedelta(seconds=seconds),
            **kwargs,  # type: ignore[arg-type]
        )


async def _load(message: Message) -> Message:
    async with session_scope() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        return row


async def _timeline(message: Message) -> list[str]:
    async with session_scope() as session:
        rows = await session.execute(
            select(MessageStatusEvent.status)
            .where(MessageStatusEvent.message_id == message.id)
            .order_by(MessageStatusEvent.id)
        )
        return list(rows.scalars())


async def test_statuses_move_forward_and_set_their_timestamps() -> None:
    message = await _queued()
    for status in ("sent", "delivered", "read"):
        assert await _apply(message, status, wamid="wamid.A")
    row = await _load(message)
    assert row.status == "read" and row.wamid == "wamid.A"
    assert row.sent_at and row.delivered_at and row.read_at


async def test_late_delivered_never_overwrites_read_but_fills_delivered_at() -> None:
    message = await _queued()
    await _apply(message, "read", 2)
    assert await _apply(message, "delivered", 1)
    row = await _load(message)
    assert row.status == "read" and row.delivered_at is not None


async def test_duplicate_status_changes_nothing() -> None:
    message = await _queued()
    assert await _apply(message, "delivered")
    assert not await _apply(message, "delivered")
    assert await _timeline(message) == ["queued", "delivered"]


async def test_late_failed_after_read_is_timeline_only() -> None:
    message = await _queued()
    await _apply(message, "read")
    await _apply(message, "failed", error={"code": 131026, "title": "Message undeliverable"})
    row = await _load(message)
    assert row.status == "read" and row.failed_at is None and row.error_code is None
    assert "failed" in await _timeline(message)


async def test_failed_stores_meta_error_and_retry_classification() -> None:
    message = await _queued()
    error = {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "not on WhatsApp"}}
    await _apply(message, "failed", error=error)
    row = await _load(message)
    assert row.status == "failed" and row.error_code == 131026 and row.retryable is False
    assert row.error_details == "not on WhatsApp"


async def test_nothing_leaves_failed() -> None:
    message = await _queued()
    await _apply(message, "failed", error={"code": 131000, "title": "Something went wrong"})
    await _apply(message, "delivered")
    assert (await _load(message)).status == "failed"


async def test_concurrent_statuses_for_one_message_lose_no_transition() -> None:
    message = await _queued()
    await asyncio.gather(*(_apply(message, status) for status in ("sent", "delivered", "read", "delivered", "sent")))
    row = await _load(message)
    assert row.status == "read"
    assert sorted(await _timeline(message)) == ["delivered", "queued", "read", "sent"]


async def test_unknown_message_is_reported() -> None:
    with pytest.raises(MessageNotFound):
        async with session_scope() as session:
            await apply_status(session, wamid="wamid.none", status="sent", occurred_at=utcnow())
