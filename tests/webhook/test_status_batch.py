"""A processing job's plain statuses applied together: the same end state as row by row, every
automation event once, and everything that is not a plain status left to the row-by-row path."""

from __future__ import annotations

import random
from typing import Any

import orjson
import redis

from tests.webhook.conftest import Database, next_wa_id, next_wamid, queued_jobs
from tests.webhook.factories import sent_message, ts
from tests.webhook.payloads import inbound, status, statuses_body, text

MESSAGE = (
    "SELECT status, wamid, sent_at, delivered_at, read_at, failed_at, error_code, pricing, conversation "
    "FROM messages WHERE id = %s"
)
NAMES = ("sent", "delivered", "read")


def store(database: Database, *bodies: dict[str, Any]) -> list[int]:
    """Inbox rows as the intake writes them; their ids in order."""
    ids = []
    for body in bodies:
        row = database.rows(
            "INSERT INTO webhook_events (body, status, attempts) VALUES (%s, 'pending', 0) RETURNING id",
            orjson.dumps(body).decode(),
        )
        ids.append(row[0]["id"])
    return ids


def timeline(database: Database, message_id: object) -> list[tuple[str, float]]:
    rows = database.rows(
        "SELECT status, occurred_at FROM message_status_events WHERE message_id = %s AND status <> 'queued' ORDER BY status",
        message_id,
    )
    return [(row["status"], row["occurred_at"].timestamp()) for row in rows]


def status_events(redis_client: redis.Redis) -> list[tuple[str, str]]:
    jobs = queued_jobs(redis_client, "automation")
    return sorted(
        (job["payload"]["message_id"], job["payload"]["status"]) for job in jobs if job["actor"] == "automation.message_status"
    )


async def test_one_job_of_shuffled_duplicated_statuses_ends_like_ordered_rows_one_by_one(
    database: Database, redis_client: redis.Redis
) -> None:
    from services.webhook.service import process_inbox_event
    from services.webhook.status_batch import apply_plain_statuses

    t = ts()
    ordered, batched = [], []
    for _ in range(4):
        wa_id = next_wa_id()
        ordered.append((*(await sent_message(database, wa_id)), wa_id))
        wa_id = next_wa_id()
        batched.append((*(await sent_message(database, wa_id)), wa_id))
    for message_id, wamid, wa_id in ordered:
        for event_id in store(database, *(status(wamid, name, t + i, wa_id=wa_id) for i, name in enumerate(NAMES))):
            assert await process_inbox_event(event_id) == "processed"
    deliveries = [
        status(wamid, name, t + i, wa_id=wa_id) for _, wamid, wa_id in batched for i, name in enumerate(NAMES)
    ] * 2
    random.Random(11).shuffle(deliveries)
    event_ids = store(database, *deliveries)

    assert await apply_plain_statuses(event_ids) == []

    for (ordered_id, _, _), (batched_id, batched_wamid, _) in zip(ordered, batched, strict=True):
        expected = database.one(MESSAGE, ordered_id)
        expected["wamid"] = batched_wamid
        assert database.one(MESSAGE, batched_id) == expected
        assert timeline(database, batched_id) == timeline(database, ordered_id)
    rows = database.rows("SELECT status, attempts, error FROM webhook_events WHERE id = ANY(%s)", event_ids)
    assert {(row["status"], row["attempts"], row["error"]) for row in rows} == {("processed", 1, None)}
    # Six deliveries per message, one automation event per (message, status).
    expected_events = sorted((str(m), name) for m, _, _ in ordered + batched for name in NAMES)
    assert status_events(redis_client) == expected_events


async def test_a_job_leaves_everything_but_plain_statuses_to_the_row_by_row_path(
    database: Database, redis_client: redis.Redis
) -> None:
    # Imported here: importing actors builds the broker, which must see the test settings.
    from services.webhook.actors import process_webhook_events
    from services.webhook.status_batch import apply_plain_statuses, plain_statuses

    t = ts()
    plain_id, plain_wamid = await sent_message(database, plain_wa := next_wa_id())
    failed_id, failed_wamid = await sent_message(database, failed_wa := next_wa_id())
    failure = {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "not on WhatsApp"}}
    inbound_wa = next_wa_id()
    malformed = statuses_body([status(plain_wamid, "read", t + 2, wa_id=plain_wa)])
    malformed["entry"][0]["changes"][0]["value"]["statuses"].append({"not": "a status"})
    bodies = [
        status(plain_wamid, "sent", t, wa_id=plain_wa),
        inbound(inbound_wa, next_wamid(), t, text("hello")),
        status(failed_wamid, "failed", t, wa_id=failed_wa, errors=[failure]),
        status("wamid.NOT-SENT-BY-US", "delivered", t, wa_id=plain_wa),
        malformed,
        status(plain_wamid, "delivered", t + 1, wa_id=plain_wa),
    ]
    event_ids = store(database, *bodies)
    assert [plain_statuses(0, orjson.dumps(body).decode()) is not None for body in bodies] == [
        True, False, False, True, False, True
    ]  # fmt: skip

    left = await apply_plain_statuses(event_ids)
    assert left == [event_ids[1], event_ids[2], event_ids[3], event_ids[4]]  # in arrival order
    assert database.one(MESSAGE, plain_id)["status"] == "delivered"

    # The actor's coroutine as a worker runs it (below dramatiq's sync wrapper): batch, then the rest.
    await process_webhook_events.fn.__wrapped__({"event_ids": event_ids})
    rows = {row["id"]: row for row in database.rows("SELECT * FROM webhook_events WHERE id = ANY(%s)", event_ids)}
    assert [rows[i]["status"] for i in event_ids] == ["processed", "processed", "processed", "pending", "failed", "processed"]
    assert rows[event_ids[3]]["due_at"] is not None  # the unknown message waits for its retries
    assert database.one("SELECT count(*) AS n FROM contacts WHERE wa_id = %s", inbound_wa)["n"] == 1
    failed = database.one(MESSAGE, failed_id)
    assert (failed["status"], failed["error_code"]) == ("failed", 131026)
    assert database.one(MESSAGE, plain_id)["status"] == "delivered"  # the malformed body applied nothing


async def test_a_status_found_by_its_callback_id_fills_the_missing_wamid(database: Database) -> None:
    from services.webhook.status_batch import apply_plain_statuses

    message_id, wamid = await sent_message(database, wa_id := next_wa_id())
    database.execute("UPDATE messages SET wamid = NULL WHERE id = %s", message_id)
    [event_id] = store(database, status(wamid, "delivered", ts(), wa_id=wa_id, biz_opaque_callback_data=str(message_id)))
    assert await apply_plain_statuses([event_id]) == []
    row = database.one(MESSAGE, message_id)
    assert (row["status"], row["wamid"]) == ("delivered", wamid)
