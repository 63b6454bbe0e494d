"""The outbound status state machine and its storage.

queued < sending < sent < delivered < read; `failed` is terminal. Updates are monotonic:
- a status lower than the current one never moves the message back, but still fills its own
  timestamp when that is empty (a late `delivered` after `read` fills `delivered_at`);
- a late `failed` after `delivered`/`read` is recorded in the timeline only;
- nothing leaves `failed`.
Every status is recorded once in `message_status_events` (`ON CONFLICT (message_id, status)
DO NOTHING`), so duplicate webhooks are harmless. The message row is locked (`FOR UPDATE`)
for the rest of the caller's transaction, so two concurrent webhooks for one message are
serialised and neither transition is lost.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import contracts, queue
from herald.errors import NotFound
from herald.models import Direction, Message, MessageStatus, MessageStatusEvent
from herald.whatsapp import error_from_webhook

RANK: dict[str, int] = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
}
TIMESTAMP_COLUMN: dict[str, str] = {
    MessageStatus.QUEUED: "queued_at",
    MessageStatus.SENDING: "sending_at",
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
    MessageStatus.FAILED: "failed_at",
}
# Statuses other services hear about (queued/sending are internal to the dispatcher).
PUBLISHED = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED})


class MessageNotFound(NotFound):
    code = "message_not_found"
    title = "Message not found"


def next_status(current: str, new: str) -> str:
    """The status after applying `new` to a message in `current` (monotonic, failed terminal)."""
    if current == MessageStatus.FAILED:
        return current
    if new == MessageStatus.FAILED:
        # Once the phone has the message, a late failure cannot undo that.
        return current if RANK.get(current, 0) >= RANK[MessageStatus.DELIVERED] else new
    return new if RANK.get(new, -1) > RANK.get(current, 0) else current


def error_fields(error: dict[str, Any]) -> dict[str, Any]:
    """Message columns for an async error object (`statuses[].errors[]`), classified for retry."""
    typed = error_from_webhook(error)
    return {
        "error_code": typed.code,
        "error_title": (typed.title or typed.message or None) and str(typed.title or typed.message)[:512],
        "error_details": typed.details,
        "error_fbtrace_id": error.get("fbtrace_id"),
        "retryable": typed.is_retryable,
    }


# The message columns a status reads or writes.
STATE_COLUMNS = ("status", "wamid", "pricing", "conversation", *TIMESTAMP_COLUMN.values())


def status_changes(
    current: dict[str, Any],
    *,
    status: str,
    occurred_at: datetime,
    error: dict[str, Any] | None = None,
    wamid: str | None = None,
    pricing: dict[str, Any] | None = None,
    conversation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column changes one status makes to a message whose `STATE_COLUMNS` are `current`."""
    changes: dict[str, Any] = {}
    new_status = next_status(current["status"], status)
    column = TIMESTAMP_COLUMN[status]
    # A late failure after delivery is timeline-only: the message did reach the phone.
    timeline_only = status == MessageStatus.FAILED and new_status != MessageStatus.FAILED
    if not timeline_only and current[column] is None and current["status"] != MessageStatus.FAILED:
        changes[column] = occurred_at
    if new_status != current["status"]:
        changes["status"] = new_status
        if new_status == MessageStatus.FAILED and error:
            changes.update(error_fields(error))
    if wamid and current["wamid"] is None:
        changes["wamid"] = wamid
    if pricing and current["pricing"] != pricing:
        changes["pricing"] = pricing
    if conversation and current["conversation"] != conversation:
        changes["conversation"] = conversation
    return changes


def status_event(
    message_id: uuid.UUID,
    contact_id: uuid.UUID,
    automation_run_id: uuid.UUID | None,
    status: str,
    occurred_at: datetime,
    error: dict[str, Any] | None = None,
) -> contracts.MessageStatusEvent:
    """The automation event for a newly recorded status."""
    return contracts.MessageStatusEvent(
        message_id=message_id,
        contact_id=contact_id,
        status=status,
        automation_run_id=automation_run_id,
        error_code=error_fields(error)["error_code"] if error else None,
        occurred_at=occurred_at,
    )


async def apply_status(
    session: AsyncSession,
    *,
    message: Message | None = None,
    message_id: uuid.UUID | None = None,
    wamid: str | None = None,
    status: MessageStatus | str,
    occurred_at: datetime,
    error: dict[str, Any] | None = None,
    pricing: dict[str, Any] | None = None,
    conversation: dict[str, Any] | None = None,
) -> bool:
    """Apply one status to an outbound message; True when anything changed.

    Find the message by `message` / `message_id` (Herald's id, echoed by Meta in
    `biz_opaque_callback_data`) or by `wamid`. When found by id, a missing wamid is filled in.
    Raises `MessageNotFound` when there is no such message (a status that overtook our own
    commit of the send: the caller should retry later). `MESSAGE_STATUS` is enqueued to the
    automation queue after the caller commits, once per (message, status).
    """
    status = MessageStatus(status)
    if status in (MessageStatus.RECEIVED,):
        raise ValueError("received is not an outbound status")
    query = select(Message).with_for_update().execution_options(populate_existing=True)
    if message is not None:
        query = query.where(Message.id == message.id)  # type: ignore[arg-type]
    elif message_id is not None:
        query = query.where(Message.id == message_id)  # type: ignore[arg-type]
    elif wamid is not None:
        query = query.where(Message.wamid == wamid)  # type: ignore[arg-type]
    else:
        raise ValueError("apply_status needs message, message_id or wamid")
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None or row.direction != Direction.OUTBOUND:
        raise MessageNotFound(f"no outbound message for {message_id or wamid or (message and message.id)}")

    inserted = (
        await session.execute(
            insert(MessageStatusEvent)
            .values(message_id=row.id, status=status.value, occurred_at=occurred_at, error=error)
            .on_conflict_do_nothing(index_elements=["message_id", "status"])
            .returning(MessageStatusEvent.__table__.c.id)  # type: ignore[attr-defined]
        )
    ).first() is not None

    current = {column: getattr(row, column) for column in STATE_COLUMNS}
    changes = status_changes(
        current, status=status, occurred_at=occurred_at, error=error, wamid=wamid, pricing=pricing,
        conversation=conversation,
    )  # fmt: skip
    for column, value in changes.items():
        setattr(row, column, value)
    changed = inserted or bool(changes)
    if changes:
        await session.flush()
    if inserted and status in PUBLISHED:
        queue.enqueue(
            contracts.MESSAGE_STATUS,
            status_event(row.id, row.contact_id, row.automation_run_id, status.value, occurred_at, error),
        )
    return changed
