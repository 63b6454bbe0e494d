"""Contact domain logic: plain async functions taking a session; they never commit.

Every change that automations may react to emits a contact event (herald.contacts_events),
which leaves for the `automation` queue only after the surrounding transaction commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.auth import Principal
from herald.clock import utcnow
from herald.contacts_events import emit_contact_event
from herald.contracts import ContactEventKind
from herald.errors import Conflict, NotFound
from herald.models import Log, OptInStatus
from herald.phones import normalize_phone
from services.contacts import repository
from services.contacts.repository import table
from services.contacts.schemas import (
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    format_birthday,
    parse_birthday,
)

SOURCE = "contacts"


def to_public(row: Row[Any] | dict[str, Any]) -> ContactPublic:
    data = dict(row._mapping) if isinstance(row, Row) else row
    data["birthday"] = format_birthday(data["birthday_month"], data["birthday_day"], data["birthday_year"])
    return ContactPublic.model_validate(data)


def _phone_taken(phone: str) -> Conflict:
    return Conflict(
        "a contact with this phone number already exists",
        code="duplicate_phone",
        errors=[{"field": "phone", "message": f"{phone} is already a contact"}],
    )


def _birthday_columns(birthday: str | None) -> dict[str, int | None]:
    if birthday is None:
        return {"birthday_month": None, "birthday_day": None, "birthday_year": None}
    month, day, year = parse_birthday(birthday)
    return {"birthday_month": month, "birthday_day": day, "birthday_year": year}


async def create_contact(session: AsyncSession, data: ContactCreate) -> ContactPublic:
    """Store a new contact; Conflict (409, field phone) when the number is already a contact."""
    phone = normalize_phone(data.phone)
    now = utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "phone": phone,
        "name": data.name,
        "language": data.language,
        "timezone": data.timezone,
        **_birthday_columns(data.birthday),
        "attributes": data.attributes,
        "tags": data.tags,
        "opt_in_status": data.opt_in_status.value,
        "opt_in_source": data.opt_in_source,
        "opted_in_at": now if data.opt_in_status is OptInStatus.OPTED_IN else None,
        "opted_out_at": now if data.opt_in_status is OptInStatus.OPTED_OUT else None,
        "created_at": now,
        "updated_at": now,
    }
    # ON CONFLICT DO NOTHING: a duplicate (even a concurrent one) is a clean 409, never a 500.
    statement = pg_insert(table).values(values).on_conflict_do_nothing(index_elements=["phone"]).returning(*table.c)
    row = (await session.execute(statement)).first()
    if row is None:
        raise _phone_taken(phone)
    emit_contact_event("created", row.id, {})
    return to_public(row)


async def get_contact(session: AsyncSession, contact_id: uuid.UUID, *, for_update: bool = False) -> Row[Any]:
    row = await repository.get(session, contact_id, for_update=for_update)
    if row is None:
        raise NotFound("contact not found", code="contact_not_found")
    return row


def attribute_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """One event body per attribute whose value differs (added, changed or removed)."""
    return [
        {"attribute": name, "old": old.get(name), "new": new.get(name)}
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


def change_events(
    old_tags: list[str],
    new_tags: list[str],
    old_attributes: dict[str, Any],
    new_attributes: dict[str, Any],
) -> list[tuple[ContactEventKind, dict[str, Any]]]:
    """(kind, data) of the events a change of tags and attributes should emit."""
    events: list[tuple[ContactEventKind, dict[str, Any]]] = []
    events += [("tag_added", {"tag": tag}) for tag in new_tags if tag not in old_tags]
    events += [("tag_removed", {"tag": tag}) for tag in old_tags if tag not in new_tags]
    events += [("attribute_changed", change) for change in attribute_changes(old_attributes, new_attributes)]
    return events


async def _write(session: AsyncSession, contact_id: uuid.UUID, values: dict[str, Any], phone: str | None) -> Row[Any]:
    statement = update(table).where(table.c.id == contact_id).values(**values).returning(*table.c)
    try:
        # A savepoint, so a duplicate phone leaves the request's transaction usable for the 409.
        async with session.begin_nested():
            return (await session.execute(statement)).one()
    except IntegrityError as exc:
        if phone is not None and "phone" in str(exc.orig):
            raise _phone_taken(phone) from exc
        raise


async def update_contact(session: AsyncSession, contact_id: uuid.UUID, data: ContactUpdate) -> ContactPublic:
    """Apply the fields sent (see ContactUpdate); emits tag and attribute events for what changed."""
    current = await get_contact(session, contact_id, for_update=True)
    sent = data.model_fields_set
    values: dict[str, Any] = {}
    phone = None
    if "phone" in sent and data.phone is not None:
        phone = normalize_phone(data.phone)
        values["phone"] = phone
    if "name" in sent and data.name is not None:
        values["name"] = data.name
    for column in ("language", "timezone"):
        if column in sent:
            values[column] = getattr(data, column)
    if "birthday" in sent:
        values.update(_birthday_columns(data.birthday))
    new_attributes = dict(current.attributes)
    if "attributes" in sent and data.attributes is not None:
        for name, value in data.attributes.items():
            if value is None:
                new_attributes.pop(name, None)
            else:
                new_attributes[name] = value
        values["attributes"] = new_attributes
    new_tags = list(current.tags)
    if "tags" in sent and data.tags is not None:
        new_tags = data.tags
        values["tags"] = new_tags
    if not values:
        return to_public(current)
    values["updated_at"] = utcnow()
    row = await _write(session, contact_id, values, phone)
    for kind, event_data in change_events(list(current.tags), new_tags, dict(current.attributes), new_attributes):
        emit_contact_event(kind, contact_id, event_data)
    return to_public(row)


async def add_tags(session: AsyncSession, contact_id: uuid.UUID, tags: list[str]) -> ContactPublic:
    """Add tags (already normalized); one tag_added event per tag the contact did not have."""
    current = await get_contact(session, contact_id, for_update=True)
    added = [tag for tag in tags if tag not in current.tags]
    if not added:
        return to_public(current)
    row = await _write(session, contact_id, {"tags": [*current.tags, *added], "updated_at": utcnow()}, None)
    for tag in added:
        emit_contact_event("tag_added", contact_id, {"tag": tag})
    return to_public(row)


async def remove_tag(session: AsyncSession, contact_id: uuid.UUID, tag: str) -> ContactPublic:
    current = await get_contact(session, contact_id, for_update=True)
    if tag not in current.tags:
        return to_public(current)
    tags = [existing for existing in current.tags if existing != tag]
    row = await _write(session, contact_id, {"tags": tags, "updated_at": utcnow()}, None)
    emit_contact_event("tag_removed", contact_id, {"tag": tag})
    return to_public(row)


async def set_opt_in(session: AsyncSession, contact_id: uuid.UUID, status: OptInStatus, source: str) -> ContactPublic:
    """Record a WhatsApp opt-in or opt-out with its source and time; repeating it changes nothing."""
    current = await get_contact(session, contact_id, for_update=True)
    if current.opt_in_status == status.value:
        return to_public(current)
    now = utcnow()
    values: dict[str, Any] = {"opt_in_status": status.value, "opt_in_source": source, "updated_at": now}
    if status is OptInStatus.OPTED_IN:
        values["opted_in_at"] = now
        kind = "opted_in"
    else:
        values["opted_out_at"] = now
        kind = "opted_out"
    row = await _write(session, contact_id, values, None)
    emit_contact_event(kind, contact_id, {"source": source})  # type: ignore[arg-type]
    return to_public(row)


async def erase_contact(session: AsyncSession, contact_id: uuid.UUID, principal: Principal) -> None:
    """GDPR erase: the row goes (messages and automation runs cascade); an audit row records who
    erased which id, and deliberately nothing that identifies the person."""
    result = await session.execute(delete(table).where(table.c.id == contact_id).returning(table.c.id))
    if result.first() is None:
        raise NotFound("contact not found", code="contact_not_found")
    await session.execute(
        insert(Log.__table__).values(  # type: ignore[attr-defined]
            source=SOURCE,
            event="contact.erased",
            message="contact erased on request",
            user_id=principal.user_id,
            entity_type="contact",
            entity_id=str(contact_id),
            data={
                "via": principal.via,
                "api_key_id": str(principal.api_key_id) if principal.api_key_id else None,
            },
        )
    )
