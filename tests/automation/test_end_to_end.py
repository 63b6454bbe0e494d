"""Birthdays end to end: the tick, a real automation worker process and a real messages worker
process sending through the Cloud API simulator over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from herald import clock, queue
from herald.contracts import RUN_AUTOMATION_STEP, RunAutomationStep
from services.automation.tick import birthday_and_date_tick
from tests.automation.factories import fetch, make_automation, make_contact, make_template
from tests.fixtures.simulator import REPO_ROOT, SimulatorHandle, free_port, wait_until
from tests.messaging.workers import WorkerHandle, worker_env

pytestmark = pytest.mark.slow

ZONES = ("Asia/Tokyo", "Europe/Lisbon", "America/New_York")
# The simulator's seeded template (MARKETING, one positional body parameter).
GREETING = [{"type": "BODY", "text": "Happy birthday, {{1}}! 🎂 Enjoy 20% off anything today."}]


def start_queue_worker(simulator: SimulatorHandle, queue_name: str, *modules: str) -> WorkerHandle:
    """A dramatiq process for one queue with the actor modules `herald worker <queue>` loads."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "dramatiq", "herald.runner:setup_broker", *modules,
            "--queues", queue_name, "--processes", "1", "--threads", "4",
        ],
        cwd=REPO_ROOT,
        env=worker_env(simulator, WHATSAPP_APP_SECRET=simulator.app_secret, HERALD_WORKER_METRICS_PORT="0"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    return WorkerHandle(process, log)


@pytest.fixture
def workers(simulator: SimulatorHandle) -> Iterator[list[WorkerHandle]]:
    started = [
        start_queue_worker(simulator, "messages", "services.messaging.actors", "services.webhook.actors"),
        start_queue_worker(simulator, "automation", "services.automation.actors"),
    ]
    yield started
    for worker in started:
        worker.stop()


def _settled(database_url: str) -> bool:
    runs = fetch(database_url, "SELECT count(*) FROM automation_runs WHERE status IN ('pending', 'running')")[0][0]
    unsent = fetch(database_url, "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')")[0][0]
    return runs == 0 and unsent == 0


def test_three_zones_each_receive_one_birthday_message_through_the_simulator(
    database_url: str, simulator: SimulatorHandle, workers: list[WorkerHandle]
) -> None:
    make_template(database_url, "birthday_greeting", components=GREETING)
    make_automation(
        database_url,
        {
            "trigger": {"type": "birthday", "hour": 9},
            "actions": [
                {
                    "type": "send_template",
                    "template": "birthday_greeting",
                    "language": "en_US",
                    "body": [{"field": "first_name", "default": "friend"}],
                }
            ],
        },
    )
    contacts = {zone: make_contact(database_url, name=f"Ana {zone}", timezone=zone, birthday=(5, 1)) for zone in ZONES}
    phones = {row[0]: row[1].lstrip("+") for row in fetch(database_url, "SELECT timezone, phone FROM contacts")}
    fired_at: dict[str, datetime] = {}
    moment = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)
    while moment <= datetime(2026, 5, 2, 6, 0, tzinfo=UTC):
        clock.set_now(moment)
        before = {
            r[0]
            for r in fetch(
                database_url, "SELECT c.timezone FROM automation_runs r JOIN contacts c ON c.id = r.contact_id"
            )
        }
        birthday_and_date_tick(moment)
        after = {
            r[0]
            for r in fetch(
                database_url, "SELECT c.timezone FROM automation_runs r JOIN contacts c ON c.id = r.contact_id"
            )
        }
        for zone in after - before:
            fired_at[zone] = moment
        try:
            wait_until(lambda: _settled(database_url), timeout=60)
        except AssertionError:  # show what the worker processes said
            print(fetch(database_url, "SELECT status, count(*) FROM automation_runs GROUP BY status"))
            print(fetch(database_url, "SELECT status, error_title, count(*) FROM messages GROUP BY 1,2"))
            for w in workers:
                print(w.output()[-3000:])
            raise
        moment += timedelta(minutes=30)

    # Each at its own 09:00.
    assert fired_at == {
        "Asia/Tokyo": datetime(2026, 5, 1, 0, 0, tzinfo=UTC),
        "Europe/Lisbon": datetime(2026, 5, 1, 8, 0, tzinfo=UTC),
        "America/New_York": datetime(2026, 5, 1, 13, 0, tzinfo=UTC),
    }
    sent = wait_until(lambda: len(simulator.messages()) >= 3 and simulator.messages(), timeout=30)
    assert Counter(m["wa_id"] for m in sent) == Counter(phones.values())
    assert {m["template"]["name"] for m in sent} == {"birthday_greeting"}

    # Ticks again, and every run step delivered again: nothing more reaches the simulator.
    for zone_moment in fired_at.values():
        birthday_and_date_tick(zone_moment + timedelta(minutes=5))
    for (run_id,) in fetch(database_url, "SELECT id FROM automation_runs"):
        queue.enqueue(RUN_AUTOMATION_STEP, RunAutomationStep(run_id=run_id))
    broker = queue.get_broker()
    broker.join("automation", timeout=30_000)
    broker.join("messages", timeout=30_000)
    wait_until(lambda: _settled(database_url), timeout=30)
    assert len(simulator.messages()) == 3
    assert len(contacts) == 3
    assert os.environ["DATABASE_URL"] == database_url


def _start_webhook_service(simulator: SimulatorHandle) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "services.webhook.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        cwd=REPO_ROOT,
        env=worker_env(simulator, WHATSAPP_APP_SECRET=simulator.app_secret, HERALD_WORKER_METRICS_PORT="0"),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), timeout=60, interval=0.1)
    except AssertionError:
        process.kill()
        log.seek(0)
        raise AssertionError(f"webhook service did not start: {log.read().decode(errors='replace')[-3000:]}") from None
    return url, process


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_keyword_reply_through_the_webhook_service_gets_its_answer(
    database_url: str, simulator: SimulatorHandle, workers: list[WorkerHandle]
) -> None:
    make_automation(
        database_url,
        {
            "trigger": {"type": "inbound_keyword", "match": "exact", "keywords": ["promoção"]},
            "actions": [{"type": "send_text", "text": "Olá {{first_name}}, o código é VERAO"}],
        },
    )
    url, service = _start_webhook_service(simulator)
    try:
        simulator.configure(callback_url=f"{url}/webhooks/whatsapp")
        simulator.inbound("351912345678", text="Promocao", name="Rita Lopes")
        try:
            replies = wait_until(
                lambda: [m for m in simulator.messages(to="351912345678") if m["type"] == "text"], timeout=60
            )
        except AssertionError:  # show how far the message got
            print(fetch(database_url, "SELECT status, error FROM webhook_events"))
            print(fetch(database_url, "SELECT direction, status, text, error_title FROM messages"))
            print(fetch(database_url, "SELECT status, steps FROM automation_runs"))
            print(simulator.stats())
            for worker in workers:
                print(worker.output()[-2000:])
            raise
    finally:
        service.terminate()
        service.wait(timeout=10)
    assert len(replies) == 1
    rows = fetch(
        database_url,
        "SELECT m.text, r.trigger_key FROM messages m JOIN automation_runs r ON r.id = m.automation_run_id",
    )
    assert rows[0][0] == "Olá Rita, o código é VERAO"
    assert rows[0][1].startswith("inbound:")
