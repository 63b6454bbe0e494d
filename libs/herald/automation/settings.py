"""HERALD_AUTOMATION_* environment variables, typed and read once."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AutomationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Outbound webhook actions may call loopback/private addresses only when this is true
    # (local development and tests); otherwise they are refused at definition and at call time.
    webhook_allow_private: bool = Field(False, validation_alias="HERALD_AUTOMATION_WEBHOOK_ALLOW_PRIVATE")
    webhook_max_response_bytes: int = Field(
        65_536, validation_alias="HERALD_AUTOMATION_WEBHOOK_MAX_RESPONSE_BYTES", ge=1024
    )
    # Contacts per page when the tick streams due contacts and inserts their runs.
    tick_batch_size: int = Field(1000, validation_alias="HERALD_AUTOMATION_TICK_BATCH_SIZE", ge=10, le=10_000)
    # How late a cron-scheduled automation may still fire a missed slot.
    schedule_catch_up_minutes: int = Field(
        60, validation_alias="HERALD_AUTOMATION_SCHEDULE_CATCH_UP_MINUTES", ge=1, le=1440
    )
    # Replies count toward performance when they arrive this long after an automation message.
    reply_window_hours: int = Field(24, validation_alias="HERALD_AUTOMATION_REPLY_WINDOW_HOURS", ge=1, le=720)


@lru_cache
def get_automation_settings() -> AutomationSettings:
    return AutomationSettings()
