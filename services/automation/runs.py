"""Create automation runs exactly once and hand them to the engine.

The unique key (automation_id, contact_id, trigger_key) is the exactly-once guarantee:
`INSERT ... ON CONFLICT DO NOTHING RETURNING id` inserts only new runs, and only those get an
`automation.run_step` job, so a re-run tick or a redelivered event starts nothing twice.
Trigger keys: `birthday:<local year>`, `date:<attribute>:<occurrence>`, `event:<event id>`,
`inbound:<message id>`, `manual:<request id>`, `schedule:<fire time>`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, text
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import queue
from herald.clock import utcnow
from herald.contracts import RUN_AUTOMATION_STEP, RunAutomationStep
from herald.models import Automation
from herald.observability import metrics

INSERT_RUNS = text(
    """
    INSERT INTO automation_runs (id, automation_id, contact_id, trigger_key, status, definition,
                                 definition_version, trigger, current_step, steps, created_at, updated_at)
    SELECT gen_random_uuid(), CAST(:automation_id AS uuid), u.contact_id, u.trigger_key, 'pending',
           CAST(:definition AS jsonb), :version,
           CAST(:trigger AS jsonb) || jsonb_build_object('key', u.trigger_key), 0, '[]'::jsonb, :now, :now
    FROM unnest(CAST(:contact_ids AS uuid[]), CAST(:trigger_keys AS text[])) AS u(contact_id, trigger_key)
    JOIN contacts c ON c.id = u.contact_id
    ON CONFLICT (automation_id, contact_id, trigger_key) DO NOTHING
    RETURNING id
    """
)


def _parameters(
    automation: Automation | Row[Any],
    contact_ids: Sequence[uuid.UUID],
    trigger_keys: Sequence[str],
    trigger: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "automation_id": automation.id,
        "definition": orjson.dumps(automation.definition).decode(),
        "version": automation.version,
        "trigger": orjson.dumps(trigger).decode(),
        "contact_ids": list(contact_ids),
        "trigger_keys": list(trigger_keys),
        "now": now,
    }


def _enqueue(run_ids: list[uuid.UUID], trigger_type: str) -> None:
    for run_id in run_ids:
        queue.enqueue(RUN_AUTOMATION_STEP, RunAutomationStep(run_id=run_id))
    if run_ids:
        metrics.AUTOMATION_RUNS_INSERTED.labels(trigger_type).inc(len(run_ids))


async def start_runs(
    session: AsyncSession,
    automation: Automation,
    contact_ids: Sequence[uuid.UUID],
    trigger_keys: Sequence[str] | str,
    trigger: dict[str, Any],
) -> list[uuid.UUID]:
    """Insert the runs that do not exist yet; enqueue their first step after commit."""
    if not contact_ids:
        return []
    keys = [trigger_keys] * len(contact_ids) if isinstance(trigger_keys, str) else list(trigger_keys)
    result = await session.execute(INSERT_RUNS, _parameters(automation, contact_ids, keys, trigger, utcnow()))
    run_ids = [row[0] for row in result]
    _enqueue(run_ids, automation.trigger_type)
    return run_ids


def start_runs_sync(
    session: Session,
    automation: Automation | Row[Any],
    contact_ids: Sequence[uuid.UUID],
    trigger_keys: Sequence[str],
    trigger: dict[str, Any],
    now: datetime,
) -> list[uuid.UUID]:
    """Sync twin of `start_runs` for the ticks (jobs run without an event loop)."""
    if not contact_ids:
        return []
    result = session.execute(INSERT_RUNS, _parameters(automation, contact_ids, trigger_keys, trigger, now))
    run_ids = [row[0] for row in result]
    _enqueue(run_ids, automation.trigger_type)
    return run_ids
