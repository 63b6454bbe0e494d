"""Gateway settings: where each service listens.

The gateway is a local stand-in for the Kubernetes Ingress, so it has its own small settings
class (like the simulator) instead of widening Herald's.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    contacts_url: str = Field("http://127.0.0.1:8001", validation_alias="HERALD_CONTACTS_URL")
    messaging_url: str = Field("http://127.0.0.1:8002", validation_alias="HERALD_MESSAGING_URL")
    automation_url: str = Field("http://127.0.0.1:8003", validation_alias="HERALD_AUTOMATION_URL")
    webhook_url: str = Field("http://127.0.0.1:8004", validation_alias="HERALD_WEBHOOK_URL")
    # Long enough for a large CSV import answered synchronously.
    timeout_seconds: float = Field(120.0, validation_alias="HERALD_GATEWAY_TIMEOUT_SECONDS", gt=0)
    max_connections: int = Field(200, validation_alias="HERALD_GATEWAY_MAX_CONNECTIONS", ge=1)

    def upstream(self, service: str) -> str:
        return str(getattr(self, f"{service}_url")).rstrip("/")
