"""Signed webhook delivery: status events on a timer heap, batched per POST, retried with backoff.

One background task owns the heap; sends only push events, so a send request never waits
on webhook delivery. POSTs go out over one pooled httpx client, at most
``webhook_concurrency`` at a time; when the receiver is slow, due events wait in the heap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from services.simulator.state import SimState

logger = logging.getLogger("herald.simulator.webhooks")

ERROR_DOCS_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def sign(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` value: HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(waba_id: str, field: str, value: dict[str, Any], *, with_time: bool = False) -> bytes:
    entry: dict[str, Any] = {"id": waba_id, "changes": [{"value": value, "field": field}]}
    if with_time:  # non-"messages" fields carry entry[].time
        entry["time"] = int(time.time())
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


def async_error(code: int, title: str, details: str) -> dict[str, Any]:
    """An error object as found in ``statuses[].errors[]``."""
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": ERROR_DOCS_URL,
    }


@dataclass(slots=True)
class StatusEvent:
    phone_number_id: str
    status: dict[str, Any]


@dataclass(slots=True)
class Delivery:
    """One POST body; retried as the same bytes, like Meta retries the same notification."""

    body: bytes
    statuses: int = 0
    attempt: int = 0


class WebhookDispatcher:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self._heap: list[tuple[float, int, StatusEvent | Delivery]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._concurrency = state.settings.webhook_concurrency
        self._slots = asyncio.Semaphore(self._concurrency)
        self._client: httpx.AsyncClient | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            headers={"User-Agent": "facebookexternalua", "Content-Type": "application/json"},
        )
        self._task = asyncio.create_task(self._run(), name="simulator-webhooks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        if self._client:
            await self._client.aclose()

    def clear(self) -> None:
        self._heap.clear()
        self.resize(force=True)

    def resize(self, *, force: bool = False) -> None:
        """Apply a changed ``webhook_concurrency``; in-flight POSTs release their old semaphore."""
        concurrency = self.state.settings.webhook_concurrency
        if force or concurrency != self._concurrency:
            self._concurrency = concurrency
            self._slots = asyncio.Semaphore(concurrency)

    @property
    def pending(self) -> int:
        return len(self._heap)

    # --- scheduling --------------------------------------------------------------------------

    def _push(self, due: float, item: StatusEvent | Delivery) -> None:
        if len(self._heap) >= self.state.settings.webhook_max_pending:
            self.state.stats.webhook_dropped += 1
            return
        heapq.heappush(self._heap, (due, next(self._seq), item))
        if self._heap[0][2] is item:
            self._wake.set()

    def push_delivery(self, body: bytes, delay: float = 0.0) -> None:
        self._push(time.monotonic() + delay, Delivery(body))

    def schedule_statuses(self, phone_number_id: str, statuses: list[tuple[float, dict[str, Any]]]) -> None:
        """Queue a message's statuses; each is (delay in seconds, status object)."""
        settings = self.state.settings
        rng = self.state.rng
        now = time.monotonic()
        delays = [delay for delay, _ in statuses]
        if len(statuses) > 1 and settings.reorder_rate and rng.random() < settings.reorder_rate:
            delays.reverse()  # timestamps stay true; only the arrival order flips
        for delay, (_, status) in zip(delays, statuses, strict=True):
            self._push(now + delay, StatusEvent(phone_number_id, status))
            if settings.duplicate_rate and rng.random() < settings.duplicate_rate:
                self.state.stats.statuses_duplicated += 1
                self._push(now + delay + 0.05, StatusEvent(phone_number_id, status))

    # --- delivery loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep delivering whatever one bad sweep did
                logger.exception("webhook sweep failed")
                await asyncio.sleep(0.1)

    async def _sweep(self) -> None:
        heap = self._heap
        now = time.monotonic()
        if not heap or heap[0][0] > now:
            self._wake.clear()
            timeout = heap[0][0] - now if heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            return
        settings = self.state.settings
        by_phone: dict[str, list[dict[str, Any]]] = {}
        deliveries: list[Delivery] = []
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)[2]
            if isinstance(item, StatusEvent):
                by_phone.setdefault(item.phone_number_id, []).append(item.status)
            else:
                deliveries.append(item)
        batch = settings.webhook_batch_max
        for phone_number_id, statuses in by_phone.items():
            for start in range(0, len(statuses), batch):
                chunk = statuses[start : start + batch]
                deliveries.append(Delivery(self._status_body(phone_number_id, chunk), statuses=len(chunk)))
        for delivery in deliveries:
            await self._slots.acquire()
            task = asyncio.create_task(self._post(delivery, self._slots))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if settings.webhook_batch_interval_ms:
            # Let the next statuses accumulate so busy periods produce full batches.
            await asyncio.sleep(settings.webhook_batch_interval_ms / 1000)

    def _status_body(self, phone_number_id: str, statuses: list[dict[str, Any]]) -> bytes:
        settings = self.state.settings
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": settings.display_phone_number,
                "phone_number_id": phone_number_id,
            },
            "statuses": statuses,
        }
        return envelope(settings.waba_id, "messages", value)

    async def _post(self, delivery: Delivery, slots: asyncio.Semaphore) -> None:
        settings = self.state.settings
        stats = self.state.stats
        try:
            if not settings.callback_url or self._client is None:
                return
            try:
                response = await self._client.post(
                    settings.callback_url,
                    content=delivery.body,
                    headers={"X-Hub-Signature-256": sign(settings.app_secret, delivery.body)},
                    timeout=settings.webhook_timeout_seconds,
                )
                ok = response.status_code == 200  # Meta treats anything but 200 as a failure
            except httpx.HTTPError:
                ok = False
            if ok:
                stats.webhook_posts_ok += 1
                stats.statuses_delivered += delivery.statuses
                return
            stats.webhook_posts_failed += 1
            delivery.attempt += 1
            if delivery.attempt >= settings.webhook_retry_max_attempts:
                stats.webhook_dropped += 1
                return
            stats.webhook_retries += 1
            delay = settings.webhook_retry_base_ms / 1000 * 2 ** (delivery.attempt - 1)
            self._push(time.monotonic() + delay, delivery)
        finally:
            slots.release()
