"""Conditions and segments as SQL over `contacts`: one meaning for previews, segments and runs.

A run evaluates its conditions with the same expressions (one query returning a boolean per
condition), so "would fire" in the preview and "fired" in a run never disagree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, false, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.automation.definitions import (
    AttributeCondition,
    HasTagsCondition,
    LacksTagsCondition,
    LanguageCondition,
    OptedInCondition,
    QuietHoursCondition,
)
from herald.models import Contact, OptInStatus

contacts = Contact.__table__.c  # type: ignore[attr-defined]


def _jsonb(value: Any) -> ColumnElement[Any]:
    return cast(literal(json.dumps(value)), JSONB)


def _attribute_clause(condition: AttributeCondition) -> ColumnElement[bool]:
    present = contacts.attributes.has_key(condition.attribute)
    value = contacts.attributes[condition.attribute]
    op = condition.op
    if op == "exists":
        return present
    if op == "not_exists":
        return not_(present)
    expected = _jsonb(condition.value)
    if op == "eq":
        return and_(present, value == expected)
    if op == "ne":
        return or_(not_(present), value != expected)
    if op == "contains":
        if isinstance(condition.value, str):
            text_value = contacts.attributes[condition.attribute].astext
            return and_(
                func.jsonb_typeof(value) == "string",
                func.strpos(func.lower(text_value), condition.value.lower()) > 0,
            )
        return and_(func.jsonb_typeof(value) == "array", value.contains(_jsonb([condition.value])))
    # Ordering only between values of the same JSON type (numbers with numbers, ISO dates as strings).
    same_type = func.jsonb_typeof(value) == func.jsonb_typeof(expected)
    compare = {
        "gt": value > expected,
        "gte": value >= expected,
        "lt": value < expected,
        "lte": value <= expected,
    }
    return and_(present, same_type, compare[op])


def condition_clause(condition: Any) -> ColumnElement[bool]:
    """The SQL boolean of one condition (quiet hours never exclude anyone: they defer sends)."""
    if isinstance(condition, HasTagsCondition):
        return contacts.tags.contains(cast(condition.tags, ARRAY(String(64))))
    if isinstance(condition, LacksTagsCondition):
        return not_(contacts.tags.overlap(cast(condition.tags, ARRAY(String(64)))))
    if isinstance(condition, LanguageCondition):
        wanted = [language.lower().replace("-", "_") for language in condition.languages]
        language = func.lower(func.replace(func.coalesce(contacts.language, ""), "-", "_"))
        return or_(language.in_(wanted), func.split_part(language, "_", 1).in_(wanted))
    if isinstance(condition, OptedInCondition):
        return contacts.opt_in_status == OptInStatus.OPTED_IN.value
    if isinstance(condition, AttributeCondition):
        return _attribute_clause(condition)
    if isinstance(condition, QuietHoursCondition):
        return true()
    raise TypeError(f"unknown condition {type(condition).__name__}")


def segment_clause(conditions: Sequence[Any]) -> ColumnElement[bool]:
    """All conditions together (an empty segment is every contact)."""
    clauses = [condition_clause(c) for c in conditions if not isinstance(c, QuietHoursCondition)]
    return and_(true(), *clauses)


def describe(condition: Any) -> dict[str, Any]:
    """The condition as logged in a run's steps."""
    return dict(condition.model_dump(mode="json"))


async def failing_conditions(
    session: AsyncSession, contact_id: uuid.UUID, conditions: Sequence[Any]
) -> list[dict[str, Any]]:
    """The conditions this contact does not meet now (empty: all pass)."""
    gating = [c for c in conditions if not isinstance(c, QuietHoursCondition)]
    if not gating:
        return []
    columns = [func.coalesce(condition_clause(c), false()).label(f"c{i}") for i, c in enumerate(gating)]
    row = (await session.execute(select(*columns).where(contacts.id == contact_id))).one_or_none()
    if row is None:
        return [{"type": "contact_exists"}]
    return [describe(condition) for condition, passed in zip(gating, row, strict=True) if not passed]
