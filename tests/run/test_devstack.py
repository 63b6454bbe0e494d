"""The embedded servers `make run` uses on a machine without PostgreSQL or Redis: real servers
from the wheels, data kept in the data folder across restarts."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from herald.devstack import start_embedded_postgres, start_embedded_redis, stop_all


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's own temporary folders: concurrent pytest runs reset those to 0700, and as
    # root the server runs as another user who must be able to reach its folder.
    with tempfile.TemporaryDirectory(prefix="herald-devstack-") as folder:
        yield Path(folder) / "data"
        stop_all(Path(folder) / "data")


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def test_embedded_servers_answer_and_keep_their_data_across_restarts(data_dir: Path) -> None:
    try:
        postgres_url = start_embedded_postgres(data_dir)
        redis_url = start_embedded_redis(data_dir)
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (value text)")
            connection.execute("INSERT INTO kept VALUES ('still here')")
        redis.Redis.from_url(redis_url).set("kept", "still here")

        stop_all(data_dir)
        assert not _listening(postgres_url)
        assert not _listening(redis_url)

        postgres_url = start_embedded_postgres(data_dir)
        redis_url = start_embedded_redis(data_dir)
        with psycopg.connect(postgres_url) as connection:
            assert connection.execute("SELECT value FROM kept").fetchall() == [("still here",)]
            assert connection.execute("SHOW server_version").fetchone()[0].split(".")[0].isdigit()
        assert redis.Redis.from_url(redis_url).get("kept") == b"still here"
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert (data_dir / "redis" / "dump.rdb").exists()
    finally:
        stop_all(data_dir)


def test_embedded_postgres_listens_on_loopback_tcp_only(data_dir: Path) -> None:
    try:
        url = start_embedded_postgres(data_dir, database="other")
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        assert parts.path == "/other"
        with psycopg.connect(url) as connection:
            listen = connection.execute("SHOW listen_addresses").fetchone()
            sockets = connection.execute("SHOW unix_socket_directories").fetchone()
        assert listen == ("127.0.0.1",)
        assert sockets == ("",)
    finally:
        stop_all(data_dir)
