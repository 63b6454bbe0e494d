"""Workers killed with SIGKILL in the middle of a broadcast, then restarted.

Proves: nothing is lost (every message ends `sent`), and the only duplicate sends (counted from
the simulator's own record) are messages that were in flight, claimed as `sending`, when the
workers died: the documented crash window between Meta accepting and our write-back.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures.simulator import SimulatorHandle, start_simulator, wait_until
from tests.messaging.workers import WorkerHandle, start_worker
from tests.reliability.conftest import accepted_ids, queue_broadcast, recover_now, statuses

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.usefixtures("dispose_engines")]

COUNT = 400
RATE = 100  # messages per second, so the broadcast lasts a few seconds and the kill lands mid-way


def test_sigkilled_workers_lose_nothing_and_duplicate_only_in_flight_sends(
    database_url: str, workers: list[WorkerHandle]
) -> None:
    simulator: SimulatorHandle = start_simulator(throughput_per_second=RATE, pair_limit_enabled="false", seed=7)
    try:
        ids = queue_broadcast(database_url, COUNT)
        env = {"WHATSAPP_THROUGHPUT_PER_SECOND": RATE, "HERALD_WORKER_METRICS_PORT": 0}
        first = [start_worker(simulator, threads=4, **env) for _ in range(2)]
        workers.extend(first)
        wait_until(lambda: statuses(database_url)["sent"] >= COUNT // 4, timeout=90, interval=0.05)
        for worker in first:
            worker.kill()
        with psycopg.connect(database_url) as connection:
            in_flight = connection.execute(
                "SELECT count(*) FROM messages WHERE status = 'sending' AND wamid IS NULL"
            ).fetchone()[0]  # type: ignore[index]
        assert statuses(database_url)["sent"] < COUNT, "the kill came too late to prove anything"

        # The message-recovery job's work, run now instead of after its staleness thresholds,
        # while no worker runs (so every `sending` row really is orphaned).
        recover_now(stuck_after=0)
        workers.extend(start_worker(simulator, threads=4, **env) for _ in range(2))
        wait_until(lambda: statuses(database_url)["sent"] == COUNT, timeout=120, interval=0.2)

        sends = accepted_ids(simulator)
        assert set(sends) == {str(i) for i in ids}, "a message never reached the simulator"
        duplicates = sum(n - 1 for n in sends.values())
        assert duplicates == simulator.stats()["duplicates"]
        assert duplicates <= in_flight, f"{duplicates} duplicates but only {in_flight} sends were in flight"
    finally:
        simulator.stop()
