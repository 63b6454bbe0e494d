"""Redis fixed-window rate limiting (login attempts and other abuse-prone endpoints).

A fixed window is one INCR and one EXPIRE per hit, shared by every replica; good enough for
brute-force protection where the exact boundary of a minute does not matter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis.asyncio as aioredis

from herald.settings import get_settings

KEY_PREFIX = "herald:ratelimit:"


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the window resets (what a Retry-After header should say).
    retry_after: int


def _key(scope: str, identity: str) -> str:
    # Hash the identity so emails and addresses do not sit in Redis key names.
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{scope}:{digest}"


async def hit(scope: str, identity: str, limit: int, window_seconds: int = 60) -> RateLimitResult:
    """Count one attempt for (scope, identity) in the current window and say whether it is allowed."""
    client = aioredis.from_url(get_settings().redis_url)
    key = _key(scope, identity)
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            pipe.ttl(key)
            count, _, ttl = await pipe.execute()
    finally:
        await client.aclose()  # type: ignore[attr-defined]
    retry_after = int(ttl) if ttl and ttl > 0 else window_seconds
    return RateLimitResult(
        allowed=int(count) <= limit,
        limit=limit,
        remaining=max(0, limit - int(count)),
        retry_after=retry_after,
    )


async def reset(scope: str, identity: str) -> None:
    """Forget the attempts of (scope, identity), e.g. after an administrator unlocks an account."""
    client = aioredis.from_url(get_settings().redis_url)
    try:
        await client.delete(_key(scope, identity))
    finally:
        await client.aclose()  # type: ignore[attr-defined]
