"""POST/GET /webhooks/whatsapp: the handshake, signatures, limits and the durable write."""

from __future__ import annotations

import asyncio

import httpx
import redis

from tests.conftest import VERIFY_TOKEN_FOR_TESTS
from tests.webhook.conftest import WEBHOOK_PATH, Database, post_signed, queued_events_eventually, queued_jobs_eventually
from tests.webhook.payloads import encode, reference, signed_headers


async def test_verification_handshake_echoes_the_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(
        WEBHOOK_PATH,
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN_FOR_TESTS, "hub.challenge": "1158201444"},
    )
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


async def test_verification_with_a_wrong_token_is_forbidden(client: httpx.AsyncClient) -> None:
    response = await client.get(
        WEBHOOK_PATH, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "verification_failed"


async def test_verification_with_another_mode_is_forbidden(client: httpx.AsyncClient) -> None:
    response = await client.get(
        WEBHOOK_PATH,
        params={"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN_FOR_TESTS, "hub.challenge": "1"},
    )
    assert response.status_code == 403


async def test_signed_event_is_stored_byte_for_byte_and_enqueued(
    client: httpx.AsyncClient, database: Database, redis_client: redis.Redis
) -> None:
    raw = b'{"object": "whatsapp_business_account",  "entry": [], "note": "caf\\u00e9 \xc3\xa9"}'
    response = await client.post(WEBHOOK_PATH, content=raw, headers=signed_headers(raw))
    assert response.status_code == 200
    [row] = database.inbox()
    assert row["body"].encode() == raw
    assert row["status"] == "pending"
    jobs = await queued_jobs_eventually(redis_client, "messages", 1)
    assert jobs == [{"actor": "webhook.process_events", "payload": {"event_ids": [row["id"]]}}]


async def test_missing_signature_is_401_and_nothing_is_stored(client: httpx.AsyncClient, database: Database) -> None:
    response = await client.post(WEBHOOK_PATH, content=encode(reference("status_sent")))
    assert response.status_code == 401
    assert response.json()["code"] == "signature_missing"
    assert database.inbox() == []


async def test_forged_signature_is_401_and_nothing_is_stored(client: httpx.AsyncClient, database: Database) -> None:
    raw = encode(reference("status_sent"))
    response = await client.post(WEBHOOK_PATH, content=raw, headers=signed_headers(raw, secret="not-the-secret"))
    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert response.json()["errors"][0]["field"] == "X-Hub-Signature-256"
    assert database.inbox() == []


async def test_signature_over_different_bytes_is_refused(client: httpx.AsyncClient, database: Database) -> None:
    raw = encode(reference("status_sent"))
    tampered = raw.replace(b"delivered", b"read").replace(b'"sent"', b'"read"')
    response = await client.post(WEBHOOK_PATH, content=tampered, headers=signed_headers(raw))
    assert response.status_code == 401
    assert database.inbox() == []


async def test_malformed_json_is_400_and_not_stored(client: httpx.AsyncClient, database: Database) -> None:
    response = await post_signed(client, b'{"object": "whatsapp_business_account", "entry": [')
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert response.json()["errors"][0]["field"] == "body"
    assert database.inbox() == []


async def test_json_that_is_not_an_object_is_400(client: httpx.AsyncClient, database: Database) -> None:
    response = await post_signed(client, b"[1, 2, 3]")
    assert response.status_code == 400
    assert database.inbox() == []


async def test_body_over_three_megabytes_is_413_and_not_stored(client: httpx.AsyncClient, database: Database) -> None:
    body = reference("inbound_text")
    body["padding"] = "x" * (3 * 1_048_576)
    response = await post_signed(client, body)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert database.inbox() == []


async def test_body_just_under_the_limit_above_the_default_limit_is_stored(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = reference("inbound_text")
    body["padding"] = "x" * (2 * 1_048_576)  # over the 1 MB default for other routes
    response = await post_signed(client, body)
    assert response.status_code == 200
    assert len(database.inbox()) == 1


async def test_rejected_requests_lose_nothing_already_stored(client: httpx.AsyncClient, database: Database) -> None:
    first = encode(reference("status_sent"))
    assert (await post_signed(client, first)).status_code == 200
    await client.post(WEBHOOK_PATH, content=b"{}", headers=signed_headers(b"{}", secret="forged"))
    await post_signed(client, b"not json")
    await client.post(WEBHOOK_PATH, content=first)
    [row] = database.inbox()
    assert row["body"].encode() == first


async def test_concurrent_deliveries_are_each_stored_once(
    client: httpx.AsyncClient, database: Database, redis_client: redis.Redis
) -> None:
    bodies = []
    for index in range(60):
        body = reference("status_sent")
        body["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = f"wamid.CONCURRENT{index}"
        bodies.append(encode(body))
    responses = await asyncio.gather(*(post_signed(client, raw) for raw in bodies))
    assert all(response.status_code == 200 for response in responses)
    rows = database.inbox()
    assert sorted(row["body"].encode() for row in rows) == sorted(bodies)
    queued = await queued_events_eventually(redis_client, len(bodies))
    assert sorted(queued) == sorted(
        row["id"] for row in rows
    )


async def test_ids_committed_while_a_job_is_being_sent_share_the_next_job(redis_client: redis.Redis) -> None:
    from herald.settings import get_settings
    from services.webhook.ingest import JobSender

    sender = JobSender(get_settings().redis_url, max_job=3, gather_seconds=0.05)
    sender.add([1])
    sender.add([2, 3])  # within the gathering time: these join its job
    await asyncio.sleep(0.1)  # the first job is sent (or, on a slow machine, still gathering)
    sender.add([4])
    sender.add([5, 6, 7, 8])
    await sender.drain()
    await sender.close()
    # Whichever of the two, at most `max_job` ids per job, in the order they were committed.
    jobs = [job["payload"]["event_ids"] for job in await queued_jobs_eventually(redis_client, "messages", 3)]
    assert sorted(jobs) == [[1, 2, 3], [4, 5, 6], [7, 8]]


async def test_a_job_that_cannot_be_sent_is_logged_and_left_to_the_relay() -> None:
    from services.webhook.ingest import JobSender

    sender = JobSender("redis://127.0.0.1:1/0")  # nothing listens there
    sender.add([1, 2])
    await sender.drain()  # gives up without raising: the rows stay `pending` for the relay
    await sender.close()
