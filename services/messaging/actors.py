"""Actors of the `messages` queue owned by the messaging service.

`messaging.send_messages` sends a batch of queued messages (services.messaging.dispatch). At
worker start the relay hands over queued messages a crash left unhanded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import dramatiq
import structlog

from herald import contracts
from herald.messaging.relay import relay_unhanded_messages
from herald.queue import actor, add_middleware
from services.messaging.dispatch import Dispatcher

log = structlog.get_logger("herald.messaging.actors")
# httpx logs every request at INFO; at a thousand sends a second that is most of a core.
logging.getLogger("httpx").setLevel(logging.WARNING)

_dispatchers: dict[asyncio.AbstractEventLoop, Dispatcher] = {}


def dispatcher() -> Dispatcher:
    """The process's dispatcher (one pooled Cloud API client), bound to the running event loop."""
    loop = asyncio.get_running_loop()
    found = _dispatchers.get(loop)
    if found is None:
        found = _dispatchers[loop] = Dispatcher.from_settings()
    return found


@actor(contracts.SEND_MESSAGES, max_retries=20, min_backoff=1_000, max_backoff=60_000)
async def send_messages(payload: contracts.SendMessages) -> None:
    report = await dispatcher().send_batch(payload.message_ids)
    log.info(
        "send_batch",
        requested=len(payload.message_ids),
        claimed=report.claimed,
        sent=report.sent,
        failed=report.failed,
        retried=report.retried,
        suppressed=report.suppressed,
    )


class RelayOnBoot(dramatiq.Middleware):
    """Hand over queued messages left unhanded by a crash, once per worker process at start."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threading.Thread(target=self._relay, name="herald-relay", daemon=True).start()

    @staticmethod
    def _relay(*_: Any) -> None:
        try:
            handed = relay_unhanded_messages()
            if handed:
                log.info("relay_handed_over", count=handed)
        except Exception:
            log.exception("relay_failed")


add_middleware(RelayOnBoot())
