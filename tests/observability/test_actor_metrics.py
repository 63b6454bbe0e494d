"""Per-actor counters from the broker middleware, on a real in-process Worker and real Redis."""

from __future__ import annotations

import orjson
import redis

from herald.contracts import Contract, Queue
from herald.observability import metrics
from herald.queue import actor, enqueue
from tests.fixtures.queue_worker import in_process_worker
from tests.observability.worker_contracts import Work

FLAKY = Contract("observability_test.flaky", Queue.ANALYTICS, Work)
FLAKY_KEY = "observability_test:flaky_attempts"


def _count(metric, actor_name: str) -> float:  # type: ignore[no-untyped-def]
    return metric.labels("analytics", actor_name)._value.get()


def test_a_retried_message_counts_one_enqueue_one_retry_and_each_failed_attempt(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)

    @actor(FLAKY, max_retries=2, min_backoff=10, max_backoff=50)
    def flaky(payload: Work) -> None:
        # Fails twice, then succeeds: two failed attempts, two retries, one success.
        if client.incr(FLAKY_KEY) <= 2:
            raise RuntimeError("not yet")

    name = FLAKY.actor_name
    before = {
        m: _count(m, name)
        for m in (
            metrics.QUEUE_ENQUEUED,
            metrics.QUEUE_RETRIED,
            metrics.QUEUE_FAILED,
            metrics.QUEUE_PROCESSED,
            metrics.QUEUE_DEAD_LETTERED,
        )
    }
    enqueue(FLAKY, Work(n=1))
    with in_process_worker(Queue.ANALYTICS):
        pass

    moved = {m: _count(m, name) - value for m, value in before.items()}
    assert moved[metrics.QUEUE_ENQUEUED] == 1
    assert moved[metrics.QUEUE_RETRIED] == 2
    assert moved[metrics.QUEUE_FAILED] == 2
    assert moved[metrics.QUEUE_PROCESSED] == 1
    assert moved[metrics.QUEUE_DEAD_LETTERED] == 0
    assert metrics.QUEUE_DURATION.labels("analytics", name)._sum.get() > 0
    assert _count(metrics.QUEUE_IN_PROGRESS, name) == 0


def test_no_trace_context_travels_when_tracing_is_off(redis_client: redis.Redis) -> None:
    enqueue(FLAKY, Work(n=2))

    message_id = redis_client.lindex("herald:analytics", 0)
    body = orjson.loads(redis_client.hget("herald:analytics.msgs", message_id))
    assert "trace_context" not in body["options"]
