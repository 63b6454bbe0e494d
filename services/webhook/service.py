"""The inbox life cycle of one webhook body: claim, process, and record how it ended.

- `processed`: every part handled (parts of a kind we do not handle are logged and ignored).
- `pending` again, with `due_at` in the future: some status names a message we do not know
  yet (the send response may not be committed); the event is retried with doubling delays,
  HERALD_WEBHOOK_UNKNOWN_MESSAGE_RETRIES times from HERALD_WEBHOOK_RETRY_BASE_MS.
- `skipped`: nothing in it could be handled (only unknown fields or types), or statuses for
  unknown messages were still unknown after the retries; `error` says why. Replayable.
- `failed`: processing raised (a payload we cannot read, a bug); `error` holds the exception,
  the row waits for `herald webhook replay` or the admin API. Database outages are not
  recorded as failures: they propagate so the broker retries the message.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from herald import db
from herald.clock import utcnow
from herald.models import InboxStatus, WebhookEvent
from herald.observability import metrics
from herald.settings import get_settings
from herald.webhooks.inbox import enqueue_processing
from services.webhook.processing import Outcome, process_payload

log = structlog.get_logger("herald.webhook")
MAX_ERROR_CHARS = 4000


def transient_database_error(exc: BaseException) -> bool:
    """An outage (connection lost or refused), retried by the broker rather than recorded."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def retry_delay_ms(attempt: int) -> int:
    """Delay before retry number `attempt` (1-based): base, 2x base, 4x base, ..."""
    return get_settings().webhook_retry_base_ms * 2 ** max(attempt - 1, 0)


def _finish(row: WebhookEvent, outcome: Outcome) -> str:
    settings = get_settings()
    now = utcnow()
    if outcome.waiting and row.attempts <= settings.webhook_unknown_message_retries:
        delay = retry_delay_ms(row.attempts)
        row.status = InboxStatus.PENDING.value
        row.due_at = now + timedelta(milliseconds=delay)
        row.error = f"waiting for unknown message(s): {'; '.join(outcome.waiting)[:MAX_ERROR_CHARS]}"
        assert row.id is not None
        enqueue_processing([row.id], delay_ms=delay)
        return "deferred"
    notes: list[str] = []
    if outcome.waiting:
        notes.append(
            f"status for unknown message after {row.attempts} attempts: " + "; ".join(outcome.waiting)
        )
    if outcome.ignored:
        notes.append("ignored: " + ", ".join(outcome.ignored))
    skipped = bool(outcome.waiting) or outcome.handled == 0
    row.status = (InboxStatus.SKIPPED if skipped else InboxStatus.PROCESSED).value
    row.error = "; ".join(notes)[:MAX_ERROR_CHARS] or None
    row.processed_at = now
    return row.status


async def process_inbox_event(event_id: int) -> str | None:
    """Process one inbox row; returns how it ended (see the module doc), None if not ours to do.

    The row is locked for the whole transaction (`SKIP LOCKED`: a duplicate delivery of the
    same job leaves it to the first), and a finished row is left alone.
    """
    try:
        async with db.session_scope() as session:
            row = (
                await session.execute(
                    select(WebhookEvent)
                    .where(WebhookEvent.id == event_id)  # type: ignore[arg-type]
                    .with_for_update(skip_locked=True)
                )
            ).scalar_one_or_none()
            if row is None or row.status in (InboxStatus.PROCESSED, InboxStatus.SKIPPED):
                return None
            row.attempts += 1
            outcome = await process_payload(session, orjson.loads(row.body))
            result = _finish(row, outcome)
    except Exception as exc:
        if transient_database_error(exc):
            raise
        await _record_failure(event_id, exc)
        metrics.WEBHOOK_INBOX_OUTCOMES.labels(InboxStatus.FAILED.value).inc()
        return InboxStatus.FAILED.value
    metrics.WEBHOOK_INBOX_OUTCOMES.labels(result).inc()
    if result != InboxStatus.PROCESSED:
        log.info(
            "webhook_event_finished", event_id=event_id, status=result, attempts=row.attempts, note=row.error
        )
    return result


async def _record_failure(event_id: int, exc: Exception) -> None:
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    log.warning("webhook_event_failed", event_id=event_id, error=message)
    async with db.session_scope() as session:
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)  # type: ignore[arg-type]
            .values(
                status=InboxStatus.FAILED.value,
                attempts=WebhookEvent.attempts + 1,
                error=message,
                processed_at=utcnow(),
            )
        )
