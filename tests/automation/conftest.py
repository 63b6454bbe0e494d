"""Fixtures for the automation tests: an HTTP client on the app and a real dramatiq worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import dramatiq
import httpx
import pytest


@pytest.fixture
async def client(dispose_engines: None) -> AsyncIterator[httpx.AsyncClient]:
    from services.automation.app import create_app

    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://automation.test") as http:
        yield http


def _forget_async_engine() -> None:
    # The worker's event loop owned these connections; the next test builds fresh ones.
    from herald import db

    for cached in (db.async_engine, db._async_sessions):
        cached.cache_clear()


class AutomationWorker:
    """A real dramatiq worker on the automation queue; `restart()` simulates a worker restart."""

    def __init__(self) -> None:
        self.worker: dramatiq.Worker | None = None

    def start(self) -> None:
        from herald import queue
        from services.automation import actors

        _forget_async_engine()
        broker = queue.get_broker()
        for declared in (
            actors.contact_event,
            actors.inbound_message,
            actors.message_status,
            actors.run_step,
            actors.trigger,
        ):
            broker.declare_actor(declared)
        self.worker = dramatiq.Worker(broker, queues={"automation"}, worker_threads=2, worker_timeout=100)
        self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=10_000)
            self.worker = None
        _forget_async_engine()

    def restart(self) -> None:
        from herald import queue

        self.stop()
        queue.reset_broker()
        self.start()


@pytest.fixture
def automation_worker() -> Iterator[AutomationWorker]:
    worker = AutomationWorker()
    worker.start()
    yield worker
    worker.stop()
