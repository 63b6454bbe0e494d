"""Prometheus metrics. Names: herald_ prefix, base units, _total counters, bounded labels."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "herald_http_requests_total",
    "HTTP requests by route template, method and status code.",
    ["service", "route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "herald_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "herald_http_requests_in_flight", "HTTP requests being served.", ["service"], registry=REGISTRY
)


def render_latest() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# --- webhook intake and processing ----------------------------------------------------------

WEBHOOK_EVENTS = Counter(
    "herald_webhook_events_total",
    "Webhook changes processed, by field (messages, message_template_status_update, ...) and kind.",
    ["field", "kind"],
    registry=REGISTRY,
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "herald_webhook_signature_failures_total",
    "Webhook POSTs refused for a missing or invalid X-Hub-Signature-256.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_LAST_RECEIVED = Gauge(
    "herald_webhook_last_received_timestamp_seconds",
    "Unix time of the last signed webhook stored (alert when it stops moving).",
    registry=REGISTRY,
)
WEBHOOK_INBOX_OUTCOMES = Counter(
    "herald_webhook_inbox_outcomes_total",
    "Inbox rows finished by the processing actor, by final status (processed, skipped, failed, deferred).",
    ["status"],
    registry=REGISTRY,
)
