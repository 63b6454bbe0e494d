"""The webhook inbox (`webhook_events`): durable intake, relay of stale rows, replay.

Every verified webhook body is one row, stored before it is processed. The processing actor
(`webhook.process_event`) moves a row from `pending` to `processed`, `skipped` or `failed`.
Statements are built once here and run by async (service, actor) and sync (CLI, jobs) callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Update, and_, func, select, update
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import contracts, queue
from herald.clock import utcnow
from herald.models import InboxStatus, WebhookEvent
from herald.settings import get_settings

_TABLE: Any = WebhookEvent.__table__  # type: ignore[attr-defined]
REPLAYABLE = frozenset({InboxStatus.FAILED, InboxStatus.SKIPPED})


# One array parameter keeps the statement text constant whatever the batch size, so the
# server prepares it once (a multi-row VALUES would differ per size). `%b`: the array goes in
# binary, far cheaper to build than the text form for long JSON strings. Rows are inserted in
# array order, so their sequence ids ascend in that order: sorted ids match the bodies.
INSERT_BODIES_SQL = (
    "INSERT INTO webhook_events (body, status, attempts)"
    " SELECT body, 'pending', 0 FROM unnest(%b::text[]) WITH ORDINALITY AS t(body, n) ORDER BY n"
    " RETURNING id"
)


def enqueue_processing(event_ids: Sequence[int], *, delay_ms: int | None = None) -> None:
    """Ask the messages queue to process these inbox rows (after commit inside a transaction)."""
    for event_id in event_ids:
        queue.enqueue(
            contracts.PROCESS_WEBHOOK_EVENT,
            contracts.ProcessWebhookEvent(event_id=event_id),
            delay_ms=delay_ms,
        )


def _stale_statement(now: datetime, older_than: timedelta, limit: int) -> Update:
    stale = (
        select(_TABLE.c.id)
        .where(and_(_TABLE.c.status == InboxStatus.PENDING.value, _TABLE.c.due_at < now - older_than))
        .order_by(_TABLE.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return update(_TABLE).where(_TABLE.c.id.in_(stale)).values(due_at=now).returning(_TABLE.c.id)


def _relay_window(older_than_seconds: int | None) -> timedelta:
    seconds = (
        older_than_seconds if older_than_seconds is not None else get_settings().webhook_relay_after_seconds
    )
    return timedelta(seconds=seconds)


async def relay_stale_events(
    session: AsyncSession, *, older_than_seconds: int | None = None, limit: int = 1000
) -> int:
    """Re-enqueue `pending` rows whose due time passed more than N seconds ago.

    A row can be stored but never processed when the broker was down at intake, or when a
    delayed retry was lost. Processing is idempotent, so re-enqueuing one already queued
    costs only a no-op. Marks the rows due now (so the next run leaves them alone for N
    seconds) and returns how many were re-enqueued; jobs leave after the caller commits.
    Default N: HERALD_WEBHOOK_RELAY_AFTER_SECONDS.
    """
    statement = _stale_statement(utcnow(), _relay_window(older_than_seconds), limit)
    ids = list((await session.execute(statement)).scalars())
    enqueue_processing(ids)
    return len(ids)


def relay_stale_events_sync(
    session: Session, *, older_than_seconds: int | None = None, limit: int = 1000
) -> int:
    """Sync twin of `relay_stale_events` for jobs and the CLI."""
    statement = _stale_statement(utcnow(), _relay_window(older_than_seconds), limit)
    ids = list(session.execute(statement).scalars())
    enqueue_processing(ids)
    return len(ids)


def replay_statement(*, event_id: int | None = None, status: InboxStatus | None = None) -> Update:
    """Put rows back to `pending` (attempts and error cleared) so the actor processes them again."""
    statement = update(_TABLE).values(
        status=InboxStatus.PENDING.value, attempts=0, error=None, due_at=utcnow()
    )
    if event_id is not None:
        statement = statement.where(_TABLE.c.id == event_id)
    if status is not None:
        statement = statement.where(_TABLE.c.status == status.value)
    return statement.returning(_TABLE.c.id)


async def replay_events(
    session: AsyncSession, *, event_id: int | None = None, status: InboxStatus | None = None
) -> list[int]:
    """Replay one row (any status) or every row in a status; returns the ids re-enqueued."""
    ids = list((await session.execute(replay_statement(event_id=event_id, status=status))).scalars())
    enqueue_processing(ids)
    return ids


def replay_events_sync(
    session: Session, *, event_id: int | None = None, status: InboxStatus | None = None
) -> list[int]:
    """Sync twin of `replay_events` for the CLI."""
    ids = list(session.execute(replay_statement(event_id=event_id, status=status)).scalars())
    enqueue_processing(ids)
    return ids


def list_statement(
    *,
    status: InboxStatus | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[Select[Any], Select[Any]]:
    """Newest first (keyset on id) plus the matching total, for the admin API and the CLI."""
    conditions: list[Any] = []
    if status is not None:
        conditions.append(WebhookEvent.status == status.value)
    if received_from is not None:
        conditions.append(WebhookEvent.received_at >= received_from)
    if received_to is not None:
        conditions.append(WebhookEvent.received_at < received_to)
    total = select(func.count()).select_from(WebhookEvent).where(*conditions)
    if before_id is not None:
        conditions.append(WebhookEvent.id < before_id)  # type: ignore[operator]
    rows = select(WebhookEvent).where(*conditions).order_by(WebhookEvent.id.desc()).limit(limit)  # type: ignore[union-attr]
    return rows, total
