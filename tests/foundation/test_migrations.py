"""The models and the migrations describe the same schema, and the migrations go both ways."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
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


@pytest.fixture
def fresh_database_url(server_urls: dict[str, str]) -> Iterator[str]:
    """An empty database of its own, dropped again after the test."""
    name = f"herald_migration_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_urls["postgres"], autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(server_urls["postgres"])._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server_urls["postgres"], autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_models_and_migrations_agree(fresh_database_url: str) -> None:
    url = fresh_database_url
    command.upgrade(_config(url), "head")
    engine = create_engine(to_psycopg_url(url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(fresh_database_url: str) -> None:
    url = fresh_database_url
    config = _config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert [row[0] for row in tables] == ["alembic_version"]
    command.upgrade(config, "head")
