"""One place that says what time it is, so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime

_frozen: datetime | None = None


def utcnow() -> datetime:
    """Timezone-aware UTC now (or the time a test set)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def set_now(moment: datetime | None) -> None:
    """Pin the clock (tests and `herald job --at`); None returns to real time."""
    global _frozen
    if moment is not None and moment.tzinfo is None:
        raise ValueError("the clock takes timezone-aware datetimes")
    _frozen = moment.astimezone(UTC) if moment is not None else None
