"""Simulator tests run the simulator over real HTTP and need neither PostgreSQL nor Redis."""

from collections.abc import Iterator

import pytest

from tests.fixtures.simulator import simulator, simulator_process  # noqa: F401
from tests.fixtures.webhook_receiver import webhook_receiver, webhook_receiver_process, wired  # noqa: F401


@pytest.fixture(scope="session")
def herald_environment() -> Iterator[dict[str, str]]:
    """Overrides the root fixture: these tests use no database or Redis."""
    yield {}


@pytest.fixture
def clean_state() -> None:
    """Overrides the root fixture: nothing to clean outside the simulator."""
