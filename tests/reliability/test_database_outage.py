"""PostgreSQL (a server this test owns) restarted while the simulator posts signed status webhooks.

Proves: the webhook service acknowledges only what it has durably stored. During the outage it
answers with an error, the sender (the simulator, retrying like Meta) posts again, and once the
database is back every status of every message is in the inbox: none acknowledged and lost.
"""

from __future__ import annotations

import time

import httpx
import orjson
import psycopg
import pytest

from tests.fixtures.simulator import start_simulator, wait_until
from tests.reliability.conftest import OwnPostgres
from tests.security.servers import start_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNT = 120


def _stored_statuses(url: str) -> set[tuple[str, str]]:
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            bodies = [row[0] for row in connection.execute("SELECT body FROM webhook_events")]
    except psycopg.OperationalError:
        return set()
    found = set()
    for body in bodies:
        parsed = body if isinstance(body, dict) else orjson.loads(body)
        for entry in parsed.get("entry", []):
            for change in entry.get("changes", []):
                for status in change.get("value", {}).get("statuses", []):
                    found.add((status["id"], status["status"]))
    return found


def test_postgres_restart_during_intake_loses_no_acknowledged_webhook(own_postgres: OwnPostgres) -> None:
    env = {"DATABASE_URL": own_postgres.url, "WHATSAPP_APP_SECRET": "sim-test-app-secret", "HERALD_DB_POOL_SIZE": "5"}
    webhook = start_service("webhook", env)
    simulator = start_simulator(
        callback_url=f"{webhook.url}/webhooks/whatsapp", limits_enabled="false", webhook_retry_base_ms=250,
        webhook_retry_max_attempts=10, webhook_batch_max=5, delivered_delay_ms=300, read_delay_ms=1500, seed=3,
    )  # fmt: skip
    try:
        wamids = []
        with httpx.Client(base_url=simulator.url, headers={"Authorization": f"Bearer {simulator.token}"}) as http:
            for index in range(COUNT):
                response = http.post(
                    f"/{simulator.api_version}/{simulator.phone_number_id}/messages",
                    json={"messaging_product": "whatsapp", "to": f"1555{index:07d}", "type": "template",
                          "template": {"name": "hello_world", "language": {"code": "en_US"}}},
                )  # fmt: skip
                wamids.append(response.json()["messages"][0]["id"])
                if index == COUNT // 2:
                    own_postgres.stop()  # mid-stream: sent/delivered/read of many messages still to come
        time.sleep(2)
        stats_down = simulator.stats()
        own_postgres.start()
        expected = {(wamid, status) for wamid in wamids for status in ("sent", "delivered", "read")}
        wait_until(lambda: simulator.stats()["webhooks_pending"] == 0, timeout=120, interval=0.5)
        stats = simulator.stats()
        assert stats_down["webhooks"]["failed"] > 0, "the outage came too late to prove anything"
        assert stats["webhooks"]["dropped"] == 0
        missing = expected - _stored_statuses(own_postgres.url)
        assert not missing, f"{len(missing)} acknowledged statuses are not stored, e.g. {sorted(missing)[:3]}"
        assert webhook.process.poll() is None
    finally:
        simulator.stop()
        webhook.stop()
