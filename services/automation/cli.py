"""`herald automation ...`: run the ticks by hand (optionally at a given time)."""

from __future__ import annotations

from datetime import datetime

import orjson
import typer

app = typer.Typer(help="Automation ticks and sweeps.", no_args_is_help=True)


def _at(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise typer.BadParameter("give a timezone-aware time, e.g. 2026-05-01T09:00:00+00:00")
    return moment


@app.command("tick")
def tick(at: str | None = typer.Option(None, help="ISO time to run the tick for (default now)")) -> None:
    """Start the birthday and date-field automations due now."""
    from services.automation.tick import birthday_and_date_tick

    typer.echo(orjson.dumps(birthday_and_date_tick(_at(at)).as_dict(), option=orjson.OPT_INDENT_2).decode())


@app.command("schedule")
def schedule(at: str | None = typer.Option(None, help="ISO time (default now)")) -> None:
    """Fire the cron-scheduled automations whose slot is due."""
    from services.automation.tick import schedule_tick

    typer.echo(orjson.dumps(schedule_tick(_at(at)).as_dict(), option=orjson.OPT_INDENT_2).decode())


@app.command("resume-waits")
def resume_waits(at: str | None = typer.Option(None, help="ISO time (default now)")) -> None:
    """Re-enqueue waiting runs whose resume time passed."""
    from services.automation.tick import resume_due_waits

    typer.echo(orjson.dumps(resume_due_waits(_at(at)).as_dict(), option=orjson.OPT_INDENT_2).decode())
