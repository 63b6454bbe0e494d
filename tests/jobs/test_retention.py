"""Retention removes exactly what is older than each cut-off, and nothing it must keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from herald.retention import cleanup
from tests.jobs.factories import insert_contact, insert_message

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _count(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchone()[0]


def test_retention_removes_exactly_what_is_older_than_the_cutoff(database_url: str) -> None:
    log_cutoff = NOW - timedelta(days=90)
    inbox_cutoff = NOW - timedelta(days=14)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for offset in (-2, -1, 1, 2):  # seconds around the cut-off
            conn.execute(
                "INSERT INTO logs (created_at, level, source, event, message, data) VALUES (%s, 'info', 't', 'e', '', '{}')",
                (log_cutoff + timedelta(seconds=offset),),
            )
        for offset, status in ((-5, "processed"), (-5, "failed"), (-5, "pending"), (5, "processed"), (-5, "skipped")):
            conn.execute(
                "INSERT INTO webhook_events (received_at, body, status, attempts) VALUES (%s, '{}', %s, 0)",
                (inbox_cutoff + timedelta(seconds=offset), status),
            )
        contact = insert_contact(conn, created_at=NOW - timedelta(days=900))
        insert_message(conn, contact, status="read", queued_at=NOW - timedelta(days=800), sent_at=NOW - timedelta(days=800))

    report = cleanup(NOW, batch_size=1)  # a batch of one exercises the batching loop

    assert report["deleted_logs"] == 2
    assert _count(database_url, f"SELECT count(*) FROM logs WHERE created_at < '{log_cutoff.isoformat()}'") == 0
    assert _count(database_url, "SELECT count(*) FROM logs") == 2
    assert report["deleted_webhook_events"] == 2  # old processed + old skipped
    # Failed and pending events are kept for inspection and replay, whatever their age.
    assert _count(database_url, "SELECT count(*) FROM webhook_events WHERE status IN ('failed', 'pending')") == 2
    # Messages and contacts are kept unless a retention setting says otherwise.
    assert "deleted_messages" not in report
    assert _count(database_url, "SELECT count(*) FROM messages") == 1
    assert _count(database_url, "SELECT count(*) FROM contacts") == 1


def test_second_cleanup_removes_nothing_more(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO logs (created_at, level, source, event, message, data) VALUES (%s, 'info', 't', 'e', '', '{}')",
            (NOW - timedelta(days=400),),
        )
    assert cleanup(NOW)["deleted_logs"] == 1
    assert cleanup(NOW)["deleted_logs"] == 0


def test_message_retention_applies_only_when_configured(database_url: str, monkeypatch) -> None:
    from herald.settings import get_settings

    with psycopg.connect(database_url, autocommit=True) as conn:
        contact = insert_contact(conn, created_at=NOW - timedelta(days=900))
        insert_message(conn, contact, status="read", queued_at=NOW - timedelta(days=800),
                       sent_at=NOW - timedelta(days=800), created_at=NOW - timedelta(days=800))
        insert_message(conn, contact, status="read", queued_at=NOW - timedelta(days=1),
                       sent_at=NOW - timedelta(days=1), created_at=NOW - timedelta(days=1))
    monkeypatch.setenv("HERALD_RETENTION_MESSAGES_DAYS", "365")
    get_settings.cache_clear()
    assert cleanup(NOW)["deleted_messages"] == 1
    assert _count(database_url, "SELECT count(*) FROM messages") == 1
