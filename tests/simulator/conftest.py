"""Simulator tests run the simulator over real HTTP and need neither PostgreSQL nor Redis."""

from collections.abc import Iterator

import pytest

from tests.fixtures.simulator import SimulatorHandle, simulator, simulator_process  # noqa: F401
from tests.fixtures.webhook_receiver import (  # noqa: F401
    WebhookReceiver,
    webhook_receiver,
    webhook_receiver_process,
)


@pytest.fixture(scope="session")
def herald_environment() -> Iterator[dict[str, str]]:
    """Overrides the root fixture: these tests use no database or Redis."""
    yield {}


@pytest.fixture
def clean_state() -> None:
    """Overrides the root fixture: nothing to clean outside the simulator."""


@pytest.fixture
def wired(simulator: SimulatorHandle, webhook_receiver: WebhookReceiver) -> tuple[SimulatorHandle, WebhookReceiver]:
    """A fresh simulator posting its webhooks to a fresh receiver."""
    simulator.configure(callback_url=webhook_receiver.url)
    return simulator, webhook_receiver
