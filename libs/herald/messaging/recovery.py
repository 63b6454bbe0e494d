"""Scheduled recovery of outbound messages (jobs `message-retry` and `message-recovery`).

- Retry: a message that ended `failed` with a retryable error (throughput, 5xx, timeouts, and
  the "retry later" codes such as 131049) is queued again after a pause, a few more times than
  the send actor's own retries. Permanent failures (131026, 131047, 132xxx, ...) never are.
- Recovery: queued messages a broker outage never handed over are handed over, and messages a
  crashed worker left in `sending` are put back (see `relay.requeue_stuck_sending`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from herald.clock import utcnow
from herald.db import sync_session_scope
from herald.messaging.outbound import enqueue_send
from herald.messaging.relay import relay_unhanded_messages, requeue_stuck_sending

# The send actor makes up to 8 attempts; the job adds a few more, spaced out, before giving up.
RETRY_JOB_MAX_ATTEMPTS = 12
RETRY_AFTER = timedelta(minutes=10)
_BATCH = 1000

_REQUEUE_FAILED = text(
    """
    UPDATE messages
    SET status = 'queued', failed_at = NULL, error_code = NULL, error_title = NULL, error_details = NULL,
        error_fbtrace_id = NULL, retryable = NULL, next_attempt_at = NULL, enqueued_at = :now
    WHERE id IN (
        SELECT id FROM messages
        WHERE status = 'failed' AND retryable AND direction = 'outbound'
          AND wamid IS NULL AND attempts < :max_attempts AND failed_at < :retry_before
        ORDER BY failed_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)


def retry_failed_messages(now: Any = None) -> int:
    """Queue retryable failures again; returns how many. Messages Meta accepted (a wamid) are left
    alone: their failure came in a status webhook, and resending would reach the person twice."""
    now = now or utcnow()
    total = 0
    while True:
        with sync_session_scope() as session:
            rows = session.execute(
                _REQUEUE_FAILED,
                {"now": now, "max_attempts": RETRY_JOB_MAX_ATTEMPTS, "retry_before": now - RETRY_AFTER, "limit": _BATCH},
            )
            ids = [row[0] for row in rows]
            enqueue_send(ids)
        total += len(ids)
        if len(ids) < _BATCH:
            return total


def job_retry_failed_messages(context: Any) -> dict[str, int]:
    """Job entrypoint (registry: message-retry)."""
    return {"requeued": retry_failed_messages(context.now)}


def job_recover_messages(context: Any) -> dict[str, int]:
    """Job entrypoint (registry: message-recovery)."""
    return {"relayed": relay_unhanded_messages(), "requeued_from_sending": requeue_stuck_sending()}
