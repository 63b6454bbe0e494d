"""Retention: delete transient rows past their age, in small batches that never hold long locks.

Logs, processed webhook events, idempotency keys and finished automation runs are transient;
messages and contacts are kept unless HERALD_RETENTION_MESSAGES_DAYS says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text

from herald import db
from herald.clock import utcnow
from herald.settings import get_settings

log = structlog.get_logger("herald.retention")

BATCH_SIZE = 5_000


@dataclass(frozen=True)
class RetentionRule:
    name: str
    table: str
    key: str  # the primary-key column used to delete by batch
    timestamp: str
    extra_condition: str
    days: int


def retention_rules() -> list[RetentionRule]:
    settings = get_settings()
    rules = [
        RetentionRule("logs", "logs", "id", "created_at", "", settings.retention_logs_days),
        RetentionRule(
            "webhook_events", "webhook_events", "id", "received_at",
            "status IN ('processed', 'skipped')", settings.retention_webhook_events_days,
        ),
        RetentionRule("idempotency_keys", "idempotency_keys", "ctid", "created_at", "", settings.retention_idempotency_days),
        RetentionRule(
            "automation_runs", "automation_runs", "id", "finished_at",
            "status IN ('completed', 'skipped', 'failed', 'cancelled')", settings.retention_automation_runs_days,
        ),
        RetentionRule(
            "messages", "messages", "id", "created_at",
            "status IN ('sent', 'delivered', 'read', 'failed', 'received')", settings.retention_messages_days,
        ),
    ]
    return [rule for rule in rules if rule.days > 0]


def delete_older_than(rule: RetentionRule, cutoff: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete rows of `rule` older than `cutoff`, one short transaction per batch."""
    condition = f" AND {rule.extra_condition}" if rule.extra_condition else ""
    # Table and column names come from the fixed rules above, never from input.
    statement = text(
        f"DELETE FROM {rule.table} WHERE {rule.key} IN ("  # noqa: S608 - names from the fixed rules  # nosec B608
        f" SELECT {rule.key} FROM {rule.table} WHERE {rule.timestamp} < :cutoff{condition}"
        f" LIMIT :batch FOR UPDATE SKIP LOCKED)"
    )
    removed = 0
    while True:
        with db.sync_session_scope() as session:
            result = session.execute(statement, {"cutoff": cutoff, "batch": batch_size})
            deleted = result.rowcount  # type: ignore[attr-defined]
        removed += deleted
        if deleted < batch_size:
            return removed


def cleanup(now: datetime | None = None, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Apply every retention rule; returns rows removed per rule."""
    now = now or utcnow()
    report: dict[str, int] = {}
    for rule in retention_rules():
        cutoff = now - timedelta(days=rule.days)
        report[f"deleted_{rule.name}"] = delete_older_than(rule, cutoff, batch_size)
        log.info("retention_applied", rule=rule.name, cutoff=cutoff.isoformat(), deleted=report[f"deleted_{rule.name}"])
    return report


def job_retention_cleanup(context: Any) -> dict[str, int]:
    """Job entrypoint (registry: retention-cleanup)."""
    return cleanup(context.now)
