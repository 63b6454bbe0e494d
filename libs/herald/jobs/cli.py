"""`herald job <name>`, `herald jobs list`, `herald scheduler`: the CronJob and scheduler entrypoints."""

from __future__ import annotations

import json
from datetime import datetime

import typer

from herald.jobs.registry import JOBS, get_job

app = typer.Typer(help="Scheduled jobs.", no_args_is_help=True)


@app.command("list")
def list_jobs(as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON.")) -> None:
    """List every registered job with its schedule."""
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": job.name,
                        "schedule": job.schedule,
                        "timezone": job.timezone,
                        "description": job.description,
                        "deadline_seconds": job.deadline_seconds,
                        "starting_deadline_seconds": job.starting_deadline_seconds,
                    }
                    for job in JOBS
                ],
                indent=2,
            )
        )
        return
    for job in JOBS:
        typer.echo(f"{job.name:22} {job.schedule:14} {job.timezone:6} {job.description}")


def run_one(
    name: str = typer.Argument(..., help="Job name, see `herald jobs list`."),
    at: datetime | None = typer.Option(None, "--at", help="Run as if it were this UTC time (ISO 8601)."),
) -> None:
    """Run one job once and exit with its outcome (0 done or skipped, 1 failed, 2 unknown job)."""
    from datetime import UTC

    from herald.jobs.runner import run_job
    from herald.observability.logging import configure_logging

    configure_logging(f"job-{name}")
    try:
        spec = get_job(name)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    now = at.replace(tzinfo=at.tzinfo or UTC) if at else None
    if now is not None:
        from herald import clock

        clock.set_now(now)
    outcome = run_job(spec, now)
    typer.echo(json.dumps({"job": name, "outcome": outcome.outcome, "counts": outcome.counts}))
    raise typer.Exit(outcome.exit_code)


def run_scheduler() -> None:
    """Run every registered job on its schedule (local development; Kubernetes uses CronJobs)."""
    from herald.jobs.scheduler import Scheduler
    from herald.observability.logging import configure_logging

    configure_logging("scheduler")
    Scheduler().run_forever()
