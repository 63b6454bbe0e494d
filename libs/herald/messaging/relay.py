"""Hand over work a crash left behind: queued messages never handed to the broker, and
messages stuck in `sending` after a worker died between claiming and writing back.

Both are plain sync functions (jobs and worker start-up call them outside any event loop);
each claims its rows with `FOR UPDATE SKIP LOCKED`, so replicas running them at the same
time never hand the same message over twice in one pass. Handing a message over twice is
harmless anyway: the dispatcher claims `queued` rows atomically and skips the rest.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from herald.clock import utcnow
from herald.db import sync_session_scope
from herald.messaging.outbound import enqueue_send

RELAY_STALE_AFTER = timedelta(minutes=2)
STUCK_SENDING_AFTER = timedelta(minutes=5)
_BATCH = 1000

_RELAY = text(
    """
    UPDATE messages SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM messages
        WHERE status = 'queued'
          AND (enqueued_at IS NULL OR GREATEST(enqueued_at, COALESCE(next_attempt_at, enqueued_at)) < :stale)
        ORDER BY queued_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)

_REQUEUE_SENDING = text(
    """
    UPDATE messages SET status = 'queued', enqueued_at = :now, next_attempt_at = NULL, updated_at = :now
    WHERE id IN (
        SELECT id FROM messages
        WHERE status = 'sending' AND wamid IS NULL AND sending_at < :stale
        ORDER BY sending_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)


def _run(statement: object, stale_after: timedelta, session: Session | None) -> int:
    def once(active: Session) -> list[uuid.UUID]:
        now = utcnow()
        rows = active.execute(statement, {"now": now, "stale": now - stale_after, "limit": _BATCH})  # type: ignore[call-overload]
        ids = [row[0] for row in rows]
        enqueue_send(ids)
        return ids

    if session is not None:
        return len(once(session))
    total = 0
    while True:
        with sync_session_scope() as scoped:
            ids = once(scoped)
        total += len(ids)
        if len(ids) < _BATCH:
            return total


def relay_unhanded_messages(
    session: Session | None = None, *, stale_after: timedelta = RELAY_STALE_AFTER
) -> int:
    """Enqueue `queued` messages whose hand-over is missing or older than `stale_after`.

    Without a session it commits in batches of 1,000 and enqueues after each commit; with one it
    handles one batch in the caller's transaction. Returns how many were handed over.
    """
    return _run(_RELAY, stale_after, session)


def requeue_stuck_sending(
    session: Session | None = None, *, stuck_after: timedelta = STUCK_SENDING_AFTER
) -> int:
    """Put messages claimed for sending more than `stuck_after` ago, with no wamid, back in the queue.

    A row stays `sending` only when its worker died between claiming it and writing the result
    back. Meta may have accepted it (the Cloud API has no idempotency key), but then its `sent`
    status webhook, which carries our message id, would normally have filled the wamid by now;
    rows that still have none are sent again. Any resulting duplicate is the documented window
    (docs/messaging.md). Returns how many were requeued.
    """
    return _run(_REQUEUE_SENDING, stuck_after, session)
