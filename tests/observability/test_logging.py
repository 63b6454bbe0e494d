"""Structured logs: phone numbers masked, secrets redacted, trace and request context attached."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from herald.observability import tracing
from herald.observability.logging import configure_logging, mask_phone


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The production configuration (JSON), written to a buffer instead of stderr."""
    from herald.settings import get_settings

    monkeypatch.setenv("HERALD_LOG_FORMAT", "json")
    get_settings.cache_clear()
    configure_logging("logtest")
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer), cache_logger_on_first_use=False)
    yield buffer
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    get_settings.cache_clear()


def _last_line(buffer: io.StringIO) -> dict[str, Any]:
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def test_phone_numbers_are_masked_in_messages_and_fields(json_logs: io.StringIO) -> None:
    structlog.get_logger("t").info("sending to +14155550123", recipient="+14155550123", nested={"to": "4915112345678"})

    line = _last_line(json_logs)
    raw = json.dumps(line)
    assert "4155550123" not in raw and "15112345678" not in raw
    assert line["recipient"] == "+141******23"
    assert line["event"] == "sending to +141******23"
    assert line["service"] == "logtest"


def test_token_and_secret_fields_are_redacted(json_logs: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "calling the api",
        access_token="EAAG-secret-value",
        headers={"Authorization": "Bearer EAAG-secret-value", "accept": "json"},
        app_secret="s3cret",
        token_id="kept-because-it-is-an-id",
    )

    line = _last_line(json_logs)
    assert "EAAG-secret-value" not in json.dumps(line) and "s3cret" not in json.dumps(line)
    assert line["access_token"] == "[redacted]"
    assert line["headers"] == {"Authorization": "[redacted]", "accept": "json"}
    assert line["token_id"] == "kept-because-it-is-an-id"


def test_trace_and_span_ids_are_added_inside_a_span(json_logs: io.StringIO) -> None:
    from opentelemetry import trace

    tracing.setup_tracing("logtest", exporter=InMemorySpanExporter())
    try:
        with trace.get_tracer("t").start_as_current_span("work") as span:
            structlog.get_logger("t").info("inside")
            context = span.get_span_context()
    finally:
        tracing.disable_tracing()

    line = _last_line(json_logs)
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_no_trace_fields_when_tracing_is_off(json_logs: io.StringIO) -> None:
    structlog.get_logger("t").info("plain")

    line = _last_line(json_logs)
    assert "trace_id" not in line


def test_mask_keeps_enough_to_correlate() -> None:
    assert mask_phone("+5511987654321") == "+551********21"
    assert mask_phone("order 12345") == "order 12345"
