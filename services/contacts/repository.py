"""Contact queries: filters, keyset pages, counts and the bulk upsert used by imports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
import psycopg
from psycopg.rows import dict_row
from sqlalchemy import ColumnElement, func, or_, select, tuple_
from sqlalchemy.engine import Row
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.models import Contact
from herald.pagination import decode_cursor, encode_cursor

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


# --- bulk import ---------------------------------------------------------------------------------

# The columns a CSV import writes, in the order of the COPY lines the importer builds.
IMPORT_COLUMNS = (
    "phone",
    "name",
    "language",
    "timezone",
    "birthday_month",
    "birthday_day",
    "birthday_year",
    "attributes",
    "tags",
    "opt_in_status",
    "opt_in_source",
    "opted_in_at",
    "opted_out_at",
)
# What an import reads back from the stored contacts it merges into.
_MERGED_COLUMNS = ("id", *IMPORT_COLUMNS)

# Per transaction (dropped at commit or rollback) and per connection, so concurrent imports never
# see each other's rows.
_CREATE_IMPORT_TABLE = """
    CREATE TEMPORARY TABLE IF NOT EXISTS contact_import_rows (
        phone text NOT NULL, name text NOT NULL, language text, timezone text,
        birthday_month int, birthday_day int, birthday_year int,
        attributes jsonb NOT NULL, tags varchar(64)[] NOT NULL,
        opt_in_status text NOT NULL, opt_in_source text,
        opted_in_at timestamptz, opted_out_at timestamptz
    ) ON COMMIT DROP
"""
_COPY_IMPORT_ROWS = f"COPY contact_import_rows ({', '.join(IMPORT_COLUMNS)}) FROM STDIN"
# Built from the constant column list above, never from input.
_LOCK_BY_PHONES = f"""
    SELECT {", ".join(_MERGED_COLUMNS)} FROM contacts
    WHERE phone = ANY(%s::text[]) ORDER BY phone FOR UPDATE
"""  # noqa: S608 - names from the constant list  # nosec B608
_UPSERT_IMPORT_ROWS = f"""
    INSERT INTO contacts (id, {", ".join(IMPORT_COLUMNS)}, created_at, updated_at)
    SELECT gen_random_uuid(), {", ".join(IMPORT_COLUMNS)}, %(now)s, %(now)s FROM contact_import_rows
    ON CONFLICT (phone) DO UPDATE SET
        {", ".join(f"{name} = EXCLUDED.{name}" for name in IMPORT_COLUMNS[1:])},
        updated_at = EXCLUDED.updated_at
    RETURNING id, phone, (xmax = 0) AS inserted
"""  # noqa: S608 - names from the constant list  # nosec B608


async def _driver(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    # The psycopg connection under the session, inside the session's transaction: COPY has no
    # SQLAlchemy API, and 5,000-row results skip SQLAlchemy's row processing.
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return cast("psycopg.AsyncConnection[Any]", raw.driver_connection)


async def lock_by_phones(session: AsyncSession, phones: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored contacts among these E.164 phones (IMPORT_COLUMNS and id), locked until commit
    (imports merge into them)."""
    if not phones:
        return {}
    driver = await _driver(session)
    # E.164 needs no quoting inside an array literal; one text parameter instead of a list to adapt.
    literal = "{" + ",".join(phones) + "}"
    async with driver.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_LOCK_BY_PHONES, (literal,))
        return {row["phone"]: row for row in await cursor.fetchall()}


async def upsert_import_rows(session: AsyncSession, copy_text: str, now: datetime) -> list[tuple[uuid.UUID, str, bool]]:
    """Insert or update contacts from COPY text lines (tab-separated IMPORT_COLUMNS, unique phones):
    COPY into a temporary table, then one `INSERT ... SELECT ... ON CONFLICT (phone) DO UPDATE`.
    Returns (id, phone, inserted) per row."""
    driver = await _driver(session)
    async with driver.cursor() as cursor:
        await cursor.execute(_CREATE_IMPORT_TABLE)
        await cursor.execute("TRUNCATE contact_import_rows")
        async with cursor.copy(_COPY_IMPORT_ROWS) as copy:
            await copy.write(copy_text.encode())
        await cursor.execute(_UPSERT_IMPORT_ROWS, {"now": now})
        return await cursor.fetchall()


def to_dict(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)
