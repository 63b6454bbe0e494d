"""Run the messages-queue worker as a real process against a simulator, and seed data in bulk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from herald.clock import utcnow
from tests.fixtures.processes import stop_process_group
from tests.fixtures.simulator import REPO_ROOT, SimulatorHandle


@dataclass
class WorkerHandle:
    process: subprocess.Popen[bytes]
    log: Any

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the dramatiq parent and its worker processes: no cleanup, no acks."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop_process_group(self.process)


def worker_env(simulator: SimulatorHandle, **extra: Any) -> dict[str, str]:
    env = {
        **os.environ,
        "WHATSAPP_API_BASE_URL": simulator.url,
        "WHATSAPP_API_VERSION": simulator.api_version,
        "WHATSAPP_TOKEN": simulator.token,
        "PHONE_NUMBER_ID": simulator.phone_number_id,
        "BUSINESS_ID": simulator.waba_id,
        "WHATSAPP_TIMEOUT_SECONDS": "2",
        "HERALD_LOG_FORMAT": "json",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start_worker(simulator: SimulatorHandle, *, threads: int = 4, **extra: Any) -> WorkerHandle:
    """`dramatiq` on the messages queue with the messaging actors, pointed at `simulator`."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "dramatiq", "herald.runner:setup_broker", "services.messaging.actors",
            "--queues", "messages", "--processes", "1", "--threads", str(threads),
        ],
        cwd=REPO_ROOT,
        env=worker_env(simulator, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: kill() reaches the forked workers too
    )  # fmt: skip
    return WorkerHandle(process, log)


def seed_contacts(database_url: str, count: int, *, inbound: bool = False) -> list[uuid.UUID]:
    """`count` opted-in contacts with distinct phones (fast: one COPY)."""
    ids = [uuid.uuid4() for _ in range(count)]
    now = utcnow()
    with psycopg.connect(database_url, autocommit=True) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY contacts (id, phone, name, opt_in_status, last_inbound_at, attributes, tags) FROM STDIN"
        ) as copy:
            for index, contact_id in enumerate(ids):
                copy.write_row(
                    (
                        contact_id,
                        f"+1555{index:07d}",
                        f"Contact {index}",
                        "opted_in",
                        now if inbound else None,
                        "{}",
                        "{}",
                    )
                )
    return ids


def status_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
    return {status: count for status, count in rows}
