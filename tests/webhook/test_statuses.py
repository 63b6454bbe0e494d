"""Status webhooks through HTTP and the worker: monotonic, idempotent, order-tolerant."""

from __future__ import annotations

import random

import httpx
import pytest
import redis

from tests.webhook.conftest import Database, WorkerProcess, next_wa_id, post_signed, queued_jobs
from tests.webhook.factories import sent_message, ts
from tests.webhook.payloads import status, statuses_body

pytestmark = pytest.mark.usefixtures("webhook_worker")

TIMELINE = "SELECT status, sent_at, delivered_at, read_at, failed_at, error_code, error_title, error_details," \
    " pricing, conversation FROM messages WHERE id = %s"


def _timeline(database: Database, message_id: object) -> list[str]:
    rows = database.rows("SELECT status FROM message_status_events WHERE message_id = %s ORDER BY status", message_id)
    return [row["status"] for row in rows]


async def test_sent_delivered_read_end_read_with_every_timestamp(client: httpx.AsyncClient, database: Database) -> None:
    wa_id = next_wa_id()
    message_id, wamid = await sent_message(database, wa_id)
    t = ts()
    for offset, name in enumerate(("sent", "delivered", "read")):
        assert (await post_signed(client, status(wamid, name, t + offset, wa_id=wa_id))).status_code == 200
    assert {row["status"] for row in database.settled()} == {"processed"}
    row = database.one(TIMELINE, message_id)
    assert row["status"] == "read"
    assert [row["sent_at"].timestamp(), row["delivered_at"].timestamp(), row["read_at"].timestamp()] == [t, t + 1, t + 2]
    assert row["pricing"] == {"billable": True, "pricing_model": "CBP", "category": "service"}
    assert row["conversation"]["id"] == "7270432eae37498234f4444b35ffc5"


async def test_read_before_delivered_still_ends_read_with_both_timestamps(
    client: httpx.AsyncClient, database: Database
) -> None:
    wa_id = next_wa_id()
    message_id, wamid = await sent_message(database, wa_id)
    t = ts()
    await post_signed(client, status(wamid, "read", t + 2, wa_id=wa_id))
    await post_signed(client, status(wamid, "delivered", t + 1, wa_id=wa_id))
    database.settled()
    row = database.one(TIMELINE, message_id)
    assert row["status"] == "read"
    assert row["delivered_at"].timestamp() == t + 1
    assert row["read_at"].timestamp() == t + 2


async def test_duplicated_and_shuffled_statuses_end_like_one_ordered_delivery(
    client: httpx.AsyncClient, database: Database
) -> None:
    ordered_wa, shuffled_wa = next_wa_id(), next_wa_id()
    ordered_id, ordered_wamid = await sent_message(database, ordered_wa)
    shuffled_id, shuffled_wamid = await sent_message(database, shuffled_wa)
    t = ts()
    names = ("sent", "delivered", "read")
    for offset, name in enumerate(names):
        await post_signed(client, status(ordered_wamid, name, t + offset, wa_id=ordered_wa))
    deliveries = [(offset, name) for offset, name in enumerate(names)] * 3
    random.Random(7).shuffle(deliveries)
    for offset, name in deliveries:
        await post_signed(client, status(shuffled_wamid, name, t + offset, wa_id=shuffled_wa))
    database.settled()
    assert database.one(TIMELINE, shuffled_id) == database.one(TIMELINE, ordered_id)
    assert _timeline(database, shuffled_id) == _timeline(database, ordered_id)


async def test_batched_statuses_in_one_post_are_all_applied(client: httpx.AsyncClient, database: Database) -> None:
    wa_id = next_wa_id()
    message_id, wamid = await sent_message(database, wa_id)
    t = ts()
    body = statuses_body([status(wamid, "delivered", t + 1, wa_id=wa_id), status(wamid, "sent", t, wa_id=wa_id)])
    await post_signed(client, body)
    database.settled()
    assert database.one(TIMELINE, message_id)["status"] == "delivered"
    assert _timeline(database, message_id) == ["delivered", "queued", "sent"]


async def test_failed_status_keeps_metas_code_title_and_details(client: httpx.AsyncClient, database: Database) -> None:
    wa_id = next_wa_id()
    message_id, wamid = await sent_message(database, wa_id)
    await post_signed(client, status(wamid, "failed", ts(), wa_id=wa_id))
    database.settled()
    row = database.one(TIMELINE, message_id)
    assert row["status"] == "failed"
    assert row["error_code"] == 130472
    assert row["error_title"] == "User's number is part of an experiment"
    assert row["error_details"] == "Failed to send message because this user's phone number is part of an experiment"


async def test_statuses_go_to_the_status_handler_never_the_inbound_one(
    client: httpx.AsyncClient, database: Database, redis_client: redis.Redis
) -> None:
    wa_id = next_wa_id()
    message_id, wamid = await sent_message(database, wa_id)
    t = ts()
    for offset, name in enumerate(("sent", "delivered", "read", "read")):
        await post_signed(client, status(wamid, name, t + offset, wa_id=wa_id))
    database.settled()
    jobs = queued_jobs(redis_client, "automation")
    assert sorted(job["payload"]["status"] for job in jobs if job["actor"] == "automation.message_status") == [
        "delivered", "read", "sent"
    ]
    assert {job["actor"] for job in jobs} == {"automation.message_status"}
    assert {job["payload"]["message_id"] for job in jobs} == {str(message_id)}


async def test_status_for_a_message_committed_late_is_retried_until_it_applies(
    client: httpx.AsyncClient, database: Database
) -> None:
    wa_id = next_wa_id()
    wamid_from_the_future = "wamid.LATECOMMIT" + wa_id
    await post_signed(client, status(wamid_from_the_future, "delivered", ts(), wa_id=wa_id))
    from tests.fixtures.simulator import wait_until

    wait_until(lambda: database.inbox()[0]["attempts"] >= 1, timeout=10)
    assert database.inbox()[0]["status"] == "pending"
    message_id, _ = await sent_message(database, wa_id)
    database.execute("UPDATE messages SET wamid = %s WHERE id = %s", wamid_from_the_future, message_id)
    [event] = database.settled()
    assert event["status"] == "processed"
    assert database.one(TIMELINE, message_id)["status"] == "delivered"


async def test_status_for_an_unknown_message_is_skipped_after_the_retries(
    client: httpx.AsyncClient, database: Database, webhook_worker: WorkerProcess
) -> None:
    await post_signed(client, status("wamid.NEVERSENTBYUS", "read", ts()))
    [event] = database.settled()
    assert event["status"] == "skipped"
    assert event["attempts"] == 3  # the first try and HERALD_WEBHOOK_UNKNOWN_MESSAGE_RETRIES=2 retries
    assert "wamid.NEVERSENTBYUS" in event["error"]
