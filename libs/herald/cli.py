"""The `herald` command: the same entry points in `make run`, containers and CronJobs.

Each service's operator commands live in `services/<name>/cli.py` (a typer `app`) and are
mounted here as `herald <name> ...`; the jobs package adds `herald scheduler` and `herald job`.
They are loaded by dotted name only when invoked or listed, so importing this module never
imports `services`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Annotated, Any

import typer
from typer import _click as click  # typer vendors click; its group API is typed against this copy
from typer.core import TyperGroup

from herald.contracts import Queue
from herald.runner import DEFAULT_PORTS, Service, module_exists

# Command name -> "module:attribute", imported only when listed or invoked. A typer app becomes a
# command group; a plain function becomes a single command.
LAZY_COMMANDS: dict[str, str] = {
    **{
        name: f"services.{name}.cli:app"
        for name in ("contacts", "messaging", "automation", "webhook", "simulator")
    },
    "jobs": "herald.jobs.cli:app",
    "job": "herald.jobs.cli:run_one",
    "scheduler": "herald.jobs.cli:run_scheduler",
}


def _load_command(name: str, target: str) -> click.Command | None:
    module_name, _, attribute = target.partition(":")
    if not module_exists(module_name):
        return None
    obj = getattr(importlib.import_module(module_name), attribute, None)
    if isinstance(obj, typer.Typer):
        group = typer.main.get_group(obj)
        group.name = name
        return group
    if callable(obj):
        single = typer.Typer()
        single.command(name)(obj)
        return typer.main.get_command(single)
    return None


class HeraldGroup(TyperGroup):
    """Adds the lazily imported commands of services and jobs to the built-in commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [
            name
            for name, target in LAZY_COMMANDS.items()
            if name not in self.commands and module_exists(target.partition(":")[0])
        ]
        return [*super().list_commands(ctx), *sorted(lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        return _load_command(cmd_name, LAZY_COMMANDS[cmd_name])


app = typer.Typer(
    cls=HeraldGroup,
    no_args_is_help=True,
    add_completion=False,
    help="Herald: WhatsApp automation over Meta's Cloud API. Operator and process commands.",
)
user_app = typer.Typer(no_args_is_help=True, help="Manage users.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect configuration.")
app.add_typer(user_app, name="user")
app.add_typer(config_app, name="config")


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head)."""
    from herald.runner import run_migrations

    run_migrations()
    typer.echo("database is at the latest migration")


@app.command()
def serve(
    service: Annotated[Service, typer.Argument(help="which service to run")],
    port: Annotated[int | None, typer.Option(envvar="PORT", help="default: the service's port")] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "0.0.0.0",  # noqa: S104 - containers  # nosec B104
    workers: Annotated[int | None, typer.Option(help="default: HERALD_WEB_WORKERS")] = None,
    reload: Annotated[bool, typer.Option(help="restart on code changes (development)")] = False,
) -> None:
    """Serve one HTTP service with gunicorn and uvicorn workers."""
    from herald.runner import exec_argv, serve_argv, service_available
    from herald.settings import get_settings

    if not service_available(service):
        _fail(f"service {service.value!r} is not installed here (no services/{service.value}/app.py)")
    argv = serve_argv(
        service,
        host=host,
        port=port or DEFAULT_PORTS[service],
        workers=workers or get_settings().web_workers,
        reload=reload,
    )
    exec_argv(argv)


@app.command()
def worker(
    queue: Annotated[Queue, typer.Argument(help="which queue to consume")],
    processes: Annotated[int | None, typer.Option(help="default: HERALD_WORKER_PROCESSES")] = None,
    threads: Annotated[int | None, typer.Option(help="default: HERALD_WORKER_THREADS")] = None,
) -> None:
    """Run a Dramatiq worker for one queue."""
    from herald.runner import exec_argv, worker_argv
    from herald.settings import get_settings

    settings = get_settings()
    try:
        argv = worker_argv(
            queue,
            processes=processes or settings.worker_processes,
            threads=threads or settings.worker_threads,
        )
    except LookupError as exc:
        _fail(str(exc))
        return
    exec_argv(argv)


@app.command("seed-admin")
def seed_admin() -> None:
    """Create the admin user if it does not exist (HERALD_ADMIN_EMAIL / HERALD_ADMIN_PASSWORD)."""
    from herald.errors import HeraldError
    from herald.runner import AdminPasswordMissing, seed_admin_account

    try:
        seed = seed_admin_account()
    except (AdminPasswordMissing, HeraldError) as exc:
        _fail(f"cannot seed the admin: {getattr(exc, 'detail', exc)}")
        return
    if not seed.created:
        typer.echo(f"admin {seed.email} already exists")
    elif seed.generated_password:
        typer.echo(f"created admin {seed.email} with password {seed.generated_password}")
        typer.echo(f"(the password is kept in {seed.password_file})")
    else:
        typer.echo(f"created admin {seed.email} with the password from HERALD_ADMIN_PASSWORD")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="login email")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="at least 8 characters"),
    ],
    role: Annotated[str, typer.Option(help="admin, operator or viewer")] = "operator",
    full_name: Annotated[str, typer.Option(help="display name")] = "",
) -> None:
    """Create a user."""
    from herald import db, users
    from herald.errors import HeraldError

    async def create() -> str:
        try:
            async with db.session_scope() as session:
                user = await users.create_user(session, email, password, role, full_name=full_name)
                return f"created {user.role} {user.email} ({user.id})"
        finally:
            await db.dispose_engines()

    try:
        typer.echo(asyncio.run(create()))
    except HeraldError as exc:
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in exc.errors)
        _fail(f"cannot create user: {exc.detail}" + (f" ({fields})" if fields else ""))


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON with every secret redacted."""
    from herald.settings import get_settings

    shown: dict[str, Any] = get_settings().redacted()
    typer.echo(json.dumps(shown, indent=2, sort_keys=True, default=str))


@app.command()
def dev(
    port_offset: Annotated[
        int, typer.Option(help="add this to every default port (run two stacks side by side)")
    ] = 0,
) -> None:
    """Run the whole stack locally: embedded PostgreSQL and Redis unless configured, migrations, admin,
    simulator, every service, one worker per queue, the scheduler and the gateway on :8000."""
    from herald.devstack import run_dev

    raise typer.Exit(run_dev(port_offset=port_offset))


if __name__ == "__main__":
    app()
