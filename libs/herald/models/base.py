"""Column helpers shared by every table: UUID keys, UTC timestamps, JSONB, enum checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Column, DateTime, MetaData, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from herald.clock import utcnow

# Deterministic constraint names so migrations and autogenerate agree.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def uuid_pk() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def created_at_field() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column_kwargs={"server_default": func.now()},
        sa_type=DateTime(timezone=True),
        nullable=False,
    )


def updated_at_field() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column_kwargs={"server_default": func.now(), "onupdate": utcnow},
        sa_type=DateTime(timezone=True),
        nullable=False,
    )


def timestamp_field(index: bool = False) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=True, index=index)


def jsonb_field(default_factory: Any = dict, nullable: bool = False) -> Any:
    server_default = None
    if not nullable:
        server_default = text("'{}'::jsonb") if default_factory is dict else text("'[]'::jsonb")
    return Field(
        default_factory=default_factory if not nullable else (lambda: None),
        sa_column=Column(JSONB, nullable=nullable, server_default=server_default),
    )


def enum_check(column: str, enum: type[StrEnum], name: str | None = None) -> CheckConstraint:
    allowed = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or f"{column}_valid")


__all__ = ["SQLModel", "datetime", "metadata"]
