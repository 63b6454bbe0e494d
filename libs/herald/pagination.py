"""Keyset pagination cursors: an opaque token for the (created_at, id) of the last row served."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import orjson

from herald.errors import ValidationFailed


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor stands for; a 422 naming `cursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = orjson.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, uuid.UUID(row_id)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValidationFailed.on_field("cursor", "not a cursor returned by this API", code="invalid_cursor") from exc
