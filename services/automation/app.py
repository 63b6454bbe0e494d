"""The automation service: CRUD of automations, previews, test sends, manual runs, run history
and performance. Its workers (`herald worker automation`) run services.automation.actors."""

from __future__ import annotations

from fastapi import FastAPI

from herald.api import create_service_app
from services.automation.routes import automations, runs


def create_app() -> FastAPI:
    return create_service_app(
        "automation",
        [automations, runs],
        description="Automations: birthday, date, event, keyword, schedule and manual triggers.",
    )


app = create_app()


app = create_app()
