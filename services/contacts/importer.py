"""Streaming CSV import and export of contacts.

The import reads the upload row by row, validates rows in chunks of a few thousand, and writes
each chunk with one `INSERT ... ON CONFLICT (phone) DO UPDATE` (arrays unnested server-side).
Good rows are stored, bad rows are reported with their line number; a file that is not a
readable CSV at all is refused whole (the caller's transaction rolls back).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.clock import utcnow
from herald.contacts_events import build_contact_event, publish_contact_events, publish_created_events
from herald.contracts import ContactEvent
from herald.db import session_scope
from herald.errors import HeraldError, ValidationFailed
from herald.models import OptInStatus
from herald.observability import metrics
from herald.phones import normalize_phone
from services.contacts import repository
from services.contacts.repository import ContactFilters
from services.contacts.schemas import (
    ImportReport,
    ImportRowError,
    check_attribute_name,
    format_birthday,
    normalize_tags,
    parse_birthday,
    parse_language,
    parse_timezone,
)
from services.contacts.service import change_events

CHUNK_ROWS = 5000
MAX_REPORTED_ERRORS = 1000
MAX_NAME_LENGTH = 200
KNOWN_COLUMNS = ("phone", "name", "language", "timezone", "birthday", "tags", "opt_in")
ATTRIBUTE_PREFIX = "attr."
OPT_IN_VALUES = {
    "opted_in": OptInStatus.OPTED_IN,
    "yes": OptInStatus.OPTED_IN,
    "y": OptInStatus.OPTED_IN,
    "true": OptInStatus.OPTED_IN,
    "1": OptInStatus.OPTED_IN,
    "in": OptInStatus.OPTED_IN,
    "opted_out": OptInStatus.OPTED_OUT,
    "no": OptInStatus.OPTED_OUT,
    "n": OptInStatus.OPTED_OUT,
    "false": OptInStatus.OPTED_OUT,
    "0": OptInStatus.OPTED_OUT,
    "out": OptInStatus.OPTED_OUT,
    "unknown": OptInStatus.UNKNOWN,
}
IMPORT_SOURCE = "csv_import"
# Cells that spreadsheets would run as formulas are exported with a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvRejected(ValidationFailed):
    """The file as a whole is not an importable CSV (encoding, binary content, missing header)."""


@dataclass
class ParsedRow:
    line: int
    phone: str
    # Only the columns the row actually fills: empty cells leave stored values alone.
    values: dict[str, Any]
    attributes: dict[str, str]
    tags: list[str] | None


@dataclass
class _Totals:
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[ImportRowError] = field(default_factory=list)
    truncated: bool = False

    def fail(self, line: int, problems: list[tuple[str, str]]) -> None:
        self.failed += 1
        for field_name, message in problems:
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append(ImportRowError(row=line, field=field_name, message=message))
            else:
                self.truncated = True


def _text_lines(raw: IO[bytes]) -> Iterator[str]:
    """Decode the upload incrementally as UTF-8 (a BOM is skipped); refuse binary or other encodings."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    offset = 0
    while True:
        block = raw.read(1 << 16)
        if not block:
            break
        if b"\x00" in block:
            raise CsvRejected.on_field("file", "the upload is binary, not a CSV text file", code="not_csv")
        try:
            pending += decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise CsvRejected.on_field(
                "file", f"the file is not UTF-8 text (byte {offset + exc.start})", code="bad_encoding"
            ) from exc
        offset += len(block)
        lines = pending.splitlines(keepends=True)
        # The last piece may be an incomplete line (or a lone CR before its LF).
        pending = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        yield from lines
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise CsvRejected.on_field(
            "file", "the file ends in the middle of a UTF-8 character", code="bad_encoding"
        ) from exc
    if pending:
        yield pending


def _unquote_formula(value: str) -> str:
    # Undo the export's formula guard so an exported file imports back unchanged.
    if len(value) > 1 and value[0] == "'" and value[1] in _FORMULA_START:
        return value[1:]
    return value


@dataclass(frozen=True)
class _Layout:
    """Where each known column sits in a CSV row (None: the file has no such column)."""

    width: int
    phone: int
    name: int | None
    language: int | None
    timezone: int | None
    birthday: int | None
    tags: int | None
    opt_in: int | None
    attributes: tuple[tuple[str, int], ...]  # (attribute name, index)

    @classmethod
    def of(cls, columns: list[str]) -> _Layout:
        where = {name: index for index, name in enumerate(columns)}
        return cls(
            width=len(columns),
            phone=where["phone"],
            name=where.get("name"),
            language=where.get("language"),
            timezone=where.get("timezone"),
            birthday=where.get("birthday"),
            tags=where.get("tags"),
            opt_in=where.get("opt_in"),
            attributes=tuple(
                (name[len(ATTRIBUTE_PREFIX) :], index)
                for index, name in enumerate(columns)
                if name.lower().startswith(ATTRIBUTE_PREFIX)
            ),
        )


def _cell(cells: list[str], index: int | None) -> str:
    # A short row leaves its missing cells empty, as csv.DictReader would.
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def _parse_row(
    line: int, cells: list[str], layout: _Layout, default_region: str | None
) -> ParsedRow | list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    phone = ""
    try:
        phone = normalize_phone(_cell(cells, layout.phone), default_region)
    except HeraldError as exc:
        problems.append(("phone", exc.detail))
    values: dict[str, Any] = {}
    name = _unquote_formula(_cell(cells, layout.name))
    if name:
        if len(name) > MAX_NAME_LENGTH:
            problems.append(("name", f"name is at most {MAX_NAME_LENGTH} characters"))
        values["name"] = name
    for column, index, parse in (
        ("language", layout.language, parse_language),
        ("timezone", layout.timezone, parse_timezone),
    ):
        cell = _cell(cells, index)
        if cell:
            try:
                values[column] = parse(cell)
            except ValueError as exc:
                problems.append((column, str(exc)))
    birthday = _cell(cells, layout.birthday)
    if birthday:
        try:
            month, day, year = parse_birthday(birthday)
            values.update(birthday_month=month, birthday_day=day, birthday_year=year)
        except ValueError as exc:
            problems.append(("birthday", str(exc)))
    opt_in = _cell(cells, layout.opt_in).lower()
    if opt_in:
        status = OPT_IN_VALUES.get(opt_in)
        if status is None:
            problems.append(("opt_in", "opt_in must be yes/no, true/false, 1/0, opted_in/opted_out or unknown"))
        else:
            values["opt_in_status"] = status
    tags = None
    cell = _unquote_formula(_cell(cells, layout.tags))
    if cell:
        try:
            tags = normalize_tags([part for part in cell.replace("|", ";").split(";") if part.strip()])
        except ValueError as exc:
            problems.append(("tags", str(exc)))
    attributes = {}
    for attribute, index in layout.attributes:
        value = _unquote_formula(_cell(cells, index))
        if value:
            attributes[attribute] = value
    if len(cells) > layout.width:
        problems.append(("row", "the row has more cells than the header has columns"))
    if problems:
        return problems
    return ParsedRow(line=line, phone=phone, values=values, attributes=attributes, tags=tags)


def _merge(target: dict[str, Any], row: ParsedRow, now: Any) -> None:
    """Apply one CSV row onto a complete contact row (stored or new)."""
    values = dict(row.values)
    status = values.pop("opt_in_status", None)
    target.update(values)
    if row.tags:
        target["tags"] = [*target["tags"], *(tag for tag in row.tags if tag not in target["tags"])]
    if row.attributes:
        target["attributes"] = {**target["attributes"], **row.attributes}
    if status is not None and status.value != target["opt_in_status"]:
        target["opt_in_status"] = status.value
        target["opt_in_source"] = IMPORT_SOURCE
        if status is OptInStatus.OPTED_IN:
            target["opted_in_at"] = now
        elif status is OptInStatus.OPTED_OUT:
            target["opted_out_at"] = now


def _blank(phone: str) -> dict[str, Any]:
    return {
        "phone": phone,
        "name": "",
        "language": None,
        "timezone": None,
        "birthday_month": None,
        "birthday_day": None,
        "birthday_year": None,
        "attributes": {},
        "tags": [],
        "opt_in_status": OptInStatus.UNKNOWN.value,
        "opt_in_source": None,
        "opted_in_at": None,
        "opted_out_at": None,
    }


# PostgreSQL's COPY text format: tab-separated, \N for NULL, backslash escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_COPY_NULL = "\\N"


def _copy_text(value: str | None) -> str:
    return _COPY_NULL if value is None else value.translate(_COPY_ESCAPES)


def _copy_number(value: int | None) -> str:
    return _COPY_NULL if value is None else str(value)


def _copy_time(value: datetime | None) -> str:
    return _COPY_NULL if value is None else value.isoformat()


def _array_literal(values: list[str]) -> str:
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def _copy_line(row: dict[str, Any]) -> str:
    """One merged contact as a COPY text line, columns in repository.IMPORT_COLUMNS order."""
    return (
        "\t".join(
            (
                row["phone"],
                _copy_text(row["name"]),
                _copy_text(row["language"]),
                _copy_text(row["timezone"]),
                _copy_number(row["birthday_month"]),
                _copy_number(row["birthday_day"]),
                _copy_number(row["birthday_year"]),
                _copy_text(orjson.dumps(row["attributes"]).decode()),
                _copy_text(_array_literal(row["tags"])),
                row["opt_in_status"],
                _copy_text(row["opt_in_source"]),
                _copy_time(row["opted_in_at"]),
                _copy_time(row["opted_out_at"]),
            )
        )
        + "\n"
    )


@dataclass
class ImportEvents:
    """The contact events of one import, sent only after its transaction commits: `created` as
    bare ids (their payloads are built batch by batch while publishing), the rest as payloads."""

    created: list[uuid.UUID] = field(default_factory=list)
    changes: list[ContactEvent] = field(default_factory=list)

    def publish(self) -> None:
        # Created first: a contact's later changes in the same file must not overtake its creation.
        publish_created_events(self.created, {"source": IMPORT_SOURCE})
        publish_contact_events(self.changes)


def _new_contact_line(row: ParsedRow, now_text: str) -> str:
    """The COPY line of a contact first seen in this row: `_copy_line(_merge(_blank(phone), row))`
    without the intermediate dicts (most imported rows are new)."""
    values = row.values
    status = values.get("opt_in_status")
    if status is None or status is OptInStatus.UNKNOWN:
        status_cells = f"{OptInStatus.UNKNOWN.value}\t{_COPY_NULL}\t{_COPY_NULL}\t{_COPY_NULL}"
    elif status is OptInStatus.OPTED_IN:
        status_cells = f"{status.value}\t{IMPORT_SOURCE}\t{now_text}\t{_COPY_NULL}"
    else:
        status_cells = f"{status.value}\t{IMPORT_SOURCE}\t{_COPY_NULL}\t{now_text}"
    return (
        "\t".join(
            (
                row.phone,
                _copy_text(values.get("name", "")),
                _copy_text(values.get("language")),
                _copy_text(values.get("timezone")),
                _copy_number(values.get("birthday_month")),
                _copy_number(values.get("birthday_day")),
                _copy_number(values.get("birthday_year")),
                _copy_text(orjson.dumps(row.attributes).decode()) if row.attributes else "{}",
                _copy_text(_array_literal(row.tags)) if row.tags else "{}",
                status_cells,
            )
        )
        + "\n"
    )


async def _write_chunk(session: AsyncSession, rows: list[ParsedRow], totals: _Totals, events: ImportEvents) -> None:
    if not rows:
        return  # a chunk of bad rows only
    now = utcnow()
    before = await repository.lock_by_phones(session, sorted({row.phone for row in rows}))
    # A phone new to the database and seen once so far stays a ParsedRow (written straight to a
    # COPY line); stored contacts and repeated phones are merged into complete rows.
    merged: dict[str, dict[str, Any] | ParsedRow] = {}
    for row in rows:
        target = merged.get(row.phone)
        if target is None:
            existing = before.get(row.phone)
            if existing is None:
                merged[row.phone] = row
                totals.created += 1
                continue
            target = {**existing, "tags": list(existing["tags"]), "attributes": dict(existing["attributes"])}
            totals.updated += 1
            merged[row.phone] = target
        else:
            totals.updated += 1  # the phone appeared earlier in this chunk
            if isinstance(target, ParsedRow):
                first = target
                target = _blank(first.phone)
                _merge(target, first, now)
                merged[row.phone] = target
        _merge(target, row, now)
    now_text = now.isoformat()
    copy_text = "".join(
        [
            _new_contact_line(target, now_text) if isinstance(target, ParsedRow) else _copy_line(target)
            for target in merged.values()
        ]
    )
    results = await repository.upsert_import_rows(session, copy_text, now)
    for contact_id, phone, inserted in results:
        if inserted:
            events.created.append(contact_id)
            continue
        old = before.get(phone)
        if old is None:
            # Another writer inserted this phone between our lock and our insert: an update after all.
            totals.created -= 1
            totals.updated += 1
            continue
        new = merged[phone]
        assert isinstance(new, dict)  # stored before this chunk, so merged into a complete row
        for kind_, data in change_events(list(old["tags"]), new["tags"], dict(old["attributes"]), new["attributes"]):
            events.changes.append(build_contact_event(kind_, contact_id, data))
        if new["opt_in_status"] != old["opt_in_status"] and new["opt_in_status"] != OptInStatus.UNKNOWN.value:
            kind = "opted_in" if new["opt_in_status"] == OptInStatus.OPTED_IN.value else "opted_out"
            events.changes.append(build_contact_event(kind, contact_id, {"source": IMPORT_SOURCE}))  # type: ignore[arg-type]


async def import_file(raw: IO[bytes], *, region: str | None = None) -> ImportReport:
    """Import a CSV in one transaction, then publish its contact events in pipelined batches.

    Nothing is stored when the file as a whole is refused, and no event leaves before the commit.
    """
    events = ImportEvents()
    async with session_scope() as session:
        report = await import_contacts(session, raw, events, region=region)
    events.publish()
    return report


async def import_contacts(
    session: AsyncSession, raw: IO[bytes], events: ImportEvents, *, region: str | None = None
) -> ImportReport:
    """Import a CSV (see docs/contacts.md for its columns) from a binary stream into `session`.

    The contact events to send after commit are collected in `events`. Raises CsvRejected (422)
    when the file as a whole cannot be read; the caller's transaction then rolls back so
    nothing is half-imported.
    """
    reader = csv.reader(_text_lines(raw))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvRejected.on_field("file", f"malformed CSV header: {exc}", code="malformed_csv") from exc
    if not header:
        raise CsvRejected.on_field("file", "the file is empty", code="empty_csv")
    columns = [
        name.strip().lower() if not name.strip().lower().startswith(ATTRIBUTE_PREFIX) else name.strip()
        for name in header
    ]
    if "phone" not in columns:
        raise CsvRejected.on_field("phone", "the CSV has no phone column", code="missing_phone_column")
    for name in columns:
        if name.lower().startswith(ATTRIBUTE_PREFIX):
            try:
                check_attribute_name(name[len(ATTRIBUTE_PREFIX) :])
            except ValueError as exc:
                raise CsvRejected.on_field(name, str(exc), code="bad_attribute_column") from exc
        elif name not in KNOWN_COLUMNS:
            raise CsvRejected.on_field(name or "file", f"unknown column {name!r}", code="unknown_column")
    if len(set(columns)) != len(columns):
        raise CsvRejected.on_field("file", "a column appears twice in the header", code="duplicate_column")
    layout = _Layout.of(columns)
    width = layout.width
    totals = _Totals()

    def read_chunk() -> tuple[list[ParsedRow], list[tuple[int, list[tuple[str, str]]]], bool]:
        """The next CHUNK_ROWS valid rows, the failures met on the way, and whether the file ended."""
        rows: list[ParsedRow] = []
        failures: list[tuple[int, list[tuple[str, str]]]] = []
        try:
            for cells in reader:
                if not "".join(cells[:width]).strip():
                    continue  # blank line (cells past the header's width do not count)
                parsed = _parse_row(reader.line_num, cells, layout, region)
                if isinstance(parsed, list):
                    failures.append((reader.line_num, parsed))
                    continue
                rows.append(parsed)
                if len(rows) >= CHUNK_ROWS:
                    return rows, failures, False
        except csv.Error as exc:
            raise CsvRejected.on_field(
                "file", f"malformed CSV near line {reader.line_num}: {exc}", code="malformed_csv"
            ) from exc
        return rows, failures, True

    def count_failures(failures: list[tuple[int, list[tuple[str, str]]]]) -> None:
        for line, problems in failures:
            totals.fail(line, problems)

    # Parse the next chunk in a thread while PostgreSQL writes the current one, so the database's
    # work overlaps Python's parsing (the two run on different cores).
    chunk, failures, finished = await asyncio.to_thread(read_chunk)
    count_failures(failures)
    while True:
        write = asyncio.ensure_future(_write_chunk(session, chunk, totals, events))
        if finished:
            await write
            break
        outcomes = await asyncio.gather(asyncio.to_thread(read_chunk), write, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        chunk, failures, finished = outcomes[0]  # type: ignore[misc]
        count_failures(failures)
    metrics.CONTACT_IMPORT_ROWS.labels("created").inc(totals.created)
    metrics.CONTACT_IMPORT_ROWS.labels("updated").inc(totals.updated)
    metrics.CONTACT_IMPORT_ROWS.labels("failed").inc(totals.failed)
    return ImportReport(
        created=totals.created,
        updated=totals.updated,
        failed=totals.failed,
        errors=totals.errors,
        errors_truncated=totals.truncated,
    )


# --- export -----------------------------------------------------------------------------------

EXPORT_BATCH = 2000


def _guard(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _attribute_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _guard(value)
    return orjson.dumps(value).decode()


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


async def export_contacts(filters: ContactFilters) -> AsyncIterator[str]:
    """The matching contacts as CSV text (same columns the import reads), in keyset batches with
    short transactions, so a large export holds no connection or snapshot for its whole run."""
    async with session_scope() as session:
        attributes = await repository.attribute_names(session, filters)
    yield _csv_line([*KNOWN_COLUMNS, *(ATTRIBUTE_PREFIX + name for name in attributes)])
    cursor: str | None = None
    while True:
        async with session_scope() as session:
            rows, cursor = await repository.page(session, filters, EXPORT_BATCH, cursor)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow(
                [
                    row.phone,
                    _guard(row.name),
                    row.language or "",
                    row.timezone or "",
                    format_birthday(row.birthday_month, row.birthday_day, row.birthday_year) or "",
                    _guard(";".join(row.tags)),
                    row.opt_in_status,
                    *(_attribute_cell(row.attributes.get(name)) for name in attributes),
                ]
            )
        yield buffer.getvalue()
        if cursor is None:
            return
