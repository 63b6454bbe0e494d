"""`herald contacts ...`: import and export contacts from the command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

app = typer.Typer(help="Contacts: CSV import and export.", no_args_is_help=True)


@app.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV file to import")],
    region: Annotated[
        str | None, typer.Option(help="region for numbers without +country (default HERALD_DEFAULT_REGION)")
    ] = None,
) -> None:
    """Upsert contacts by phone from a CSV (same columns as POST /api/v1/contacts/import)."""
    from herald.db import dispose_engines
    from herald.errors import HeraldError
    from services.contacts.importer import import_file

    async def run() -> None:
        try:
            with file.open("rb") as raw:
                report = await import_file(raw, region=region)
        finally:
            await dispose_engines()
        typer.echo(orjson.dumps(report.model_dump(), option=orjson.OPT_INDENT_2).decode())

    try:
        asyncio.run(run())
    except HeraldError as exc:
        fields = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        typer.secho(f"import refused: {exc.detail}" + (f" ({fields})" if fields else ""), err=True, fg="red")
        raise typer.Exit(1) from exc


@app.command("export")
def export_csv(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default stdout)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="only contacts with this tag (repeatable)")] = None,
    opt_in_status: Annotated[str | None, typer.Option(help="unknown, opted_in or opted_out")] = None,
) -> None:
    """Write contacts as CSV (the columns the import reads)."""
    from herald.db import dispose_engines
    from services.contacts.importer import export_contacts
    from services.contacts.repository import ContactFilters

    filters = ContactFilters(tags=[t.strip().lower() for t in tag or []], opt_in_status=opt_in_status)

    async def run() -> None:
        target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            async for text in export_contacts(filters):
                target.write(text)
        finally:
            if output:
                target.close()
            await dispose_engines()

    asyncio.run(run())
