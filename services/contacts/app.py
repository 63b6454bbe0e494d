"""The contacts service: contacts, plus users, login and API keys for the whole platform."""

from __future__ import annotations

from fastapi import FastAPI

from herald.api import create_service_app
from herald.settings import get_settings
from services.contacts.auth_routes import api_keys_router, auth_router, users_router
from services.contacts.routes import router as contacts_router


def create_app() -> FastAPI:
    settings = get_settings()
    return create_service_app(
        "contacts",
        [auth_router, users_router, api_keys_router, contacts_router],
        description="Contacts, CSV import/export, users, login and API keys.",
        body_limits={"/api/v1/contacts/import": settings.max_csv_bytes},
    )


app = create_app()
