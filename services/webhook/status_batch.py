"""A processing job's plain status webhooks, applied together in one transaction.

Every message brings three status webhooks (sent, delivered, read). Row by row, each costs
about ten round trips to PostgreSQL and one to Redis; here the inbox rows of a job that hold
nothing but `sent`/`delivered`/`read` statuses share them: the rows and their messages are
locked in two statements, the timeline and the messages are written in one each, the rows are
marked processed in one, then one commit, and the automation events leave in one Redis
pipeline. The rules are `herald.messaging.status`'s (`status_changes`, one timeline row per
(message, status)), applied per message in arrival order, so the result is the one the rows
would have produced one at a time.

Everything else is left to `process_inbox_event`, row by row, with its retries and failure
records: inbound messages, failures (their error and opt-out handling), template and quality
updates, bodies that do not parse, and rows with a status for a message we do not know yet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import text

from herald import contracts, db, queue
from herald.clock import utcnow
from herald.messaging.status import PUBLISHED, STATE_COLUMNS, status_changes, status_event
from herald.models import Direction, InboxStatus, MessageStatus
from herald.observability import metrics
from services.webhook.processing import FIELD_MESSAGES, billing_details, callback_message_id
from services.webhook.service import transient_database_error

log = structlog.get_logger("herald.webhook")

PLAIN_STATUSES = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ})
# `contacts` rides along on status webhooks; the row-by-row path reads it only for inbound messages.
PLAIN_VALUE_KEYS = frozenset({"messaging_product", "metadata", "contacts", "statuses"})
WRITTEN_COLUMNS = ("status", "wamid", "pricing", "conversation", "sent_at", "delivered_at", "read_at")

_CLAIM = text(
    "SELECT id, body FROM webhook_events WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'pending' "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)
# Ordered, so two jobs locking overlapping messages take the locks in the same order.
_LOCK_MESSAGES = text(
    # Column names from our own constant, no input.
    f"SELECT id, direction, contact_id, automation_run_id, {', '.join(STATE_COLUMNS)} FROM messages "  # noqa: S608  # nosec B608
    "WHERE id = ANY(CAST(:ids AS uuid[])) OR wamid = ANY(CAST(:wamids AS text[])) ORDER BY id FOR UPDATE"
)
_RECORD_TIMELINE = text(
    """
    INSERT INTO message_status_events (message_id, status, occurred_at)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:times AS timestamptz[]))
    ON CONFLICT (message_id, status) DO NOTHING
    RETURNING message_id, status
    """
)
# Written as "move forward, fill what is empty" rather than "set": the same end state as the
# computed one, and a write can never undo another transaction's, whatever it read.
_WRITE_MESSAGES = text(
    """
    UPDATE messages AS m SET
        status = CASE WHEN m.status = 'failed' THEN m.status
                      WHEN array_position(ARRAY['queued', 'sending', 'sent', 'delivered', 'read'], v.status)
                           > coalesce(array_position(ARRAY['queued', 'sending', 'sent', 'delivered', 'read'], m.status), 0)
                      THEN v.status ELSE m.status END,
        wamid = COALESCE(m.wamid, v.wamid), pricing = COALESCE(CAST(v.pricing AS jsonb), m.pricing),
        conversation = COALESCE(CAST(v.conversation AS jsonb), m.conversation),
        sent_at = COALESCE(m.sent_at, v.sent_at), delivered_at = COALESCE(m.delivered_at, v.delivered_at),
        read_at = COALESCE(m.read_at, v.read_at), updated_at = :now
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:status AS text[]), CAST(:wamid AS text[]), CAST(:pricing AS text[]),
        CAST(:conversation AS text[]), CAST(:sent_at AS timestamptz[]), CAST(:delivered_at AS timestamptz[]),
        CAST(:read_at AS timestamptz[])
    ) AS v(id, status, wamid, pricing, conversation, sent_at, delivered_at, read_at)
    WHERE m.id = v.id
    """
)
_FINISH_ROWS = text(
    "UPDATE webhook_events SET status = 'processed', attempts = attempts + 1, error = NULL, processed_at = :now "
    "WHERE id = ANY(CAST(:ids AS bigint[]))"
)


@dataclass(slots=True)
class PlainStatus:
    event_id: int
    message_id: uuid.UUID | None  # from biz_opaque_callback_data
    wamid: str
    status: str
    occurred_at: datetime
    pricing: dict[str, Any] | None
    conversation: dict[str, Any] | None


def plain_statuses(event_id: int, body: str) -> list[PlainStatus] | None:
    """The statuses of a body made only of sent/delivered/read statuses; None for anything else."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return None
    found: list[PlainStatus] = []
    for entry in payload.get("entry") or [None]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) and changes else [None]:
            if not isinstance(change, dict) or change.get("field") != FIELD_MESSAGES:
                return None
            value = change.get("value")
            if not isinstance(value, dict) or not value.keys() <= PLAIN_VALUE_KEYS:
                return None
            statuses = value.get("statuses")
            for status in statuses if isinstance(statuses, list) and statuses else [None]:
                if not isinstance(status, dict):
                    return None
                name, wamid = status.get("status"), status.get("id")
                if name not in PLAIN_STATUSES or not isinstance(wamid, str) or not wamid or status.get("errors"):
                    return None
                try:
                    occurred_at = datetime.fromtimestamp(int(status["timestamp"]), UTC)
                except (KeyError, TypeError, ValueError, OverflowError, OSError):
                    return None
                pricing, conversation = billing_details(name, status)
                found.append(
                    PlainStatus(event_id, callback_message_id(status), wamid, name, occurred_at, pricing, conversation)
                )
    return found


async def apply_plain_statuses(event_ids: list[int]) -> list[int]:
    """Apply the plain-status rows among `event_ids` together; returns the ids left to process
    row by row (in their order). Database outages propagate, so the broker retries the job."""
    try:
        done = await _apply(event_ids)
    except Exception as exc:
        if transient_database_error(exc):
            raise
        # A bug or data we did not foresee: the row-by-row path records it on each row.
        log.exception("webhook_status_batch_failed", events=len(event_ids))
        return list(event_ids)
    return [event_id for event_id in event_ids if event_id not in done]


async def _apply(event_ids: list[int]) -> set[int]:
    now = utcnow()
    async with db.session_scope() as session:
        rows = (await session.execute(_CLAIM, {"ids": event_ids})).all()
        statuses: list[PlainStatus] = []
        for row in rows:
            statuses.extend(plain_statuses(row.id, row.body) or [])
        if not statuses:
            return set()
        found = (
            await session.execute(
                _LOCK_MESSAGES,
                {"ids": list({s.message_id for s in statuses if s.message_id}), "wamids": list({s.wamid for s in statuses})},
            )
        ).all()
        by_id = {m.id: m for m in found if m.direction == Direction.OUTBOUND}
        by_wamid = {m.wamid: m for m in by_id.values() if m.wamid}

        def message_of(status: PlainStatus) -> Any:
            return (status.message_id and by_id.get(status.message_id)) or by_wamid.get(status.wamid)

        # A row naming a message we do not know yet waits on the row-by-row path's retries.
        unknown = {s.event_id for s in statuses if message_of(s) is None}
        statuses = [s for s in statuses if s.event_id not in unknown]
        if not statuses:
            return set()

        recorded = {
            (r.message_id, r.status)
            for r in await session.execute(
                _RECORD_TIMELINE,
                {
                    "ids": [message_of(s).id for s in statuses],
                    "statuses": [s.status for s in statuses],
                    "times": [s.occurred_at for s in statuses],
                },
            )
        }
        states: dict[uuid.UUID, dict[str, Any]] = {}
        changed: set[uuid.UUID] = set()
        for status in statuses:
            message = message_of(status)
            state = states.setdefault(message.id, {column: getattr(message, column) for column in STATE_COLUMNS})
            changes = status_changes(
                state, status=status.status, occurred_at=status.occurred_at, wamid=status.wamid,
                pricing=status.pricing, conversation=status.conversation,
            )  # fmt: skip
            if changes:
                state.update(changes)
                changed.add(message.id)
            if (message.id, status.status) in recorded and status.status in PUBLISHED:
                recorded.discard((message.id, status.status))  # the first occurrence speaks for it
                queue.enqueue(
                    contracts.MESSAGE_STATUS,
                    status_event(message.id, message.contact_id, message.automation_run_id, status.status, status.occurred_at),
                )
        if changed:
            ids = sorted(changed)
            columns: dict[str, list[Any]] = {column: [states[i][column] for i in ids] for column in WRITTEN_COLUMNS}
            for column in ("pricing", "conversation"):
                columns[column] = [orjson.dumps(v).decode() if v is not None else None for v in columns[column]]
            await session.execute(_WRITE_MESSAGES, {"ids": ids, "now": now, **columns})
        done = {s.event_id for s in statuses}
        await session.execute(_FINISH_ROWS, {"ids": sorted(done), "now": now})
    metrics.WEBHOOK_EVENTS.labels(FIELD_MESSAGES, "status").inc(len(statuses))
    metrics.WEBHOOK_INBOX_OUTCOMES.labels(InboxStatus.PROCESSED.value).inc(len(done))
    return done

