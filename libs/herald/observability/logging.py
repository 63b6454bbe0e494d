"""Structured logs: JSON in containers, readable in a terminal; phones masked, secrets dropped."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from herald.settings import get_settings

_PHONE = re.compile(r"(?<![\w.])\+?(\d{2,3})\d{4,9}(\d{2})(?!\w)")
_SECRET_KEYS = {"password", "token", "secret", "authorization", "api_key", "access_token", "refresh_token", "key"}


def mask_phone(value: str) -> str:
    """+14155550123 -> +141*******23: enough to correlate, not enough to dial."""
    return _PHONE.sub(lambda m: f"{'+' if m.group(0).startswith('+') else ''}{m.group(1)}{'*' * (len(m.group(0)) - len(m.group(1)) - len(m.group(2)) - (1 if m.group(0).startswith('+') else 0))}{m.group(2)}", value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_phone(value)
    if isinstance(value, dict):
        return {k: ("[redacted]" if _is_secret(k) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEYS) and not lowered.endswith(("_id", "_count", "_at"))


def scrub_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[redacted]" if _is_secret(k) else _scrub(v)) for k, v in event_dict.items()}


def configure_logging(service: str) -> None:
    settings = get_settings()
    json_output = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        scrub_processor,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(settings.log_level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
