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
    time.sleep(payload.pause_seconds)
    redis.Redis.from_url(get_settings().redis_url).sadd(PIDS_KEY, os.getpid())


@actor(EXPLODES, max_retries=0)
def explodes(payload: Work) -> None:
    raise RuntimeError(f"failure {payload.n} on purpose")
