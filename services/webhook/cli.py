"""`herald webhook ...`: inspect and replay stored webhook events."""

from __future__ import annotations

from typing import Annotated

import typer

from herald.db import sync_session_scope
from herald.models import InboxStatus
from herald.webhooks.inbox import list_statement, replay_events_sync

app = typer.Typer(help="Stored WhatsApp webhook events: list and replay.", no_args_is_help=True)


@app.command("list")
def list_events(
    failed: Annotated[bool, typer.Option("--failed", help="Only failed events")] = False,
    status: Annotated[InboxStatus | None, typer.Option(help="Only events in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Newest first: id, received time, status, attempts and the error, if any."""
    chosen = InboxStatus.FAILED if failed else status
    rows_query, total_query = list_statement(status=chosen, limit=limit)
    with sync_session_scope() as session:
        rows = list(session.execute(rows_query).scalars())
        total = session.execute(total_query).scalar_one()
    for row in rows:
        error = f"  {row.error}" if row.error else ""
        typer.echo(f"{row.id}\t{row.received_at.isoformat()}\t{row.status}\tattempts={row.attempts}{error}")
    typer.echo(f"{len(rows)} shown of {total}")


@app.command("replay")
def replay(
    event_id: Annotated[int | None, typer.Option("--id", help="Replay this event (any status)")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Replay every failed event")] = False,
    skipped: Annotated[bool, typer.Option("--skipped", help="Replay every skipped event")] = False,
) -> None:
    """Put events back to pending and enqueue them; processing is idempotent."""
    if sum((event_id is not None, failed, skipped)) != 1:
        typer.echo("give exactly one of --id N, --failed or --skipped", err=True)
        raise typer.Exit(2)
    status = InboxStatus.FAILED if failed else InboxStatus.SKIPPED if skipped else None
    with sync_session_scope() as session:
        ids = replay_events_sync(session, event_id=event_id, status=status)
    if event_id is not None and not ids:
        typer.echo(f"no webhook event {event_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"replayed {len(ids)} event(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))
