"""The hourly rollup: per hour, overall and per automation and per template, what was queued,
sent, delivered, read, failed (by error code), received, replied to, opted out and added.

Each event is counted in the hour it happened (sent_at, delivered_at, ...), so a late status is
folded into its own hour: the job recomputes every hour touched by rows changed since the last
rollup. Recomputing an hour deletes and rewrites its rows in one transaction: never double counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from herald import db
from herald.clock import utcnow

# Rows are stamped by the database clock at statement time but become visible at commit;
# looking back this far past the last rollup covers slow transactions.
WATERMARK_MARGIN = timedelta(minutes=15)
# An inbound message counts as a reply when the contact got an outbound message this recently.
REPLY_WINDOW = timedelta(hours=24)

_OUTBOUND = text(
    """
    SELECT GROUPING(automation_id) AS g_automation,
           GROUPING(template_name, template_language) AS g_template,
           automation_id, template_name, template_language,
           count(*) FILTER (WHERE queued_at >= :start AND queued_at < :end) AS queued,
           count(*) FILTER (WHERE sent_at >= :start AND sent_at < :end) AS sent,
           count(*) FILTER (WHERE delivered_at >= :start AND delivered_at < :end) AS delivered,
           count(*) FILTER (WHERE read_at >= :start AND read_at < :end) AS read,
           count(*) FILTER (WHERE failed_at >= :start AND failed_at < :end) AS failed
    FROM messages
    WHERE direction = 'outbound'
      AND ((queued_at >= :start AND queued_at < :end) OR (sent_at >= :start AND sent_at < :end)
           OR (delivered_at >= :start AND delivered_at < :end) OR (read_at >= :start AND read_at < :end)
           OR (failed_at >= :start AND failed_at < :end))
    GROUP BY GROUPING SETS ((), (automation_id), (template_name, template_language))
    """
)

_FAILURES = text(
    """
    SELECT GROUPING(automation_id) AS g_automation,
           GROUPING(template_name, template_language) AS g_template,
           automation_id, template_name, template_language,
           coalesce(error_code::text, 'unknown') AS code, count(*) AS failed
    FROM messages
    WHERE direction = 'outbound' AND failed_at >= :start AND failed_at < :end
    GROUP BY GROUPING SETS ((error_code), (automation_id, error_code), (template_name, template_language, error_code))
    """
)

# Replies are attributed to the latest outbound message the contact received before replying.
_INBOUND = text(
    """
    SELECT GROUPING(last.automation_id) AS g_automation,
           GROUPING(last.template_name, last.template_language) AS g_template,
           last.automation_id, last.template_name, last.template_language,
           count(*) AS inbound, count(last.id) AS replies
    FROM messages inbound
    LEFT JOIN LATERAL (
        SELECT o.id, o.automation_id, o.template_name, o.template_language
        FROM messages o
        WHERE o.contact_id = inbound.contact_id AND o.direction = 'outbound'
          AND o.sent_at IS NOT NULL AND o.sent_at < inbound.received_at
          AND o.sent_at >= inbound.received_at - :reply_window
        ORDER BY o.sent_at DESC
        LIMIT 1
    ) last ON true
    WHERE inbound.direction = 'inbound' AND inbound.received_at >= :start AND inbound.received_at < :end
    GROUP BY GROUPING SETS ((), (last.automation_id), (last.template_name, last.template_language))
    """
)

_CONTACTS = text(
    """
    SELECT (SELECT count(*) FROM contacts WHERE created_at >= :start AND created_at < :end) AS contacts_added,
           (SELECT count(*) FROM contacts WHERE opted_out_at >= :start AND opted_out_at < :end) AS opt_outs
    """
)

_DIRTY_HOURS = text(
    """
    SELECT DISTINCT date_trunc('hour', moment) AS hour FROM (
        SELECT unnest(ARRAY[queued_at, sent_at, delivered_at, read_at, failed_at, received_at]) AS moment
        FROM messages WHERE updated_at >= :since
        UNION ALL
        SELECT unnest(ARRAY[created_at, opted_out_at]) FROM contacts WHERE updated_at >= :since
    ) changed
    WHERE moment IS NOT NULL AND moment < :until
    """
)

_COUNTERS = ("queued", "sent", "delivered", "read", "failed", "inbound", "replies", "opt_outs", "contacts_added")


@dataclass
class _Row:
    scope: str
    scope_key: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    failures_by_code: dict[str, int] = field(default_factory=dict)

    def nonzero(self) -> bool:
        return any(self.counts.values())


def truncate_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _scope_of(row: Any) -> tuple[str, str] | None:
    """Map a GROUPING SETS row to (scope, scope_key); None for groups we don't keep."""
    if row.g_automation == 0:
        return ("automation", str(row.automation_id)) if row.automation_id is not None else None
    if row.g_template == 0:
        return ("template", f"{row.template_name}:{row.template_language}") if row.template_name else None
    return ("overall", "")


def compute_hour(session: Session, hour: datetime) -> list[_Row]:
    """Count one hour from the source tables (no writes)."""
    start, end = hour, hour + timedelta(hours=1)
    params = {"start": start, "end": end}
    rows: dict[tuple[str, str], _Row] = {("overall", ""): _Row("overall", "")}

    def row_for(key: tuple[str, str]) -> _Row:
        if key not in rows:
            rows[key] = _Row(*key)
        return rows[key]

    for result in session.execute(_OUTBOUND, params):
        key = _scope_of(result)
        if key is not None:
            target = row_for(key)
            for name in ("queued", "sent", "delivered", "read", "failed"):
                target.counts[name] += getattr(result, name)
    for result in session.execute(_FAILURES, params):
        key = _scope_of(result)
        if key is not None:
            codes = row_for(key).failures_by_code
            codes[result.code] = codes.get(result.code, 0) + result.failed
    for result in session.execute(_INBOUND, {**params, "reply_window": REPLY_WINDOW}):
        key = _scope_of(result)
        if key is None:
            continue
        target = row_for(key)
        if key[0] == "overall":
            target.counts["inbound"] += result.inbound
        target.counts["replies"] += result.replies
    contacts = session.execute(_CONTACTS, params).one()
    rows[("overall", "")].counts["contacts_added"] = contacts.contacts_added
    rows[("overall", "")].counts["opt_outs"] = contacts.opt_outs
    return [row for key, row in rows.items() if key == ("overall", "") or row.nonzero()]


def rollup_hour(session: Session, hour: datetime) -> int:
    """Replace the analytics rows of `hour` with freshly computed ones; returns rows written."""
    hour = truncate_hour(hour)
    computed = compute_hour(session, hour)
    session.execute(text("DELETE FROM analytics WHERE hour = :hour"), {"hour": hour})
    session.execute(
        text(
            "INSERT INTO analytics (hour, scope, scope_key, queued, sent, delivered, read, failed, inbound,"
            " replies, opt_outs, contacts_added, failures_by_code, computed_at)"
            " VALUES (:hour, :scope, :scope_key, :queued, :sent, :delivered, :read, :failed, :inbound,"
            " :replies, :opt_outs, :contacts_added, CAST(:failures AS jsonb), now())"
        ),
        [
            {"hour": hour, "scope": row.scope, "scope_key": row.scope_key, **row.counts,
             "failures": orjson.dumps(row.failures_by_code).decode()}
            for row in computed
        ],
    )
    return len(computed)


def hours_to_recompute(session: Session, now: datetime) -> list[datetime]:
    """Every hour touched since the last rollup (minus a margin), plus the hour that just ended."""
    last = session.execute(text("SELECT max(computed_at) FROM analytics")).scalar_one()
    since = (last - WATERMARK_MARGIN) if last is not None else datetime(1970, 1, 1, tzinfo=now.tzinfo)
    current = truncate_hour(now)
    hours = {row.hour for row in session.execute(_DIRTY_HOURS, {"since": since, "until": current + timedelta(hours=1)})}
    hours.add(current - timedelta(hours=1))
    return sorted(hours)


def rollup(now: datetime | None = None, hours: list[datetime] | None = None) -> dict[str, int]:
    """Recompute the given hours (default: every dirty hour), one transaction per hour."""
    now = now or utcnow()
    with db.sync_session_scope() as session:
        targets = hours if hours is not None else hours_to_recompute(session, now)
    written = 0
    for hour in targets:
        with db.sync_session_scope() as session:
            written += rollup_hour(session, hour)
    return {"hours": len(targets), "rows": written}


def job_rollup_recent_hours(context: Any) -> dict[str, int]:
    """Job entrypoint (registry: analytics-rollup)."""
    return rollup(context.now)


def failures_by_code_merge(rows: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = defaultdict(int)
    for codes in rows:
        for code, count in codes.items():
            merged[code] += count
    return dict(merged)
