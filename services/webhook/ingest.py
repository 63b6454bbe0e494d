"""Durable intake with group commit: concurrent requests share one INSERT and one Redis round trip.

Each request hands its body to the process's `InboxWriter` and awaits its batch. While a
batch is being written, newcomers gather for the next one, so an idle service writes a batch
of one at once (no timer, no added latency) and a busy one writes many rows per commit. A
request is answered only after its row is committed: nothing acknowledged can be lost.

The write path is the hot path of the service, so it skips the ORM: a few dedicated psycopg
connections in autocommit run one prepared `INSERT ... SELECT unnest(array)` whose bodies go
as one binary `text[]` parameter (the text-format array dumper costs about seven times more
CPU). A single autocommit statement is its own transaction: when its result arrives, the rows
are committed.

The batch's requests are answered as soon as the commit returns. Their ids then go to the
`JobSender`, which sends `webhook.process_events` jobs on an asyncio Redis client one at a
time, each gathering the ids committed in the 20 ms after its first one and while the previous
send was in flight: a busy process sends one job for many batches, the worker applies their
statuses together, and Redis costs nothing on the answer path.
If the process dies or Redis is down before the job is sent, the rows are still stored as
`pending` and the webhook-relay job re-enqueues them later; Meta still got its 200 because
the event is safe.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import redis.asyncio as aioredis
import structlog
from redis.exceptions import NoScriptError

from herald import contracts, queue
from herald.observability import metrics
from herald.settings import get_settings
from herald.webhooks.inbox import INSERT_BODIES_SQL

log = structlog.get_logger("herald.webhook")


class InboxUnavailableError(Exception):
    """The batch holding this body could not be committed (the database is unreachable)."""


def libpq_url(sqlalchemy_url: str) -> str:
    """The settings' SQLAlchemy URL (`postgresql+psycopg://`) as a plain libpq URL."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else sqlalchemy_url


class InboxWriter:
    """Group commit of inbox rows for one process (one instance per event loop)."""

    def __init__(self, *, max_batch: int = 1000, max_writers: int = 2) -> None:
        settings = get_settings()
        self.max_batch = max_batch
        self.max_writers = max_writers
        self._conninfo = libpq_url(settings.sqlalchemy_url)
        self._waiting: list[tuple[str, asyncio.Future[int]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Counted by hand: a finished task leaves the set only a loop turn later.
        self._active = 0
        # One connection per concurrent writer, kept open between batches.
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._jobs = JobSender(settings.redis_url)

    async def store(self, body: str) -> int:
        """Store one raw body durably; returns its inbox id once committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, future))
        if self._active < self.max_writers:
            self._active += 1
            self._track(self._drain())
        # shield: a client hanging up must not cancel the write other requests share.
        return await asyncio.shield(future)

    def _track(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                ids = await self._write(batch)
                if ids:
                    for (_, future), event_id in zip(batch, ids, strict=True):
                        if not future.done():
                            future.set_result(event_id)
                    self._jobs.add(ids)
        finally:
            # No await between the empty check and here, so no request can slip in unserved.
            self._active -= 1

    async def _write(self, batch: list[tuple[str, asyncio.Future[int]]]) -> list[int]:
        connection: psycopg.AsyncConnection[Any] | None = None
        try:
            connection = self._idle.pop() if self._idle else await self._connect()
            cursor = await connection.execute(INSERT_BODIES_SQL, ([body for body, _ in batch],), prepare=True)
            ids = sorted(row[0] for row in await cursor.fetchall())
        except Exception as exc:
            log.error("webhook_inbox_write_failed", error=f"{type(exc).__name__}: {exc}"[:500], batch=len(batch))
            if connection is not None:
                # Its state is unknown after an error; a fresh one is cheap next time.
                await connection.close()
            failure = InboxUnavailableError(f"{type(exc).__name__}: {exc}"[:500])
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return []
        self._idle.append(connection)
        metrics.WEBHOOK_LAST_RECEIVED.set(time.time())
        return ids

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5, application_name="herald-webhook-intake"
        )

    async def jobs_sent(self) -> None:
        """Wait until the processing jobs of every answered event have been sent."""
        await self._jobs.drain()

    async def close(self) -> None:
        """Wait for batches and enqueues in flight, then close the connections (shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.jobs_sent()
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
        await self._jobs.close()


class JobSender:
    """Sends `webhook.process_events` jobs for committed inbox rows, one send at a time.

    Ids added within `gather_seconds` of the first, or while a send is in flight, go out
    together in one job (up to `max_job`), so the Redis and worker cost per event shrinks as
    the load grows. The message is the one `RedisBroker.enqueue` would send (its dispatch Lua
    script by `EVALSHA`, its enqueue hooks), so workers and metrics see an ordinary message.
    """

    def __init__(self, redis_url: str, *, max_job: int = 1000, gather_seconds: float = 0.02) -> None:
        self._client: aioredis.Redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.max_job = max_job
        # How long the first id of a job waits for company. Meta acknowledges nothing on this
        # path, and a worker applies a job's statuses together, so a job of many rows costs
        # far less than many jobs of one.
        self.gather_seconds = gather_seconds
        self._pending: list[int] = []
        self._sender: asyncio.Task[None] | None = None

    def add(self, event_ids: list[int]) -> None:
        """Queue committed rows for processing; returns at once."""
        self._pending.extend(event_ids)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())

    async def drain(self) -> None:
        """Wait until every added id has been sent (or given up on): shutdown."""
        while self._sender is not None and not self._sender.done():
            await self._sender

    async def _send_pending(self) -> None:
        if self.gather_seconds:
            await asyncio.sleep(self.gather_seconds)
        while self._pending:
            ids, self._pending = self._pending[: self.max_job], self._pending[self.max_job :]
            try:
                await self.send(ids)
            except Exception as exc:
                # Stored, so already acknowledged: the relay re-enqueues rows the broker never got.
                log.warning("webhook_enqueue_failed", error=f"{type(exc).__name__}: {exc}"[:500], batch=len(ids))

    async def send(self, event_ids: list[int]) -> None:
        """Enqueue the processing of these inbox rows; raises if Redis refused it."""
        broker: Any = queue.get_broker()
        script = broker.scripts["dispatch"]
        message, args = queue.prepare_for_redis(
            broker,
            queue.build_message(contracts.PROCESS_WEBHOOK_EVENTS, contracts.ProcessWebhookEvents(event_ids=event_ids)),
            None,
        )
        broker.emit_before("enqueue", message, None)
        try:
            await self._client.evalsha(script.sha, 1, broker.namespace, *args)
        except NoScriptError:
            # A restarted or flushed Redis forgot the script: EVAL sends it along and caches it.
            await self._client.eval(script.script, 1, broker.namespace, *args)
        broker.emit_after("enqueue", message, None)

    async def close(self) -> None:
        await self._client.aclose()  # type: ignore[attr-defined]  # the redis stubs predate aclose
