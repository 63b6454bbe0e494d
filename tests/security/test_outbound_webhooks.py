"""Automation webhook actions: only http(s) to public addresses, a deadline on the whole call
(a receiver that stalls or drips bytes cannot hold a worker), and a cap on what is read back."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from herald.automation.definitions import WebhookAction
from herald.settings import get_settings
from services.automation.webhooks import WebhookFailed, call_webhook

pytestmark = pytest.mark.usefixtures("dispose_engines")

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"


@pytest.fixture
def private_addresses_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The receivers below listen on loopback, which production refuses; allow it for these tests."""
    monkeypatch.setenv("HERALD_AUTOMATION_WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _serve(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=_handle, args=(connection,), daemon=True).start()

    def _handle(connection: socket.socket) -> None:
        try:
            connection.settimeout(5)
            connection.recv(65_536)
            handler(connection)
        except OSError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    thread.join(2)
    server.close()


@pytest.fixture
def stalling_receiver() -> Iterator[str]:
    yield from _serve(lambda connection: time.sleep(8))


@pytest.fixture
def dripping_receiver() -> Iterator[str]:
    def drip(connection: socket.socket) -> None:
        connection.sendall(HEADERS + b"Content-Length: 100000\r\n\r\n")
        for _ in range(40):  # one byte every 0.3 s: never idle long enough for a read timeout
            connection.sendall(b" ")
            time.sleep(0.3)

    yield from _serve(drip)


@pytest.fixture
def flooding_receiver() -> Iterator[str]:
    def flood(connection: socket.socket) -> None:
        connection.sendall(HEADERS + b"\r\n")
        chunk = b"x" * 65_536
        for _ in range(2_000):  # 128 MiB if anyone read it all
            connection.sendall(chunk)

    yield from _serve(flood)


def _action(url: str, timeout: float = 1.0) -> WebhookAction:
    return WebhookAction.model_validate({"type": "webhook", "url": url, "timeout_seconds": timeout, "retries": 0})


async def _call(action: WebhookAction):  # type: ignore[no-untyped-def]
    return await call_webhook(action, automation_id=uuid.uuid4(), delivery_id="d-1", payload={"hello": "world"})


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com:70/_", "javascript:alert(1)",
     "http://127.0.0.1:8001/api/v1/users", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
     "http://user:pass@example.com/x", "http://localhost/x", "http://10.0.0.5/x"],
)  # fmt: skip
def test_webhook_actions_refuse_anything_but_public_http_urls(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookAction.model_validate({"type": "webhook", "url": url})


async def test_receiver_that_never_answers_fails_at_the_timeout(
    private_addresses_allowed: None, stalling_receiver: str
) -> None:
    started = time.monotonic()
    with pytest.raises(WebhookFailed):
        await _call(_action(stalling_receiver, timeout=1.0))
    assert time.monotonic() - started < 5


async def test_receiver_dripping_bytes_cannot_outlast_the_timeout(
    private_addresses_allowed: None, dripping_receiver: str
) -> None:
    started = time.monotonic()
    with pytest.raises(WebhookFailed):
        await _call(_action(dripping_receiver, timeout=1.0))
    assert time.monotonic() - started < 5


async def test_huge_answer_is_read_only_up_to_the_cap(private_addresses_allowed: None, flooding_receiver: str) -> None:
    started = time.monotonic()
    result = await _call(_action(flooding_receiver, timeout=5.0))
    assert result.status_code == 200
    assert result.response_bytes <= get_settings().automation_webhook_max_response_bytes
    assert time.monotonic() - started < 5
