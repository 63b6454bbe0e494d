"""The real stack for benchmarks: PostgreSQL, Redis, the simulator, workers and services, each a
separate process, plus the bits every benchmark needs (a fresh database, bulk seeding, peak RSS).

    with Stack("dispatch") as stack:
        sim = stack.simulator(limits_enabled="false", callback_url="")
        stack.worker("messages", env=stack.sim_env(sim))
        ...

Servers: BENCH_DATABASE_URL / BENCH_REDIS_URL, else the local servers on 127.0.0.1 (what CI and
`make run` users have), else embedded ones (herald.devstack) under .herald/bench. Each stack gets
its own database (migrated, dropped at the end) and its own Redis database numbers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import psutil
import psycopg
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
SIM_TOKEN = "bench-access-token"
SIM_APP_SECRET = "bench-app-secret"
VERIFY_TOKEN = "bench-verify-token"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
API_VERSION = "v21.0"
CLAIM_KEY = "herald:test-run-claim"  # the same claim the test suite uses, so they never collide

# The brief's memory limits per container kind, in MiB.
MEMORY_LIMITS_MB = {"api": 512, "worker": 256, "scheduler": 128}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_client(headers: dict[str, str], connections: int) -> aiohttp.ClientSession:
    """A load generator's HTTP client. aiohttp, not httpx: httpx's async pool tops out at a few
    hundred requests/s on this machine and would measure itself instead of the server."""
    return aiohttp.ClientSession(
        headers=headers,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Servers:
    postgres: str  # admin URL (any database)
    redis: str  # base URL (database number replaced per stack)


_servers: Servers | None = None


def servers() -> Servers:
    """The PostgreSQL and Redis servers every stack of this run uses (found or started once)."""
    global _servers
    if _servers is not None:
        return _servers
    postgres = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    data = REPO_ROOT / ".herald" / "bench"
    if not _reachable(postgres, 5432):
        from herald.devstack import start_embedded_postgres

        postgres = start_embedded_postgres(data, database="postgres")
    if not _reachable(redis_url, 6379):
        from herald.devstack import start_embedded_redis

        redis_url = start_embedded_redis(data)
    _servers = Servers(postgres, redis_url)
    return _servers


def _with_path(url: str, path: str) -> str:
    return urlsplit(url)._replace(path=path).geturl()


def claim_redis_db(base_url: str) -> tuple[str, redis.Redis]:
    """A Redis database number no test run or other stack is using, emptied."""
    token = f"bench:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    for number in range(15, 0, -1):
        url = _with_path(base_url, f"/{number}")
        client = redis.Redis.from_url(url)
        if client.set(CLAIM_KEY, token, nx=True, ex=3 * 3600):
            client.flushdb()
            client.set(CLAIM_KEY, token, ex=3 * 3600)
            return url, client
        client.close()
    raise RuntimeError("every Redis database 1-15 is claimed; is a stale test or bench run still going?")


def create_database(admin_url: str, name: str) -> str:
    """A freshly migrated database `name` (dropped first if a crashed run left it)."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = _with_path(admin_url, f"/{name}")
    subprocess.run(
        [sys.executable, "-m", "herald.cli", "migrate"],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "WARNING"},
        check=True,
        capture_output=True,
    )
    return url


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _process_tree(pid: int) -> list[psutil.Process]:
    """A process and its children; empty when it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children in MiB (what a container's limit counts)."""
    total = 0
    for proc in _process_tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1_048_576


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    return sum(_cpu_seconds(proc) for proc in _process_tree(pid))


def postgres_cpu(database: str) -> float:
    """CPU seconds so far of the PostgreSQL backends serving `database` (their titles name it)
    and of the server's own background processes (WAL writer, checkpointer, ...), which work
    for whichever database is busy."""
    total = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or [])
        if not title.startswith("postgres:"):
            continue
        serves_a_client = "(" in title or "[local]" in title
        if not serves_a_client or f" {database} " in f" {title} ":
            total += _cpu_seconds(proc)
    return total


def redis_cpu() -> float:
    """CPU seconds so far of the Redis (or Valkey) servers on this machine."""
    return sum(
        _cpu_seconds(proc)
        for proc in psutil.process_iter(["name"])
        if (proc.info["name"] or "").startswith(("redis-server", "valkey-server"))
    )


def _cpu_seconds(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


class PeakMemory:
    """Samples the resident memory of registered process trees every 0.2 s; keeps the peak per role.

    One instance for the whole run, so the memory rows cover every benchmark's load.
    """

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._watched: dict[int, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int, role: str) -> None:
        with self._lock:
            self._watched[pid] = role
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)
            self._thread.start()

    def forget(self, pid: int) -> None:
        self.sample()
        with self._lock:
            self._watched.pop(pid, None)

    def sample(self) -> None:
        with self._lock:
            watched = dict(self._watched)
        for pid, role in watched.items():
            rss = tree_rss_mb(pid)
            if rss > self.peaks.get(role, 0.0):
                self.peaks[role] = rss

    def _loop(self) -> None:
        while True:
            self.sample()
            time.sleep(0.2)


PEAK_MEMORY = PeakMemory()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        PEAK_MEMORY.forget(self.pid)
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Simulator:
    url: str
    process: Process
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = self.http.patch("/_sim/config", json=changes)
        response.raise_for_status()
        return dict(response.json())

    def reset(self) -> None:
        self.http.post("/_sim/reset", params={"keep_config": True}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/_sim/stats")
        response.raise_for_status()
        return dict(response.json())

    @property
    def send_url(self) -> str:
        return f"{self.url}/{API_VERSION}/{PHONE_NUMBER_ID}/messages"


class Stack:
    """One benchmark's processes, database and Redis databases; everything is stopped on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.servers = servers()
        self.db_name = f"herald_bench_{name}_{os.getpid()}"
        self.database_url = ""
        self.redis_url = ""
        self._redis_clients: list[redis.Redis] = []
        self.processes: list[Process] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"herald-bench-{name}-"))

    # --- lifetime ----------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.database_url = create_database(self.servers.postgres, self.db_name)
        self.redis_url = self.claim_redis()
        self.use_in_process()
        return self

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self._release_in_process()
        for client in self._redis_clients:
            try:
                client.flushdb()
                client.close()
            except redis.RedisError:
                pass
        drop_database(self.servers.postgres, self.db_name)

    def claim_redis(self) -> str:
        url, client = claim_redis_db(self.servers.redis)
        self._redis_clients.append(client)
        return url

    # --- environment -------------------------------------------------------------------------

    def env(self, **extra: Any) -> dict[str, str]:
        """The environment of every Herald process in this stack."""
        env = {
            **os.environ,
            "HERALD_ENV": "development",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": SECRET_KEY,
            "WHATSAPP_TOKEN": SIM_TOKEN,
            "WHATSAPP_APP_SECRET": SIM_APP_SECRET,
            "WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
            "PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "BUSINESS_ID": WABA_ID,
            "WHATSAPP_API_VERSION": API_VERSION,
            "HERALD_DATA_DIR": str(self.workdir / "data"),
            "HERALD_LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "HERALD_WORKER_METRICS_PORT": "0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
            "PYTHONUNBUFFERED": "1",
        }
        env.update({key: str(value) for key, value in extra.items()})
        return env

    @staticmethod
    def sim_env(sim: Simulator) -> dict[str, str]:
        return {"WHATSAPP_API_BASE_URL": sim.url}

    def use_in_process(self) -> None:
        """Point this process's herald settings at the stack (for seeding through herald code)."""
        for key, value in self.env().items():
            if key.isupper() and (
                key.startswith(("HERALD_", "WHATSAPP_", "SECRET", "DATABASE", "REDIS"))
                or key in {"PHONE_NUMBER_ID", "BUSINESS_ID", "WEBHOOK_VERIFY_TOKEN", "LOG_LEVEL"}
            ):
                os.environ[key] = value
        self._reset_herald()

    def _release_in_process(self) -> None:
        self._reset_herald()

    @staticmethod
    def _reset_herald() -> None:
        import asyncio

        from herald import db, queue
        from herald.settings import get_settings

        get_settings.cache_clear()
        try:
            asyncio.run(db.dispose_engines())
        except RuntimeError:
            pass
        queue.reset_broker()

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str], role: str | None = None) -> Process:
        log_path = self.workdir / f"{name}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        process = Process(name, popen, log_path)
        self.processes.append(process)
        if role:
            PEAK_MEMORY.watch(popen.pid, role)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def simulator(self, **settings: Any) -> Simulator:
        """The Cloud API simulator on a free port; keyword arguments become SIM_<NAME> variables."""
        port = free_port()
        env = self.env(
            SIM_ACCESS_TOKEN=SIM_TOKEN,
            SIM_APP_SECRET=SIM_APP_SECRET,
            SIM_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
            SIM_WABA_ID=WABA_ID,
            SIM_CALLBACK_URL="",
        )
        env.update({f"SIM_{key.upper()}": str(value) for key, value in settings.items()})
        process = self.spawn(
            "simulator",
            [
                sys.executable, "-m", "uvicorn", "services.simulator.app:app", "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning",
            ],
            env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self.wait_http(f"{url}/health", process)
        return Simulator(url, process)

    def worker(self, queue: str, *, processes: int = 1, threads: int = 8, env: dict[str, Any] | None = None) -> Process:
        """`herald worker <queue>` (dramatiq) as a separate process."""
        argv = [sys.executable, "-m", "herald.cli", "worker", queue, "--processes", str(processes),
                "--threads", str(threads)]  # fmt: skip
        return self.spawn(f"worker-{queue}", argv, self.env(**(env or {})), role=f"worker {queue}")

    def service(self, service: str, *, workers: int = 1, env: dict[str, Any] | None = None) -> tuple[str, Process]:
        """`herald serve <service>` (gunicorn + uvicorn) on a free port; returns (base URL, process)."""
        port = free_port()
        argv = [sys.executable, "-m", "herald.cli", "serve", service, "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers)]  # fmt: skip
        process = self.spawn(f"serve-{service}", argv, self.env(**(env or {})), role=f"api {service}")
        url = f"http://127.0.0.1:{port}"
        self.wait_http(f"{url}/health", process)
        return url, process

    @staticmethod
    def wait_http(url: str, process: Process, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not answer {url} within {timeout}s:\n{process.output()}")
            time.sleep(0.1)

    # --- data --------------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    def seed_contacts(self, count: int, *, inbound: bool = False) -> None:
        """`count` opted-in contacts with distinct phones and spread birthdays, in one COPY."""
        with self.connect() as connection, connection.cursor() as cursor:
            with cursor.copy(
                "COPY contacts (id, phone, name, opt_in_status, last_inbound_at, attributes, tags,"
                " birthday_month, birthday_day) FROM STDIN"
            ) as copy:
                now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime()) if inbound else None
                for index in range(count):
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            f"+1555{index:07d}",
                            f"Contact {index}",
                            "opted_in",
                            now,
                            "{}",
                            "{}",
                            index % 12 + 1,
                            index % 28 + 1,
                        )
                    )
            cursor.execute("ANALYZE contacts")

    def count(self, sql: str, *params: Any) -> int:
        with self.connect() as connection:
            row = connection.execute(sql, params or None).fetchone()
        return int(row[0]) if row else 0


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """`with timed() as t: ...` then `t["seconds"]`."""
    box: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - started


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; raise with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s (last: {value!r})")
        time.sleep(interval)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    return {
        "cores": os.cpu_count() or 0,
        "physical_cores": psutil.cpu_count(logical=False) or 0,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
