"""Queue depth, delayed depth and oldest-message age read from Dramatiq's Redis structures."""

from __future__ import annotations

import time

import dramatiq
import redis
from prometheus_client import CollectorRegistry, generate_latest

from herald.observability.collectors import QueueStateCollector
from herald.queue import build_message, enqueue, get_broker
from tests.observability.promtext import value
from tests.observability.worker_contracts import TRACKED, Work


def _collector(redis_client: redis.Redis, now: float) -> QueueStateCollector:
    return QueueStateCollector(redis_client, ["messages", "automation", "analytics"], clock=lambda: now)


def test_depth_counts_ready_and_delayed_messages_per_queue(redis_client: redis.Redis) -> None:
    for n in range(3):
        enqueue(TRACKED, Work(n=n))
    enqueue(TRACKED, Work(n=99), delay_ms=60_000)

    state = _collector(redis_client, time.time()).read()

    assert state["analytics"]["depth"] == 3
    assert state["analytics"]["delayed"] == 1
    assert state["messages"]["depth"] == 0
    assert state["messages"]["oldest_age"] == 0


def test_oldest_age_is_measured_from_the_head_of_the_queue(redis_client: redis.Redis) -> None:
    enqueue(TRACKED, Work(n=1))
    time.sleep(0.05)
    enqueue(TRACKED, Work(n=2))
    head_id = redis_client.lindex("herald:analytics", 0)
    body = redis_client.hget("herald:analytics.msgs", head_id)
    assert body is not None and b'"n":1' in body

    # Seen 90 seconds later, the oldest message has waited 90 s (plus the few ms above).
    state = _collector(redis_client, time.time() + 90).read()

    assert 90 <= state["analytics"]["oldest_age"] < 95


def test_a_retry_that_waited_its_backoff_is_aged_from_when_it_became_due(redis_client: redis.Redis) -> None:
    broker = get_broker()
    created_ms = int((time.time() - 600) * 1000)
    message = build_message(TRACKED, Work(n=5)).copy(message_timestamp=created_ms, options={"retries": 1})
    broker.enqueue(message, delay=10)
    # What a worker does when the delay has passed (dramatiq.worker handle_delayed_messages).
    delayed_id = redis_client.lindex("herald:analytics.DQ", 0)
    due = dramatiq.Message.decode(redis_client.hget("herald:analytics.DQ.msgs", delayed_id))
    moved = due.copy(queue_name="analytics")
    del moved.options["eta"]
    broker.enqueue(moved)

    state = _collector(redis_client, time.time() + 30).read()

    # Created ten minutes ago, ready for half a minute: the queue is not ten minutes behind.
    assert 29 <= state["analytics"]["oldest_age"] <= 32


def test_collector_exports_gauges_per_queue(redis_client: redis.Redis) -> None:
    for n in range(2):
        enqueue(TRACKED, Work(n=n))
    registry = CollectorRegistry()
    registry.register(_collector(redis_client, time.time() + 10))

    text = generate_latest(registry).decode()

    assert value(text, "herald_queue_depth", queue="analytics") == 2
    assert value(text, "herald_queue_depth", queue="messages") == 0
    assert value(text, "herald_queue_dead_letters", queue="analytics") == 0
    assert value(text, "herald_queue_oldest_message_age_seconds", queue="analytics") >= 10


def test_unreachable_redis_exports_nothing_instead_of_failing() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    registry = CollectorRegistry()
    registry.register(QueueStateCollector(client, ["messages"]))

    assert "herald_queue_depth" not in generate_latest(registry).decode()


def test_cleaning_keeps_live_runs_and_removes_finished_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    from herald.observability.multiprocess import clean_other_runs, run_dir_for_parent

    ours = run_dir_for_parent(tmp_path, os.getpid())
    live_neighbour = run_dir_for_parent(tmp_path, os.getppid())
    finished = tmp_path / "999999999-12345"
    for directory in (ours, live_neighbour, finished):
        directory.mkdir()

    clean_other_runs(tmp_path, keep=ours)

    assert ours.exists() and live_neighbour.exists()
    assert not finished.exists()
