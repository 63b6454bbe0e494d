"""Durable intake with group commit: concurrent requests share one INSERT and one Redis round trip.

Each request hands its body to the process's `InboxWriter` and awaits its batch. While one
batch is being written, newcomers gather for the next, so an idle service writes a batch of
one at once (no timer, no added latency) and a busy one writes many rows per commit. A
request is answered only after its row is committed: nothing acknowledged can be lost.

After the commit the processing jobs are sent in one Redis pipeline. If Redis is down then,
the rows are still stored as `pending` and the relay re-enqueues them later; Meta still gets
its 200 because the event is safe.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

import structlog
from dramatiq.common import current_millis, dq_name
from herald import contracts, db, queue
from herald.observability import metrics
from herald.webhooks.inbox import insert_bodies_statement

log = structlog.get_logger("herald.webhook")


class InboxWriter:
    """Group commit of inbox rows for one process (one instance per event loop)."""

    def __init__(self, max_batch: int = 500, max_writers: int = 2) -> None:
        self.max_batch = max_batch
        self.max_writers = max_writers
        self._waiting: list[tuple[str, asyncio.Future[int]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        # Counted by hand: a finished task leaves the set only a loop turn later.
        self._active = 0

    async def store(self, body: str) -> int:
        """Store one raw body durably; returns its inbox id once committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, future))
        if self._active < self.max_writers:
            self._active += 1
            task = asyncio.create_task(self._drain())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        # shield: a client hanging up must not cancel the write other requests share.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                await self._write(batch)
        finally:
            # No await between the empty check and here, so no request can slip in unserved.
            self._active -= 1

    async def _write(self, batch: list[tuple[str, asyncio.Future[int]]]) -> None:
        try:
            async with db.async_engine().begin() as connection:
                ids = list(
                    (await connection.execute(insert_bodies_statement([body for body, _ in batch]))).scalars()
                )
        except Exception as exc:
            log.error(
                "webhook_inbox_write_failed", error=f"{type(exc).__name__}: {exc}"[:500], batch=len(batch)
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        metrics.WEBHOOK_LAST_RECEIVED.set(time.time())
        for (_, future), event_id in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(event_id)
        try:
            await asyncio.to_thread(enqueue_batch, ids)
        except Exception as exc:
            # Stored and acknowledged: the relay re-enqueues rows the broker never got.
            log.warning("webhook_enqueue_failed", error=f"{type(exc).__name__}: {exc}"[:500], batch=len(ids))

    async def close(self) -> None:
        """Wait for batches in flight (shutdown)."""
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)


def enqueue_batch(event_ids: list[int], *, delay_ms: int | None = None) -> None:
    """Enqueue `webhook.process_event` for many rows in one Redis pipeline.

    Dramatiq's Redis broker sends one Lua call per message; sending them pipelined does the
    same work in one round trip. The message shape is the broker's own (`Message.copy` with a
    fresh redis_message_id), and the broker's enqueue hooks still run for each message.
    """
    if not event_ids:
        return
    broker: Any = queue.get_broker()
    dispatch = broker.scripts["dispatch"]
    queue_name = contracts.PROCESS_WEBHOOK_EVENT.queue.value
    if delay_ms is not None:
        queue_name = dq_name(queue_name)
    pipeline = broker.client.pipeline(transaction=False)
    messages = []
    for event_id in event_ids:
        message = queue.build_message(
            contracts.PROCESS_WEBHOOK_EVENT, contracts.ProcessWebhookEvent(event_id=event_id)
        )
        options: dict[str, Any] = {"redis_message_id": str(uuid4())}
        if delay_ms is not None:
            options["eta"] = current_millis() + delay_ms
            message = message.copy(queue_name=queue_name, options=options)
        else:
            message = message.copy(options=options)
        broker.emit_before("enqueue", message, delay_ms)
        args = [
            "enqueue", current_millis(), queue_name, broker.broker_id, broker.heartbeat_timeout,
            broker.dead_message_ttl, broker._should_do_maintenance("enqueue"), broker._max_unpack_size(),
            options["redis_message_id"], message.encode(),
        ]  # fmt: skip
        dispatch(keys=[broker.namespace], args=args, client=pipeline)
        messages.append(message)
    pipeline.execute()
    for message in messages:
        broker.emit_after("enqueue", message, delay_ms)
