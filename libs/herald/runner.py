"""What `herald serve` and `herald worker` execute: gunicorn with uvicorn workers for a service,
the dramatiq CLI for a queue. Both replace the current process (exec) so signals from a process
manager, Kubernetes or honcho reach the server directly.

Services are named by dotted import strings only: this module never imports `services`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import dramatiq

from herald.contracts import QUEUE_ACTOR_MODULES, Queue
from herald.settings import Environment, Settings, get_settings


class Service(StrEnum):
    CONTACTS = "contacts"
    MESSAGING = "messaging"
    AUTOMATION = "automation"
    WEBHOOK = "webhook"
    SIMULATOR = "simulator"
    GATEWAY = "gateway"


# Local ports from DEVELOPERS.md; containers use the same numbers.
DEFAULT_PORTS: dict[Service, int] = {
    Service.GATEWAY: 8000,
    Service.CONTACTS: 8001,
    Service.MESSAGING: 8002,
    Service.AUTOMATION: 8003,
    Service.WEBHOOK: 8004,
    Service.SIMULATOR: 8090,
}

# The four domain services, in start order (the gateway and the simulator are tools around them).
DOMAIN_SERVICES: tuple[Service, ...] = (
    Service.CONTACTS,
    Service.MESSAGING,
    Service.AUTOMATION,
    Service.WEBHOOK,
)


def app_import_string(service: Service) -> str:
    return f"services.{service.value}.app:app"


def module_exists(dotted: str) -> bool:
    """True when `dotted` can be imported, without importing it (parent packages are imported)."""
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:
        return False


def service_available(service: Service) -> bool:
    return module_exists(f"services.{service.value}.app")


def actor_modules(queue: Queue) -> list[str]:
    """The modules holding the actors of `queue` that exist in this installation."""
    return [module for module in QUEUE_ACTOR_MODULES[queue] if module_exists(module)]


def serve_argv(service: Service, *, host: str, port: int, workers: int, reload: bool) -> list[str]:
    """The command line that serves one service.

    gunicorn supervises `workers` uvicorn workers (uvloop and httptools are picked automatically
    when installed); `reload` uses plain uvicorn with its file watcher for development.
    """
    target = app_import_string(service)
    if reload:
        return [
            sys.executable, "-m", "uvicorn", target, "--host", host, "--port", str(port),
            "--reload", "--reload-dir", "libs", "--reload-dir", "services",
            "--loop", "uvloop", "--http", "httptools",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", target,
        "--config", "python:herald.gunicorn_conf",
        "--worker-class", "uvicorn.workers.UvicornWorker",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--graceful-timeout", "20",
        "--timeout", "120",
        "--keep-alive", "5",
        "--worker-tmp-dir", _worker_tmp_dir(),
    ]  # fmt: skip


def _worker_tmp_dir() -> str:
    # gunicorn's heartbeat files: /dev/shm avoids disk writes and works on read-only root file systems.
    return "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"  # noqa: S108 - heartbeat files only  # nosec B108


def worker_argv(queue: Queue, *, processes: int, threads: int) -> list[str]:
    """The dramatiq command line for one queue: the broker set-up callable, then the actor modules."""
    modules = actor_modules(queue)
    if not modules:
        raise LookupError(
            f"no actor module of queue {queue.value!r} is installed (expected one of "
            f"{', '.join(QUEUE_ACTOR_MODULES[queue])})"
        )
    return [
        sys.executable, "-m", "dramatiq", "herald.runner:setup_broker", *modules,
        "--queues", queue.value,
        "--processes", str(processes),
        "--threads", str(threads),
    ]  # fmt: skip


def setup_broker() -> dramatiq.Broker:
    """Called by the dramatiq CLI in each worker process: logging first, then the broker."""
    from herald.observability.logging import configure_logging
    from herald.queue import get_broker

    configure_logging("worker")
    return get_broker()


def exec_argv(argv: Sequence[str]) -> None:
    """Replace this process with `argv` (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], list(argv))  # noqa: S606 - argv is built above from fixed parts  # nosec B606


def repository_root() -> Path:
    """The checkout (or image) root holding alembic.ini: the working directory when it has one."""
    cwd = Path.cwd()
    if (cwd / "alembic.ini").exists():
        return cwd
    return Path(__file__).resolve().parents[2]


def run_migrations(database_url: str | None = None) -> None:
    """`alembic upgrade head` on DATABASE_URL (or `database_url`)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(repository_root() / "alembic.ini"))
    if database_url:
        config.attributes["url"] = database_url
    command.upgrade(config, "head")


@dataclass(frozen=True)
class AdminSeed:
    email: str
    created: bool
    # Set only when the password was generated here and the admin was just created: show it once.
    generated_password: str | None
    password_file: Path | None


class AdminPasswordMissing(RuntimeError):
    pass


def admin_password(settings: Settings) -> tuple[str, bool, Path | None]:
    """(password, generated, file): HERALD_ADMIN_PASSWORD, else (outside production) one generated
    once and kept in the data folder so repeated runs agree."""
    configured = settings.admin_password.get_secret_value()
    if configured:
        return configured, False, None
    if settings.environment is Environment.PRODUCTION:
        raise AdminPasswordMissing("HERALD_ADMIN_PASSWORD must be set in production")
    path = settings.data_dir / "admin_password"
    if path.exists():
        return path.read_text().strip(), True, path
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    path.write_text(password)
    path.chmod(0o600)
    return password, True, path


def seed_admin_account(settings: Settings | None = None) -> AdminSeed:
    """Make sure the admin user exists (idempotent): HERALD_ADMIN_EMAIL with admin_password()."""
    from herald import db, users

    settings = settings or get_settings()
    password, generated, path = admin_password(settings)

    async def seed() -> bool:
        try:
            async with db.session_scope() as session:
                _, created = await users.seed_admin(session, settings.admin_email, password)
            return created
        finally:
            await db.dispose_engines()

    created = asyncio.run(seed())
    return AdminSeed(
        email=settings.admin_email,
        created=created,
        generated_password=password if generated and created else None,
        password_file=path,
    )
