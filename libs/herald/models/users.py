"""People and machines that use the API."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, Uuid
from sqlmodel import Field, SQLModel

from herald.models.base import created_at_field, enum_check, timestamp_field, updated_at_field, uuid_pk


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (enum_check("role", Role),)

    id: uuid.UUID = uuid_pk()
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))
    full_name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=255)
    role: str = Field(default=Role.VIEWER.value, max_length=16)
    is_active: bool = Field(default=True)
    # Bumped on password change or "log out everywhere": refresh tokens carry it.
    token_version: int = Field(default=0)
    last_login_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        enum_check("role", Role),
        Index("ix_api_keys_active_prefix", "prefix", postgresql_where="revoked_at IS NULL"),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(max_length=100)
    # First characters of the key, shown in listings; the key itself is only ever shown once.
    prefix: str = Field(max_length=16)
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    role: str = Field(default=Role.OPERATOR.value, max_length=16)
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = timestamp_field()
    expires_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()
