"""The models and the migrations describe the same schema, and the migrations go both ways."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from herald.models import metadata
from herald.settings import to_psycopg_url

ALEMBIC_INI = Path(__file__).parents[2] / "alembic.ini"


def _config(url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def _fresh_database(server_urls: dict[str, str], name: str) -> str:
    from urllib.parse import urlsplit

    with psycopg.connect(server_urls["postgres"], autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlsplit(server_urls["postgres"])._replace(path=f"/{name}").geturl()


def test_models_and_migrations_agree(server_urls: dict[str, str]) -> None:
    url = _fresh_database(server_urls, f"herald_migration_check_{os.getpid()}")
    command.upgrade(_config(url), "head")
    engine = create_engine(to_psycopg_url(url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(server_urls: dict[str, str]) -> None:
    url = _fresh_database(server_urls, f"herald_migration_roundtrip_{os.getpid()}")
    config = _config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert [row[0] for row in tables] == ["alembic_version"]
    command.upgrade(config, "head")
