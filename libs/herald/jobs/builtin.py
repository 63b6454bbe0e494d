"""Job entrypoints whose work lives in shared code: the webhook inbox relay and template sync."""

from __future__ import annotations

from typing import Any

from herald import db
from herald.messaging.templates import sync_templates
from herald.settings import get_settings
from herald.webhooks.inbox import relay_stale_events_sync
from herald.whatsapp import CloudAPIClient


def job_relay_webhook_events(context: Any) -> dict[str, int]:
    """Re-enqueue stored webhook events that were never processed (registry: webhook-relay)."""
    total = 0
    while True:
        with db.sync_session_scope() as session:
            relayed = relay_stale_events_sync(session, limit=1000)
        total += relayed
        if relayed < 1000:
            return {"relayed": total}


async def job_sync_templates(context: Any) -> dict[str, int]:
    """Fetch the WABA's templates into message_templates (registry: template-sync)."""
    async with CloudAPIClient.from_settings(get_settings()) as client, db.session_scope() as session:
        report = await sync_templates(session, client)
    return report.as_dict()
