"""The local scheduler: runs each registered job's entrypoint (`herald job <name>`) on its
schedule, as a child process, exactly as a Kubernetes CronJob would (concurrencyPolicy Forbid:
a job still running when its next time comes is not started twice)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from croniter import croniter

from herald.clock import utcnow
from herald.jobs.registry import JOBS, JobSpec

log = structlog.get_logger("herald.scheduler")


def next_fire(spec: JobSpec, after: datetime) -> datetime:
    """The next time `spec` is due strictly after `after`, evaluated in the job's time zone."""
    local = after.astimezone(ZoneInfo(spec.timezone))
    return croniter(spec.schedule, local).get_next(datetime).astimezone(after.tzinfo)


@dataclass
class _Slot:
    spec: JobSpec
    due: datetime
    process: subprocess.Popen[bytes] | None = None


class Scheduler:
    def __init__(self, jobs: tuple[JobSpec, ...] = JOBS, command: list[str] | None = None) -> None:
        now = utcnow()
        self.slots = [_Slot(spec, next_fire(spec, now)) for spec in jobs]
        self.command = command or [sys.executable, "-m", "herald.cli", "job"]
        self.stopping = False

    def tick(self, now: datetime) -> list[str]:
        """Start every job that is due; return the names started."""
        started = []
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                log.info("job_exited", job=slot.spec.name, exit_code=slot.process.returncode)
                slot.process = None
            if now < slot.due:
                continue
            slot.due = next_fire(slot.spec, now)
            if slot.process is not None:
                log.warning("job_still_running", job=slot.spec.name, next_due=slot.due.isoformat())
                continue
            slot.process = subprocess.Popen([*self.command, slot.spec.name])  # noqa: S603 - our own entrypoint  # nosec B603
            started.append(slot.spec.name)
        return started

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("scheduler_started", jobs={slot.spec.name: slot.spec.schedule for slot in self.slots})
        while not self.stopping:
            self.tick(utcnow())
            earliest = min(slot.due for slot in self.slots)
            time.sleep(max(0.2, min(5.0, (earliest - utcnow()).total_seconds())))
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.terminate()
                slot.process.wait(timeout=30)

    def _stop(self, *_: object) -> None:
        self.stopping = True
