"""A Redis token bucket per business phone number, shared by every worker replica.

One Lua call takes as many tokens as are available (up to what the caller wants) and says how
long to wait for more, so a batch of 100 sends costs a handful of Redis round trips, not 100.
The bucket is smaller than one second's worth so that, even when our requests bunch up on the
wire, Meta's own per-second bucket never runs dry (no 130429).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

KEY_PREFIX = "herald:throughput:"
# Tokens are taken in slices of at least this many seconds' worth, to bound Redis calls.
MIN_SLICE_SECONDS = 0.02
BURST_SECONDS = 0.25

_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
return {granted, tostring(tokens)}
"""


@dataclass(frozen=True)
class Grant:
    granted: int
    wait_seconds: float  # before asking again for the rest


class TokenBucket:
    """`rate` tokens per second for one phone number, at most `burst` at once."""

    def __init__(
        self, redis: aioredis.Redis, phone_number_id: str, rate: float, burst: float | None = None
    ) -> None:
        self.redis = redis
        self.key = KEY_PREFIX + (phone_number_id or "default")
        self.rate = float(rate)
        self.burst = max(1.0, burst if burst is not None else rate * BURST_SECONDS)
        self._script = redis.register_script(_TAKE)

    async def take(self, want: int) -> Grant:
        """Take up to `want` tokens now; when short, how long until a useful slice is available."""
        granted_raw, left_raw = await self._script(keys=[self.key], args=[self.rate, self.burst, want])
        granted = int(granted_raw)
        if granted >= want:
            return Grant(granted, 0.0)
        left = float(left_raw)
        slice_tokens = min(want - granted, self.burst, max(1.0, self.rate * MIN_SLICE_SECONDS))
        return Grant(granted, max(0.001, (slice_tokens - left) / self.rate))
