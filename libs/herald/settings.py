"""Every environment variable Herald reads, typed and validated once at start-up.

The original brief's variables keep their names (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, ...);
Herald's own additions are prefixed HERALD_ where a bare name would be ambiguous.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_KEY_LENGTH = 32
WEAK_SECRET_KEYS = {"changeme", "secret", "change-me", "changethis", "dev", "development", "herald"}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Field(
        Environment.DEVELOPMENT, validation_alias=AliasChoices("HERALD_ENV", "ENVIRONMENT")
    )
    data_dir: Path = Field(Path(".herald"), validation_alias="HERALD_DATA_DIR")

    # Storage and broker (names from the original brief).
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/herald", validation_alias="DATABASE_URL"
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"),
    )
    database_pool_size: int = Field(10, validation_alias="HERALD_DB_POOL_SIZE", ge=1, le=200)

    # WhatsApp Cloud API.
    whatsapp_token: SecretStr = Field(SecretStr(""), validation_alias="WHATSAPP_TOKEN")
    phone_number_id: str = Field("", validation_alias="PHONE_NUMBER_ID")
    business_id: str = Field("", validation_alias="BUSINESS_ID")
    webhook_verify_token: SecretStr = Field(SecretStr(""), validation_alias="WEBHOOK_VERIFY_TOKEN")
    whatsapp_app_secret: SecretStr = Field(SecretStr(""), validation_alias="WHATSAPP_APP_SECRET")
    whatsapp_api_base_url: str = Field(
        "https://graph.facebook.com", validation_alias="WHATSAPP_API_BASE_URL"
    )
    whatsapp_api_version: str = Field("v21.0", validation_alias="WHATSAPP_API_VERSION")
    whatsapp_throughput_per_second: int = Field(
        80, validation_alias="WHATSAPP_THROUGHPUT_PER_SECOND", ge=1, le=10_000
    )
    whatsapp_timeout_seconds: float = Field(10.0, validation_alias="WHATSAPP_TIMEOUT_SECONDS", gt=0)

    # Security and HTTP.
    secret_key: SecretStr = Field(SecretStr(""), validation_alias="SECRET_KEY")
    access_token_minutes: int = Field(15, validation_alias="HERALD_ACCESS_TOKEN_MINUTES", ge=1)
    refresh_token_days: int = Field(7, validation_alias="HERALD_REFRESH_TOKEN_DAYS", ge=1)
    login_attempts_per_minute: int = Field(10, validation_alias="HERALD_LOGIN_ATTEMPTS_PER_MINUTE", ge=1)
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="ALLOWED_ORIGINS"
    )
    max_body_bytes: int = Field(1_048_576, validation_alias="HERALD_MAX_BODY_BYTES", ge=1024)
    max_csv_bytes: int = Field(50 * 1_048_576, validation_alias="HERALD_MAX_CSV_BYTES", ge=1024)

    # Contacts and time.
    default_region: str = Field("US", validation_alias="HERALD_DEFAULT_REGION")
    default_timezone: str = Field("UTC", validation_alias="HERALD_DEFAULT_TIMEZONE")

    # Admin seeded by `herald seed-admin` / make run.
    # A deliverable-looking address: .local and other special-use domains fail email validation.
    admin_email: str = Field("admin@example.com", validation_alias="HERALD_ADMIN_EMAIL")
    admin_password: SecretStr = Field(SecretStr(""), validation_alias="HERALD_ADMIN_PASSWORD")

    # Observability.
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field("auto", validation_alias="HERALD_LOG_FORMAT")  # auto | json | console
    otel_exporter_otlp_endpoint: str = Field("", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    service_name: str = Field("herald", validation_alias="HERALD_SERVICE_NAME")

    # Processes.
    web_workers: int = Field(1, validation_alias="HERALD_WEB_WORKERS", ge=1, le=64)
    worker_processes: int = Field(1, validation_alias="HERALD_WORKER_PROCESSES", ge=1, le=64)
    worker_threads: int = Field(8, validation_alias="HERALD_WORKER_THREADS", ge=1, le=256)

    # Cloud API client connection pool (one pooled httpx client per process); HTTP/2 stays off by
    # default because the local simulator speaks HTTP/1.1 only.
    whatsapp_max_connections: int = Field(100, validation_alias="WHATSAPP_MAX_CONNECTIONS", ge=1, le=1000)
    whatsapp_http2: bool = Field(False, validation_alias="WHATSAPP_HTTP2")

    # Webhook intake and processing. Meta caps a webhook payload at 3 MB.
    webhook_max_body_bytes: int = Field(
        3 * 1_048_576, validation_alias="HERALD_WEBHOOK_MAX_BODY_BYTES", ge=1024
    )
    # How often a status for a wamid we do not know yet is retried before the event is skipped
    # (the send response may not be committed yet), and the first retry delay (doubling).
    webhook_unknown_message_retries: int = Field(
        6, validation_alias="HERALD_WEBHOOK_UNKNOWN_MESSAGE_RETRIES", ge=0, le=20
    )
    webhook_retry_base_ms: int = Field(2000, validation_alias="HERALD_WEBHOOK_RETRY_BASE_MS", ge=1)
    # A pending inbox row this long past due is re-enqueued by the relay (the broker lost it).
    webhook_relay_after_seconds: int = Field(60, validation_alias="HERALD_WEBHOOK_RELAY_AFTER_SECONDS", ge=1)
    # Opt-out / opt-in keywords per language (JSON), matched as the whole message, case- and
    # accent-insensitive, in every language at once.
    opt_out_keywords: dict[str, list[str]] = Field(
        default_factory=lambda: {"en": ["STOP", "UNSUBSCRIBE"], "es": ["BAJA", "ALTO"]},
        validation_alias="HERALD_OPT_OUT_KEYWORDS",
    )
    opt_in_keywords: dict[str, list[str]] = Field(
        default_factory=lambda: {"en": ["START"], "es": ["ALTA"]},
        validation_alias="HERALD_OPT_IN_KEYWORDS",
    )
    # Text sent back after a keyword opt-out; empty sends nothing.
    opt_out_confirmation: str = Field("", validation_alias="HERALD_OPT_OUT_CONFIRMATION", max_length=4096)

    # Automations. Outbound webhook actions may call loopback/private addresses only when allowed
    # (local development and tests); otherwise they are refused at definition and at call time.
    automation_webhook_allow_private: bool = Field(False, validation_alias="HERALD_AUTOMATION_WEBHOOK_ALLOW_PRIVATE")
    automation_webhook_max_response_bytes: int = Field(
        65_536, validation_alias="HERALD_AUTOMATION_WEBHOOK_MAX_RESPONSE_BYTES", ge=1024
    )
    # Contacts per page when the tick streams due contacts and inserts their runs.
    automation_tick_batch_size: int = Field(
        1000, validation_alias="HERALD_AUTOMATION_TICK_BATCH_SIZE", ge=10, le=10_000
    )
    # How late a cron-scheduled automation may still fire a missed slot.
    automation_schedule_catch_up_minutes: int = Field(
        60, validation_alias="HERALD_AUTOMATION_SCHEDULE_CATCH_UP_MINUTES", ge=1, le=1440
    )
    # Replies count toward performance when they arrive this long after an automation message.
    automation_reply_window_hours: int = Field(
        24, validation_alias="HERALD_AUTOMATION_REPLY_WINDOW_HOURS", ge=1, le=720
    )

    # Retention (days; 0 keeps forever). Messages and contacts are kept unless told otherwise.
    retention_logs_days: int = Field(90, validation_alias="HERALD_RETENTION_LOGS_DAYS", ge=0)
    retention_webhook_events_days: int = Field(14, validation_alias="HERALD_RETENTION_WEBHOOK_EVENTS_DAYS", ge=0)
    retention_idempotency_days: int = Field(2, validation_alias="HERALD_RETENTION_IDEMPOTENCY_DAYS", ge=0)
    retention_automation_runs_days: int = Field(
        365, validation_alias="HERALD_RETENTION_AUTOMATION_RUNS_DAYS", ge=0
    )
    retention_messages_days: int = Field(0, validation_alias="HERALD_RETENTION_MESSAGES_DAYS", ge=0)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}")
        return region

    @model_validator(mode="after")
    def _secret_key_policy(self) -> Settings:
        key = self.secret_key.get_secret_value()
        weak = len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in WEAK_SECRET_KEYS
        if self.environment is Environment.PRODUCTION:
            if weak:
                raise ValueError(
                    f"SECRET_KEY must be set to at least {MIN_SECRET_KEY_LENGTH} random characters in production"
                )
        elif not key:
            self.secret_key = SecretStr(_local_secret_key(self.data_dir))
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL with the psycopg 3 driver, whatever scheme the user wrote."""
        return to_psycopg_url(self.database_url)

    @property
    def simulated_cloud_api(self) -> bool:
        return not self.whatsapp_api_base_url.startswith("https://graph.facebook.com")

    def redacted(self) -> dict[str, object]:
        """Settings as a dict with every secret replaced, for `herald config show`."""
        shown: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(getattr(self, name), SecretStr):
                shown[name] = "********" if getattr(self, name).get_secret_value() else ""
            elif name in {"database_url", "redis_url"}:
                shown[name] = redact_url(str(value))
            else:
                shown[name] = value
        return shown


def to_psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """Hide the password part of a URL (scheme://user:password@host -> scheme://user:***@host)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy-style URL (redis://...): mask by hand
        scheme, sep, rest = url.partition("://")
        if "@" in rest:
            creds, _, host = rest.rpartition("@")
            user = creds.split(":", 1)[0]
            return f"{scheme}{sep}{user}:***@{host}"
        return url


def _local_secret_key(data_dir: Path) -> str:
    """Development only: generate a key once and keep it in the local data folder."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
