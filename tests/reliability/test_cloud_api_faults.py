"""The simulator in fault modes, against real workers and the real webhook service.

- 429 storms, 5xx bursts and timeouts during a broadcast. Proves: every message ends `sent`
  through the actor's retries with backoff; the only duplicates are requests the simulator
  accepted after our client had given up on them (a timeout: the documented window).
- Duplicated and reordered status webhooks, delivered slowly, with the webhook service down for
  a while. Proves: the sender's retries bring every status in, and each message ends `read`
  with both timestamps and no status recorded twice, whatever the order or repetition.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid

import psycopg
import pytest

from tests.fixtures.simulator import REPO_ROOT, SimulatorHandle, start_simulator, wait_until
from tests.messaging.workers import WorkerHandle, start_worker, worker_env
from tests.reliability.conftest import accepted_ids, queue_broadcast, statuses
from tests.security.servers import start_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.usefixtures("dispose_engines")]

TIMEOUTS = 4


def test_429_storm_5xx_bursts_and_timeouts_end_with_every_message_sent_once(
    database_url: str, workers: list[WorkerHandle]
) -> None:
    simulator = start_simulator(limits_enabled="false", seed=5)
    try:
        simulator.configure(
            fault_429_count=120, fault_5xx_count=60, fault_5xx_status=503,
            fault_timeout_count=TIMEOUTS, fault_timeout_seconds=2.5,
        )  # fmt: skip
        ids = queue_broadcast(database_url, 200)
        workers.append(start_worker(simulator, threads=4, WHATSAPP_TIMEOUT_SECONDS=1, HERALD_WORKER_METRICS_PORT=0))
        wait_until(lambda: statuses(database_url)["sent"] == 200, timeout=200, interval=0.5)
        stats = simulator.stats()
        assert stats["rejected_by_code"].get("130429", 0) == 120
        assert stats["rejected_by_code"].get("131000", 0) == 60
        sends = accepted_ids(simulator)
        assert set(sends) == {str(i) for i in ids}
        assert stats["duplicates"] <= TIMEOUTS, f"{stats['duplicates']} duplicates from {TIMEOUTS} timeouts"
    finally:
        simulator.stop()


def _messages_and_webhook_worker(simulator: SimulatorHandle) -> WorkerHandle:
    """`herald worker messages` as deployed: the send actor and the webhook processing actor."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "herald.runner:setup_broker", "services.messaging.actors",
         "services.webhook.actors", "--queues", "messages", "--processes", "1", "--threads", "8"],
        cwd=REPO_ROOT, env=worker_env(simulator, HERALD_WORKER_METRICS_PORT=0), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    return WorkerHandle(process, log)


def _delivered_and_read(database_url: str, ids: list[uuid.UUID]) -> int:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT count(*) FROM messages WHERE id = ANY(%s) AND delivered_at IS NOT NULL AND read_at IS NOT NULL",
            (ids,),
        ).fetchone()[0]  # type: ignore[index]


def test_duplicated_reordered_and_late_statuses_end_read_once_each(
    database_url: str, workers: list[WorkerHandle]
) -> None:
    env = {"WHATSAPP_APP_SECRET": "sim-test-app-secret"}
    webhook = start_service("webhook", env)
    simulator = start_simulator(
        callback_url=f"{webhook.url}/webhooks/whatsapp", limits_enabled="false", duplicate_rate=0.5, reorder_rate=0.5,
        sent_delay_ms=200, delivered_delay_ms=1500, read_delay_ms=3000, webhook_retry_base_ms=300,
        webhook_retry_max_attempts=10, seed=9,
    )  # fmt: skip
    try:
        ids = queue_broadcast(database_url, 100)
        workers.append(_messages_and_webhook_worker(simulator))
        wait_until(lambda: statuses(database_url)["sent"] + statuses(database_url)["delivered"] >= 50, timeout=90)
        webhook.stop()  # failing delivery: the simulator's posts are refused for a while
        time.sleep(3)
        webhook = start_service("webhook", env)
        simulator.configure(callback_url=f"{webhook.url}/webhooks/whatsapp")
        wait_until(lambda: statuses(database_url)["read"] == 100, timeout=180, interval=0.5)
        # A `delivered` reordered behind `read` may still be in the simulator's retry backoff.
        wait_until(lambda: _delivered_and_read(database_url, ids) == 100, timeout=60, interval=0.5)

        stats = simulator.stats()
        assert stats["webhooks"]["failed"] > 0 and stats["webhooks"]["statuses_duplicated"] > 0
        assert stats["webhooks"]["dropped"] == 0
        with psycopg.connect(database_url) as connection:
            rows = connection.execute(
                "SELECT message_id, status, count(*) FROM message_status_events WHERE message_id = ANY(%s)"
                " GROUP BY message_id, status",
                (ids,),
            ).fetchall()
        assert all(count == 1 for _, _, count in rows), "a status was recorded twice"
        per_status = {status: sum(1 for _, s, _ in rows if s == status) for status in ("sent", "read")}
        assert per_status == {"sent": 100, "read": 100}
        # A `delivered` arriving after `read` fills delivered_at without moving the status back.
        assert statuses(database_url)["read"] == 100
    finally:
        simulator.stop()
        webhook.stop()
