"""The `herald` command as operators run it: a real process against the test PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from herald.auth import verify_password
from tests.fixtures.simulator import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def herald(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def admins(database_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT email, password_hash FROM users WHERE role = 'admin'").fetchall()


def test_config_show_redacts_secrets() -> None:
    secrets = {
        "WHATSAPP_TOKEN": "tok-7f3a9c-secret",
        "WHATSAPP_APP_SECRET": "app-secret-51ab",
        "WEBHOOK_VERIFY_TOKEN": "verify-token-0c2d",
        "SECRET_KEY": "k" * 40 + "-signing-secret",
        "HERALD_ADMIN_PASSWORD": "admin-pass-9d8e",
        "DATABASE_URL": "postgresql://herald:db-pass-4e5f@db.internal:5432/herald",
        "REDIS_URL": "redis://:redis-pass-6a7b@cache.internal:6379/0",
    }
    result = herald("config", "show", env=secrets)
    assert result.returncode == 0, result.stderr
    for value in ("tok-7f3a9c-secret", "app-secret-51ab", "verify-token-0c2d", "signing-secret",
                  "admin-pass-9d8e", "db-pass-4e5f", "redis-pass-6a7b"):  # fmt: skip
        assert value not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["whatsapp_token"] == "********"
    assert shown["database_url"].startswith("postgresql://herald:***@db.internal")
    assert "cache.internal" in shown["redis_url"]


def test_migrate_builds_the_schema_on_an_empty_database(server_urls: dict[str, str]) -> None:
    name = f"herald_cli_migrate_{os.getpid()}"
    admin_url = server_urls["postgres"]
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        result = herald("migrate", env={"DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        with psycopg.connect(url) as connection:
            tables = {
                row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        assert {"users", "contacts", "messages", "automations", "webhook_events"} <= tables
        assert version is not None
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_seed_admin_twice_creates_one_admin_and_prints_the_password_once(database_url: str, tmp_path: Path) -> None:
    env = {
        "HERALD_DATA_DIR": str(tmp_path),
        "HERALD_ADMIN_EMAIL": "owner@example.com",
        "HERALD_ADMIN_PASSWORD": "",
    }
    first = herald("seed-admin", env=env)
    second = herald("seed-admin", env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    password = (tmp_path / "admin_password").read_text().strip()
    assert password in first.stdout
    assert password not in second.stdout
    assert "already exists" in second.stdout
    [(email, password_hash)] = admins(database_url)
    assert email == "owner@example.com"
    assert verify_password(password_hash, password)


def test_seed_admin_uses_the_configured_password(database_url: str, tmp_path: Path) -> None:
    env = {"HERALD_DATA_DIR": str(tmp_path), "HERALD_ADMIN_PASSWORD": "configured-password-1"}
    result = herald("seed-admin", env=env)
    assert result.returncode == 0, result.stderr
    assert "configured-password-1" not in result.stdout
    [(_, password_hash)] = admins(database_url)
    assert verify_password(password_hash, "configured-password-1")
    assert not (tmp_path / "admin_password").exists()


def test_seed_admin_in_production_requires_a_password(database_url: str, tmp_path: Path) -> None:
    env = {"HERALD_ENV": "production", "HERALD_DATA_DIR": str(tmp_path), "HERALD_ADMIN_PASSWORD": ""}
    result = herald("seed-admin", env=env)
    assert result.returncode == 1
    assert "HERALD_ADMIN_PASSWORD" in result.stderr
    assert admins(database_url) == []


def test_user_create_stores_a_user_with_the_role(database_url: str) -> None:
    result = herald("user", "create", "--email", "Ops@Example.com", "--password", "long-enough-1", "--role", "viewer")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT email, role, password_hash FROM users").fetchone()
    assert row is not None
    assert row[:2] == ("ops@example.com", "viewer")
    assert verify_password(row[2], "long-enough-1")


def test_user_create_names_the_bad_field(database_url: str) -> None:
    result = herald("user", "create", "--email", "a@example.com", "--password", "long-enough-1", "--role", "boss")
    assert result.returncode == 1
    assert "role" in result.stderr
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_importing_the_cli_does_not_import_services() -> None:
    code = "import sys, herald.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'services'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_jobs_commands_are_mounted() -> None:
    result = herald("--help")
    assert result.returncode == 0, result.stderr
    for command in ("migrate", "serve", "worker", "seed-admin", "user", "config", "dev", "job", "scheduler"):
        assert command in result.stdout


@pytest.mark.slow
def test_serve_runs_a_service_on_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "herald.cli", "serve", "simulator", "--host", "127.0.0.1"],
        cwd=REPO_ROOT,
        env={**os.environ, "PORT": str(port), "HERALD_WEB_WORKERS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=30, interval=0.1)
    finally:
        process.terminate()
        assert process.wait(30) == 0
