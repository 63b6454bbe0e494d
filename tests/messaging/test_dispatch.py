"""The send actor against the simulator over real HTTP, in a real worker process."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import psycopg
import pytest

from herald.db import session_scope
from herald.messaging.content import TemplateContent, TextContent
from herald.messaging.outbound import enqueue_send, queue_message
from herald.messaging.templates import sync_templates
from herald.models import Contact
from services.messaging.schemas import BroadcastIn, BroadcastTemplate
from services.messaging.service import create_broadcast
from tests.fixtures.simulator import SimulatorHandle, start_simulator, wait_until
from tests.messaging.factories import make_contact
from tests.messaging.workers import WorkerHandle, seed_contacts, start_worker, status_counts

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dispose_engines")]

HELLO = TemplateContent(name="hello_world", language="en_US")


async def _sync(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client, session_scope() as session:
        await sync_templates(session, client)


async def _queue(contacts: list[Contact], content: TemplateContent | TextContent = HELLO) -> list[str]:
    async with session_scope() as session:
        return [str((await queue_message(session, contact=c, content=content)).id) for c in contacts]


def _sent_ids(simulator: SimulatorHandle) -> Counter[str]:
    return Counter(m["biz_opaque_callback_data"] for m in simulator.messages(limit=100_000))


async def test_queued_template_is_sent_once_with_our_id(
    simulator: SimulatorHandle, workers: list[WorkerHandle], database_url: str
) -> None:
    await _sync(simulator)
    contact = await make_contact()
    [message_id] = await _queue([contact])
    workers.append(start_worker(simulator))
    wait_until(lambda: status_counts(database_url).get("sent") == 1, timeout=90)
    assert _sent_ids(simulator) == {message_id: 1}
    with psycopg.connect(database_url) as connection:
        wamid, attempts = connection.execute("SELECT wamid, attempts FROM messages").fetchone()  # type: ignore[misc]
    assert wamid.startswith("wamid.") and attempts == 1


async def test_server_errors_and_timeouts_are_retried_to_success(
    simulator: SimulatorHandle, workers: list[WorkerHandle], database_url: str
) -> None:
    await _sync(simulator)
    contacts = [await make_contact() for _ in range(5)]
    # The two hung requests never complete while the test runs (a black-holed request): a
    # timed-out request the API accepts later is the documented duplicate window, which
    # tests/reliability/test_cloud_api_faults.py counts; here the retries alone must not duplicate.
    simulator.configure(fault_5xx_count=6, fault_timeout_count=2, fault_timeout_seconds=600)
    ids = await _queue(contacts)
    workers.append(start_worker(simulator, WHATSAPP_TIMEOUT_SECONDS="1"))
    wait_until(lambda: status_counts(database_url).get("sent") == 5, timeout=120)
    sent = _sent_ids(simulator)
    assert set(sent) == set(ids)
    assert simulator.stats()["duplicates"] == 0


async def test_permanent_error_fails_fast_with_metas_code(
    simulator: SimulatorHandle, workers: list[WorkerHandle], database_url: str
) -> None:
    await _sync(simulator)
    simulator.configure(window_error_mode="sync")
    contact_in_window = await make_contact(inbound_hours_ago=1)
    # The simulator thinks this contact never wrote: it answers 131047 synchronously.
    await _queue([contact_in_window], TextContent(body="hello"))
    workers.append(start_worker(simulator))
    wait_until(lambda: status_counts(database_url).get("failed") == 1, timeout=90)
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT error_code, retryable, attempts, error_title FROM messages").fetchone()
    assert row is not None
    assert row[0] == 131047 and row[1] is False and row[2] == 1


async def test_window_closed_at_send_time_is_refused_without_calling_the_api(
    simulator: SimulatorHandle, workers: list[WorkerHandle], database_url: str
) -> None:
    contact = await make_contact(inbound_hours_ago=1)
    [message_id] = await _queue([contact], TextContent(body="hello"))
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE contacts SET last_inbound_at = now() - interval '2 days'")
    workers.append(start_worker(simulator))
    wait_until(lambda: status_counts(database_url).get("failed") == 1, timeout=90)
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT error_title FROM messages").fetchone()
    assert row == ("window_closed",)
    assert simulator.stats()["accepted"] == 0
    assert message_id


@pytest.mark.timeout(180)
async def test_broadcast_of_1000_at_80_per_second_reaches_everyone_once_without_throttling_errors(
    database_url: str, workers: list[WorkerHandle]
) -> None:
    simulator = start_simulator(throughput_per_second=80, pair_limit_enabled="false")
    try:
        await _sync(simulator)
        seed_contacts(database_url, 1000)
        async with session_scope() as session:
            # The broadcast path: one bulk insert per 1,000 recipients, jobs of 100 ids after commit.
            broadcast = await create_broadcast(
                session, BroadcastIn(template=BroadcastTemplate(name="hello_world", language="en_US")), None
            )
        assert getattr(broadcast, "audience_count", None) == 1000
        workers.append(start_worker(simulator, WHATSAPP_THROUGHPUT_PER_SECOND=80, HERALD_WORKER_THREADS=8))
        workers.append(start_worker(simulator, WHATSAPP_THROUGHPUT_PER_SECOND=80, HERALD_WORKER_THREADS=8))
        try:
            wait_until(lambda: status_counts(database_url).get("sent") == 1000, timeout=180, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{status_counts(database_url)} {simulator.stats()}") from None
        sent = _sent_ids(simulator)
        assert len(sent) == 1000 and set(sent.values()) == {1}
        stats = simulator.stats()
        assert stats["rejected_by_code"].get("130429", 0) == 0
        assert stats["duplicates"] == 0
    finally:
        simulator.stop()


@pytest.mark.timeout(420)
async def test_worker_killed_mid_broadcast_loses_nothing_and_duplicates_are_explained(
    database_url: str, workers: list[WorkerHandle]
) -> None:
    from herald.messaging.relay import relay_unhanded_messages, requeue_stuck_sending

    simulator = start_simulator(throughput_per_second=1000, pair_limit_enabled="false", fault_slow_ms=20)
    try:
        await _sync(simulator)
        contact_ids = seed_contacts(database_url, 600)
        async with session_scope() as session:
            message_ids = []
            for contact_id in contact_ids:
                contact = await session.get(Contact, contact_id)
                assert contact is not None
                message_ids.append((await queue_message(session, contact=contact, content=HELLO, enqueue=False)).id)
            enqueue_send(message_ids)
        first = start_worker(simulator, WHATSAPP_THROUGHPUT_PER_SECOND=150, HERALD_WORKER_THREADS=4)
        workers.append(first)
        try:
            wait_until(lambda: status_counts(database_url).get("sent", 0) >= 100, timeout=150, interval=0.05)
        except AssertionError:
            raise AssertionError(first.output()[-3000:]) from None
        first.kill()
        before = status_counts(database_url)
        assert before.get("sent", 0) < 600, "the worker finished before it was killed"
        # What the scheduled jobs do after a crash: stuck `sending` rows and unhanded queued rows.
        requeued = requeue_stuck_sending(stuck_after=timedelta(0))
        relay_unhanded_messages(stale_after=timedelta(0))
        workers.append(start_worker(simulator, WHATSAPP_THROUGHPUT_PER_SECOND=150, HERALD_WORKER_THREADS=4))
        wait_until(lambda: status_counts(database_url).get("sent") == 600, timeout=120, interval=0.2)
        sent = _sent_ids(simulator)
        assert set(sent) == {str(i) for i in message_ids}
        duplicates = simulator.stats()["duplicates"]
        # Only a message Meta accepted while its worker died before committing `sent` can go twice.
        assert duplicates == sum(n - 1 for n in sent.values()) <= requeued == before.get("sending", 0)
    finally:
        simulator.stop()
