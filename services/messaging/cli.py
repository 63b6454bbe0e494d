"""`herald messaging ...`: template sync and crash recovery from the command line."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer

app = typer.Typer(help="Messaging: template sync and recovery of unhanded or stuck messages.", no_args_is_help=True)


@app.command("sync-templates")
def sync_templates_command() -> None:
    """Fetch the WABA's templates into the database now."""
    from herald.db import dispose_engines, session_scope
    from herald.messaging.templates import sync_templates
    from herald.settings import get_settings
    from herald.whatsapp import CloudAPIClient, CloudAPIError

    async def run() -> dict[str, int]:
        try:
            async with CloudAPIClient.from_settings(get_settings()) as client, session_scope() as session:
                return (await sync_templates(session, client)).as_dict()
        finally:
            await dispose_engines()

    try:
        report = asyncio.run(run())
    except CloudAPIError as exc:
        typer.secho(f"the Cloud API refused: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@app.command("relay")
def relay_command(
    stale_seconds: Annotated[int, typer.Option(min=0, help="hand over queued messages older than this")] = 120,
) -> None:
    """Hand queued messages that never reached the broker (or whose hand-over is stale) to it."""
    from datetime import timedelta

    from herald.messaging.relay import relay_unhanded_messages

    typer.echo(f"handed over {relay_unhanded_messages(stale_after=timedelta(seconds=stale_seconds))}")


@app.command("requeue-stuck")
def requeue_stuck_command(
    stuck_seconds: Annotated[int, typer.Option(min=0, help="requeue `sending` messages older than this")] = 300,
) -> None:
    """Requeue messages left `sending` with no wamid by a worker that died (see docs/messaging.md)."""
    from datetime import timedelta

    from herald.messaging.relay import requeue_stuck_sending

    typer.echo(f"requeued {requeue_stuck_sending(stuck_after=timedelta(seconds=stuck_seconds))}")
