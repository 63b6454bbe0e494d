"""The message-retry and message-recovery jobs against a real worker and the simulator:
retryable failures are resent, permanent ones are not, stuck and unhanded messages are recovered,
and the simulator's own record shows exactly one send for each."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import psycopg
import pytest

from herald.clock import utcnow
from herald.db import session_scope
from herald.jobs.registry import get_job
from herald.jobs.runner import run_job
from herald.messaging.content import TemplateContent
from herald.messaging.outbound import queue_message
from herald.messaging.templates import sync_templates
from tests.fixtures.simulator import SimulatorHandle, wait_until
from tests.messaging.factories import make_contact
from tests.messaging.workers import WorkerHandle, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dispose_engines")]


def _statuses(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        return {str(i): s for i, s in conn.execute("SELECT id, status FROM messages").fetchall()}


async def test_recovery_jobs_resend_what_was_never_sent_and_nothing_else(
    simulator: SimulatorHandle, workers: list[WorkerHandle], database_url: str, redis_client
) -> None:
    async with simulator.client() as client, session_scope() as session:
        await sync_templates(session, client)
    contacts = [await make_contact() for _ in range(4)]
    async with session_scope() as session:
        ids = [
            str((await queue_message(session, contact=c, content=TemplateContent(name="hello_world", language="en_US"))).id)
            for c in contacts
        ]
    retryable, permanent, stuck, unhanded = ids
    # Lose every broker message: as if Redis had been wiped while these were waiting.
    for key in redis_client.scan_iter("herald:messages*"):
        redis_client.delete(key)
    long_ago = utcnow() - timedelta(hours=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE messages SET status='failed', failed_at=%s, attempts=8, error_code=131000, retryable=true WHERE id=%s",
            (long_ago, retryable),
        )
        conn.execute(
            "UPDATE messages SET status='failed', failed_at=%s, attempts=1, error_code=131026, retryable=false WHERE id=%s",
            (long_ago, permanent),
        )
        conn.execute("UPDATE messages SET status='sending', sending_at=%s, attempts=1 WHERE id=%s", (long_ago, stuck))
        conn.execute("UPDATE messages SET enqueued_at=NULL, queued_at=%s WHERE id=%s", (long_ago, unhanded))

    retry = run_job(get_job("message-retry"))
    recovery = run_job(get_job("message-recovery"))
    assert retry.counts == {"requeued": 1}
    assert recovery.counts == {"relayed": 1, "requeued_from_sending": 1}

    workers.append(start_worker(simulator))
    wait_until(lambda: [_statuses(database_url)[i] for i in (retryable, stuck, unhanded)] == ["sent"] * 3, timeout=30)
    sent = Counter(m["biz_opaque_callback_data"] for m in simulator.messages(limit=1000))
    assert sent == {retryable: 1, stuck: 1, unhanded: 1}
    assert _statuses(database_url)[permanent] == "failed"

    # Running both jobs again finds nothing more to do.
    assert run_job(get_job("message-retry")).counts == {"requeued": 0}
    assert run_job(get_job("message-recovery")).counts == {"relayed": 0, "requeued_from_sending": 0}


async def test_a_failure_reported_after_meta_accepted_the_message_is_not_resent(database_url: str) -> None:
    contact = await make_contact()
    from tests.messaging.factories import make_template

    await make_template("hello_world", components=[{"type": "BODY", "text": "Hello"}])
    async with session_scope() as session:
        message = await queue_message(session, contact=contact, content=TemplateContent(name="hello_world", language="en_US"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Meta took it (a wamid), then a status webhook said failed with a retryable code.
        conn.execute(
            "UPDATE messages SET status='failed', wamid='wamid.X', failed_at=%s, attempts=1, error_code=131000,"
            " retryable=true WHERE id=%s",
            (utcnow() - timedelta(hours=1), message.id),
        )
    assert run_job(get_job("message-retry")).counts == {"requeued": 0}
