"""The contacts app over HTTP (ASGI transport) and a reader for events queued on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

CONTACTS_QUEUE_KEY = "herald:automation"


@pytest.fixture
async def api(dispose_engines: None) -> AsyncIterator[httpx.AsyncClient]:
    from services.contacts.app import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts.test") as client:
        yield client


def queued_contact_events(client: redis.Redis) -> list[dict[str, Any]]:
    """ContactEvent payloads waiting on the automation queue, in enqueue order."""
    import dramatiq

    from herald.contracts import CONTACT_EVENT

    events = []
    for message_id in client.lrange(CONTACTS_QUEUE_KEY, 0, -1):
        raw = client.hget(f"{CONTACTS_QUEUE_KEY}.msgs", message_id)
        if raw is None:
            continue
        message = dramatiq.Message.decode(raw)
        if message.actor_name == CONTACT_EVENT.actor_name:
            events.append(message.args[0])
    return events
