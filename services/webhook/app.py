"""The webhook service: Meta's callback endpoint and the inbox admin API."""

from __future__ import annotations

from fastapi import FastAPI

from herald.api import create_service_app
from herald.settings import get_settings
from services.webhook.routes import admin_router, webhook_router


def create_app() -> FastAPI:
    settings = get_settings()

    async def drain_inbox_writer() -> None:
        # Requests still waiting on a batch get their answer before the process exits.
        writer = getattr(app.state, "inbox_writer", None)
        if writer is not None:
            await writer.close()

    app = create_service_app(
        "webhook",
        [webhook_router, admin_router],
        description="WhatsApp webhook intake (signed, durable, answered fast) and the webhook inbox.",
        body_limits={"/webhooks/whatsapp": settings.webhook_max_body_bytes},
        on_shutdown=[drain_inbox_writer],
    )
    return app


app = create_app()
