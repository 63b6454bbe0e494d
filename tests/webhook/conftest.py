"""Webhook tests: the app over HTTP, a real worker process on the messages queue, row helpers."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
from psycopg.rows import dict_row

from tests.fixtures.processes import stop_process_group
from tests.fixtures.simulator import REPO_ROOT, free_port, wait_until, wait_until_async
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

    app = create_app()

    async def jobs_sent(_: httpx.Response) -> None:
        # The intake answers at commit and sends the processing job right after; tests then
        # wait synchronously for the worker, so let the send finish before handing back.
        writer = getattr(app.state, "inbox_writer", None)
        if writer is not None:
            await writer.jobs_sent()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://webhook.test", event_hooks={"response": [jobs_sent]}
    ) as http:
        yield http
    # ASGITransport runs no lifespan: close the intake's connections as shutdown would.
    writer = getattr(app.state, "inbox_writer", None)
    if writer is not None:
        await writer.close()


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


async def queued_jobs_eventually(redis_client: redis.Redis, queue: str, count: int) -> list[dict[str, Any]]:
    """The jobs on a queue once there are `count` (intake enqueues just after it answers)."""

    async def enough() -> list[dict[str, Any]] | None:
        jobs = queued_jobs(redis_client, queue)
        return jobs if len(jobs) >= count else None

    return await wait_until_async(enough)


async def queued_events_eventually(redis_client: redis.Redis, count: int) -> list[int]:
    """Inbox ids waiting in intake jobs on the messages queue, once there are `count`."""

    async def enough() -> list[int] | None:
        ids = [
            event_id
            for job in queued_jobs(redis_client, "messages")
            if job["actor"] == "webhook.process_events"
            for event_id in job["payload"]["event_ids"]
        ]
        return ids if len(ids) >= count else None

    return await wait_until_async(enough)


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

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until dramatiq says its worker is ready (imports take long on a busy machine)."""

        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited:\n{self.output()}")
            return "ready for action" in self.output()

        wait_until(ready, timeout=timeout, interval=0.1)

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


@pytest.fixture(scope="module")
def webhook_worker_process(herald_environment: dict[str, str]) -> Iterator[WorkerProcess]:
    """`dramatiq` with the webhook actors on the messages queue, for one test module.

    Not for the session: a consumer of `messages` without the send actor would take the send
    jobs of a later test's own messages worker on this Redis database and dead-letter them.
    """
    worker = WorkerProcess({**os.environ, **WORKER_SETTINGS}, ("services.webhook.actors",))
    worker.wait_ready()
    yield worker
    worker.stop()


@pytest.fixture
def webhook_worker(webhook_worker_process: WorkerProcess) -> WorkerProcess:
    return webhook_worker_process


class ServerProcess:
    """`herald serve webhook` on a free port: gunicorn with a uvicorn worker, as in production."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        herald = str(Path(sys.executable).parent / "herald")
        self.process = subprocess.Popen(
            [herald, "serve", "webhook", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

        def up() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"webhook server exited:\n{self.output()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=90, interval=0.2)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        stop_process_group(self.process, timeout=30)


@pytest.fixture(scope="session")
def webhook_server(herald_environment: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess({**os.environ, "HERALD_LOG_FORMAT": "json"})
    yield server
    server.stop()
