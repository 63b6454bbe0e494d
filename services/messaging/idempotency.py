"""Idempotency-Key for POST endpoints: a repeat returns the first answer and does nothing else.

The key row is inserted in the request's own transaction before any other write, with
`ON CONFLICT DO NOTHING`; a concurrent repeat blocks on the unique index until the first
request commits (then replays its answer) or rolls back (then proceeds itself). A failed
request rolls its key back with everything else, so the client may retry with the same key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.auth import Principal
from herald.messaging.errors import IdempotencyKeyReused, InvalidIdempotencyKey
from herald.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass
class Claim:
    scope: str
    key: str
    # Set when this key was used before with the same body: the answer to replay.
    replay: tuple[int, dict[str, Any]] | None = None


def validate_key(key: str) -> str:
    """1..255 printable ASCII characters (space to tilde), else 400 invalid_idempotency_key."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidIdempotencyKey(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            errors=[{"field": HEADER, "message": "1 to 255 printable ASCII characters"}],
        )
    return key


def scope_for(route: str, principal: Principal) -> str:
    who = f"k{principal.api_key_id.hex}" if principal.api_key_id else f"u{principal.user_id.hex}"
    return f"{route}:{who}"[:64]


def request_hash(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def claim(session: AsyncSession, *, route: str, principal: Principal, key: str, body: Any) -> Claim:
    """Reserve the key for this request, or find the answer of its first use."""
    scope = scope_for(route, principal)
    digest = request_hash(body)
    table = IdempotencyKey.__table__  # type: ignore[attr-defined]
    inserted = (
        await session.execute(
            insert(table)
            .values(scope=scope, key=key, request_hash=digest, status_code=0, response={})
            .on_conflict_do_nothing()
            .returning(table.c.key)
        )
    ).first()
    if inserted is not None:
        return Claim(scope, key)
    stored = (
        await session.execute(
            select(table.c.request_hash, table.c.status_code, table.c.response).where(
                table.c.scope == scope, table.c.key == key
            )
        )
    ).one()
    if stored.request_hash != digest:
        raise IdempotencyKeyReused(
            f"this {HEADER} was already used with a different request body",
            errors=[{"field": HEADER, "message": "already used with a different body"}],
        )
    return Claim(scope, key, replay=(stored.status_code, stored.response))


async def remember(session: AsyncSession, claim: Claim, status_code: int, response: dict[str, Any]) -> None:
    """Store the answer to replay (same transaction as the request's writes)."""
    table = IdempotencyKey.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(table)
        .where(table.c.scope == claim.scope, table.c.key == claim.key)
        .values(status_code=status_code, response=response)
    )
