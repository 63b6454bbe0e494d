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
