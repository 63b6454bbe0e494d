"""Structured logs: JSON in containers, readable in a terminal; phones masked, secrets dropped."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from herald.observability.tracing import current_trace_ids
from herald.settings import get_settings

_PHONE = re.compile(r"(?<![\w.])\+?(\d{2,3})\d{4,9}(\d{2})(?!\w)")
_SECRET_KEYS = {
    "password", "token", "secret", "authorization", "api_key", "access_token", "refresh_token", "key",
}  # fmt: skip


def _mask_match(match: re.Match[str]) -> str:
    whole, head, tail = match.group(0), match.group(1), match.group(2)
    plus = "+" if whole.startswith("+") else ""
    hidden = len(whole) - len(plus) - len(head) - len(tail)
    return f"{plus}{head}{'*' * hidden}{tail}"


def mask_phone(value: str) -> str:
    """+14155550123 -> +141******23: enough to correlate, not enough to dial."""
    return _PHONE.sub(_mask_match, value)


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
    """Mask phone numbers in every value and redact fields whose name says secret."""
    return {k: ("[redacted]" if _is_secret(k) else _scrub(v)) for k, v in event_dict.items()}


def trace_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add trace_id and span_id of the current span (nothing when tracing is off)."""
    ids = current_trace_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def configure_logging(service: str) -> None:
    """JSON lines in containers (HERALD_LOG_FORMAT=json, or auto without a terminal), readable
    console output in development; every line carries service, request id or actor, trace ids."""
    settings = get_settings()
    json_output = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        trace_processor,
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
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
