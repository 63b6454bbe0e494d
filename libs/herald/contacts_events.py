"""Contact events for the automation queue, shared by the contacts and webhook services."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
import orjson
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import MiddlewareError

from herald import queue
from herald.clock import utcnow
from herald.contracts import CONTACT_EVENT, ContactEvent, ContactEventKind

_Hook = Callable[..., None]


def build_contact_event(
    kind: ContactEventKind, contact_id: uuid.UUID, data: dict[str, Any] | None = None
) -> ContactEvent:
    """The payload of one contact event, stamped with a fresh id and the current time."""
    return ContactEvent(event_id=uuid.uuid4(), kind=kind, contact_id=contact_id, occurred_at=utcnow(), data=data or {})


def build_contact_events(
    kind: ContactEventKind, contact_ids: Sequence[uuid.UUID], data: dict[str, Any] | None = None
) -> list[ContactEvent]:
    """One event of `kind` per contact, for bulk work (imports): the ids come from the database,
    so the payloads are built without re-validating them."""
    occurred_at = utcnow()
    body = data or {}
    return [
        ContactEvent.model_construct(
            event_id=event_id, kind=kind, contact_id=contact_id, occurred_at=occurred_at, data=dict(body)
        )
        for event_id, contact_id in zip(_random_uuids(len(contact_ids)), contact_ids, strict=True)
    ]


def emit_contact_event(
    kind: ContactEventKind, contact_id: uuid.UUID, data: dict[str, Any] | None = None
) -> ContactEvent:
    """Enqueue `automation.contact_event`; inside a transaction scope it leaves only after commit.

    `data` is kind-specific: {"tag": "vip"}, {"attribute": "plan", "old": ..., "new": ...},
    {"source": "keyword"}. Returns the payload sent.
    """
    event = build_contact_event(kind, contact_id, data)
    queue.enqueue(CONTACT_EVENT, event)
    return event


PIPELINE_BATCH = 1000


def publish_contact_events(events: Sequence[ContactEvent]) -> None:
    """Send many events in pipelined Redis round trips (a 100,000-row import makes ~100, not 100,000).

    Call it after the transaction that produced the events has committed. Inside a transaction
    scope it falls back to `queue.enqueue`, which already waits for the commit.
    """
    if not events:
        return
    # Inside a session_scope the shared buffer holds messages until commit; respect it.
    if queue._buffer.get() is not None:
        for event in events:
            queue.enqueue(CONTACT_EVENT, event)
        return
    broker = queue.get_broker()
    for start in range(0, len(events), PIPELINE_BATCH):
        _enqueue_pipelined(broker, [event.model_dump(mode="json") for event in events[start : start + PIPELINE_BATCH]])


def publish_created_events(
    contact_ids: Sequence[uuid.UUID], data: dict[str, Any] | None = None, kind: ContactEventKind = "created"
) -> None:
    """`publish_contact_events` for one event of `kind` per contact (bulk work: imports).

    The payloads differ only in their ids, so one is validated and serialised, and the others are
    copies with fresh ids, built one pipeline batch at a time (a large import holds ids, not
    100,000 payloads).
    """
    if not contact_ids:
        return
    if queue._buffer.get() is not None:
        publish_contact_events(build_contact_events(kind, contact_ids, data))
        return
    template = build_contact_event(kind, contact_ids[0], data).model_dump(mode="json")
    broker = queue.get_broker()
    for start in range(0, len(contact_ids), PIPELINE_BATCH):
        batch = contact_ids[start : start + PIPELINE_BATCH]
        payloads = [
            {**template, "event_id": event_id, "contact_id": str(contact_id)}
            for event_id, contact_id in zip(_random_uuid_strings(len(batch)), batch, strict=True)
        ]
        _enqueue_pipelined(broker, payloads)


def _enqueue_pipelined(broker: RedisBroker, payloads: Sequence[dict[str, Any]]) -> None:
    # What RedisBroker.enqueue does per message (a unique redis_message_id, the middleware hooks,
    # then dispatch.lua's "enqueue": HSET $ns:$queue.msgs id data + RPUSH $ns:$queue id), done
    # for the whole batch in one MULTI: two commands instead of one script call per message.
    # New messages are never retried here, so the message id doubles as the Redis message id.
    ids = _random_uuid_strings(len(payloads))
    timestamp = int(time.time() * 1000)
    messages: list[dramatiq.Message[Any]] = [
        dramatiq.Message(
            queue_name=CONTACT_EVENT.queue.value,
            actor_name=CONTACT_EVENT.actor_name,
            args=(payload,),
            kwargs={},
            options={"redis_message_id": message_id},
            message_id=message_id,
            message_timestamp=timestamp,
        )
        for payload, message_id in zip(payloads, ids, strict=True)
    ]
    before, after = _enqueue_hooks(broker)
    for message in messages:
        for hook in before:
            _run_hook(broker, hook, message, reraise=True)
    key = f"{broker.namespace}:{CONTACT_EVENT.queue.value}"
    with broker.client.pipeline(transaction=True) as pipe:
        pipe.hset(f"{key}.msgs", mapping={m.message_id: orjson.dumps(_message_fields(m)) for m in messages})
        pipe.rpush(key, *ids)
        pipe.execute()
    for message in messages:
        for hook in after:
            _run_hook(broker, hook, message, reraise=False)


def _enqueue_hooks(broker: dramatiq.Broker) -> tuple[list[_Hook], list[_Hook]]:
    # Broker.emit_before/emit_after call every middleware's hook; only the ones a middleware
    # overrides do anything, and a 100,000-message import should not pay for the rest.
    before: list[_Hook] = [
        m.before_enqueue for m in broker.middleware if type(m).before_enqueue is not dramatiq.Middleware.before_enqueue
    ]
    after: list[_Hook] = [
        m.after_enqueue
        for m in reversed(broker.middleware)
        if type(m).after_enqueue is not dramatiq.Middleware.after_enqueue
    ]
    return before, after


def _run_hook(broker: dramatiq.Broker, hook: _Hook, message: dramatiq.Message[Any], *, reraise: bool) -> None:
    # The same error policy as Broker.emit_before/emit_after.
    try:
        hook(broker, message, None)
    except MiddlewareError:
        if reraise:
            raise
        broker.logger.critical("Unexpected failure in %r.", hook, exc_info=True)
    except Exception:
        broker.logger.critical("Unexpected failure in %r.", hook, exc_info=True)


def _message_fields(message: dramatiq.Message[Any]) -> dict[str, Any]:
    # Message.asdict() without its per-call dataclasses.fields() walk.
    return {
        "queue_name": message.queue_name,
        "actor_name": message.actor_name,
        "args": message.args,
        "kwargs": message.kwargs,
        "options": message.options,
        "message_id": message.message_id,
        "message_timestamp": message.message_timestamp,
    }


def _random_uuids(count: int) -> list[uuid.UUID]:
    # One urandom call for the batch: per-call uuid4() is a syscall each.
    pool = os.urandom(16 * count)
    return [uuid.UUID(bytes=pool[i * 16 : (i + 1) * 16], version=4) for i in range(count)]


def _random_uuid_strings(count: int) -> list[str]:
    """`count` random (version 4) UUIDs in their canonical text form, without UUID objects."""
    pool = bytearray(os.urandom(16 * count))
    for offset in range(0, 16 * count, 16):
        pool[offset + 6] = (pool[offset + 6] & 0x0F) | 0x40  # version 4
        pool[offset + 8] = (pool[offset + 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = pool.hex()
    return [
        f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-{text[i + 12 : i + 16]}-{text[i + 16 : i + 20]}-{text[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]
