"""A real service process (uvicorn over HTTP): its /metrics moves with the traffic it served."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.simulator import free_port, wait_until
from tests.observability.promtext import label_values, value

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def contacts_service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "contacts.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "services.contacts.app:app",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "HERALD_LOG_FORMAT": "json"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"contacts service exited: {log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, interval=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_contacts_service_counts_requests_by_route_template_and_enqueues(contacts_service: str, admin) -> None:
    with httpx.Client(base_url=contacts_service, headers=admin.headers, timeout=10) as client:
        before = client.get("/metrics").text
        created = client.post("/api/v1/contacts", json={"phone": "+14155550123", "name": "Ada"})
        assert created.status_code == 201, created.text
        contact_id = created.json()["id"]
        for _ in range(2):
            assert client.get(f"/api/v1/contacts/{contact_id}").status_code == 200
        after = client.get("/metrics").text

    route = {"service": "contacts", "route": "/api/v1/contacts/{contact_id}", "method": "GET", "status": "200"}
    assert (
        value(after, "herald_http_requests_total", **route) - value(before, "herald_http_requests_total", **route) == 2
    )
    created_route = {"service": "contacts", "route": "/api/v1/contacts", "method": "POST", "status": "201"}
    assert value(after, "herald_http_requests_total", **created_route) == 1
    assert contact_id not in after and "4155550123" not in after
    assert contact_id not in " ".join(label_values(after, "herald_http_requests_total", "route"))
    # The create enqueued one contact event (after commit), counted where it was sent.
    enqueued = {"queue": "automation", "actor": "automation.contact_event"}
    assert (
        value(after, "herald_queue_messages_enqueued_total", **enqueued)
        - value(before, "herald_queue_messages_enqueued_total", **enqueued)
        == 1
    )
