"""`herald dev` end to end: the whole stack as real processes (services, workers, scheduler,
simulator, gateway) on free ports, against the test PostgreSQL and Redis, driven through the
gateway the way the README's walkthrough does it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from herald.devstack import port_is_free
from herald.runner import DEFAULT_PORTS, Service
from tests.fixtures.simulator import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dev_stack")]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "owner@example.com"
ADMIN_PASSWORD = "dev-stack-password-1"
# Real-Meta variables from the test environment would make the stack skip the simulator.
META_VARIABLES = ("WHATSAPP_TOKEN", "WHATSAPP_APP_SECRET", "WEBHOOK_VERIFY_TOKEN", "PHONE_NUMBER_ID", "BUSINESS_ID")


@dataclass
class Stack:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    offset: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_offset() -> int:
    for _ in range(200):
        offset = random.randrange(20_000, 40_000, 10)
        if all(port_is_free(port + offset) for port in DEFAULT_PORTS.values()):
            return offset
    raise AssertionError("no free block of ports")


@pytest.fixture(scope="module")
def stack(server_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    admin_url = server_urls["postgres"]
    name = f"herald_dev_stack_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    data_dir = tmp_path_factory.mktemp("dev-stack")
    env = {key: value for key, value in os.environ.items() if key not in META_VARIABLES}
    env.update(
        {
            "HERALD_ENV": "development",
            "DATABASE_URL": urlsplit(admin_url)._replace(path=f"/{name}").geturl(),
            # Database 0: the per-test Redis flush of the other databases must not empty the stack's queues.
            "REDIS_URL": urlsplit(server_urls["redis"])._replace(path="/0").geturl(),
            "HERALD_DATA_DIR": str(data_dir),
            "HERALD_ADMIN_EMAIL": ADMIN_EMAIL,
            "HERALD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "HERALD_LOG_FORMAT": "console",
            "LOG_LEVEL": "WARNING",
        }
    )
    offset = _free_offset()
    log = data_dir / "dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "herald.cli", "dev", "--port-offset", str(offset)],
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(f"http://127.0.0.1:{DEFAULT_PORTS[Service.GATEWAY] + offset}", process, log, offset)
    try:
        wait_until(lambda: "Herald is running" in stack.output() or process.poll() is not None, timeout=300)
        assert process.poll() is None, f"herald dev exited:\n{stack.output()[-4000:]}"
        assert "NOT READY" not in stack.output(), stack.output()[-4000:]
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _login(stack: Stack) -> dict[str, str]:
    answer = httpx.post(
        f"{stack.url}/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_banner_prints_the_gateway_docs_and_admin(stack: Stack) -> None:
    output = stack.output()
    assert f"http://localhost:{DEFAULT_PORTS[Service.GATEWAY] + stack.offset}/docs" in output
    assert ADMIN_EMAIL in output
    assert ADMIN_PASSWORD not in output


def test_login_and_create_a_contact_through_the_gateway(stack: Stack) -> None:
    headers = _login(stack)
    created = httpx.post(
        f"{stack.url}/api/v1/contacts",
        json={"phone": "+14155550123", "name": "Ada", "tags": ["vip"]},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{stack.url}/api/v1/contacts", headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    assert created.json()["id"] in listed.text


def test_template_message_goes_sent_delivered_read(stack: Stack) -> None:
    headers = _login(stack)
    synced = httpx.post(f"{stack.url}/api/v1/templates/sync", headers=headers, timeout=60)
    assert synced.status_code == 200, synced.text
    contact = httpx.post(
        f"{stack.url}/api/v1/contacts",
        json={"phone": "+14155550188", "name": "Grace", "opt_in_status": "opted_in", "opt_in_source": "api"},
        headers=headers,
        timeout=30,
    )
    assert contact.status_code == 201, contact.text
    sent = httpx.post(
        f"{stack.url}/api/v1/messages",
        json={
            "contact_id": contact.json()["id"],
            "content": {"type": "template", "name": "hello_world", "language": "en_US"},
        },
        headers=headers,
        timeout=30,
    )
    assert sent.status_code == 202, sent.text
    message_url = f"{stack.url}/api/v1/messages/{sent.json()['id']}"

    last: dict[str, object] = {}

    def read_message() -> dict[str, object] | None:
        last.update(httpx.get(message_url, headers=headers, timeout=30).json())
        return last if last["status"] == "read" else None

    try:
        message = wait_until(read_message, timeout=120, interval=0.5)
    except AssertionError:
        raise AssertionError(f"message never read; last state {last}\n{stack.output()[-6000:]}") from None
    assert message["wamid"]
    assert message["delivered_at"] is not None


def test_ctrl_c_stops_every_process(stack: Stack) -> None:
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(120) == 0, stack.output()[-4000:]
    deadline = time.monotonic() + 30
    ports = [port + stack.offset for port in DEFAULT_PORTS.values()]
    while not all(port_is_free(port) for port in ports):
        assert time.monotonic() < deadline, f"ports still in use after Ctrl-C: {ports}"
        time.sleep(0.2)
