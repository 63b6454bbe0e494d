"""Client tests talk to the simulator over real HTTP and need neither PostgreSQL nor Redis."""

from tests.simulator.conftest import (  # noqa: F401
    clean_state,
    herald_environment,
    simulator,
    simulator_process,
    webhook_receiver,
    webhook_receiver_process,
    wired,
)
