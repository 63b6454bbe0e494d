"""The messaging service: sends, broadcasts, conversations, templates, delivery analytics."""

from __future__ import annotations

from fastapi import FastAPI

from herald.api import create_service_app
from services.messaging.analytics_routes import router as analytics_router
from services.messaging.routes import routers


def create_app() -> FastAPI:
    return create_service_app(
        "messaging",
        [*routers, analytics_router],
        description=(
            "Send messages and broadcasts over the WhatsApp Cloud API, follow their status, "
            "manage templates, read analytics."
        ),
    )


app = create_app()
