"""Actors used by the observability tests, loaded by real dramatiq worker processes."""

from __future__ import annotations

import os
import time

import redis

from herald.queue import actor
from herald.settings import get_settings
from tests.observability.worker_contracts import EXPLODES, PIDS_KEY, TRACKED, Work


@actor(TRACKED, max_retries=0)
def tracked(payload: Work) -> None:
    client = redis.Redis.from_url(get_settings().redis_url)
    client.sadd(PIDS_KEY, os.getpid())
    # Hold the first messages until a second process has started work too (or 20 s passed),
    # so the test sees both processes' samples whatever the scheduling.
    deadline = time.monotonic() + 20
    while payload.pause_seconds and client.scard(PIDS_KEY) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(payload.pause_seconds)


@actor(EXPLODES, max_retries=0)
def explodes(payload: Work) -> None:
    raise RuntimeError(f"failure {payload.n} on purpose")
