"""The inbox around intake: the admin API, `herald webhook list|replay`, the relay of stale rows,
and a streamed oversize body against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from typer.testing import CliRunner

from herald.clock import utcnow
from herald.db import session_scope
from herald.webhooks.inbox import relay_stale_events
from services.webhook.cli import app as cli
from tests.fixtures.auth import TestUser
from tests.webhook.conftest import WEBHOOK_PATH, Database, ServerProcess, queued_jobs
from tests.webhook.payloads import signed_headers

pytestmark = pytest.mark.usefixtures("dispose_engines")
EVENTS = "/api/v1/webhook-events"


def _insert(database: Database, status: str, *, error: str | None = None, received_minutes_ago: float = 0,
            due_minutes_ago: float = 0) -> int:  # fmt: skip
    """One inbox row as a finished (or stale) event leaves it."""
    now = utcnow()
    row = database.rows(
        "INSERT INTO webhook_events (body, status, attempts, error, received_at, due_at)"
        " VALUES (%s, %s, 1, %s, %s, %s) RETURNING id",
        '{"object":"whatsapp_business_account","entry":[]}', status, error,
        now - timedelta(minutes=received_minutes_ago), now - timedelta(minutes=due_minutes_ago),
    )  # fmt: skip
    return int(row[0]["id"])


def _process_jobs(redis_client: redis.Redis) -> list[int]:
    return sorted(
        job["payload"]["event_id"] for job in queued_jobs(redis_client, "messages") if job["actor"] == "webhook.process_event"
    )


# --- admin API ------------------------------------------------------------------------------------


async def test_list_filters_by_status_newest_first(client: httpx.AsyncClient, admin: TestUser, database: Database) -> None:
    failed_old = _insert(database, "failed", error="KeyError: 'entry'")
    _insert(database, "processed")
    failed_new = _insert(database, "failed", error="ValueError")
    response = await client.get(EVENTS, params={"status": "failed"}, headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["data"]] == [failed_new, failed_old]
    assert body["count"] == 2 and body["next_before_id"] is None
    assert body["data"][1]["error"] == "KeyError: 'entry'" and "body" not in body["data"][0]


async def test_list_pages_with_before_id(client: httpx.AsyncClient, admin: TestUser, database: Database) -> None:
    ids = [_insert(database, "processed") for _ in range(5)]
    first = (await client.get(EVENTS, params={"limit": 2}, headers=admin.headers)).json()
    assert [row["id"] for row in first["data"]] == ids[:-3:-1] and first["count"] == 5
    second = (await client.get(EVENTS, params={"limit": 2, "before_id": first["next_before_id"]},
                               headers=admin.headers)).json()  # fmt: skip
    assert [row["id"] for row in second["data"]] == [ids[2], ids[1]]


async def test_list_filters_by_received_window(client: httpx.AsyncClient, admin: TestUser, database: Database) -> None:
    _insert(database, "processed", received_minutes_ago=120)
    recent = _insert(database, "processed", received_minutes_ago=5)
    since = (utcnow() - timedelta(minutes=60)).isoformat()
    response = await client.get(EVENTS, params={"from": since}, headers=admin.headers)
    assert [row["id"] for row in response.json()["data"]] == [recent]


async def test_list_with_a_time_without_zone_is_422_naming_it(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.get(EVENTS, params={"from": "2025-01-01T00:00:00"}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "from"


async def test_operator_cannot_read_the_inbox(client: httpx.AsyncClient, operator: TestUser) -> None:
    assert (await client.get(EVENTS, headers=operator.headers)).status_code == 403


async def test_inbox_needs_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get(EVENTS)).status_code == 401


async def test_detail_has_the_raw_body(client: httpx.AsyncClient, admin: TestUser, database: Database) -> None:
    event_id = _insert(database, "skipped", error="ignored: field foo")
    response = await client.get(f"{EVENTS}/{event_id}", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["body"] == '{"object":"whatsapp_business_account","entry":[]}'
    assert response.json()["status"] == "skipped"


async def test_unknown_event_is_404(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.get(f"{EVENTS}/999999", headers=admin.headers)
    assert response.status_code == 404 and response.json()["code"] == "webhook_event_not_found"


async def test_replay_one_puts_it_back_to_pending_and_enqueues_it(
    client: httpx.AsyncClient, admin: TestUser, database: Database, redis_client: redis.Redis
) -> None:
    event_id = _insert(database, "processed")
    response = await client.post(f"{EVENTS}/{event_id}/replay", headers=admin.headers)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["attempts"], response.json()["error"]) == ("pending", 0, None)
    assert _process_jobs(redis_client) == [event_id]


async def test_replay_failed_replays_only_failed_rows(
    client: httpx.AsyncClient, admin: TestUser, database: Database, redis_client: redis.Redis
) -> None:
    failed = [_insert(database, "failed", error="boom") for _ in range(2)]
    skipped = _insert(database, "skipped")
    response = await client.post(f"{EVENTS}/replay-failed", headers=admin.headers)
    assert response.status_code == 202
    assert sorted(response.json()["ids"]) == failed and response.json()["replayed"] == 2
    assert _process_jobs(redis_client) == failed
    assert database.one("SELECT status FROM webhook_events WHERE id = %s", skipped)["status"] == "skipped"


async def test_bulk_replay_of_processed_rows_is_422_naming_status(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.post(f"{EVENTS}/replay-failed", params={"status": "processed"}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


# --- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()
    from herald import db

    db.sync_engine().dispose()


def test_cli_list_failed_shows_the_error(runner: CliRunner, database: Database) -> None:
    failed = _insert(database, "failed", error="KeyError: 'entry'")
    _insert(database, "processed")
    result = runner.invoke(cli, ["list", "--failed"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{failed}\t") and "failed" in lines[0] and "KeyError: 'entry'" in lines[0]
    assert lines[-1] == "1 shown of 1"


def test_cli_replay_by_id_enqueues_it(runner: CliRunner, database: Database, redis_client: redis.Redis) -> None:
    event_id = _insert(database, "failed", error="boom")
    result = runner.invoke(cli, ["replay", "--id", str(event_id)])
    assert result.exit_code == 0, result.output
    assert f"replayed 1 event(s): {event_id}" in result.output
    assert database.one("SELECT status, error FROM webhook_events WHERE id = %s", event_id) == {
        "status": "pending", "error": None,
    }  # fmt: skip
    assert _process_jobs(redis_client) == [event_id]


def test_cli_replay_skipped_leaves_failed_rows(runner: CliRunner, database: Database, redis_client: redis.Redis) -> None:
    skipped = _insert(database, "skipped")
    failed = _insert(database, "failed")
    result = runner.invoke(cli, ["replay", "--skipped"])
    assert result.exit_code == 0, result.output
    assert _process_jobs(redis_client) == [skipped]
    assert database.one("SELECT status FROM webhook_events WHERE id = %s", failed)["status"] == "failed"


def test_cli_replay_of_an_unknown_id_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["replay", "--id", "999999"])
    assert result.exit_code == 1
    assert "no webhook event 999999" in result.output


@pytest.mark.parametrize("arguments", [[], ["--failed", "--skipped"], ["--id", "1", "--failed"]])
def test_cli_replay_needs_exactly_one_choice(runner: CliRunner, arguments: list[str]) -> None:
    result = runner.invoke(cli, ["replay", *arguments])
    assert result.exit_code == 2


# --- relay ----------------------------------------------------------------------------------------


async def test_relay_re_enqueues_only_stale_pending_rows(database: Database, redis_client: redis.Redis) -> None:
    stale = _insert(database, "pending", due_minutes_ago=10)
    fresh = _insert(database, "pending", due_minutes_ago=0)
    _insert(database, "failed", due_minutes_ago=10)
    async with session_scope() as session:
        relayed = await relay_stale_events(session, older_than_seconds=60)
    assert relayed == 1
    assert _process_jobs(redis_client) == [stale]
    due = {row["id"]: row["due_at"] for row in database.inbox()}
    assert due[stale] > utcnow() - timedelta(seconds=60) and fresh in due


async def test_relayed_row_is_left_alone_until_it_is_stale_again(database: Database, redis_client: redis.Redis) -> None:
    _insert(database, "pending", due_minutes_ago=10)
    async with session_scope() as session:
        assert await relay_stale_events(session, older_than_seconds=60) == 1
    async with session_scope() as session:
        assert await relay_stale_events(session, older_than_seconds=60) == 0
    assert len(_process_jobs(redis_client)) == 1


async def test_relay_sends_nothing_when_the_transaction_rolls_back(database: Database, redis_client: redis.Redis) -> None:
    _insert(database, "pending", due_minutes_ago=10)
    with pytest.raises(RuntimeError):
        async with session_scope() as session:
            await relay_stale_events(session, older_than_seconds=60)
            raise RuntimeError("rolled back")
    assert _process_jobs(redis_client) == []
    assert database.inbox()[0]["due_at"] < utcnow() - timedelta(minutes=5)


# --- a real server --------------------------------------------------------------------------------


def test_streamed_body_over_the_limit_without_length_is_413_and_not_stored(
    webhook_server: ServerProcess, database: Database
) -> None:
    chunk = b"x" * 65536
    chunks = 3 * 1_048_576 // len(chunk) + 2  # just past the 3 MB webhook limit

    def body() -> Iterator[bytes]:
        yield b'{"padding": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    headers: dict[str, Any] = signed_headers(b"{}")  # never checked: the size limit comes first
    response = httpx.post(f"{webhook_server.url}{WEBHOOK_PATH}", content=body(), headers=headers, timeout=30)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert database.inbox() == []


def test_real_server_stores_a_signed_event(webhook_server: ServerProcess, database: Database) -> None:
    raw = b'{"object":"whatsapp_business_account","entry":[]}'
    response = httpx.post(f"{webhook_server.url}{WEBHOOK_PATH}", content=raw, headers=signed_headers(raw), timeout=30)
    assert response.status_code == 200 and response.json() == {"received": True}
    assert [row["body"] for row in database.inbox()] == [raw.decode()]
