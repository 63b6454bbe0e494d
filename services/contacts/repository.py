"""Contact queries: filters, keyset pages, counts and the bulk upsert used by imports."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from herald.errors import ValidationFailed
from herald.models import Contact
from sqlalchemy import ColumnElement, func, or_, select, text, tuple_
from sqlalchemy.engine import Row
from sqlmodel.ext.asyncio.session import AsyncSession

table = Contact.__table__  # type: ignore[attr-defined]
c = table.c


@dataclass(frozen=True)
class ContactFilters:
    """What GET /contacts and the export accept; every part is optional and they combine with AND."""

    tags: Sequence[str] = ()
    q: str | None = None
    opt_in_status: str | None = None
    birthday_month: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.tags:
            # Array containment uses the GIN index on tags.
            conditions.append(c.tags.contains(list(self.tags)))
        if self.q:
            pattern = "%" + _escape_like(self.q.strip()) + "%"
            digits = "".join(ch for ch in self.q if ch.isdigit())
            matches = [c.name.ilike(pattern, escape="\\")]
            if digits:
                matches.append(c.phone.like("%" + digits + "%"))
            conditions.append(or_(*matches))
        if self.opt_in_status:
            conditions.append(c.opt_in_status == self.opt_in_status)
        if self.birthday_month is not None:
            conditions.append(c.birthday_month == self.birthday_month)
        for name, value in self.attributes.items():
            # Containment (@>) uses the jsonb_path_ops GIN index; a value that reads as JSON
            # (true, 42) also matches the typed attribute.
            candidates = [c.attributes.contains({name: value})]
            try:
                typed = orjson.loads(value)
            except orjson.JSONDecodeError:
                typed = None
            if typed is not None and not isinstance(typed, str | dict | list):
                candidates.append(c.attributes.contains({name: typed}))
            conditions.append(or_(*candidates))
        return conditions


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(created_at: datetime, contact_id: uuid.UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(contact_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, contact_id = orjson.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, uuid.UUID(contact_id)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValidationFailed.on_field("cursor", "not a cursor returned by this API", code="invalid_cursor") from exc


async def page(
    session: AsyncSession, filters: ContactFilters, limit: int, cursor: str | None
) -> tuple[list[Row[Any]], str | None]:
    """One page, newest first, keyset-paginated on (created_at, id)."""
    statement = select(table).where(*filters.conditions())
    if cursor:
        created_at, contact_id = decode_cursor(cursor)
        statement = statement.where(tuple_(c.created_at, c.id) < tuple_(created_at, contact_id))
    statement = statement.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
    rows = list((await session.execute(statement)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor


async def count(session: AsyncSession, filters: ContactFilters) -> int:
    statement = select(func.count()).select_from(table).where(*filters.conditions())
    return int((await session.execute(statement)).scalar_one())


async def attribute_names(session: AsyncSession, filters: ContactFilters) -> list[str]:
    """Every attribute name used by the matching contacts (the export's attr.* columns)."""
    keys = select(func.jsonb_object_keys(c.attributes).label("name")).where(*filters.conditions()).subquery()
    statement = select(keys.c.name).distinct()
    return sorted(str(name) for name in (await session.execute(statement)).scalars().all())


async def get(session: AsyncSession, contact_id: uuid.UUID, *, for_update: bool = False) -> Row[Any] | None:
    statement = select(table).where(c.id == contact_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).first()


async def lock_by_phones(session: AsyncSession, phones: Sequence[str]) -> dict[str, Row[Any]]:
    """The stored contacts among these phones, locked until commit (imports merge into them)."""
    if not phones:
        return {}
    statement = select(table).where(c.phone == func.any(list(phones))).order_by(c.phone).with_for_update()
    return {row.phone: row for row in (await session.execute(statement)).all()}


_UPSERT = text(
    """
    INSERT INTO contacts (id, phone, name, language, timezone, birthday_month, birthday_day,
                          birthday_year, attributes, tags, opt_in_status, opt_in_source,
                          opted_in_at, opted_out_at, created_at, updated_at)
    SELECT u.id, u.phone, u.name, u.language, u.timezone, u.birthday_month, u.birthday_day,
           u.birthday_year, u.attributes::jsonb,
           ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb))::varchar(64)[],
           u.opt_in_status, u.opt_in_source, u.opted_in_at, u.opted_out_at, :now, :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:phones AS text[]), CAST(:names AS text[]),
                CAST(:languages AS text[]), CAST(:timezones AS text[]),
                CAST(:months AS int[]), CAST(:days AS int[]), CAST(:years AS int[]),
                CAST(:attributes AS text[]), CAST(:tags AS text[]), CAST(:statuses AS text[]),
                CAST(:sources AS text[]), CAST(:opted_in AS timestamptz[]),
                CAST(:opted_out AS timestamptz[]))
         AS u(id, phone, name, language, timezone, birthday_month, birthday_day, birthday_year,
              attributes, tags, opt_in_status, opt_in_source, opted_in_at, opted_out_at)
    ON CONFLICT (phone) DO UPDATE SET
        name = EXCLUDED.name, language = EXCLUDED.language, timezone = EXCLUDED.timezone,
        birthday_month = EXCLUDED.birthday_month, birthday_day = EXCLUDED.birthday_day,
        birthday_year = EXCLUDED.birthday_year, attributes = EXCLUDED.attributes,
        tags = EXCLUDED.tags, opt_in_status = EXCLUDED.opt_in_status,
        opt_in_source = EXCLUDED.opt_in_source, opted_in_at = EXCLUDED.opted_in_at,
        opted_out_at = EXCLUDED.opted_out_at, updated_at = EXCLUDED.updated_at
    RETURNING id, phone, (xmax = 0) AS inserted
    """
)


async def upsert_many(session: AsyncSession, rows: Sequence[dict[str, Any]], now: datetime) -> list[Row[Any]]:
    """Insert or update complete contact rows in one statement (arrays unnested server-side, so
    the statement text and its parse cost do not grow with the batch). Returns (id, phone, inserted)."""
    if not rows:
        return []
    params: dict[str, Any] = {
        "now": now,
        "ids": [row["id"] for row in rows],
        "phones": [row["phone"] for row in rows],
        "names": [row["name"] for row in rows],
        "languages": [row["language"] for row in rows],
        "timezones": [row["timezone"] for row in rows],
        "months": [row["birthday_month"] for row in rows],
        "days": [row["birthday_day"] for row in rows],
        "years": [row["birthday_year"] for row in rows],
        "attributes": [orjson.dumps(row["attributes"]).decode() for row in rows],
        "tags": [orjson.dumps(row["tags"]).decode() for row in rows],
        "statuses": [row["opt_in_status"] for row in rows],
        "sources": [row["opt_in_source"] for row in rows],
        "opted_in": [row["opted_in_at"] for row in rows],
        "opted_out": [row["opted_out_at"] for row in rows],
    }
    return list((await session.execute(_UPSERT, params)).all())


def to_dict(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)
