"""The hourly rollup against the real database: exact counts, idempotent, late statuses folded in."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from herald.analytics.rollup import rollup
from herald.jobs.registry import get_job
from herald.jobs.runner import run_job
from tests.jobs.factories import insert_automation, insert_contact, insert_message

HOUR = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _analytics(database_url: str) -> dict[tuple, tuple]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT hour, scope, scope_key, queued, sent, delivered, read, failed, inbound, replies,"
            " opt_outs, contacts_added, failures_by_code FROM analytics"
        ).fetchall()
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def _seed_traffic(database_url: str, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    with psycopg.connect(database_url, autocommit=True) as conn:
        automation = insert_automation(conn)
        contacts = [insert_contact(conn, created_at=HOUR + timedelta(minutes=rng.randrange(0, 120))) for _ in range(30)]
        for contact in contacts:
            for _ in range(rng.randrange(1, 4)):
                queued = HOUR + timedelta(minutes=rng.randrange(0, 110))
                outcome = rng.choice(["sent", "delivered", "read", "failed"])
                sent = queued + timedelta(seconds=30) if outcome != "failed" else None
                delivered = sent + timedelta(minutes=rng.randrange(0, 20)) if outcome in {"delivered", "read"} and sent else None
                read = delivered + timedelta(minutes=rng.randrange(0, 20)) if outcome == "read" and delivered else None
                failed = queued + timedelta(minutes=1) if outcome == "failed" else None
                insert_message(
                    conn, contact, status=outcome, queued_at=queued, sent_at=sent, delivered_at=delivered,
                    read_at=read, failed_at=failed, error_code=rng.choice([131026, 131047]) if failed else None,
                    automation_id=automation if rng.random() < 0.5 else None,
                    template=rng.choice([("birthday_greeting", "en_US"), ("order_update", "en_US")]),
                )
            if rng.random() < 0.4:
                insert_message(conn, contact, direction="inbound", status="received", template=None,
                               received_at=HOUR + timedelta(minutes=rng.randrange(60, 119)))
    return {"automation": automation}


def _expected_overall(database_url: str, hour: datetime) -> dict[str, int]:
    """The same numbers counted directly from the source tables, independently of the rollup code."""
    end = hour + timedelta(hours=1)
    with psycopg.connect(database_url) as conn:
        def count(sql: str) -> int:
            return conn.execute(sql, {"s": hour, "e": end}).fetchone()[0]

        return {
            "queued": count("SELECT count(*) FROM messages WHERE direction='outbound' AND queued_at >= %(s)s AND queued_at < %(e)s"),
            "sent": count("SELECT count(*) FROM messages WHERE direction='outbound' AND sent_at >= %(s)s AND sent_at < %(e)s"),
            "delivered": count("SELECT count(*) FROM messages WHERE delivered_at >= %(s)s AND delivered_at < %(e)s"),
            "read": count("SELECT count(*) FROM messages WHERE read_at >= %(s)s AND read_at < %(e)s"),
            "failed": count("SELECT count(*) FROM messages WHERE failed_at >= %(s)s AND failed_at < %(e)s"),
            "inbound": count("SELECT count(*) FROM messages WHERE direction='inbound' AND received_at >= %(s)s AND received_at < %(e)s"),
            "contacts_added": count("SELECT count(*) FROM contacts WHERE created_at >= %(s)s AND created_at < %(e)s"),
        }


def test_rollup_matches_counts_computed_directly_from_messages(database_url: str) -> None:
    _seed_traffic(database_url)
    rollup(now=HOUR + timedelta(hours=3), hours=[HOUR, HOUR + timedelta(hours=1)])
    stored = _analytics(database_url)
    for hour in (HOUR, HOUR + timedelta(hours=1)):
        expected = _expected_overall(database_url, hour)
        row = stored[(hour, "overall", "")]
        actual = dict(zip(("queued", "sent", "delivered", "read", "failed", "inbound"), row[:6], strict=True))
        actual["contacts_added"] = row[8]
        assert actual == expected
        assert sum(row[9].values()) == expected["failed"]


def test_per_automation_and_per_template_rows_add_up_to_the_overall_row(database_url: str) -> None:
    _seed_traffic(database_url)
    rollup(now=HOUR + timedelta(hours=3), hours=[HOUR])
    stored = _analytics(database_url)
    overall = stored[(HOUR, "overall", "")]
    template_rows = [v for (h, scope, _), v in stored.items() if h == HOUR and scope == "template"]
    assert sum(r[1] for r in template_rows) == overall[1]  # sent: every outbound here has a template
    with psycopg.connect(database_url) as conn:
        direct = conn.execute(
            "SELECT automation_id::text, count(*) FROM messages WHERE sent_at >= %s AND sent_at < %s"
            " AND automation_id IS NOT NULL GROUP BY 1", (HOUR, HOUR + timedelta(hours=1))
        ).fetchall()
    for automation_id, sent in direct:
        assert stored[(HOUR, "automation", automation_id)][1] == sent


def test_second_run_changes_nothing(database_url: str) -> None:
    _seed_traffic(database_url)
    hours = [HOUR, HOUR + timedelta(hours=1)]
    rollup(now=HOUR + timedelta(hours=3), hours=hours)
    first = _analytics(database_url)
    rollup(now=HOUR + timedelta(hours=3), hours=hours)
    assert _analytics(database_url) == first


def test_late_status_is_folded_into_the_hour_it_happened(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        contact = insert_contact(conn, created_at=HOUR)
        message = insert_message(conn, contact, status="sent", queued_at=HOUR, sent_at=HOUR + timedelta(minutes=1))
    rollup(now=HOUR + timedelta(hours=2))
    assert _analytics(database_url)[(HOUR, "overall", "")][2] == 0  # nothing delivered yet
    # The delivered status arrives hours later but says delivery happened at 10:30.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE messages SET status='delivered', delivered_at=%s WHERE id=%s", (HOUR + timedelta(minutes=30), message))
    rollup(now=HOUR + timedelta(hours=6))
    stored = _analytics(database_url)
    assert stored[(HOUR, "overall", "")][2] == 1
    assert stored[(HOUR, "overall", "")][1] == 1  # still sent once, not double counted


def test_replies_are_attributed_to_the_last_outbound_message(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        automation = insert_automation(conn)
        contact = insert_contact(conn, created_at=HOUR - timedelta(days=1))
        insert_message(conn, contact, status="read", queued_at=HOUR, sent_at=HOUR + timedelta(minutes=1),
                       automation_id=automation)
        insert_message(conn, contact, direction="inbound", status="received", template=None,
                       received_at=HOUR + timedelta(minutes=20))
        stranger = insert_contact(conn, created_at=HOUR - timedelta(days=1))
        insert_message(conn, stranger, direction="inbound", status="received", template=None,
                       received_at=HOUR + timedelta(minutes=25))
    rollup(now=HOUR + timedelta(hours=2), hours=[HOUR])
    stored = _analytics(database_url)
    assert stored[(HOUR, "overall", "")][5:7] == (2, 1)  # inbound 2, replies 1
    assert stored[(HOUR, "automation", str(automation))][6] == 1


def test_two_concurrent_job_runs_do_the_work_once(database_url: str) -> None:
    _seed_traffic(database_url)
    spec = get_job("analytics-rollup")
    outcomes = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        outcomes.append(run_job(spec, HOUR + timedelta(hours=3)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.outcome for o in outcomes) in (["skipped", "succeeded"], ["succeeded", "succeeded"])
    with psycopg.connect(database_url) as conn:
        recorded = conn.execute(
            "SELECT event, count(*) FROM logs WHERE entity_id = 'analytics-rollup' GROUP BY event"
        ).fetchall()
    assert sum(count for _, count in recorded) == 2
    # Whatever the interleaving, the table holds one set of rows, equal to a clean recompute.
    first = _analytics(database_url)
    rollup(now=HOUR + timedelta(hours=3), hours=sorted({h for h, _, _ in first}))
    assert _analytics(database_url) == first


@pytest.mark.parametrize("name", ["analytics-rollup", "retention-cleanup"])
def test_job_run_is_recorded_in_logs(database_url: str, name: str) -> None:
    outcome = run_job(get_job(name), HOUR)
    assert outcome.outcome == "succeeded"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT event, data->>'outcome', data ? 'counts' FROM logs WHERE entity_type='job' AND entity_id=%s", (name,)
        ).fetchone()
    assert row == ("job.succeeded", "succeeded", True)


def test_job_is_skipped_while_another_run_holds_its_lock(database_url: str) -> None:
    _seed_traffic(database_url)
    spec = get_job("analytics-rollup")
    with psycopg.connect(database_url, autocommit=True) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", (spec.lock_key,))
        outcome = run_job(spec, HOUR + timedelta(hours=3))
        other_run.execute("SELECT pg_advisory_unlock(%s)", (spec.lock_key,))
    assert outcome.outcome == "skipped"
    assert _analytics(database_url) == {}
    assert run_job(spec, HOUR + timedelta(hours=3)).outcome == "succeeded"
    assert _analytics(database_url) != {}
