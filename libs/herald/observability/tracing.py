"""OpenTelemetry traces: HTTP requests, SQL, Redis, outgoing httpx calls and Dramatiq actors.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test passes an exporter): then nothing is
installed, no instrumentation wraps anything, and `enabled()` is a plain flag check, so the
request and actor paths pay nothing. When on, spans go over OTLP/HTTP through a batch processor.
The trace context crosses Dramatiq through the message options (see dramatiq_middleware).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog

from herald.settings import get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = structlog.get_logger("herald.observability.tracing")

# Key of the W3C trace context inside dramatiq message options.
MESSAGE_OPTION = "trace_context"

_lock = threading.Lock()
# The SDK provider outlives disable_tracing(): OpenTelemetry lets a process set it only once.
_provider: TracerProvider | None = None
_providers: list[TracerProvider] = []
_enabled = False


def _add_processor(processor: SpanProcessor) -> None:
    for provider in _providers:
        provider.add_span_processor(processor)


def enabled() -> bool:
    """True once setup_tracing installed tracing in this process (and it was not disabled)."""
    return _enabled


def setup_tracing(service: str, app: FastAPI | None = None, *, exporter: SpanExporter | None = None) -> bool:
    """Install tracing for this process when an OTLP endpoint is configured (or `exporter` given).

    `app` is instrumented for incoming requests; SQLAlchemy, Redis and httpx are instrumented
    once per process. Tests pass an in-memory exporter, which is exported synchronously.
    Returns whether tracing is on.
    """
    global _provider, _enabled
    endpoint = get_settings().otel_exporter_otlp_endpoint.strip()
    if exporter is None and not endpoint and not _enabled:
        return False

    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    with _lock:
        if _provider is None:
            resource = Resource.create(
                {"service.name": f"herald-{service}", "service.namespace": get_settings().service_name}
            )
            provider = TracerProvider(resource=resource)
            # Redis and SQL spans only inside a traced request or actor: on their own (the
            # worker's queue polling, pool pings) they would be a flood of one-span traces.
            child_only = TracerProvider(resource=resource, sampler=ParentBased(root=ALWAYS_OFF))
            _providers.extend([provider, child_only])
            if endpoint:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                _add_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
            trace.set_tracer_provider(provider)
            _provider = provider
        if exporter is not None:
            _add_processor(SimpleSpanProcessor(exporter))
        if not _enabled:
            _instrument_libraries()
            _enabled = True
    if app is not None and not getattr(app.state, "herald_traced", False):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # /metrics and probes are scraped every few seconds: tracing them is noise.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="/metrics,/health,/ready")
        app.state.herald_traced = True
    log.info("tracing_enabled", service=service, endpoint=endpoint or "in-process exporter")
    return True


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    from herald import db

    child_only = _providers[1]
    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument(tracer_provider=child_only)
    # herald.db imported create_engine by name, so the instrumentor's factory wrapper would miss
    # its engines: hand them over explicitly (they are created lazily, so this is cheap).
    SQLAlchemyInstrumentor().instrument(
        engines=[db.sync_engine(), db.async_engine().sync_engine], tracer_provider=child_only
    )


def shutdown_tracing() -> None:
    """Flush pending spans (worker shutdown, process exit)."""
    for provider in _providers:
        provider.force_flush()


def disable_tracing() -> None:
    """Remove the library instrumentation and stop propagating context (tests)."""
    global _enabled
    with _lock:
        if not _enabled:
            return
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        HTTPXClientInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()
        SQLAlchemyInstrumentor().uninstrument()
        _enabled = False


def inject_context(carrier: dict[str, Any]) -> None:
    """Write the current trace context (traceparent/tracestate) into `carrier`; no-op when off."""
    if not _enabled:
        return
    from opentelemetry.propagate import inject

    inject(carrier)


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span, or None when off or outside a span."""
    if not _enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
