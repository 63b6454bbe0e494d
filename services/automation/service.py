"""Automation domain logic: definitions, audit trail, previews, test sends, manual runs, runs
and performance. Functions take the request's session and never commit."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select, text, tuple_
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.auth import Principal
from herald.automation.definitions import (
    AutomationDefinition,
    BirthdayTrigger,
    DateFieldTrigger,
    ManualTrigger,
    ScheduleTrigger,
    SegmentCondition,
    SendTemplateAction,
    SendTextAction,
    WebhookAction,
    error_path,
    load_definition,
    parse_definition,
)
from herald.automation.local_time import month_days_on
from herald.clock import utcnow
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.messaging.content import ButtonParameter, TemplateContent
from herald.messaging.errors import OutboundRefused, TemplateParameterMismatch
from herald.messaging.outbound import check_template, queue_message
from herald.messaging.templates import find_template
from herald.models import Automation, AutomationRun, Contact, Log, Role, TemplateStatus
from services.automation import schemas
from services.automation.audience import segment_clause
from services.automation.rendering import MissingParameter, template_content, text_content
from services.automation.runs import start_runs
from services.automation.tick import date_probes
from services.automation.webhooks import WebhookRefused, check_resolved_host, webhook_secret

SAMPLE_SIZE = 10
RUN_BATCH = 1000
_segment_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[SegmentCondition])
# Where check_template's field names point inside a send_template action.
_TEMPLATE_FIELDS = {
    "content.body_parameters": "body",
    "content.header_parameters": "header",
    "content.header_media": "header_media",
    "content.button_parameters": "buttons",
    "content.name": "template",
}


# --- definitions -----------------------------------------------------------------------------


def _sample_values(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return {name: "x" for name in parameters}
    return ["x" for _ in parameters]


async def _template_errors(session: AsyncSession, index: int, action: SendTemplateAction) -> list[dict[str, str]]:
    field = f"definition.actions.{index}"
    template = await find_template(session, action.template, action.language)
    if template is None or template.status == TemplateStatus.DELETED:
        message = f"no synced template {action.template!r} in language {action.language!r}"
        return [{"field": f"{field}.template", "message": message}]
    if template.status != TemplateStatus.APPROVED:
        return []  # may be approved later; a run skips it with template_not_approved meanwhile
    sample = TemplateContent(
        name=action.template,
        language=action.language,
        body_parameters=_sample_values(action.body),
        header_parameters=_sample_values(action.header),
        header_media=action.header_media,
        button_parameters=[ButtonParameter(index=b.index, sub_type=b.sub_type, value="x") for b in action.buttons],
    )
    try:
        check_template(template, sample)
    except TemplateParameterMismatch as exc:
        target = _TEMPLATE_FIELDS.get(exc.field, "body")
        return [{"field": f"{field}.{target}", "message": exc.detail}]
    return []


async def validate_definition(session: AsyncSession, raw: Any) -> AutomationDefinition:
    """Shape (pydantic), then what needs the database and DNS: templates exist and take the
    mapped parameters; webhook hosts resolve to public addresses."""
    definition = parse_definition(raw)
    errors: list[dict[str, str]] = []
    for index, action in enumerate(definition.actions):
        if isinstance(action, SendTemplateAction):
            errors += await _template_errors(session, index, action)
        elif isinstance(action, WebhookAction):
            try:
                await check_resolved_host(action.url)
            except WebhookRefused as exc:
                errors.append({"field": f"definition.actions.{index}.url", "message": str(exc)})
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise ValidationFailed(detail, errors=errors, code="invalid_definition")
    return definition


def _audit(session: AsyncSession, principal: Principal, event: str, automation: Automation, **data: Any) -> None:
    session.add(
        Log(
            source="automation",
            event=f"automation.{event}",
            message=f"automation {automation.name!r} {event}",
            user_id=principal.user_id,
            entity_type="automation",
            entity_id=str(automation.id),
            data={"version": automation.version, "via": principal.via, **data},
        )
    )


def to_public(automation: Automation, principal: Principal) -> schemas.AutomationPublic:
    public = schemas.AutomationPublic.model_validate(automation, from_attributes=True)
    if principal.can(Role.OPERATOR):
        public.webhook_secret = webhook_secret(automation.id)
    return public


async def create_automation(session: AsyncSession, principal: Principal, body: schemas.AutomationCreate) -> Automation:
    definition = await validate_definition(session, body.definition)
    automation = Automation(
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        trigger_type=definition.trigger.type,
        definition=definition.model_dump(mode="json"),
        created_by=principal.user_id,
        updated_by=principal.user_id,
    )
    session.add(automation)
    await session.flush()
    _audit(session, principal, "created", automation, enabled=automation.enabled)
    return automation


async def get_automation(session: AsyncSession, automation_id: uuid.UUID, *, lock: bool = False) -> Automation:
    statement = select(Automation).where(Automation.id == automation_id, Automation.deleted_at.is_(None))  # type: ignore[arg-type,union-attr]
    if lock:
        statement = statement.with_for_update()
    automation = (await session.execute(statement)).scalar_one_or_none()
    if automation is None:
        raise NotFound(f"automation {automation_id} not found", code="automation_not_found")
    return automation


async def list_automations(
    session: AsyncSession, *, enabled: bool | None, trigger_type: str | None, limit: int, offset: int
) -> tuple[list[Automation], int]:
    conditions = [Automation.deleted_at.is_(None)]  # type: ignore[union-attr]
    if enabled is not None:
        conditions.append(Automation.enabled.is_(enabled))  # type: ignore[attr-defined]
    if trigger_type is not None:
        conditions.append(Automation.trigger_type == trigger_type)  # type: ignore[arg-type]
    total = (await session.execute(select(func.count()).select_from(Automation).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(Automation).where(*conditions).order_by(Automation.created_at.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    )
    return list(rows.scalars()), int(total)


async def update_automation(
    session: AsyncSession, principal: Principal, automation_id: uuid.UUID, body: schemas.AutomationUpdate
) -> Automation:
    automation = await get_automation(session, automation_id, lock=True)
    if body.expected_version is not None and body.expected_version != automation.version:
        raise Conflict(
            f"the automation is at version {automation.version}, not {body.expected_version}",
            code="version_conflict",
            errors=[{"field": "expected_version", "message": "stale version"}],
        )
    changed: list[str] = []
    if body.definition is not None:
        definition = await validate_definition(session, body.definition)
        automation.definition = definition.model_dump(mode="json")
        automation.trigger_type = definition.trigger.type
        # Runs in flight keep the snapshot they started with; only new runs see this version.
        automation.version += 1
        changed.append("definition")
    if body.name is not None and body.name != automation.name:
        automation.name = body.name
        changed.append("name")
    if body.description is not None and body.description != automation.description:
        automation.description = body.description
        changed.append("description")
    if changed:
        automation.updated_by = principal.user_id
        automation.updated_at = utcnow()
        session.add(automation)
        _audit(session, principal, "updated", automation, changed=changed)
    return automation


async def set_enabled(
    session: AsyncSession, principal: Principal, automation_id: uuid.UUID, enabled: bool
) -> Automation:
    automation = await get_automation(session, automation_id, lock=True)
    if automation.enabled == enabled:
        return automation
    if enabled:
        # Templates may have been deleted since the last edit: refuse to arm a broken automation.
        await validate_definition(session, automation.definition)
    automation.enabled = enabled
    automation.updated_by = principal.user_id
    automation.updated_at = utcnow()
    session.add(automation)
    _audit(session, principal, "enabled" if enabled else "disabled", automation)
    return automation


async def delete_automation(session: AsyncSession, principal: Principal, automation_id: uuid.UUID) -> None:
    automation = await get_automation(session, automation_id, lock=True)
    automation.deleted_at = utcnow()
    automation.enabled = False
    automation.updated_by = principal.user_id
    session.add(automation)
    _audit(session, principal, "deleted", automation)


# --- audience --------------------------------------------------------------------------------


def _sample(rows: Any) -> list[schemas.ContactSample]:
    return [schemas.ContactSample.model_validate(row, from_attributes=True) for row in rows]


async def preview(session: AsyncSession, automation: Automation, on: date | None) -> schemas.AudiencePreview:
    """How many contacts would fire on `on` (birthday, date field) or now (other triggers)."""
    definition = load_definition(automation.definition)
    trigger = definition.trigger
    clauses: list[Any] = [segment_clause(definition.gating_conditions)]
    day = on or utcnow().date()
    shown_date: date | None = None
    if isinstance(trigger, BirthdayTrigger):
        pairs = month_days_on(day)
        clauses.append(tuple_(Contact.birthday_month, Contact.birthday_day).in_(pairs))
        note = "contacts whose birthday falls on this date (their local date) and who pass the conditions"
        shown_date = day
    elif isinstance(trigger, DateFieldTrigger):
        probes = date_probes(trigger, [day])
        clauses.append(text("contacts.attributes @> ANY(CAST(:probes AS jsonb[]))").bindparams(probes=probes))
        note = f"contacts whose {trigger.attribute} is due on this date and who pass the conditions"
        shown_date = day
    elif isinstance(trigger, ScheduleTrigger | ManualTrigger):
        clauses.append(segment_clause(trigger.segment))
        note = "contacts in the segment who pass the conditions"
    else:
        note = "contacts who would pass the conditions if the event happened to them now"
    where = clauses
    count = (await session.execute(select(func.count()).select_from(Contact).where(*where))).scalar_one()
    rows = await session.execute(
        select(Contact.id, Contact.name, Contact.phone, Contact.timezone, Contact.language)  # type: ignore[call-overload]
        .where(*where)
        .order_by(Contact.id)
        .limit(SAMPLE_SIZE)
    )
    return schemas.AudiencePreview(
        automation_id=automation.id,
        trigger_type=automation.trigger_type,
        date=shown_date,
        count=int(count),
        sample=_sample(rows.all()),
        note=note,
    )


# --- test send and manual runs ---------------------------------------------------------------


async def test_send(
    session: AsyncSession, principal: Principal, automation: Automation, contact_id: uuid.UUID
) -> schemas.TestSendResult:
    """Queue the automation's messages to one contact now: no trigger, conditions, waits or other
    actions, and not counted in the automation's performance."""
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
    definition = load_definition(automation.definition)
    sends = [(i, a) for i, a in enumerate(definition.actions) if isinstance(a, SendTemplateAction | SendTextAction)]
    if not sends:
        raise ValidationFailed.on_field("definition.actions", "the automation has no send step", code="nothing_to_send")
    results: list[schemas.StepResult] = []
    for index, action in sends:
        try:
            content = (
                template_content(action, contact)
                if isinstance(action, SendTemplateAction)
                else text_content(action, contact)
            )
            async with session.begin_nested():
                message = await queue_message(session, contact=contact, content=content)
        except ValidationError as exc:
            results.append(
                schemas.StepResult(
                    step=index, action=action.type, status="skipped", reason="invalid_content", detail=str(exc)[:500]
                )
            )
        except MissingParameter as exc:
            results.append(
                schemas.StepResult(
                    step=index, action=action.type, status="skipped", reason="missing_parameter", detail=str(exc)
                )
            )
        except OutboundRefused as exc:
            results.append(
                schemas.StepResult(step=index, action=action.type, status="skipped", reason=exc.code, detail=exc.detail)
            )
        else:
            results.append(schemas.StepResult(step=index, action=action.type, status="sent", message_id=message.id))
    _audit(
        session,
        principal,
        "test_sent",
        automation,
        contact_id=str(contact_id),
        message_ids=[str(r.message_id) for r in results if r.message_id],
    )
    return schemas.TestSendResult(automation_id=automation.id, contact_id=contact_id, results=results)


def _parse_segment(raw: list[dict[str, Any]]) -> list[Any]:
    try:
        return _segment_adapter.validate_python(raw)
    except ValidationError as exc:
        errors = [
            {"field": f"segment.{error_path(tuple(e['loc']), raw)}", "message": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors) from None


async def run_now(
    session: AsyncSession, principal: Principal, automation: Automation, body: schemas.RunRequest
) -> schemas.RunStarted:
    """Start the automation for one contact or a segment under `manual:<request id>`."""
    if not automation.enabled:
        raise Conflict("enable the automation before running it", code="automation_disabled")
    if body.contact_id is not None and body.segment is not None:
        raise ValidationFailed.on_field("segment", "give contact_id or segment, not both")
    request_id = body.request_id or uuid.uuid4().hex
    trigger_key = f"manual:{request_id}"
    trigger = {"type": "manual", "request_id": request_id, "by": str(principal.user_id)}
    if body.contact_id is not None:
        if await session.get(Contact, body.contact_id) is None:
            raise NotFound(f"contact {body.contact_id} not found", code="contact_not_found")
        created = await start_runs(session, automation, [body.contact_id], trigger_key, trigger)
        contacts, runs = 1, len(created)
    else:
        definition = load_definition(automation.definition)
        if body.segment is not None:
            segment = _parse_segment(body.segment)
        elif isinstance(definition.trigger, ManualTrigger | ScheduleTrigger):
            segment = definition.trigger.segment
        else:
            raise ValidationFailed.on_field("contact_id", "give contact_id or segment")
        contacts = runs = 0
        after: uuid.UUID | None = None
        while True:
            statement = select(Contact.id).where(segment_clause(segment))  # type: ignore[call-overload]
            if after is not None:
                statement = statement.where(Contact.id > after)
            ids = list((await session.execute(statement.order_by(Contact.id).limit(RUN_BATCH))).scalars())
            if not ids:
                break
            contacts += len(ids)
            runs += len(await start_runs(session, automation, ids, trigger_key, trigger))
            after = ids[-1]
    _audit(session, principal, "run_requested", automation, trigger_key=trigger_key, contacts=contacts, runs=runs)
    return schemas.RunStarted(
        automation_id=automation.id, trigger_key=trigger_key, contacts=contacts, runs_created=runs
    )


# --- runs ------------------------------------------------------------------------------------


async def list_runs(
    session: AsyncSession,
    *,
    automation_id: uuid.UUID | None,
    contact_id: uuid.UUID | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[AutomationRun], int]:
    conditions: list[Any] = []
    if automation_id is not None:
        conditions.append(AutomationRun.automation_id == automation_id)
    if contact_id is not None:
        conditions.append(AutomationRun.contact_id == contact_id)
    if status is not None:
        conditions.append(AutomationRun.status == status)
    if created_from is not None:
        conditions.append(AutomationRun.created_at >= created_from)
    if created_to is not None:
        conditions.append(AutomationRun.created_at < created_to)
    total = (await session.execute(select(func.count()).select_from(AutomationRun).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(AutomationRun)
        .where(*conditions)
        .order_by(AutomationRun.created_at.desc(), AutomationRun.id.desc())  # type: ignore[attr-defined]
        .limit(limit)
        .offset(offset)
    )
    return list(rows.scalars()), int(total)


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> AutomationRun:
    run = await session.get(AutomationRun, run_id)
    if run is None:
        raise NotFound(f"automation run {run_id} not found", code="run_not_found")
    return run


# --- performance -----------------------------------------------------------------------------

PERFORMANCE_SQL = text(
    """
    WITH runs AS (
        SELECT id, contact_id, status, created_at FROM automation_runs
        WHERE automation_id = :automation_id AND created_at >= :start AND created_at < :end
    ), sent AS (
        SELECT m.id, m.contact_id, m.status, m.sent_at, m.delivered_at, m.read_at, m.created_at
        FROM messages m
        WHERE m.automation_id = :automation_id AND m.direction = 'outbound'
          AND m.created_at >= :start AND m.created_at < :end
    )
    SELECT
        (SELECT count(*) FROM runs) AS triggered,
        (SELECT count(*) FROM runs WHERE status = 'completed') AS runs_completed,
        (SELECT count(*) FROM runs WHERE status IN ('skipped', 'cancelled')) AS runs_skipped,
        (SELECT count(*) FROM runs WHERE status = 'failed') AS runs_failed,
        (SELECT count(*) FROM runs WHERE status IN ('pending', 'running', 'waiting')) AS runs_in_progress,
        (SELECT count(*) FROM sent) AS messages,
        (SELECT count(*) FROM sent WHERE sent_at IS NOT NULL OR status IN ('sent', 'delivered', 'read')) AS sent,
        (SELECT count(*) FROM sent WHERE delivered_at IS NOT NULL OR status IN ('delivered', 'read')) AS delivered,
        (SELECT count(*) FROM sent WHERE read_at IS NOT NULL OR status = 'read') AS read,
        (SELECT count(*) FROM sent WHERE status = 'failed') AS failed,
        (SELECT count(*) FROM sent s WHERE s.status <> 'failed' AND EXISTS (
            SELECT 1 FROM messages i
            WHERE i.contact_id = s.contact_id AND i.direction = 'inbound'
              AND i.created_at > COALESCE(s.sent_at, s.created_at)
              AND i.created_at <= COALESCE(s.sent_at, s.created_at) + make_interval(hours => :window)
        )) AS replied,
        (SELECT count(DISTINCT r.contact_id) FROM runs r JOIN contacts c ON c.id = r.contact_id
          WHERE c.opted_out_at IS NOT NULL AND c.opted_out_at > r.created_at) AS opted_out_after
    """
)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def performance(
    session: AsyncSession, automation: Automation, start: datetime | None, end: datetime | None, window_hours: int
) -> schemas.Performance:
    """Triggered, sent, delivered, read, replied (an inbound message within `window_hours` of an
    automation message), failed and opted out after, with rates, over [start, end)."""
    end = end or utcnow()
    start = start or end - timedelta(days=30)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    if start >= end:
        raise ValidationFailed.on_field("from", "from must be before to")
    row = (
        await session.execute(
            PERFORMANCE_SQL, {"automation_id": automation.id, "start": start, "end": end, "window": window_hours}
        )
    ).one()
    numbers = dict(row._mapping)
    sent = numbers["sent"]
    return schemas.Performance(
        automation_id=automation.id,
        from_=start,
        to=end,
        reply_window_hours=window_hours,
        **numbers,
        rates=schemas.Rates(
            sent=_rate(sent, numbers["messages"]),
            delivered=_rate(numbers["delivered"], sent),
            read=_rate(numbers["read"], sent),
            replied=_rate(numbers["replied"], sent),
            failed=_rate(numbers["failed"], numbers["messages"]),
            opted_out_after=_rate(numbers["opted_out_after"], numbers["triggered"]),
        ),
    )
