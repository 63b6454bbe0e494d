"""Send a batch of queued messages: claim, re-check, throttle, send concurrently, write back.

1. Claim: one `UPDATE ... WHERE status = 'queued' RETURNING` moves the rows to `sending` and
   commits, so a redelivered job (or a second replica) finds nothing left to send.
2. Re-check each claimed row against its contact: opted out of marketing, or free-form
   outside the 24-hour window, fails without calling the API.
3. Take tokens from the shared per-number bucket and send over the one pooled client, at most
   `concurrency` requests in flight.
4. Write every result back in one statement and commit. The only duplicate window is between
   Meta accepting a request and this commit (see docs/messaging.md); it is one round trip.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
import structlog
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import contracts, queue
from herald.clock import utcnow
from herald.db import session_scope
from herald.messaging.outbound import enqueue_send, window_open
from herald.models import MessageCategory, OptInStatus
from herald.observability import metrics
from herald.settings import get_settings
from herald.whatsapp import CloudAPIClient, CloudAPIError, RetryPolicy
from services.messaging.cloud_client import PooledCloudAPIClient
from services.messaging.throttle import TokenBucket

log = structlog.get_logger("herald.messaging.dispatch")

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
PAIR_LIMIT_SECONDS = 6.0  # Meta allows about one message per 6 s to the same person

_CLAIM = text(
    """
    WITH claimed AS (
        UPDATE messages SET status = 'sending', sending_at = :now, attempts = attempts + 1, updated_at = :now
        WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'queued' AND direction = 'outbound'
        RETURNING id, contact_id, type, category, body, attempts
    ), timeline AS (
        INSERT INTO message_status_events (message_id, status, occurred_at)
        SELECT id, 'sending', :now FROM claimed
        ON CONFLICT (message_id, status) DO NOTHING
    )
    SELECT claimed.id, claimed.type, claimed.category, claimed.body, claimed.attempts,
           contacts.phone, contacts.opt_in_status, contacts.last_inbound_at
    FROM claimed JOIN contacts ON contacts.id = claimed.contact_id
    """
)

# Results in one statement. A status webhook may have overtaken us (it carries our id), so a
# row no longer `sending` keeps its status and only gains the wamid.
_WRITE_BACK = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS uuid[]), CAST(:outcomes AS text[]), CAST(:wamids AS text[]),
            CAST(:codes AS int[]), CAST(:titles AS text[]), CAST(:details AS text[]),
            CAST(:traces AS text[]), CAST(:retryable AS boolean[]), CAST(:next_at AS timestamptz[])
        ) AS v(id, outcome, wamid, code, title, details, trace, retryable, next_at)
    ), updated AS (
        UPDATE messages AS m SET
            status = CASE WHEN m.status <> 'sending' THEN m.status
                          WHEN v.outcome = 'retry' THEN 'queued' ELSE v.outcome END,
            wamid = COALESCE(m.wamid, v.wamid),
            sent_at = CASE WHEN v.outcome = 'sent' THEN COALESCE(m.sent_at, :now) ELSE m.sent_at END,
            failed_at = CASE WHEN v.outcome = 'failed' AND m.status = 'sending'
                             THEN :now ELSE m.failed_at END,
            error_code = CASE WHEN v.outcome = 'sent' THEN m.error_code ELSE v.code END,
            error_title = CASE WHEN v.outcome = 'sent' THEN m.error_title ELSE v.title END,
            error_details = CASE WHEN v.outcome = 'sent' THEN m.error_details ELSE v.details END,
            error_fbtrace_id = CASE WHEN v.outcome = 'sent' THEN m.error_fbtrace_id ELSE v.trace END,
            retryable = CASE WHEN v.outcome = 'sent' THEN m.retryable ELSE v.retryable END,
            next_attempt_at = v.next_at,
            enqueued_at = CASE WHEN v.outcome = 'retry' THEN :now ELSE m.enqueued_at END,
            updated_at = :now
        FROM v WHERE m.id = v.id
        RETURNING m.id, m.status, m.contact_id, m.automation_run_id, m.error_code
    ), timeline AS (
        INSERT INTO message_status_events (message_id, status, occurred_at, error)
        SELECT updated.id, updated.status, :now,
               CASE WHEN updated.status = 'failed'
                    THEN jsonb_build_object('code', v.code, 'title', v.title, 'details', v.details) END
        FROM updated JOIN v ON v.id = updated.id
        WHERE updated.status IN ('sent', 'failed') AND v.outcome = updated.status
        ON CONFLICT (message_id, status) DO NOTHING
        RETURNING message_id, status
    )
    SELECT updated.id, updated.status, updated.contact_id, updated.automation_run_id, updated.error_code,
           timeline.message_id IS NOT NULL AS recorded
    FROM updated LEFT JOIN timeline ON timeline.message_id = updated.id
    """
)


@dataclass(slots=True)
class Outcome:
    id: uuid.UUID
    outcome: str  # sent | failed | retry
    wamid: str | None = None
    code: int | None = None
    title: str | None = None
    details: str | None = None
    trace: str | None = None
    retryable: bool | None = None
    delay: float = 0.0


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0
    codes: dict[int | None, int] = field(default_factory=dict)


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: up to base * 2^(attempts-1), capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def refusal(row: Any, now: datetime) -> Outcome | None:
    """Opt-out and window rules, checked again at send time (both change while a message waits)."""
    if row.category == MessageCategory.MARKETING and row.opt_in_status == OptInStatus.OPTED_OUT:
        return Outcome(row.id, "failed", title="contact_opted_out", retryable=False,
                       details="the contact opted out of marketing messages before the send")  # fmt: skip
    if row.type != "template" and not window_open(row.last_inbound_at, now):
        return Outcome(row.id, "failed", title="window_closed", retryable=False,
                       details="the 24-hour customer service window closed before the send")  # fmt: skip
    return None


def outcome_for_error(message_id: uuid.UUID, attempts: int, error: CloudAPIError) -> Outcome:
    """Retry what may succeed later (with backoff), fail the rest with Meta's code and reason."""
    policy = error.retry_policy
    metrics.CLOUD_API_ERRORS.labels(metrics.error_code_label(error.code), policy.value).inc()
    base = Outcome(
        message_id,
        "failed",
        code=error.code,
        title=(error.title or error.message or type(error).__name__)[:512],
        details=error.details,
        trace=error.fbtrace_id,
        retryable=error.is_retryable or policy is RetryPolicy.AUTH,
    )
    if attempts >= MAX_ATTEMPTS:
        return base
    if policy is RetryPolicy.RETRY:
        base.outcome, base.delay = "retry", backoff_seconds(attempts)
    elif policy is RetryPolicy.RETRY_LATER_RECIPIENT:
        # Only this recipient waits; the rest of the batch is unaffected.
        base.outcome, base.delay = "retry", PAIR_LIMIT_SECONDS + random.uniform(0, 1.0)
    return base


class Dispatcher:
    """One per worker process: the pooled Cloud API client, the Redis bucket, the send cap."""

    def __init__(
        self,
        client: CloudAPIClient,
        redis: aioredis.Redis,
        *,
        rate: float,
        concurrency: int,
        phone_number_id: str,
    ) -> None:
        self.client = client
        self.redis = redis
        self.bucket = TokenBucket(redis, phone_number_id, rate)
        self.semaphore = asyncio.Semaphore(concurrency)

    @classmethod
    def from_settings(cls) -> Dispatcher:
        settings = get_settings()
        client = PooledCloudAPIClient.from_settings(settings)
        redis = aioredis.from_url(settings.redis_url)
        return cls(
            client,
            redis,
            rate=settings.whatsapp_throughput_per_second,
            concurrency=settings.whatsapp_max_connections,
            phone_number_id=settings.phone_number_id,
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.redis.close()

    async def send_batch(self, message_ids: Sequence[uuid.UUID]) -> BatchReport:
        """Send these messages (those still `queued`); see the module docstring for the steps."""
        report = BatchReport()
        now = utcnow()
        async with session_scope() as session:
            rows = (await session.execute(_CLAIM, {"ids": list(message_ids), "now": now})).all()
        report.claimed = len(rows)
        if not rows:
            return report
        outcomes: list[Outcome] = []
        to_send = []
        for row in rows:
            refused = refusal(row, now)
            if refused is not None:
                metrics.MESSAGES_SUPPRESSED.labels(refused.title or "rule").inc()
                report.suppressed += 1
                outcomes.append(refused)
            else:
                to_send.append(row)
        if to_send:
            outcomes.extend(await self._send_throttled(to_send))
        async with session_scope() as session:
            await self._write_back(session, outcomes, report)
        return report

    async def _send_throttled(self, rows: list[Any]) -> list[Outcome]:
        tasks: list[asyncio.Task[Outcome]] = []
        pending = rows
        waited = 0.0
        while pending:
            try:
                grant = await self.bucket.take(len(pending))
            except Exception:
                # The bucket's Redis failed mid-batch. Sends already started must still be written
                # back (a row left `sending` would be sent again by the recovery job); the rest
                # goes back to `queued` untouched by Meta.
                log.warning("token_bucket_unavailable", started=len(tasks), returned=len(pending), exc_info=True)
                done = list(await asyncio.gather(*tasks))
                return done + [Outcome(row.id, "retry", delay=backoff_seconds(row.attempts)) for row in pending]
            for row in pending[: grant.granted]:
                tasks.append(asyncio.create_task(self._send_one(row)))
            pending = pending[grant.granted :]
            if pending:
                waited += grant.wait_seconds
                await asyncio.sleep(grant.wait_seconds)
        if waited:
            metrics.RATE_LIMITER_WAITS.labels("throughput").inc()
            metrics.RATE_LIMITER_WAIT_SECONDS.labels("throughput").observe(waited)
        return list(await asyncio.gather(*tasks))

    async def _send_one(self, row: Any) -> Outcome:
        payload = dict(row.body)
        payload["to"] = row.phone
        # Meta echoes this in every status webhook: it identifies the message even before we
        # stored the wamid, and lets the simulator count duplicate sends of one message.
        payload["biz_opaque_callback_data"] = str(row.id)
        async with self.semaphore:
            started = time.perf_counter()
            try:
                result = await self.client.send_message(payload)
            except CloudAPIError as exc:
                metrics.CLOUD_API_REQUESTS.labels("send_message", "error").inc()
                return outcome_for_error(row.id, row.attempts, exc)
            finally:
                metrics.CLOUD_API_LATENCY.labels("send_message").observe(time.perf_counter() - started)
        metrics.CLOUD_API_REQUESTS.labels("send_message", "ok").inc()
        return Outcome(row.id, "sent", wamid=result.wamid)

    async def _write_back(self, session: AsyncSession, outcomes: list[Outcome], report: BatchReport) -> None:
        now = utcnow()
        params = {
            "now": now,
            "ids": [o.id for o in outcomes],
            "outcomes": [o.outcome for o in outcomes],
            "wamids": [o.wamid for o in outcomes],
            "codes": [o.code for o in outcomes],
            "titles": [o.title for o in outcomes],
            "details": [o.details for o in outcomes],
            "traces": [o.trace for o in outcomes],
            "retryable": [o.retryable for o in outcomes],
            "next_at": [now + timedelta(seconds=o.delay) if o.outcome == "retry" else None for o in outcomes],
        }
        rows = (await session.execute(_WRITE_BACK, params)).all()
        retries: dict[int, list[uuid.UUID]] = defaultdict(list)
        for outcome in outcomes:
            if outcome.outcome == "retry":
                # Group delays in quarter seconds: a few delayed jobs per batch, not one per message.
                retries[int(outcome.delay * 4) + 1].append(outcome.id)
                report.retried += 1
            elif outcome.outcome == "sent":
                report.sent += 1
            else:
                report.failed += 1
                report.codes[outcome.code] = report.codes.get(outcome.code, 0) + 1
        for quarter_seconds, ids in retries.items():
            enqueue_send(ids, delay_ms=quarter_seconds * 250)
        for row in rows:
            if row.status == "sent" and row.recorded:
                metrics.MESSAGE_STATUS_TRANSITIONS.labels("sending", "sent").inc()
            elif row.status == "failed" and row.recorded:
                metrics.MESSAGE_STATUS_TRANSITIONS.labels("sending", "failed").inc()
                metrics.MESSAGE_FAILURES.labels(metrics.error_code_label(row.error_code)).inc()
            # Failures always reach the automation queue; a plain `sent` only when an automation
            # run waits on it (everyone else hears about delivery from the status webhooks).
            # One enqueue per message is a Redis round trip each: at 1,000 msg/s, a tenth of a core.
            if row.recorded and (row.status == "failed" or row.automation_run_id is not None):
                queue.enqueue(
                    contracts.MESSAGE_STATUS,
                    contracts.MessageStatusEvent(
                        message_id=row.id,
                        contact_id=row.contact_id,
                        status=row.status,
                        automation_run_id=row.automation_run_id,
                        error_code=row.error_code,
                        occurred_at=now,
                    ),
                )
