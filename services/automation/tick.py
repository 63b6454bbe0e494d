"""The automation ticks, run by `herald job` (the scheduler locally, CronJobs in Kubernetes).

All three are synchronous functions (jobs run without an event loop) that take an optional
`now` (UTC) so tests and `herald job --at` can move time:

- `birthday_and_date_tick(now)`: birthday and date-field automations due in each contact's zone.
- `schedule_tick(now)`: cron-scheduled automations whose latest slot has not fired yet.
- `resume_due_waits(now)`: re-enqueue waiting runs whose time has come (lost delayed messages,
  restarts) and runs left pending by a crash between commit and enqueue.

Birthday/date catch-up: a contact is due from the configured local hour until the end of their
local day, so a late or skipped tick still fires today's birthdays; the run key
(`birthday:<local year>`, `date:<attribute>:<occurrence>`) makes every later tick a no-op.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Row, and_, exists, func, select, text, tuple_, update
from sqlalchemy.orm import Session

from herald import db, queue
from herald.automation.definitions import (
    BirthdayTrigger,
    DateFieldTrigger,
    ScheduleTrigger,
    load_definition,
    previous_fire_time,
)
from herald.automation.local_time import (
    candidate_month_days,
    contact_zone,
    falls_on,
    local_dates_past_hour,
    month_days_on,
    occurrence_in_year,
)
from herald.clock import utcnow
from herald.contracts import RUN_AUTOMATION_STEP, RunAutomationStep
from herald.models import Automation, AutomationRun, Contact, Log, RunStatus, TriggerType
from herald.observability import metrics
from herald.settings import get_settings
from services.automation.audience import segment_clause
from services.automation.runs import start_runs_sync

# Oldest year a recurring date attribute is looked up for (the indexed lookup enumerates years).
FIRST_YEAR = 1900
# A delayed message normally resumes a wait; the sweep steps in once it is this late.
RESUME_GRACE = timedelta(minutes=1)
STALE_PENDING = timedelta(minutes=5)
GIVE_UP_AFTER = timedelta(days=1)


@dataclass
class TickReport:
    """What one tick found and started."""

    tick: str
    now: datetime
    automations: int = 0
    candidates: int = 0
    due: int = 0
    runs_created: int = 0
    enqueued: int = 0
    seconds: float = 0.0
    per_automation: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "automations": self.automations,
            "candidates": self.candidates,
            "due": self.due,
            "runs_created": self.runs_created,
            "enqueued": self.enqueued,
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["now"] = self.now.isoformat()
        return data


def _enabled_automations(session: Session, trigger_types: Sequence[TriggerType]) -> list[Any]:
    return list(
        session.execute(
            select(  # type: ignore[call-overload]
                Automation.id,
                Automation.definition,
                Automation.version,
                Automation.trigger_type,
                Automation.updated_at,
            ).where(
                Automation.enabled.is_(True),  # type: ignore[attr-defined]
                Automation.deleted_at.is_(None),  # type: ignore[union-attr]
                Automation.trigger_type.in_([t.value for t in trigger_types]),  # type: ignore[attr-defined]
            )
        ).all()
    )


def _stream(statement: Any, parameters: dict[str, Any] | None, batch: int) -> Iterator[Sequence[Row[Any]]]:
    """Rows of a query in server-side batches: memory stays flat however many contacts match."""
    with db.sync_engine().connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch).execute(statement, parameters or {})
        yield from result.partitions()


def _insert_batch(
    automation: Row[Any],
    contact_ids: list[uuid.UUID],
    keys: list[str],
    trigger: dict[str, Any],
    now: datetime,
    report: TickReport,
) -> None:
    report.due += len(contact_ids)
    # One transaction per batch: the runs' jobs leave after this commit, not at the end.
    with db.sync_session_scope() as session:
        created = start_runs_sync(session, automation, contact_ids, keys, trigger, now)
    report.runs_created += len(created)
    report.enqueued += len(created)
    report.per_automation[str(automation.id)] = report.per_automation.get(str(automation.id), 0) + len(created)


def _birthdays(automation: Row[Any], trigger: BirthdayTrigger, now: datetime, report: TickReport) -> None:
    pairs = candidate_month_days(now, trigger.hour)
    if not pairs:
        return
    default_zone = get_settings().default_timezone
    batch = get_settings().automation_tick_batch_size
    statement = select(Contact.id, Contact.timezone, Contact.birthday_month, Contact.birthday_day).where(  # type: ignore[call-overload]
        Contact.birthday_month.is_not(None),  # type: ignore[union-attr]
        tuple_(Contact.birthday_month, Contact.birthday_day).in_(pairs),
    )
    info = {"type": TriggerType.BIRTHDAY.value, "fired_at": now.isoformat(), "hour": trigger.hour}
    for rows in _stream(statement, None, batch):
        report.candidates += len(rows)
        due: list[uuid.UUID] = []
        keys: list[str] = []
        for contact_id, zone_name, month, day in rows:  # type: ignore[misc]
            local = now.astimezone(contact_zone(zone_name, default_zone))
            if local.hour >= trigger.hour and falls_on(month, day, local.date()):
                due.append(contact_id)
                keys.append(f"birthday:{local.year}")
        if due:
            _insert_batch(automation, due, keys, info, now, report)


def date_probes(trigger: DateFieldTrigger, local_dates: Sequence[date]) -> list[str]:
    """Attribute values (as JSON containment probes for the GIN index) due on any of `local_dates`."""
    probes: list[str] = []
    for local_date in local_dates:
        occurrence = local_date - timedelta(days=trigger.offset_days)
        for month, day in month_days_on(occurrence):
            years = range(FIRST_YEAR, occurrence.year + 1) if trigger.recurring else (occurrence.year,)
            for year in years:
                try:
                    value = date(year, month, day).isoformat()
                except ValueError:  # 29 February of a common year
                    continue
                probes.append(orjson.dumps({trigger.attribute: value}).decode())
    return list(dict.fromkeys(probes))


def _date_fields(automation: Row[Any], trigger: DateFieldTrigger, now: datetime, report: TickReport) -> None:
    probes = date_probes(trigger, local_dates_past_hour(now, trigger.hour))
    if not probes:
        return
    default_zone = get_settings().default_timezone
    batch = get_settings().automation_tick_batch_size
    statement = text(
        "SELECT id, timezone, attributes ->> :attribute FROM contacts WHERE attributes @> ANY(CAST(:probes AS jsonb[]))"
    )
    info = {"type": TriggerType.DATE_FIELD.value, "fired_at": now.isoformat(), "attribute": trigger.attribute}
    for rows in _stream(statement, {"attribute": trigger.attribute, "probes": probes}, batch):
        report.candidates += len(rows)
        due: list[uuid.UUID] = []
        keys: list[str] = []
        for contact_id, zone_name, raw in rows:  # type: ignore[misc]
            try:
                value = date.fromisoformat(raw)
            except (TypeError, ValueError):
                continue
            local = now.astimezone(contact_zone(zone_name, default_zone))
            if local.hour < trigger.hour:
                continue
            celebrated = local.date() - timedelta(days=trigger.offset_days)
            if trigger.recurring:
                occurrence = occurrence_in_year(value.month, value.day, celebrated.year)
                if occurrence != celebrated or value.year > celebrated.year:
                    continue
            elif value != celebrated:
                continue
            due.append(contact_id)
            keys.append(f"date:{trigger.attribute}:{celebrated.isoformat()}")
        if due:
            _insert_batch(automation, due, keys, info, now, report)


def birthday_and_date_tick(now: datetime | None = None) -> TickReport:
    """Find the contacts whose birthday or date field is due now in their own zone and start
    their runs (in batches, each committed and enqueued on its own). Safe to run any number of
    times: the run key makes a second start impossible."""
    now = now or utcnow()
    started = time.perf_counter()
    report = TickReport(tick="birthday_date", now=now)
    with db.sync_session_scope() as session:
        automations = _enabled_automations(session, (TriggerType.BIRTHDAY, TriggerType.DATE_FIELD))
    report.automations = len(automations)
    for automation in automations:
        trigger = load_definition(automation.definition).trigger
        if isinstance(trigger, BirthdayTrigger):
            _birthdays(automation, trigger, now, report)
        elif isinstance(trigger, DateFieldTrigger):
            _date_fields(automation, trigger, now, report)
    report.seconds = time.perf_counter() - started
    metrics.AUTOMATION_TICK_DURATION.labels("birthday_date").observe(report.seconds)
    return report


def _schedule_fired(session: Session, automation_id: uuid.UUID, fire_key: str) -> bool:
    return bool(
        session.execute(
            select(
                exists().where(
                    Log.entity_type == "automation",  # type: ignore[arg-type]
                    Log.entity_id == str(automation_id),  # type: ignore[arg-type]
                    Log.event == "automation.schedule_fired",  # type: ignore[arg-type]
                    Log.data["fire_key"].astext == fire_key,  # type: ignore[index]
                )
            )
        ).scalar_one()
    )


def schedule_tick(now: datetime | None = None) -> TickReport:
    """Fire each cron-scheduled automation's latest slot (if it is within the catch-up window and
    after the automation's last change) for every contact of its segment, once."""
    now = now or utcnow()
    started = time.perf_counter()
    report = TickReport(tick="schedule", now=now)
    catch_up = timedelta(minutes=get_settings().automation_schedule_catch_up_minutes)
    batch = get_settings().automation_tick_batch_size
    with db.sync_session_scope() as session:
        automations = _enabled_automations(session, (TriggerType.SCHEDULE,))
    report.automations = len(automations)
    for automation in automations:
        trigger = load_definition(automation.definition).trigger
        assert isinstance(trigger, ScheduleTrigger)
        fire = previous_fire_time(trigger.cron, trigger.timezone, now)
        if fire < now - catch_up or fire < automation.updated_at:
            continue
        fire_key = f"schedule:{fire.isoformat()}"
        with db.sync_session_scope() as session:
            if _schedule_fired(session, automation.id, fire_key):
                continue
        already = exists().where(
            and_(
                AutomationRun.automation_id == automation.id,  # type: ignore[arg-type]
                AutomationRun.contact_id == Contact.id,  # type: ignore[arg-type]
                AutomationRun.trigger_key == fire_key,  # type: ignore[arg-type]
            )
        )
        statement = select(Contact.id).where(segment_clause(trigger.segment), ~already)  # type: ignore[call-overload]
        info = {
            "type": TriggerType.SCHEDULE.value,
            "fire_time": fire.isoformat(),
            "fired_at": now.isoformat(),
        }
        created_before = report.runs_created
        for rows in _stream(statement, None, batch):
            report.candidates += len(rows)
            ids = [row[0] for row in rows]
            _insert_batch(automation, ids, [fire_key] * len(ids), info, now, report)
        with db.sync_session_scope() as session:
            session.add(
                Log(
                    source="automation",
                    event="automation.schedule_fired",
                    message=f"schedule slot {fire.isoformat()} fired",
                    entity_type="automation",
                    entity_id=str(automation.id),
                    data={"fire_key": fire_key, "runs": report.runs_created - created_before},
                )
            )
    report.seconds = time.perf_counter() - started
    metrics.AUTOMATION_TICK_DURATION.labels("schedule").observe(report.seconds)
    return report


def resume_due_waits(now: datetime | None = None, limit: int = 10_000) -> TickReport:
    """Re-enqueue waiting runs whose resume time passed (their delayed message was lost, or the
    workers restarted) and runs stuck pending; the engine ignores any it already handled."""
    now = now or utcnow()
    started = time.perf_counter()
    report = TickReport(tick="resume_waits", now=now)
    with db.sync_session_scope() as session:
        waiting = (
            session.execute(
                select(AutomationRun.id)  # type: ignore[call-overload]
                .where(
                    AutomationRun.status == RunStatus.WAITING.value,  # type: ignore[arg-type]
                    AutomationRun.resume_at <= now - RESUME_GRACE,  # type: ignore[operator]
                )
                .order_by(AutomationRun.resume_at)  # type: ignore[arg-type]
                .limit(limit)
            )
            .scalars()
            .all()
        )
        unfinished = AutomationRun.status.in_([RunStatus.PENDING.value, RunStatus.RUNNING.value])  # type: ignore[attr-defined]
        # A run whose step kept failing for a day (its job used up its retries) is given up on,
        # with the reason in its log, instead of being re-enqueued forever.
        abandoned_entry = func.jsonb_build_array(
            func.jsonb_build_object(
                "step", "run", "action", "run", "status", "failed", "reason", "abandoned", "at", now.isoformat()
            )
        )  # fmt: skip
        abandoned = session.execute(
            update(AutomationRun)
            .where(unfinished, AutomationRun.updated_at < now - GIVE_UP_AFTER)  # type: ignore[arg-type,operator]
            .values(
                status=RunStatus.FAILED.value,
                finished_at=now,
                updated_at=now,
                steps=AutomationRun.steps.op("||")(abandoned_entry),  # type: ignore[attr-defined]
            )
            .returning(AutomationRun.id)  # type: ignore[call-overload]
        ).all()
        stuck = (
            session.execute(
                select(AutomationRun.id)  # type: ignore[call-overload]
                .where(unfinished, AutomationRun.updated_at <= now - STALE_PENDING)  # type: ignore[arg-type,operator]
                .limit(limit)
            )
            .scalars()
            .all()
        )
        for run_id in [*waiting, *stuck]:
            queue.enqueue(RUN_AUTOMATION_STEP, RunAutomationStep(run_id=run_id))
    report.due = len(waiting) + len(stuck)
    report.per_automation = {"abandoned": len(abandoned)}
    report.enqueued = report.due
    metrics.AUTOMATION_OVERDUE_WAITS.set(len(waiting))
    report.seconds = time.perf_counter() - started
    metrics.AUTOMATION_TICK_DURATION.labels("resume_waits").observe(report.seconds)
    return report


# Job entrypoints (herald.jobs.registry refers to these by dotted path).


def job_birthday_and_date_tick(context: Any) -> dict[str, int]:
    """`herald job automation-tick`."""
    return birthday_and_date_tick(context.now).counts()


def job_schedule_and_waits(context: Any) -> dict[str, int]:
    """`herald job automation-schedule`: cron-scheduled automations, then due waits."""
    scheduled = schedule_tick(context.now)
    resumed = resume_due_waits(context.now)
    return {
        "scheduled_automations": scheduled.automations,
        "scheduled_runs_created": scheduled.runs_created,
        "waits_resumed": resumed.enqueued,
    }
