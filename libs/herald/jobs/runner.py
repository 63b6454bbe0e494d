"""Run one job once: a PostgreSQL advisory lock so two runs never overlap, the run recorded in
the logs table and as metrics, and an exit code that says what happened.

Exit codes: 0 done (or skipped because another run holds the lock), 1 the job failed,
2 unknown job / bad arguments.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import text

from herald import db
from herald.clock import utcnow
from herald.jobs.registry import JobSpec
from herald.observability import metrics

log = structlog.get_logger("herald.jobs")

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass
class JobContext:
    """What a job function receives: the time it runs for, and a place to count its work."""

    spec: JobSpec
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount


@dataclass(frozen=True)
class JobOutcome:
    name: str
    outcome: str  # succeeded | failed | skipped
    counts: dict[str, int]
    duration_seconds: float
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.outcome == "failed" else EXIT_OK


def resolve_target(target: str) -> Callable[[JobContext], Any]:
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    function: Callable[[JobContext], Any] = getattr(module, function_name)
    return function


def _record(spec: JobSpec, outcome: JobOutcome, started_at: datetime) -> None:
    level = {"succeeded": "info", "skipped": "info", "failed": "error"}[outcome.outcome]
    data = {
        "job": spec.name,
        "outcome": outcome.outcome,
        "counts": outcome.counts,
        "started_at": started_at.isoformat(),
        "finished_at": utcnow().isoformat(),
        "duration_seconds": round(outcome.duration_seconds, 3),
    }
    if outcome.error:
        data["error"] = outcome.error[-4000:]
    with db.sync_session_scope() as session:
        session.execute(
            text(
                "INSERT INTO logs (level, source, event, message, entity_type, entity_id, data)"
                " VALUES (:level, 'scheduler', :event, :message, 'job', :job, CAST(:data AS jsonb))"
            ),
            {
                "level": level,
                "event": f"job.{outcome.outcome}",
                "message": f"job {spec.name} {outcome.outcome}",
                "job": spec.name,
                "data": _json(data),
            },
        )


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def run_job(spec: JobSpec, now: datetime | None = None) -> JobOutcome:
    """Run `spec` once unless another run holds its lock; record the run either way."""
    started = time.perf_counter()
    started_at = utcnow()
    context = JobContext(spec=spec, now=now or started_at)
    # The lock lives on its own connection for the whole run and dies with the process.
    with db.sync_engine().connect() as lock_connection:
        acquired = lock_connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": spec.lock_key}
        ).scalar_one()
        lock_connection.commit()
        if not acquired:
            outcome = JobOutcome(spec.name, "skipped", {"lock_held_elsewhere": 1}, time.perf_counter() - started)
            log.info("job_skipped", job=spec.name, reason="another run holds the lock")
            _finish(spec, outcome, started_at)
            return outcome
        try:
            log.info("job_started", job=spec.name)
            function = resolve_target(spec.target)
            result = function(context)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            if isinstance(result, dict):
                for key, value in result.items():
                    if isinstance(value, int):
                        context.counts[key] = context.counts.get(key, 0) + value
            outcome = JobOutcome(spec.name, "succeeded", context.counts, time.perf_counter() - started)
        except Exception:
            log.exception("job_failed", job=spec.name)
            outcome = JobOutcome(
                spec.name, "failed", context.counts, time.perf_counter() - started, traceback.format_exc()
            )
        finally:
            lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": spec.lock_key})
            lock_connection.commit()
    _finish(spec, outcome, started_at)
    return outcome


async def _await(awaitable: Any) -> Any:
    try:
        return await awaitable
    finally:
        await db.dispose_engines()


def _finish(spec: JobSpec, outcome: JobOutcome, started_at: datetime) -> None:
    metrics.JOB_RUNS.labels(spec.name, outcome.outcome).inc()
    metrics.JOB_DURATION.labels(spec.name).observe(outcome.duration_seconds)
    if outcome.outcome == "succeeded":
        metrics.JOB_LAST_SUCCESS.labels(spec.name).set(time.time())
    _record(spec, outcome, started_at)
    log.info("job_finished", job=spec.name, outcome=outcome.outcome, counts=outcome.counts,
             duration_seconds=round(outcome.duration_seconds, 3))
