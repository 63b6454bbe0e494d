"""Dramatiq middleware: per-actor metrics, trace context across the queue, actor log context,
and the worker pod's /metrics endpoint.

In every process that enqueues (services, workers, jobs) it counts enqueues and writes the
current trace context into the message options. In worker processes it counts processed,
failed, retried and dead-lettered messages and processing time, starts a CONSUMER span that
continues the producer's trace, and binds `actor`/`message_id` to the logs.

Under the dramatiq command (several worker processes) each process writes its samples to a
shared multi-process directory, and one extra process forked by the command serves the
aggregate on HERALD_WORKER_METRICS_PORT (default 9191), plus queue depth and age.
"""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis, q_name

from herald.observability import metrics, multiprocess, tracing
from herald.observability.collectors import READY_AT_OPTION

log = structlog.get_logger("herald.observability.worker")

# Message option marking a message already counted as enqueued.
_COUNTED_OPTION = "herald_counted"


class _InFlight:
    __slots__ = ("labels", "scope", "span", "started", "token")

    def __init__(self, labels: tuple[str, str], started: float) -> None:
        self.labels = labels
        self.started = started
        self.span: Any = None
        self.token: Any = None
        self.scope: Any = None


class ObservabilityMiddleware(dramatiq.Middleware):
    """Metrics, tracing and log context for every Dramatiq message (installed by herald.queue)."""

    def __init__(self) -> None:
        self._in_flight: dict[str, _InFlight] = {}
        self._lock = threading.Lock()
        self._worker_process = False

    @property
    def forks(self) -> list[Any]:
        # Only the dramatiq command asks for forks, after process boot: one exporter per command.
        if self._worker_process and multiprocess.worker_metrics_config().port:
            return [serve_worker_metrics]
        return []

    # --- worker process lifecycle ----------------------------------------------------------

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """A dramatiq worker process: write samples to the command's shared directory."""
        self._worker_process = True
        config = multiprocess.worker_metrics_config()
        if config.port:
            multiprocess.enable_multiprocess(multiprocess.run_dir_for_parent(config.base_dir))
        tracing.setup_tracing("worker")

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        tracing.shutdown_tracing()
        if self._worker_process:
            multiprocess.mark_process_dead()

    # --- producer side ---------------------------------------------------------------------

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        options = message.options
        # When the message becomes ready to process: the queue-age collector measures from here,
        # so a retry that waited out its backoff does not look like a message stuck in the queue.
        options[READY_AT_OPTION] = current_millis() + (delay or 0)
        # Retries and due delayed messages come back through enqueue with the options they were
        # first sent with: the marker keeps them from being counted twice (retries are counted
        # where the Retries middleware decides them, in after_process_message).
        if options.get(_COUNTED_OPTION):
            return
        options[_COUNTED_OPTION] = True
        metrics.QUEUE_ENQUEUED.labels(q_name(message.queue_name), message.actor_name).inc()
        if tracing.enabled() and tracing.MESSAGE_OPTION not in options:
            carrier: dict[str, str] = {}
            tracing.inject_context(carrier)
            if carrier:
                options[tracing.MESSAGE_OPTION] = carrier

    # --- consumer side ---------------------------------------------------------------------

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        labels = (q_name(message.queue_name), message.actor_name)
        state = _InFlight(labels, time.perf_counter())
        with self._lock:
            self._in_flight[message.message_id] = state
        metrics.QUEUE_IN_PROGRESS.labels(*labels).inc()
        structlog.contextvars.bind_contextvars(actor=message.actor_name, message_id=message.message_id)
        if tracing.enabled():
            self._start_span(state, message)

    def _start_span(self, state: _InFlight, message: MessageProxy) -> None:
        from opentelemetry import context, trace
        from opentelemetry.propagate import extract

        parent = extract(message.options.get(tracing.MESSAGE_OPTION) or {})
        span = trace.get_tracer("herald.dramatiq").start_span(
            message.actor_name,
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "process",
                "messaging.destination.name": state.labels[0],
                "messaging.message.id": message.message_id,
                "messaging.dramatiq.retries": int(message.options.get("retries", 0)),
            },
        )
        state.span = span
        # The worker thread's context is copied into the AsyncIO loop's task for async actors.
        state.token = context.attach(trace.set_span_in_context(span, parent))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        state = self._finish(message)
        if state is None:
            return
        metrics.QUEUE_DURATION.labels(*state.labels).observe(time.perf_counter() - state.started)
        if exception is None:
            metrics.QUEUE_PROCESSED.labels(*state.labels).inc()
        else:
            metrics.QUEUE_FAILED.labels(*state.labels).inc()
            # Our after-hooks run after the Retries middleware's: a failed attempt it did not
            # give up on (message.failed) has been scheduled again.
            if not message.failed:
                metrics.QUEUE_RETRIED.labels(*state.labels).inc()
        self._end_span(state, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        state = self._finish(message)
        if state is not None:
            self._end_span(state, None)

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        metrics.QUEUE_DEAD_LETTERED.labels(q_name(message.queue_name), message.actor_name).inc()

    def _finish(self, message: MessageProxy) -> _InFlight | None:
        with self._lock:
            state = self._in_flight.pop(message.message_id, None)
        structlog.contextvars.unbind_contextvars("actor", "message_id")
        if state is not None:
            metrics.QUEUE_IN_PROGRESS.labels(*state.labels).dec()
        return state

    @staticmethod
    def _end_span(state: _InFlight, exception: BaseException | None) -> None:
        if state.span is None:
            return
        from opentelemetry import context, trace

        if exception is not None:
            state.span.record_exception(exception)
            state.span.set_status(trace.Status(trace.StatusCode.ERROR, type(exception).__name__))
        state.span.end()
        try:
            context.detach(state.token)
        except ValueError:
            # Detached from another context (a hook ran on a different thread): the span is ended anyway.
            pass


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body, content_type = metrics.render_latest()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve_worker_metrics() -> int:
    """Fork function of the dramatiq command: serve the aggregate of its worker processes.

    Removes earlier runs' sample directories first, then serves /metrics until terminated.
    """
    from herald.contracts import Queue
    from herald.observability.collectors import cluster_collectors
    from herald.settings import get_settings

    config = multiprocess.worker_metrics_config()
    run_dir = multiprocess.run_dir_for_parent(config.base_dir)
    multiprocess.clean_other_runs(config.base_dir, keep=run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir)
    for collector in cluster_collectors(get_settings().redis_url, [queue.value for queue in Queue]):
        metrics.register_collector(collector)
    server = ThreadingHTTPServer((config.host, config.port), _MetricsHandler)
    log.info("worker_metrics_serving", port=config.port, directory=str(run_dir))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
