"""Execute automation runs step by step, exactly once per step.

Each step runs in its own transaction holding the run's row lock (`SELECT ... FOR UPDATE`): the
step's effect (a queued message, a tag) and the advance of `current_step` with its log entry
commit together. A redelivered `automation.run_step` waits for the lock, then sees the step
already done and moves on, so a send is never repeated. Waits and quiet hours park the run
(`waiting`, `resume_at`) and enqueue a delayed `run_step`; `resume_due_waits` re-enqueues any
whose delayed message was lost.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import array
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import queue
from herald.automation.definitions import (
    AddTagAction,
    AutomationDefinition,
    RemoveTagAction,
    SendTemplateAction,
    SendTextAction,
    SetAttributeAction,
    StopAction,
    WaitAction,
    WebhookAction,
    load_definition,
)
from herald.automation.local_time import contact_zone, next_local_time, quiet_hours_end
from herald.clock import utcnow
from herald.contacts_events import emit_contact_event
from herald.contracts import RUN_AUTOMATION_STEP, RunAutomationStep
from herald.db import session_scope
from herald.messaging.errors import OutboundRefused
from herald.messaging.outbound import queue_message
from herald.models import Automation, AutomationRun, Contact, RunStatus
from herald.observability import metrics
from herald.settings import get_settings
from services.automation.audience import failing_conditions
from services.automation.rendering import MissingParameter, template_content, text_content
from services.automation.webhooks import WebhookFailed, WebhookRefused, call_webhook

log = structlog.get_logger("herald.automation.engine")

FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.SKIPPED, RunStatus.FAILED, RunStatus.CANCELLED})
# A delayed message that arrives this early (clock drift between hosts) is put back, not dropped.
EARLY_TOLERANCE = timedelta(minutes=5)
MAX_STEPS_PER_MESSAGE = 60
# Statuses can arrive out of order; the step keeps the furthest one.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}


class _Next(Enum):
    CONTINUE = "continue"
    PAUSE = "pause"


def _entry(step: int | str, action: str, status: str, **details: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"step": step, "action": action, "status": status, "at": utcnow().isoformat()}
    entry.update({key: value for key, value in details.items() if value is not None})
    return entry


def _log_step(run: AutomationRun, entry: dict[str, Any]) -> None:
    # A new list, so SQLAlchemy sees the JSONB column change.
    run.steps = [*run.steps, entry]
    metrics.AUTOMATION_STEPS.labels(entry["action"], entry["status"]).inc()


def _finish(run: AutomationRun, status: RunStatus, trigger_type: str) -> None:
    run.status = status.value
    run.resume_at = None
    run.finished_at = utcnow()
    metrics.AUTOMATION_RUNS.labels(trigger_type, status.value).inc()


def _park(run: AutomationRun, resume_at: datetime) -> None:
    run.status = RunStatus.WAITING.value
    run.resume_at = resume_at
    delay_ms = max(0, int((resume_at - utcnow()).total_seconds() * 1000))
    queue.enqueue(RUN_AUTOMATION_STEP, RunAutomationStep(run_id=run.id), delay_ms=delay_ms)


def _did_something(run: AutomationRun) -> bool:
    return any(entry.get("status") in ("sent", "done") for entry in run.steps)


async def advance_run(run_id: uuid.UUID) -> None:
    """Run steps until the run finishes or parks; one transaction per step."""
    started = time.perf_counter()
    trigger_type = "unknown"
    for _ in range(MAX_STEPS_PER_MESSAGE):
        async with session_scope() as session:
            outcome, trigger_type = await _advance_one(session, run_id)
        if outcome is _Next.PAUSE:
            break
    else:
        # A very long run continues in a fresh message instead of holding this worker.
        queue.enqueue(RUN_AUTOMATION_STEP, RunAutomationStep(run_id=run_id))
    metrics.AUTOMATION_RUN_DURATION.labels(trigger_type).observe(time.perf_counter() - started)


async def _advance_one(session: AsyncSession, run_id: uuid.UUID) -> tuple[_Next, str]:
    run = (
        await session.execute(select(AutomationRun).where(AutomationRun.id == run_id).with_for_update())  # type: ignore[arg-type]
    ).scalar_one_or_none()
    if run is None or run.status in FINISHED:
        return _Next.PAUSE, "unknown"
    definition = load_definition(run.definition)
    trigger_type = definition.trigger.type
    now = utcnow()
    if run.status == RunStatus.WAITING and run.resume_at is not None and run.resume_at > now:
        if run.resume_at - now <= EARLY_TOLERANCE:
            _park(run, run.resume_at)
        return _Next.PAUSE, trigger_type
    automation = await session.get(Automation, run.automation_id)
    if automation is None or automation.deleted_at is not None:
        _log_step(run, _entry("run", "run", "cancelled", reason="automation_deleted"))
        _finish(run, RunStatus.CANCELLED, trigger_type)
        return _Next.PAUSE, trigger_type
    contact = await session.get(Contact, run.contact_id)
    if contact is None:
        _finish(run, RunStatus.CANCELLED, trigger_type)
        return _Next.PAUSE, trigger_type

    if run.status == RunStatus.PENDING:
        failing = await failing_conditions(session, contact.id, definition.gating_conditions)
        if failing:
            _log_step(
                run,
                _entry("conditions", "conditions", "skipped", reason="condition_false", conditions=failing),
            )
            _finish(run, RunStatus.SKIPPED, trigger_type)
            return _Next.PAUSE, trigger_type
        if definition.gating_conditions:
            _log_step(run, _entry("conditions", "conditions", "passed"))
    run.status = RunStatus.RUNNING.value
    run.resume_at = None

    if run.current_step >= len(definition.actions):
        _finish(run, RunStatus.COMPLETED if _did_something(run) else RunStatus.SKIPPED, trigger_type)
        return _Next.PAUSE, trigger_type
    index = run.current_step
    action = definition.actions[index]
    outcome = await _execute(session, run, automation, contact, definition, index, action)
    return outcome, trigger_type


async def _execute(
    session: AsyncSession,
    run: AutomationRun,
    automation: Automation,
    contact: Contact,
    definition: AutomationDefinition,
    index: int,
    action: Any,
) -> _Next:
    now = utcnow()
    zone = contact_zone(contact.timezone, get_settings().default_timezone)
    if isinstance(action, SendTemplateAction | SendTextAction):
        quiet = definition.quiet_hours
        if quiet is not None:
            opens_at = quiet_hours_end(now, zone, quiet.start, quiet.end)
            if opens_at is not None:
                _log_step(
                    run,
                    _entry(index, action.type, "deferred", reason="quiet_hours", resume_at=opens_at.isoformat()),
                )
                _park(run, opens_at)
                return _Next.PAUSE
        _log_step(run, await _send(session, run, contact, index, action))
    elif isinstance(action, AddTagAction | RemoveTagAction):
        _log_step(run, await _change_tag(session, contact, index, action))
    elif isinstance(action, SetAttributeAction):
        _log_step(run, await _set_attribute(session, contact, index, action))
    elif isinstance(action, WaitAction):
        resume_at = next_local_time(now, zone, action.until) if action.until is not None else now + action.duration
        _log_step(run, _entry(index, "wait", "waiting", resume_at=resume_at.isoformat()))
        run.current_step = index + 1
        _park(run, resume_at)
        return _Next.PAUSE
    elif isinstance(action, WebhookAction):
        entry = await _call(run, automation, contact, index, action)
        _log_step(run, entry)
        if entry["status"] == "failed":
            run.current_step = index + 1
            _finish(run, RunStatus.FAILED, definition.trigger.type)
            return _Next.PAUSE
    elif isinstance(action, StopAction):
        _log_step(run, _entry(index, "stop", "done"))
        run.current_step = index + 1
        _finish(run, RunStatus.COMPLETED if _did_something(run) else RunStatus.SKIPPED, definition.trigger.type)
        return _Next.PAUSE
    run.current_step = index + 1
    return _Next.CONTINUE


async def _send(
    session: AsyncSession,
    run: AutomationRun,
    contact: Contact,
    index: int,
    action: SendTemplateAction | SendTextAction,
) -> dict[str, Any]:
    try:
        content = (
            template_content(action, contact)
            if isinstance(action, SendTemplateAction)
            else text_content(action, contact)
        )
    except MissingParameter as exc:
        return _entry(index, action.type, "skipped", reason="missing_parameter", detail=str(exc))
    except ValidationError as exc:  # e.g. a contact value Meta would refuse
        return _entry(index, action.type, "skipped", reason="invalid_content", detail=str(exc)[:500])
    try:
        # A savepoint: a refusal leaves nothing of this step behind.
        async with session.begin_nested():
            message = await queue_message(
                session,
                contact=contact,
                content=content,
                automation_id=run.automation_id,
                automation_run_id=run.id,
            )
    except OutboundRefused as exc:
        return _entry(index, action.type, "skipped", reason=exc.code, detail=exc.detail)
    template = action.template if isinstance(action, SendTemplateAction) else None
    return _entry(index, action.type, "sent", message_id=str(message.id), template=template)


async def _change_tag(
    session: AsyncSession, contact: Contact, index: int, action: AddTagAction | RemoveTagAction
) -> dict[str, Any]:
    has_tag = action.tag in (contact.tags or [])
    if isinstance(action, AddTagAction):
        if has_tag:
            return _entry(index, action.type, "done", tag=action.tag, changed=False)
        await session.execute(
            update(Contact)
            .where(Contact.id == contact.id)  # type: ignore[arg-type]
            .values(tags=Contact.tags + array([action.tag]), updated_at=utcnow())  # type: ignore[arg-type,operator]
        )
        emit_contact_event("tag_added", contact.id, {"tag": action.tag, "source": "automation"})
    else:
        if not has_tag:
            return _entry(index, action.type, "done", tag=action.tag, changed=False)
        await session.execute(
            update(Contact)
            .where(Contact.id == contact.id)  # type: ignore[arg-type]
            .values(tags=func.array_remove(Contact.tags, action.tag), updated_at=utcnow())  # type: ignore[arg-type]
        )
        emit_contact_event("tag_removed", contact.id, {"tag": action.tag, "source": "automation"})
    await session.refresh(contact)
    return _entry(index, action.type, "done", tag=action.tag, changed=True)


async def _set_attribute(
    session: AsyncSession, contact: Contact, index: int, action: SetAttributeAction
) -> dict[str, Any]:
    old = (contact.attributes or {}).get(action.attribute)
    if old == action.value:
        return _entry(index, action.type, "done", attribute=action.attribute, changed=False)
    contact.attributes = {**(contact.attributes or {}), action.attribute: action.value}
    contact.updated_at = utcnow()
    session.add(contact)
    await session.flush()
    emit_contact_event(
        "attribute_changed",
        contact.id,
        {"attribute": action.attribute, "old": old, "new": action.value, "source": "automation"},
    )
    return _entry(index, action.type, "done", attribute=action.attribute, changed=True)


async def _call(
    run: AutomationRun, automation: Automation, contact: Contact, index: int, action: WebhookAction
) -> dict[str, Any]:
    payload = {
        "event": "automation.step",
        "automation": {"id": str(automation.id), "name": automation.name},
        "run": {"id": str(run.id), "step": index, "trigger": run.trigger},
        "contact": {
            "id": str(contact.id),
            "phone": contact.phone,
            "name": contact.name,
            "language": contact.language,
            "tags": list(contact.tags or []),
            "attributes": contact.attributes or {},
        },
        "sent_at": utcnow().isoformat(),
    }
    try:
        result = await call_webhook(
            action, automation_id=automation.id, delivery_id=f"{run.id}:{index}", payload=payload
        )
    except WebhookRefused as exc:
        return _entry(index, "webhook", "failed", reason="address_refused", detail=str(exc))
    except WebhookFailed as exc:
        log.info("automation_webhook_failed", automation_id=str(automation.id), status_code=exc.status_code)
        return _entry(index, "webhook", "failed", reason="webhook_failed", detail=str(exc), status_code=exc.status_code)
    return _entry(index, "webhook", "done", status_code=result.status_code, attempts=result.attempts)


async def record_message_status(
    session: AsyncSession, run_id: uuid.UUID, message_id: uuid.UUID, status: str, error_code: int | None
) -> bool:
    """Note a sent message's latest status on its step (statuses never start or advance runs)."""
    run = (
        await session.execute(select(AutomationRun).where(AutomationRun.id == run_id).with_for_update())  # type: ignore[arg-type]
    ).scalar_one_or_none()
    if run is None:
        return False
    changed = False
    steps = []
    for entry in run.steps:
        current = STATUS_RANK.get(str(entry.get("message_status")), -1)
        if entry.get("message_id") == str(message_id) and STATUS_RANK.get(status, -1) > current:
            entry = {**entry, "message_status": status}
            if error_code is not None:
                entry["error_code"] = error_code
            changed = True
        steps.append(entry)
    if changed:
        run.steps = steps
    return changed
