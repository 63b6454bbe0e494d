"""Contact events for the automation queue, shared by the contacts and webhook services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
import orjson
from dramatiq.brokers.redis import RedisBroker

from herald import queue
from herald.clock import utcnow
from herald.contracts import CONTACT_EVENT, ContactEvent, ContactEventKind


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
        _enqueue_pipelined(broker, events[start : start + PIPELINE_BATCH])


def _enqueue_pipelined(broker: RedisBroker, events: Sequence[ContactEvent]) -> None:
    # What RedisBroker.enqueue does per message (a unique redis_message_id, the middleware hooks,
    # then dispatch.lua's "enqueue": HSET $ns:$queue.msgs id data + RPUSH $ns:$queue id), done
    # for the whole batch in one MULTI: two commands instead of one script call per message.
    # New messages are never retried here, so the message id doubles as the Redis message id.
    ids = [str(message_id) for message_id in _random_uuids(len(events))]
    messages: list[dramatiq.Message[Any]] = [
        dramatiq.Message(
            queue_name=CONTACT_EVENT.queue.value,
            actor_name=CONTACT_EVENT.actor_name,
            args=(event.model_dump(mode="json"),),
            kwargs={},
            options={"redis_message_id": message_id},
            message_id=message_id,
        )
        for event, message_id in zip(events, ids, strict=True)
    ]
    for message in messages:
        broker.emit_before("enqueue", message, None)
    key = f"{broker.namespace}:{CONTACT_EVENT.queue.value}"
    with broker.client.pipeline(transaction=True) as pipe:
        pipe.hset(f"{key}.msgs", mapping={m.message_id: orjson.dumps(m._asdict()) for m in messages})
        pipe.rpush(key, *ids)
        pipe.execute()
    for message in messages:
        broker.emit_after("enqueue", message, None)


def _random_uuids(count: int) -> list[uuid.UUID]:
    # One urandom call for the batch: per-call uuid4() is a syscall each.
    pool = os.urandom(16 * count)
    return [uuid.UUID(bytes=pool[i * 16 : (i + 1) * 16], version=4) for i in range(count)]
