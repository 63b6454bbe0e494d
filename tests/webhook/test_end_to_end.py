"""End to end over real processes: the messaging API sends through a worker to the simulator, the
simulator's signed webhooks come back through `herald serve webhook`, and a STOP reply opts out."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from herald.db import session_scope
from herald.messaging.templates import sync_templates
from tests.conftest import APP_SECRET_FOR_TESTS
from tests.fixtures.auth import TestUser
from tests.fixtures.processes import stop_process_group
from tests.fixtures.simulator import REPO_ROOT, SimulatorHandle, start_simulator, wait_until
from tests.messaging.factories import make_contact
from tests.messaging.workers import worker_env
from tests.webhook.conftest import WEBHOOK_PATH, Database, ServerProcess, next_wa_id

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dispose_engines")]

HELLO = {"type": "template", "name": "hello_world", "language": "en_US"}
BIRTHDAY = {"type": "template", "name": "birthday_greeting", "language": "en_US", "body_parameters": ["Ada"]}


@pytest.fixture
def simulator(webhook_server: ServerProcess) -> Iterator[SimulatorHandle]:
    handle = start_simulator(
        callback_url=f"{webhook_server.url}{WEBHOOK_PATH}", app_secret=APP_SECRET_FOR_TESTS,
        pair_limit_enabled="false",
    )  # fmt: skip
    yield handle
    handle.stop()


@pytest.fixture
def messages_worker(simulator: SimulatorHandle) -> Iterator[None]:
    """`dramatiq` on the messages queue with both consumers: the send actor and the webhook actors."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "herald.runner:setup_broker", "services.messaging.actors",
         "services.webhook.actors", "--queues", "messages", "--processes", "1", "--threads", "4"],
        cwd=REPO_ROOT, env=worker_env(simulator), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    yield
    stop_process_group(process)


@pytest.fixture
async def messaging_api(simulator: SimulatorHandle) -> AsyncIterator[httpx.AsyncClient]:
    from services.messaging.app import create_app

    async with simulator.client() as cloud, session_scope() as session:
        await sync_templates(session, cloud)
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://messaging.test") as client:
        yield client


async def _send(api: httpx.AsyncClient, user: TestUser, contact_id: str, content: dict[str, Any]) -> httpx.Response:
    return await api.post("/api/v1/messages", json={"contact_id": contact_id, "content": content}, headers=user.headers)


async def test_sent_message_comes_back_read_and_a_stop_reply_refuses_the_next_marketing_send(
    simulator: SimulatorHandle,
    messages_worker: None,
    messaging_api: httpx.AsyncClient,
    operator: TestUser,
    database: Database,
) -> None:
    wa_id = next_wa_id()  # a number that validates: inbound from invalid numbers is ignored
    contact = await make_contact(phone=f"+{wa_id}")

    response = await _send(messaging_api, operator, str(contact.id), HELLO)
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]

    def read() -> dict[str, Any] | None:
        row = database.one("SELECT status, sent_at, delivered_at, read_at FROM messages WHERE id = %s", message_id)
        return row if row["status"] == "read" else None

    wait_until(read, timeout=90, interval=0.2)

    def timeline() -> list[dict[str, Any]] | None:
        rows = database.rows(
            "SELECT status, occurred_at FROM message_status_events"
            " WHERE message_id = %s AND status IN ('sent', 'delivered', 'read')",
            message_id,
        )
        return rows if len(rows) == 3 else None

    # The worker's threads may finish `read` before `delivered`: wait for the whole timeline.
    events = wait_until(timeline, timeout=30, interval=0.2)
    at = {event["status"]: event["occurred_at"] for event in events}
    # `sent` is stamped by the send itself (to the microsecond); Meta's times are whole seconds.
    assert len(events) == 3 and at["delivered"] <= at["read"]
    assert database.inbox() and all(row["status"] == "processed" for row in database.settled())

    simulator.inbound(wa_id, text="STOP")

    def opted_out() -> dict[str, Any] | None:
        row = database.one("SELECT opt_in_status, opt_in_source FROM contacts WHERE id = %s", contact.id)
        return row if row["opt_in_status"] == "opted_out" else None

    assert wait_until(opted_out, timeout=60, interval=0.2)["opt_in_source"] == "keyword"

    refused = await _send(messaging_api, operator, str(contact.id), BIRTHDAY)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "contact_opted_out"
    assert database.one("SELECT count(*) AS n FROM messages WHERE direction = 'outbound'")["n"] == 1
