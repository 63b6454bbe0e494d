"""Scrape-time collectors: queue state from Redis, contact totals and recorded job runs from
PostgreSQL. They read shared state, so every worker metrics endpoint exports the same numbers:
dashboards and alerts aggregate them with max by (...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from herald.observability import metrics

log = structlog.get_logger("herald.observability.collectors")

DRAMATIQ_NAMESPACE = "herald"
# Message option (unix ms) written by the broker middleware: when the message became ready.
READY_AT_OPTION = "herald_ready_ms"


class QueueStateCollector(Collector):
    """Depth, delayed depth, dead letters and oldest ready message age of each Dramatiq queue.

    dramatiq's RedisBroker keeps, under its namespace: the list `<ns>:<queue>` of ready message
    ids (oldest first), the hash `<ns>:<queue>.msgs` of their bodies, the same pair for the
    delayed queue `<queue>.DQ`, and the sorted set `<ns>:<queue>.XQ` of dead letters.
    Two pipelined round trips per scrape, whatever the queue lengths.
    """

    def __init__(
        self,
        client: redis.Redis,
        queues: Sequence[str],
        namespace: str = DRAMATIQ_NAMESPACE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.queues = list(queues)
        self.namespace = namespace
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(metrics.QUEUE_DEPTH, "Ready messages waiting in the queue.", labels=["queue"])
        delayed = GaugeMetricFamily(
            metrics.QUEUE_DELAYED_DEPTH,
            "Delayed messages (retries, scheduled) in the queue.",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(metrics.QUEUE_DEAD_LETTERS, "Messages in the dead-letter set.", labels=["queue"])
        age = GaugeMetricFamily(
            metrics.QUEUE_OLDEST_AGE,
            "Seconds the oldest ready message has been waiting (0 when the queue is empty).",
            labels=["queue"],
        )
        try:
            states = self.read()
        except redis.RedisError as exc:
            log.warning("queue_state_unavailable", error=type(exc).__name__)
            return []
        for queue, state in states.items():
            depth.add_metric([queue], state["depth"])
            delayed.add_metric([queue], state["delayed"])
            dead.add_metric([queue], state["dead"])
            age.add_metric([queue], state["oldest_age"])
        return [depth, delayed, dead, age]

    def read(self) -> dict[str, dict[str, float]]:
        """{queue: {depth, delayed, dead, oldest_age}} read from Redis now."""
        pipe = self.client.pipeline(transaction=False)
        for queue in self.queues:
            key = f"{self.namespace}:{queue}"
            pipe.llen(key)
            pipe.llen(f"{key}.DQ")
            pipe.zcard(f"{key}.XQ")
            pipe.lindex(key, 0)
        replies = pipe.execute()
        heads: dict[str, Any] = {}
        states: dict[str, dict[str, float]] = {}
        for index, queue in enumerate(self.queues):
            ready, delayed, dead, head = replies[index * 4 : index * 4 + 4]
            states[queue] = {"depth": ready, "delayed": delayed, "dead": dead, "oldest_age": 0.0}
            if head is not None:
                heads[queue] = head
        if heads:
            pipe = self.client.pipeline(transaction=False)
            for queue, message_id in heads.items():
                pipe.hget(f"{self.namespace}:{queue}.msgs", message_id)
            now_ms = self.clock() * 1000
            for queue, body in zip(heads, pipe.execute(), strict=True):
                ready_since = _ready_since_ms(body)
                if ready_since is not None:
                    states[queue]["oldest_age"] = max(0.0, (now_ms - ready_since) / 1000)
        return states


def _ready_since_ms(body: bytes | None) -> float | None:
    # A delayed message (retry, scheduled send) has waited in the ready list only since it became
    # due: the broker middleware stamps that time at every enqueue; the eta or the creation time
    # stand in for messages sent without it.
    if body is None:
        return None
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    options = message.get("options") or {}
    ready_at = options.get(READY_AT_OPTION)
    if isinstance(ready_at, int | float):
        return float(ready_at)
    created = message.get("message_timestamp")
    eta = options.get("eta")
    candidates = [value for value in (created, eta) if isinstance(value, int | float)]
    return float(max(candidates)) if candidates else None


class _Cached:
    """A value recomputed at most every `ttl` seconds; failures keep the last good value."""

    def __init__(self, compute: Callable[[], Any], ttl: float) -> None:
        self.compute = compute
        self.ttl = ttl
        self.value: Any = None
        self.expires = 0.0
        self.lock = threading.Lock()

    def get(self) -> Any:
        with self.lock:
            now = time.monotonic()
            if now >= self.expires:
                try:
                    self.value = self.compute()
                except Exception as exc:
                    log.warning("collector_query_failed", error=type(exc).__name__)
                self.expires = now + self.ttl
            return self.value


class ContactsCollector(Collector):
    """Contacts stored and opted in: one aggregate query, cached (default 60 s)."""

    def __init__(self, ttl_seconds: float = 60.0) -> None:
        self.cache = _Cached(self._query, ttl_seconds)

    @staticmethod
    def _query() -> tuple[int, int]:
        from sqlalchemy import text

        from herald import db

        with db.sync_engine().connect() as connection:
            row = connection.execute(
                text("SELECT count(*), count(*) FILTER (WHERE opt_in_status = 'opted_in') FROM contacts")
            ).one()
        return int(row[0]), int(row[1])

    def collect(self) -> Iterable[Metric]:
        value = self.cache.get()
        if value is None:
            return []
        total, opted_in = value
        return [
            GaugeMetricFamily(metrics.CONTACTS, "Contacts stored.", value=total),
            GaugeMetricFamily(metrics.CONTACTS_OPTED_IN, "Contacts who opted in to messages.", value=opted_in),
        ]


def expected_interval_seconds(schedule: str) -> float:
    """The longest gap between two consecutive runs of a cron schedule over the next week."""
    from croniter import croniter

    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: weekly schedules are covered
    iterator = croniter(schedule, start)
    previous = iterator.get_next(datetime)
    longest = 0.0
    limit = start.timestamp() + 8 * 86_400
    while previous.timestamp() < limit:
        following = iterator.get_next(datetime)
        longest = max(longest, (following - previous).total_seconds())
        previous = following
    return longest


class JobsCollector(Collector):
    """Last recorded success per job (the runner's `job.succeeded` rows in the logs table) and
    each job's expected interval, so an alert can say "not succeeded within its window"."""

    def __init__(self, ttl_seconds: float = 60.0) -> None:
        from herald.jobs.registry import JOBS

        self.intervals = {job.name: expected_interval_seconds(job.schedule) for job in JOBS}
        self.cache = _Cached(self._query, ttl_seconds)

    def _query(self) -> dict[str, float]:
        from sqlalchemy import text

        from herald import db

        # One LIMIT 1 per job walks ix_logs_event_created backwards: cheap however long the log is.
        statement = text(
            "SELECT created_at FROM logs WHERE event = 'job.succeeded' AND entity_type = 'job'"
            " AND entity_id = :job ORDER BY created_at DESC LIMIT 1"
        )
        found: dict[str, float] = {}
        with db.sync_engine().connect() as connection:
            for job in self.intervals:
                created_at = connection.execute(statement, {"job": job}).scalar_one_or_none()
                if created_at is not None:
                    found[job] = created_at.timestamp()
        return found

    def collect(self) -> Iterable[Metric]:
        interval = GaugeMetricFamily(
            metrics.JOB_EXPECTED_INTERVAL, "Longest gap between scheduled runs of the job.", labels=["job"]
        )
        for job, seconds in self.intervals.items():
            interval.add_metric([job], seconds)
        families: list[Metric] = [interval]
        last = self.cache.get()
        if last is not None:
            success = GaugeMetricFamily(
                metrics.JOB_RECORDED_LAST_SUCCESS,
                "Unix time of the job's last success recorded in the logs table.",
                labels=["job"],
            )
            for job, timestamp in last.items():
                success.add_metric([job], timestamp)
            families.append(success)
        return families


def cluster_collectors(redis_url: str, queues: Sequence[str]) -> list[Collector]:
    """The collectors a worker metrics endpoint exports: queue state, contacts, jobs."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    return [QueueStateCollector(client, queues), ContactsCollector(), JobsCollector()]
