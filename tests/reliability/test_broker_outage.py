"""Redis (a server this test owns, with no persistence) stopped and restarted during a broadcast.

Proves: a broker outage that loses every queued job loses no message. Rows are the source of
truth: what was sent stays sent, the rest stays `queued` (or `sending` for a batch cut off
mid-flight) and the recovery job's relay hands it over again once Redis is back; workers keep
running through the outage and resume on their own. No duplicate sends, since no worker died.
"""

from __future__ import annotations

import time

import pytest

from herald import queue
from herald.settings import get_settings
from tests.fixtures.simulator import start_simulator, wait_until
from tests.messaging.workers import WorkerHandle, start_worker
from tests.reliability.conftest import OwnRedis, accepted_ids, queue_broadcast, recover_now, statuses

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.usefixtures("dispose_engines")]

COUNT = 400
RATE = 100
STUCK_AFTER_SECONDS = 8


def test_redis_restart_mid_broadcast_loses_no_message(
    database_url: str, own_redis: OwnRedis, workers: list[WorkerHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    get_settings.cache_clear()
    queue.reset_broker()
    simulator = start_simulator(throughput_per_second=RATE, pair_limit_enabled="false", seed=11)
    try:
        ids = queue_broadcast(database_url, COUNT)
        env = {"REDIS_URL": own_redis.url, "WHATSAPP_THROUGHPUT_PER_SECOND": RATE, "HERALD_WORKER_METRICS_PORT": 0}
        workers.append(start_worker(simulator, threads=4, **env))
        wait_until(lambda: statuses(database_url)["sent"] >= COUNT // 4, timeout=90, interval=0.05)

        own_redis.stop()
        sent_at_outage = statuses(database_url)["sent"]
        time.sleep(3)  # the broker stays down while workers and the API keep trying
        assert workers[0].process.poll() is None, "the worker died with the broker"
        own_redis.start()  # empty: every job that was queued is gone
        queue.reset_broker()

        assert sent_at_outage < COUNT, "the outage came too late to prove anything"
        # The recovery job, with seconds instead of minutes: queued rows whose jobs Redis lost are
        # handed over again, and a batch cut off mid-flight (its token bucket call failed after
        # the claim) is requeued once it is clearly older than any live batch.
        recover_now(stuck_after=None)
        time.sleep(STUCK_AFTER_SECONDS + 1)
        recover_now(stuck_after=STUCK_AFTER_SECONDS)
        try:
            wait_until(lambda: statuses(database_url)["sent"] == COUNT, timeout=120, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{statuses(database_url)}\n{workers[0].output()[-3000:]}") from None
        assert workers[0].process.poll() is None
        sends = accepted_ids(simulator)
        assert set(sends) == {str(i) for i in ids}
        assert simulator.stats()["duplicates"] == 0
    finally:
        simulator.stop()
