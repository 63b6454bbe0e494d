"""Every registered job resolves to a real function; the template-sync and webhook-relay jobs work
against the simulator and the real inbox; the scheduler starts what is due and never twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from herald.jobs.registry import JOBS, get_job
from herald.jobs.runner import resolve_target, run_job
from herald.jobs.scheduler import Scheduler, next_fire
from herald.settings import get_settings
from tests.fixtures.simulator import REPO_ROOT, SimulatorHandle, start_simulator


@pytest.mark.parametrize("spec", JOBS, ids=[job.name for job in JOBS])
def test_every_registered_job_resolves_to_a_function(spec) -> None:
    assert callable(resolve_target(spec.target))


def test_job_names_are_unique_and_lock_keys_distinct() -> None:
    assert len({job.name for job in JOBS}) == len(JOBS)
    assert len({job.lock_key for job in JOBS}) == len(JOBS)


@pytest.fixture
def simulator(monkeypatch) -> Iterator[SimulatorHandle]:
    handle = start_simulator()
    monkeypatch.setenv("WHATSAPP_API_BASE_URL", handle.url)
    monkeypatch.setenv("WHATSAPP_TOKEN", handle.token)
    monkeypatch.setenv("BUSINESS_ID", handle.waba_id)
    monkeypatch.setenv("PHONE_NUMBER_ID", handle.phone_number_id)
    get_settings.cache_clear()
    yield handle
    handle.stop()


def test_template_sync_job_fetches_the_wabas_templates(simulator: SimulatorHandle, database_url: str) -> None:
    outcome = run_job(get_job("template-sync"))
    assert outcome.outcome == "succeeded", outcome.error
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT name || ':' || language, status FROM message_templates").fetchall())
    assert rows["hello_world:en_US"] == "APPROVED"
    assert rows["spring_sale:en_US"] == "PAUSED"
    assert outcome.counts["created"] == len(rows)
    # A second run creates nothing new.
    assert run_job(get_job("template-sync")).counts["created"] == 0


def test_webhook_relay_job_reenqueues_only_stale_pending_events(database_url: str, redis_client) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for status in ("pending", "processed", "failed"):
            conn.execute(
                "INSERT INTO webhook_events (received_at, due_at, body, status, attempts) VALUES (%s, %s, '{}', %s, 0)",
                (old, old, status),
            )
        conn.execute(
            "INSERT INTO webhook_events (received_at, due_at, body, status, attempts) VALUES (now(), now(), '{}', 'pending', 0)"
        )
    outcome = run_job(get_job("webhook-relay"))
    assert outcome.counts == {"relayed": 1}
    assert redis_client.llen("herald:messages") == 1


def test_scheduler_starts_due_jobs_once_and_not_while_still_running(tmp_path) -> None:
    marker = tmp_path / "runs"
    # A stand-in command that records its argument and keeps running, like a long job.
    script = f"import sys, time; open({str(marker)!r}, 'a').write(sys.argv[1] + '\\n'); time.sleep(30)"
    spec = get_job("automation-schedule")  # every minute
    scheduler = Scheduler(jobs=(spec,), command=[sys.executable, "-c", script])
    start = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
    scheduler.slots[0].due = next_fire(spec, start)
    assert scheduler.tick(start) == []
    assert scheduler.tick(start + timedelta(seconds=31)) == ["automation-schedule"]
    # Due again a minute later, but the previous run is still going: not started twice.
    assert scheduler.tick(start + timedelta(seconds=91)) == []
    scheduler.slots[0].process.kill()
    scheduler.slots[0].process.wait()
    assert scheduler.tick(start + timedelta(seconds=151)) == ["automation-schedule"]
    scheduler.slots[0].process.kill()
    scheduler.slots[0].process.wait()


def test_job_entrypoint_exit_codes(database_url: str) -> None:
    env = {**os.environ}
    ok = subprocess.run([sys.executable, "-m", "herald.cli", "job", "retention-cleanup"], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert '"outcome": "succeeded"' in ok.stdout
    unknown = subprocess.run([sys.executable, "-m", "herald.cli", "job", "no-such-job"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2
    assert "known jobs" in unknown.stderr


def test_next_fire_respects_the_jobs_time_zone() -> None:
    from herald.jobs.registry import JobSpec

    spec = JobSpec("t", "0 9 * * *", "Europe/Madrid", "x:y", "")
    fire = next_fire(spec, datetime(2026, 7, 1, 6, 0, tzinfo=UTC))
    assert fire == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # 09:00 in Madrid (UTC+2 in summer)
