from __future__ import annotations

import threading
import time
import uuid

import httpx
import redis

from tests.contacts.conftest import queued_contact_events
from tests.fixtures.auth import TestUser


async def test_create_queues_a_created_event_on_the_automation_queue(
    api: httpx.AsyncClient, operator: TestUser, redis_client: redis.Redis
) -> None:
    created = (await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers=operator.headers)).json()
    events = queued_contact_events(redis_client)
    assert [(e["kind"], e["contact_id"]) for e in events] == [("created", created["id"])]


async def test_rejected_create_queues_nothing(api: httpx.AsyncClient, operator: TestUser, redis_client: redis.Redis) -> None:
    await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers=operator.headers)
    before = len(queued_contact_events(redis_client))
    duplicate = await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers=operator.headers)
    assert duplicate.status_code == 409
    assert len(queued_contact_events(redis_client)) == before


async def test_tag_and_attribute_changes_queue_one_event_each(
    api: httpx.AsyncClient, operator: TestUser, redis_client: redis.Redis
) -> None:
    created = (
        await api.post(
            "/api/v1/contacts", json={"phone": "+14155550101", "tags": ["a"], "attributes": {"plan": "gold"}},
            headers=operator.headers,
        )
    ).json()
    redis_client.flushdb()
    await api.post(f"/api/v1/contacts/{created['id']}/tags", json={"tags": ["a", "b"]}, headers=operator.headers)
    await api.patch(
        f"/api/v1/contacts/{created['id']}", json={"attributes": {"plan": "gold", "seats": 2}}, headers=operator.headers
    )
    events = [(e["kind"], e["data"]) for e in queued_contact_events(redis_client)]
    assert events == [
        ("tag_added", {"tag": "b"}),
        ("attribute_changed", {"attribute": "seats", "old": None, "new": 2}),
    ]


async def test_opt_out_queues_opted_out_with_source_once(
    api: httpx.AsyncClient, operator: TestUser, redis_client: redis.Redis
) -> None:
    created = (await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers=operator.headers)).json()
    redis_client.flushdb()
    for _ in range(2):
        await api.post(f"/api/v1/contacts/{created['id']}/opt-out", json={"source": "keyword"}, headers=operator.headers)
    events = [(e["kind"], e["data"]) for e in queued_contact_events(redis_client)]
    assert events == [("opted_out", {"source": "keyword"})]


async def test_import_queues_created_only_for_new_rows(
    api: httpx.AsyncClient, operator: TestUser, redis_client: redis.Redis
) -> None:
    await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers=operator.headers)
    redis_client.flushdb()
    content = b"phone,tags\n+14155550101,vip\n+14155550102,\n+14155550103,\n"
    await api.post("/api/v1/contacts/import", files={"file": ("c.csv", content, "text/csv")}, headers=operator.headers)
    kinds = sorted(e["kind"] for e in queued_contact_events(redis_client))
    assert kinds == ["created", "created", "tag_added"]


async def test_a_worker_consuming_the_contract_receives_the_event(
    api: httpx.AsyncClient, operator: TestUser
) -> None:
    import dramatiq

    from herald.contracts import CONTACT_EVENT, ContactEvent, Queue
    from herald.queue import actor, get_broker

    received: list[ContactEvent] = []
    done = threading.Event()

    @actor(CONTACT_EVENT)
    def record(event: ContactEvent) -> None:
        received.append(event)
        done.set()

    created = (await api.post("/api/v1/contacts", json={"phone": "+14155550101"}, headers=operator.headers)).json()
    worker = dramatiq.Worker(get_broker(), worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert record.queue_name == Queue.AUTOMATION.value
    assert [(e.kind, e.contact_id) for e in received] == [("created", uuid.UUID(created["id"]))]


async def test_a_worker_receives_the_events_of_an_import(api: httpx.AsyncClient, operator: TestUser) -> None:
    import dramatiq

    from herald.contracts import CONTACT_EVENT, ContactEvent
    from herald.queue import actor, get_broker

    received: list[ContactEvent] = []

    @actor(CONTACT_EVENT)
    def record(event: ContactEvent) -> None:
        received.append(event)

    content = b"phone\n+14155550101\n+14155550102\n+14155550103\n"
    report = await api.post(
        "/api/v1/contacts/import", files={"file": ("c.csv", content, "text/csv")}, headers=operator.headers
    )
    assert report.json()["created"] == 3
    worker = dramatiq.Worker(get_broker(), worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert sorted(e.kind for e in received) == ["created"] * 3
    assert len({e.contact_id for e in received}) == 3
