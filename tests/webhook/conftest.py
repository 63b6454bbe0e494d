"""Webhook tests: the app over HTTP, a real worker process on the messages queue, row helpers."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
from psycopg.rows import dict_row

from tests.fixtures.simulator import REPO_ROOT, wait_until
from tests.webhook.payloads import encode, signed_headers

WEBHOOK_PATH = "/webhooks/whatsapp"
_phones = itertools.count(100)
_wamids = itertools.count(1)


def next_wa_id() -> str:
    return f"1415555{next(_phones):04d}"


def next_wamid() -> str:
    return f"wamid.TEST{uuid.uuid4().hex}{next(_wamids)}"


@pytest.fixture
async def client(dispose_engines: None) -> AsyncIterator[httpx.AsyncClient]:
    from services.webhook.app import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://webhook.test") as http:
        yield http


async def post_signed(client: httpx.AsyncClient, body: dict[str, Any] | bytes) -> httpx.Response:
    raw = body if isinstance(body, bytes) else encode(body)
    return await client.post(WEBHOOK_PATH, content=raw, headers=signed_headers(raw))


class Database:
    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=dict_row) as connection:
            return connection.execute(sql, params).fetchall()

    def one(self, sql: str, *params: Any) -> dict[str, Any]:
        rows = self.rows(sql, *params)
        assert len(rows) == 1, rows
        return rows[0]

    def execute(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(sql, params)

    def inbox(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM webhook_events ORDER BY id")

    def settled(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until every inbox row is finished (processed, skipped or failed)."""

        def done() -> list[dict[str, Any]] | None:
            rows = self.inbox()
            return rows if rows and all(row["status"] != "pending" for row in rows) else None

        return wait_until(done, timeout=timeout, interval=0.05)


@pytest.fixture
def database(database_url: str) -> Database:
    return Database(database_url)


def queued_jobs(redis_client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """Messages waiting on a Dramatiq queue (actor name and payload), without consuming them."""
    raw = redis_client.hgetall(f"herald:{queue}.msgs")
    jobs = [orjson.loads(value) for value in raw.values()]  # type: ignore[union-attr]
    return [{"actor": job["actor_name"], "payload": job["args"][0]} for job in jobs]


class WorkerProcess:
    def __init__(self, env: dict[str, str], modules: tuple[str, ...]) -> None:
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "herald.runner:setup_broker", *modules,
             "--queues", "messages", "--processes", "1", "--threads", "4"],
            cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


WORKER_SETTINGS = {
    "HERALD_WEBHOOK_RETRY_BASE_MS": "200",
    "HERALD_WEBHOOK_UNKNOWN_MESSAGE_RETRIES": "2",
    "HERALD_LOG_FORMAT": "json",
}


@pytest.fixture(scope="session")
def webhook_worker_process(herald_environment: dict[str, str]) -> Iterator[WorkerProcess]:
    """`dramatiq` with the webhook actors on the messages queue, for the whole session."""
    worker = WorkerProcess({**os.environ, **WORKER_SETTINGS}, ("services.webhook.actors",))
    time.sleep(0.5)
    if worker.process.poll() is not None:
        pytest.fail(f"webhook worker exited:\n{worker.output()}")
    yield worker
    worker.stop()


@pytest.fixture
def webhook_worker(webhook_worker_process: WorkerProcess) -> WorkerProcess:
    return webhook_worker_process
