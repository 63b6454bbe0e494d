"""Scheduled jobs started twice at once (two schedulers, or a CronJob overlapping a slow run).

Proves: two `herald job message-recovery` processes racing over the same orphaned messages hand
each one over exactly once, and a run that finds the job's advisory lock held exits cleanly as
`skipped`, recorded in the logs table. (`herald scheduler` only launches `herald job`, so two
schedulers meet exactly this lock.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import dramatiq
import psycopg
import pytest
import redis

from herald.jobs.registry import get_job
from tests.fixtures.simulator import REPO_ROOT
from tests.messaging.workers import seed_contacts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

COUNT = 3000


def _job(name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "herald.cli", "job", name], cwd=REPO_ROOT, env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _orphaned_sending_messages(database_url: str, count: int) -> None:
    """Messages a dead worker left claimed (`sending`, no wamid) an hour ago."""
    seed_contacts(database_url, count)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO messages (id, contact_id, direction, type, category, status, body, attempts,"
            " queued_at, sending_at, enqueued_at, created_at, updated_at)"
            " SELECT gen_random_uuid(), id, 'outbound', 'template', 'utility', 'sending',"
            " '{\"type\": \"template\"}'::jsonb, 1, now() - interval '1 hour', now() - interval '1 hour',"
            " now() - interval '1 hour', now(), now() FROM contacts"
        )


def _handed_over(client: redis.Redis) -> Counter[str]:
    ids: Counter[str] = Counter()
    for raw in client.hvals("herald:messages.msgs"):
        message = dramatiq.Message.decode(raw)
        if message.actor_name == "messaging.send_messages":
            ids.update(str(i) for i in message.args[0]["message_ids"])
    return ids


def test_recovery_job_run_twice_at_once_hands_each_message_over_once(
    database_url: str, redis_client: redis.Redis
) -> None:
    _orphaned_sending_messages(database_url, COUNT)
    runs = [_job("message-recovery"), _job("message-recovery")]
    outputs = [run.communicate(timeout=120)[0].decode(errors="replace") for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    handed = _handed_over(redis_client)
    assert len(handed) == COUNT and set(handed.values()) == {1}
    with psycopg.connect(database_url) as connection:
        left = connection.execute("SELECT count(*) FROM messages WHERE status = 'sending'").fetchone()[0]  # type: ignore[index]
        outcomes = Counter(
            row[0] for row in connection.execute("SELECT event FROM logs WHERE entity_id = 'message-recovery'")
        )
    assert left == 0
    assert outcomes["job.succeeded"] >= 1 and sum(outcomes.values()) == 2


def test_job_finding_its_lock_held_skips_and_records_it(database_url: str) -> None:
    spec = get_job("message-recovery")
    with psycopg.connect(database_url, autocommit=True) as holder:
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (spec.lock_key,)).fetchone()[0]  # type: ignore[index]
        run = _job("message-recovery")
        output = run.communicate(timeout=120)[0].decode(errors="replace")
        assert run.returncode == 0, output
    with psycopg.connect(database_url) as connection:
        events = [row[0] for row in connection.execute("SELECT event FROM logs WHERE entity_id = 'message-recovery'")]
    assert events == ["job.skipped"]
