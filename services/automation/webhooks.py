"""The outbound HTTP webhook action: signed POSTs to public http(s) URLs, with retries.

Signature: `X-Herald-Signature: sha256=<hex>` is HMAC-SHA256 over `<timestamp>.<body>` with the
automation's secret; `X-Herald-Timestamp` carries the Unix timestamp and `X-Herald-Delivery` an id
that stays the same when a step is retried, so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from herald.automation.definitions import WebhookAction, check_webhook_url, is_private_address
from herald.settings import get_settings

USER_AGENT = "Herald-Automation/1"


class WebhookRefused(Exception):
    """The address is not allowed (scheme, or a private address without the opt-in)."""


class WebhookFailed(Exception):
    """The receiver answered with an error or could not be reached (after retries)."""

    def __init__(self, message: str, status_code: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


class _Retryable(WebhookFailed):
    pass


@dataclass(frozen=True)
class WebhookResult:
    status_code: int
    attempts: int
    response_bytes: int


def webhook_secret(automation_id: uuid.UUID) -> str:
    """The automation's signing secret, derived from SECRET_KEY (stable, never stored)."""
    key = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(key, b"herald-automation-webhook:" + automation_id.bytes, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def check_resolved_host(url: str) -> None:
    """Refuse a URL whose host resolves to a private address (unless allowed); a name that does
    not resolve is left to the call."""
    allow_private = get_settings().automation_webhook_allow_private
    try:
        host = check_webhook_url(url, allow_private)
    except ValueError as exc:
        raise WebhookRefused(str(exc)) from exc
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return
    for info in infos:
        if is_private_address(str(info[4][0])):
            raise WebhookRefused(f"{host} resolves to a private address")


async def _post_once(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], deadline_seconds: float
) -> tuple[int, int]:
    cap = get_settings().automation_webhook_max_response_bytes
    try:
        # httpx's timeout bounds each read, not the call: a receiver dripping one byte at a time
        # would hold the worker thread forever, so the whole exchange gets one deadline.
        async with asyncio.timeout(deadline_seconds):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > cap:
                        break  # we only need the status; a huge answer is not read further
                status = response.status_code
    except TimeoutError as exc:
        raise _Retryable(f"no complete answer within {deadline_seconds} s") from exc
    except httpx.HTTPError as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
    if status >= 500 or status in (408, 429):
        raise _Retryable(f"receiver answered {status}", status_code=status)
    if status >= 300:
        raise WebhookFailed(f"receiver answered {status}", status_code=status, retryable=False)
    return status, min(received, cap)


async def call_webhook(
    action: WebhookAction, *, automation_id: uuid.UUID, delivery_id: str, payload: dict[str, Any]
) -> WebhookResult:
    """POST `payload` to the action's URL; raises WebhookRefused or WebhookFailed."""
    await check_resolved_host(action.url)
    body = orjson.dumps(payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Herald-Timestamp": str(timestamp),
        "X-Herald-Signature": sign(webhook_secret(automation_id), timestamp, body),
        "X-Herald-Delivery": delivery_id,
    }
    attempts = 0
    async with httpx.AsyncClient(timeout=action.timeout_seconds, follow_redirects=False) as client:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(action.retries + 1),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempts += 1
                status, size = await _post_once(client, action.url, body, headers, action.timeout_seconds)
    return WebhookResult(status_code=status, attempts=attempts, response_bytes=size)
