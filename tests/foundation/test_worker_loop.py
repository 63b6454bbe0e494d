"""Async actors run on uvloop in a real in-process Dramatiq worker on real Redis."""

from __future__ import annotations

import asyncio

import redis

from herald.contracts import Contract, Queue
from herald.queue import actor, enqueue
from tests.fixtures.queue_worker import in_process_worker
from tests.observability.worker_contracts import Work

LOOP_PROBE = Contract("foundation_test.loop_probe", Queue.ANALYTICS, Work)
LOOP_KEY = "foundation_test:loop"


def test_async_actors_run_on_the_uvloop_event_loop(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)

    @actor(LOOP_PROBE, max_retries=0)
    async def loop_probe(payload: Work) -> None:
        await asyncio.sleep(0)
        client.set(LOOP_KEY, type(asyncio.get_running_loop()).__module__)

    enqueue(LOOP_PROBE, Work(n=1))
    with in_process_worker(Queue.ANALYTICS):
        pass

    assert client.get(LOOP_KEY) == b"uvloop"
