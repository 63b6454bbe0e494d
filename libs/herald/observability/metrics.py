"""Prometheus metrics. Names: herald_ prefix, base units, _total counters, bounded labels.

The catalog (what each metric is for). Label values are always drawn from small fixed sets:
route templates, status names, Meta's numeric error codes, actor and queue names, job names,
trigger types. Never a phone number, contact id, message id or automation id.

HTTP (every service, herald.api):
  herald_http_requests_total{service,route,method,status}     requests by route template
  herald_http_request_duration_seconds{service,route,method}  latency histogram
  herald_http_requests_in_flight{service}                      requests being served

Messaging (messaging service and the `messages` workers):
  herald_message_status_transitions_total{from_status,to_status}
      every stored status change; creation counts as from_status="none" -> to_status="queued".
      The delivery funnel is rate() of to_status = accepted/sent/delivered/read/failed.
  herald_message_failures_total{error_code}       failed messages by Meta's numeric code
                                                  ("none" when Meta gave none); use error_code_label()
  herald_messages_suppressed_total{reason}        sends not attempted: opted_out, outside_window,
                                                  template_unavailable, invalid_recipient, ...
  herald_cloud_api_requests_total{operation,outcome}       calls to the Cloud API (outcome ok|error)
  herald_cloud_api_request_duration_seconds{operation}     latency of those calls (send latency)
  herald_cloud_api_errors_total{error_code,retry_policy}   typed errors by code and RetryPolicy value
  herald_rate_limiter_waits_total{limiter}                 times a send had to wait for a token
  herald_rate_limiter_wait_seconds{limiter}                how long it waited (histogram);
                                                           limiter: throughput | pair

Webhooks (webhook service):
  herald_webhook_events_total{field,kind}        changes received: field = Meta's changes[].field
                                                 (messages, message_template_status_update, ...),
                                                 kind = status | message | error | other
  herald_webhook_signature_failures_total{reason}  rejected deliveries: missing | invalid
  herald_webhook_last_received_timestamp_seconds   unix time of the last accepted delivery

Automations (automation workers): per-automation numbers come from the analytics table.
  herald_automation_runs_total{trigger_type,outcome}      runs by trigger type and how they ended
  herald_automation_run_duration_seconds{trigger_type}    start -> finish of a run step (histogram)

Jobs (herald.jobs.runner, in the process that runs the job):
  herald_job_runs_total{job,outcome}              outcome: succeeded | failed | skipped
  herald_job_duration_seconds{job}                run time histogram
  herald_job_last_success_timestamp_seconds{job}  unix time of the last success
Jobs as recorded in the logs table (collector; CronJob pods exit before any scrape, so the
alerting signal is read from the database by every worker metrics endpoint):
  herald_job_last_recorded_success_timestamp_seconds{job}
  herald_job_expected_interval_seconds{job}       from the job registry's cron schedule

Contacts (collector at scrape time, one cheap query cached for 60 s):
  herald_contacts                                  contacts stored
  herald_contacts_opted_in                         contacts whose opt_in_status is opted_in

Queues and actors (herald.observability.dramatiq_middleware, every process that enqueues or works):
  herald_queue_messages_enqueued_total{queue,actor}
  herald_queue_messages_processed_total{queue,actor}   finished without an exception
  herald_queue_messages_failed_total{queue,actor}      raised (each attempt)
  herald_queue_messages_retried_total{queue,actor}     re-enqueued by the Retries middleware
  herald_queue_messages_dead_lettered_total{queue,actor}  retries exhausted or rejected
  herald_queue_message_duration_seconds{queue,actor}   processing time histogram
  herald_queue_messages_in_progress{queue,actor}       being processed right now
Queue state (collector reading Dramatiq's Redis structures under the `herald:` namespace):
  herald_queue_depth{queue}                        ready messages waiting (autoscaling signal)
  herald_queue_delayed_depth{queue}                delayed messages (retries, scheduled sends)
  herald_queue_oldest_message_age_seconds{queue}   age of the oldest ready message (autoscaling signal)
  herald_queue_dead_letters{queue}                 messages in the dead-letter set

Several processes per pod (gunicorn web workers, dramatiq worker processes) share one
PROMETHEUS_MULTIPROC_DIR; render_latest() then aggregates every process's files.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

# --- HTTP -----------------------------------------------------------------------------------

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
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "herald_http_requests_in_flight",
    "HTTP requests being served.",
    ["service"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

# --- Messaging and the Cloud API ------------------------------------------------------------

MESSAGE_STATUS_TRANSITIONS = Counter(
    "herald_message_status_transitions_total",
    "Outbound message status changes (from_status 'none' on creation).",
    ["from_status", "to_status"],
    registry=REGISTRY,
)
MESSAGE_FAILURES = Counter(
    "herald_message_failures_total",
    "Messages that ended failed, by Meta's numeric error code.",
    ["error_code"],
    registry=REGISTRY,
)
MESSAGES_SUPPRESSED = Counter(
    "herald_messages_suppressed_total",
    "Sends not attempted because a rule forbade them (opt-out, 24-hour window, template state).",
    ["reason"],
    registry=REGISTRY,
)
CLOUD_API_REQUESTS = Counter(
    "herald_cloud_api_requests_total",
    "Calls to the WhatsApp Cloud API by operation and outcome (ok or error).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
CLOUD_API_LATENCY = Histogram(
    "herald_cloud_api_request_duration_seconds",
    "Latency of calls to the WhatsApp Cloud API by operation.",
    ["operation"],
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
CLOUD_API_ERRORS = Counter(
    "herald_cloud_api_errors_total",
    "Cloud API errors by Meta's numeric code and the retry policy it maps to.",
    ["error_code", "retry_policy"],
    registry=REGISTRY,
)
RATE_LIMITER_WAITS = Counter(
    "herald_rate_limiter_waits_total",
    "Sends that had to wait for the rate limiter (throughput or pair rate).",
    ["limiter"],
    registry=REGISTRY,
)
RATE_LIMITER_WAIT_SECONDS = Histogram(
    "herald_rate_limiter_wait_seconds",
    "Seconds a send waited for the rate limiter.",
    ["limiter"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)

# --- Webhooks -------------------------------------------------------------------------------

WEBHOOK_EVENTS = Counter(
    "herald_webhook_events_total",
    "Webhook changes received, by Meta's field and the kind of entry.",
    ["field", "kind"],
    registry=REGISTRY,
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "herald_webhook_signature_failures_total",
    "Webhook deliveries rejected because X-Hub-Signature-256 was missing or wrong.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_LAST_RECEIVED = Gauge(
    "herald_webhook_last_received_timestamp_seconds",
    "Unix time of the last accepted webhook delivery.",
    registry=REGISTRY,
    multiprocess_mode="max",
)

# --- Automations ----------------------------------------------------------------------------

AUTOMATION_RUNS = Counter(
    "herald_automation_runs_total",
    "Automation runs by trigger type and outcome (per-automation numbers live in analytics).",
    ["trigger_type", "outcome"],
    registry=REGISTRY,
)
AUTOMATION_RUN_DURATION = Histogram(
    "herald_automation_run_duration_seconds",
    "Time to process one automation run step, by trigger type.",
    ["trigger_type"],
    buckets=_SLOW_BUCKETS,
    registry=REGISTRY,
)

# --- Jobs -----------------------------------------------------------------------------------

JOB_RUNS = Counter(
    "herald_job_runs_total",
    "Scheduled job runs by job and outcome (succeeded, failed, skipped).",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "herald_job_duration_seconds",
    "Scheduled job run time.",
    ["job"],
    buckets=_SLOW_BUCKETS,
    registry=REGISTRY,
)
JOB_LAST_SUCCESS = Gauge(
    "herald_job_last_success_timestamp_seconds",
    "Unix time of the job's last successful run in this process.",
    ["job"],
    registry=REGISTRY,
    multiprocess_mode="max",
)

# --- Dramatiq queues and actors (incremented by the broker middleware) ----------------------

QUEUE_ENQUEUED = Counter(
    "herald_queue_messages_enqueued_total",
    "Dramatiq messages enqueued, by queue and actor.",
    ["queue", "actor"],
    registry=REGISTRY,
)
QUEUE_PROCESSED = Counter(
    "herald_queue_messages_processed_total",
    "Dramatiq messages processed without an exception.",
    ["queue", "actor"],
    registry=REGISTRY,
)
QUEUE_FAILED = Counter(
    "herald_queue_messages_failed_total",
    "Dramatiq message attempts that raised.",
    ["queue", "actor"],
    registry=REGISTRY,
)
QUEUE_RETRIED = Counter(
    "herald_queue_messages_retried_total",
    "Dramatiq messages re-enqueued for another attempt.",
    ["queue", "actor"],
    registry=REGISTRY,
)
QUEUE_DEAD_LETTERED = Counter(
    "herald_queue_messages_dead_lettered_total",
    "Dramatiq messages given up on (retries exhausted or rejected).",
    ["queue", "actor"],
    registry=REGISTRY,
)
QUEUE_DURATION = Histogram(
    "herald_queue_message_duration_seconds",
    "Dramatiq message processing time by actor.",
    ["queue", "actor"],
    buckets=_SLOW_BUCKETS,
    registry=REGISTRY,
)
QUEUE_IN_PROGRESS = Gauge(
    "herald_queue_messages_in_progress",
    "Dramatiq messages being processed right now.",
    ["queue", "actor"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

# --- contacts service and login ------------------------------------------------------------
CONTACT_IMPORT_ROWS = Counter(
    "herald_contact_import_rows_total",
    "CSV import rows by result (created, updated, failed).",
    ["result"],
    registry=REGISTRY,
)
LOGIN_ATTEMPTS = Counter(
    "herald_login_attempts_total",
    "Password logins by result (success, invalid, disabled, rate_limited).",
    ["result"],
    registry=REGISTRY,
)

# Names exported by collectors at scrape time (herald.observability.collectors).
QUEUE_DEPTH = "herald_queue_depth"
QUEUE_DELAYED_DEPTH = "herald_queue_delayed_depth"
QUEUE_OLDEST_AGE = "herald_queue_oldest_message_age_seconds"
QUEUE_DEAD_LETTERS = "herald_queue_dead_letters"
CONTACTS = "herald_contacts"
CONTACTS_OPTED_IN = "herald_contacts_opted_in"
JOB_RECORDED_LAST_SUCCESS = "herald_job_last_recorded_success_timestamp_seconds"
JOB_EXPECTED_INTERVAL = "herald_job_expected_interval_seconds"

# Meta's codes are integers below 1e6 (130429, 131047, 132000, ...); anything else is one bucket,
# so a malformed payload can never create new series.
_MAX_ERROR_CODE = 1_000_000


def error_code_label(code: int | str | None) -> str:
    """A bounded label value for Meta's numeric error code: the digits, "none" or "other"."""
    if code is None or code == "":
        return "none"
    try:
        number = int(code)
    except (TypeError, ValueError):
        return "other"
    return str(number) if 0 <= number < _MAX_ERROR_CODE else "other"


_extra_collectors: list[Collector] = []


def register_collector(collector: Collector) -> None:
    """Add a scrape-time collector (queue depth, contacts, jobs) to what render_latest() exports."""
    if collector not in _extra_collectors:
        _extra_collectors.append(collector)
        if not multiprocess_enabled():
            REGISTRY.register(collector)


def unregister_collector(collector: Collector) -> None:
    """Remove a collector added with register_collector (tests)."""
    if collector in _extra_collectors:
        _extra_collectors.remove(collector)
        if not multiprocess_enabled():
            REGISTRY.unregister(collector)


def multiprocess_enabled() -> bool:
    """True when this process writes its samples to PROMETHEUS_MULTIPROC_DIR."""
    # prometheus_client itself decides from this variable; it is read here for the same reason.
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render_latest() -> tuple[bytes, str]:
    """The exposition text of this process, or of every process sharing the multiprocess dir."""
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _extra_collectors:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# --- automation engine and ticks -------------------------------------------------------------
AUTOMATION_STEPS = Counter(
    "herald_automation_steps_total",
    "Automation steps executed, by action type and outcome (sent, done, skipped, waiting, deferred, failed).",
    ["action", "outcome"],
    registry=REGISTRY,
)
AUTOMATION_TICK_DURATION = Histogram(
    "herald_automation_tick_duration_seconds",
    "Time taken by one automation tick (birthday_date, schedule, resume_waits).",
    ["tick"],
    buckets=_SLOW_BUCKETS,
    registry=REGISTRY,
)
AUTOMATION_RUNS_INSERTED = Counter(
    "herald_automation_runs_inserted_total",
    "Automation runs inserted by the ticks and event actors (duplicates are not counted).",
    ["trigger_type"],
    registry=REGISTRY,
)
AUTOMATION_OVERDUE_WAITS = Gauge(
    "herald_automation_overdue_waits",
    "Waiting runs whose resume time passed more than a minute ago, as seen by the last sweep.",
    registry=REGISTRY,
    multiprocess_mode="max",
)

# --- Webhook inbox (webhook processing actor) --------------------------------------------------
WEBHOOK_INBOX_OUTCOMES = Counter(
    "herald_webhook_inbox_outcomes_total",
    "Stored webhook events finished by the processing actor, by result (processed, skipped, failed, deferred).",
    ["status"],
    registry=REGISTRY,
)
