"""Every scheduled job Herald runs, with its default schedule and time zone.

The local scheduler (`herald scheduler`) and the Helm chart's CronJobs are both built from this
list (the chart's values.yaml `jobs:` block is checked against it by tests/packaging). A job is
a plain function referenced by dotted path, so the runner imports only the code that job needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class JobSpec:
    name: str
    schedule: str  # five-field cron expression
    timezone: str
    target: str  # "module.path:function"; the function takes a JobContext and returns counts
    description: str
    # Kubernetes: how long a run may take, and how late a missed start may still begin.
    deadline_seconds: int = 600
    starting_deadline_seconds: int = 300

    @property
    def lock_key(self) -> int:
        """A stable 63-bit key for pg_try_advisory_lock, derived from the name."""
        digest = hashlib.sha256(f"herald.job.{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        name="automation-tick",
        schedule="*/5 * * * *",
        timezone="UTC",
        target="services.automation.tick:job_birthday_and_date_tick",
        description="Start birthday and date-field automations that are due in each contact's time zone.",
    ),
    JobSpec(
        name="automation-schedule",
        schedule="* * * * *",
        timezone="UTC",
        target="services.automation.tick:job_schedule_and_waits",
        description="Fire cron-scheduled automations and resume waiting runs whose time has come.",
        deadline_seconds=300,
        starting_deadline_seconds=60,
    ),
    JobSpec(
        name="analytics-rollup",
        schedule="5 * * * *",
        timezone="UTC",
        target="herald.analytics.rollup:job_rollup_recent_hours",
        description="Recompute the hourly analytics rows of the last hours (late statuses included).",
    ),
    JobSpec(
        name="message-retry",
        schedule="*/5 * * * *",
        timezone="UTC",
        target="herald.messaging.recovery:job_retry_failed_messages",
        description="Resend messages that failed with a retryable error, with backoff, up to a limit.",
    ),
    JobSpec(
        name="message-recovery",
        schedule="*/2 * * * *",
        timezone="UTC",
        target="herald.messaging.recovery:job_recover_messages",
        description="Hand queued messages a broker outage left behind, and recover messages stuck in sending.",
        deadline_seconds=300,
        starting_deadline_seconds=120,
    ),
    JobSpec(
        name="webhook-relay",
        schedule="*/2 * * * *",
        timezone="UTC",
        target="herald.jobs.builtin:job_relay_webhook_events",
        description="Re-enqueue stored webhook events that were never processed.",
        deadline_seconds=300,
        starting_deadline_seconds=120,
    ),
    JobSpec(
        name="template-sync",
        schedule="17 * * * *",
        timezone="UTC",
        target="herald.jobs.builtin:job_sync_templates",
        description="Fetch the WhatsApp Business Account's message templates into the database.",
    ),
    JobSpec(
        name="retention-cleanup",
        schedule="30 3 * * 0",
        timezone="UTC",
        target="herald.retention:job_retention_cleanup",
        description="Delete logs, processed webhook events and other transient rows past their retention.",
        deadline_seconds=3600,
        starting_deadline_seconds=3600,
    ),
)

JOBS_BY_NAME: dict[str, JobSpec] = {job.name: job for job in JOBS}


def get_job(name: str) -> JobSpec:
    try:
        return JOBS_BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(JOBS_BY_NAME))
        raise KeyError(f"unknown job {name!r}; known jobs: {known}") from None
