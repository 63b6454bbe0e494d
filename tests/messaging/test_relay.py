"""Crash recovery: queued messages never handed over, and messages stuck in `sending`."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
import redis

from herald.db import session_scope
from herald.messaging.content import TextContent
from herald.messaging.outbound import queue_message
from herald.messaging.relay import relay_unhanded_messages, requeue_stuck_sending
from tests.messaging.factories import make_contact

pytestmark = pytest.mark.usefixtures("dispose_engines")


async def _queued(count: int) -> None:
    contact = await make_contact(inbound_hours_ago=1)
    async with session_scope() as session:
        for _ in range(count):
            await queue_message(session, contact=contact, content=TextContent(body="hi"), enqueue=False)


def _queue_length(redis_client: redis.Redis) -> int:
    return int(redis_client.llen("herald:messages"))  # type: ignore[arg-type]


async def test_relay_hands_over_stale_queued_messages_only(database_url: str, redis_client: redis.Redis) -> None:
    await _queued(3)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE messages SET enqueued_at = now() - interval '1 hour'"
            " WHERE id IN (SELECT id FROM messages LIMIT 2)"
        )
    assert relay_unhanded_messages() == 2
    assert _queue_length(redis_client) == 1  # one job carries both ids
    assert relay_unhanded_messages() == 0


async def test_stuck_sending_without_wamid_is_requeued(database_url: str) -> None:
    await _queued(2)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE messages SET status = 'sending', sending_at = now() - interval '1 hour'")
        connection.execute("UPDATE messages SET wamid = 'wamid.X' WHERE id IN (SELECT id FROM messages LIMIT 1)")
    assert requeue_stuck_sending(stuck_after=timedelta(minutes=5)) == 1
    with psycopg.connect(database_url) as connection:
        statuses = sorted(r[0] for r in connection.execute("SELECT status FROM messages"))
    assert statuses == ["queued", "sending"]
