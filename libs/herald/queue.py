"""Dramatiq on Redis: broker set-up, enqueue-after-commit, and the actor decorator.

Work is requested by contract (`herald.contracts`), never by importing another service's
actor. Inside a `session_scope` (or an actor), `enqueue` buffers messages and the buffer is
flushed only after the database transaction commits, so no job ever points at a rolled-back row.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import uuid4

import dramatiq
import uvloop
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from herald.contracts import Contract, Payload
from herald.settings import get_settings

P = TypeVar("P", bound=Payload)

_broker: RedisBroker | None = None
_extra_middleware: list[dramatiq.Middleware] = []


class UvloopAsyncIO(AsyncIO):
    """Dramatiq's event loop thread for async actors, on uvloop (as the HTTP services are).

    The dispatcher's sends run on this loop, and with asyncio's default loop its selector,
    transport and task bookkeeping were a visible share of the worker's CPU per message.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = EventLoopThread(self.logger)
        thread.loop.close()
        thread.loop = uvloop.new_event_loop()
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


def add_middleware(middleware: dramatiq.Middleware) -> None:
    """Register middleware (metrics, tracing) before the broker is built."""
    _extra_middleware.append(middleware)
    if _broker is not None:
        _broker.add_middleware(middleware)


def get_broker() -> RedisBroker:
    """The process-wide broker, created on first use from REDIS_URL."""
    global _broker
    if _broker is None:
        settings = get_settings()
        from herald.heap import FreezeStartupObjects
        from herald.observability.dramatiq_middleware import ObservabilityMiddleware

        middleware = [
            # First in the list: its before-hooks run first and its after-hooks last, so the
            # actor span covers the other middleware and the retry decision is already made.
            ObservabilityMiddleware(),
            AgeLimit(),
            TimeLimit(time_limit=300_000),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(max_retries=8, min_backoff=500, max_backoff=300_000),
            UvloopAsyncIO(),
            CurrentMessage(),
            FreezeStartupObjects(),
            *_extra_middleware,
        ]
        _broker = RedisBroker(url=settings.redis_url, middleware=middleware, namespace="herald")
        dramatiq.set_broker(_broker)
    return _broker


def reset_broker() -> None:
    """Forget the broker (tests switch Redis databases between cases)."""
    global _broker
    if _broker is not None:
        _broker.close()
    _broker = None


class EnqueueBuffer:
    def __init__(self) -> None:
        self.pending: list[tuple[dramatiq.Message[Any], int | None]] = []

    def add(self, message: dramatiq.Message[Any], delay_ms: int | None) -> None:
        self.pending.append((message, delay_ms))

    def clear(self) -> None:
        self.pending.clear()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if len(pending) == 1:
            get_broker().enqueue(pending[0][0], delay=pending[0][1])
        elif pending:
            send_in_one_round_trip(pending)


def prepare_for_redis(
    broker: RedisBroker, message: dramatiq.Message[Any], delay_ms: int | None
) -> tuple[dramatiq.Message[Any], list[Any]]:
    """What `RedisBroker.enqueue` sends, without sending it: the message as stored (its own
    Redis id; the delay queue and eta when delayed) and the arguments of the broker's dispatch
    script for the `enqueue` command. Enqueue hooks are the caller's to emit."""
    queue_name = message.queue_name
    message = message.copy(options={"redis_message_id": str(uuid4())})
    if delay_ms is not None:
        queue_name = dq_name(queue_name)
        message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay_ms})
    args = [
        "enqueue", current_millis(), queue_name, broker.broker_id, broker.heartbeat_timeout,
        broker.dead_message_ttl, broker._should_do_maintenance("enqueue"), broker._max_unpack_size(),
        message.options["redis_message_id"], message.encode(),
    ]  # fmt: skip
    return message, args


def send_in_one_round_trip(pending: list[tuple[dramatiq.Message[Any], int | None]]) -> None:
    """Enqueue several messages through one Redis pipeline instead of a round trip each: an
    actor that handled a batch of webhook statuses emits one automation event per status."""
    broker = get_broker()
    script = broker.scripts["dispatch"]
    prepared = [(prepare_for_redis(broker, message, delay_ms), delay_ms) for message, delay_ms in pending]
    pipeline = broker.client.pipeline(transaction=False)
    for (message, args), delay_ms in prepared:
        broker.emit_before("enqueue", message, delay_ms)
        script(keys=[broker.namespace], args=args, client=pipeline)
    pipeline.execute()
    for (message, _), delay_ms in prepared:
        broker.emit_after("enqueue", message, delay_ms)


_buffer: contextvars.ContextVar[EnqueueBuffer | None] = contextvars.ContextVar("herald_enqueue_buffer", default=None)


@contextmanager
def enqueue_buffer() -> Iterator[EnqueueBuffer]:
    """Collect enqueues made inside; the caller flushes after commit or clears on rollback.

    Nested scopes share the outermost buffer, so an actor's session does not flush early.
    """
    outer = _buffer.get()
    if outer is not None:
        yield _NestedBuffer(outer)
        return
    buffer = EnqueueBuffer()
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)


class _NestedBuffer(EnqueueBuffer):
    """A scope inside another: flushing is the outer scope's job; clearing drops only our part."""

    def __init__(self, outer: EnqueueBuffer) -> None:
        super().__init__()
        self.outer = outer
        self.start = len(outer.pending)

    def add(self, message: dramatiq.Message[Any], delay_ms: int | None) -> None:
        self.outer.add(message, delay_ms)

    def clear(self) -> None:
        del self.outer.pending[self.start :]

    def flush(self) -> None:
        return None


def build_message(contract: Contract[P], payload: P) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=contract.queue.value,
        actor_name=contract.actor_name,
        args=(payload.model_dump(mode="json"),),
        kwargs={},
        options={},
    )


def enqueue(contract: Contract[P], payload: P, *, delay_ms: int | None = None) -> None:
    """Ask for work: after commit when inside a transaction scope, right away otherwise."""
    if not isinstance(payload, contract.payload):
        raise TypeError(f"{contract.actor_name} takes {contract.payload.__name__}, not {type(payload).__name__}")
    message = build_message(contract, payload)
    buffer = _buffer.get()
    if buffer is not None:
        buffer.add(message, delay_ms)
    else:
        get_broker().enqueue(message, delay=delay_ms)


def enqueue_many(contract: Contract[P], payloads: list[P], *, delay_ms: int | None = None) -> None:
    for payload in payloads:
        enqueue(contract, payload, delay_ms=delay_ms)


ActorFn = Callable[[P], Awaitable[None]] | Callable[[P], None]


def actor(contract: Contract[P], **options: Any) -> Callable[[Callable[[P], Any]], dramatiq.Actor[Any, Any]]:
    """Declare the consumer of a contract: the function receives the validated payload model.

    Jobs the actor enqueues leave only if it returns normally.
    """

    def decorator(fn: Callable[[P], Any]) -> dramatiq.Actor[Any, Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(raw: dict[str, Any]) -> None:
                payload = contract.payload.model_validate(raw)
                with enqueue_buffer() as buffer:
                    try:
                        await fn(payload)
                    except BaseException:
                        buffer.clear()
                        raise
                buffer.flush()

            target: Callable[..., Any] = run_async
        else:

            @functools.wraps(fn)
            def run_sync(raw: dict[str, Any]) -> None:
                payload = contract.payload.model_validate(raw)
                with enqueue_buffer() as buffer:
                    try:
                        fn(payload)
                    except BaseException:
                        buffer.clear()
                        raise
                buffer.flush()

            target = run_sync
        return dramatiq.actor(  # type: ignore[call-overload]  # the stubs' overloads miss fn + options
            target, actor_name=contract.actor_name, queue_name=contract.queue.value, broker=get_broker(), **options
        )

    return decorator
