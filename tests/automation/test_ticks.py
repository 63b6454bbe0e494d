"""Date-field and cron-scheduled automations, and the time rules they rest on."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from herald import clock
from herald.automation.keywords import keyword_matches
from herald.automation.local_time import candidate_month_days, next_local_time, quiet_hours_end
from services.automation.tick import birthday_and_date_tick, schedule_tick
from tests.automation.factories import fetch, make_automation, make_contact

TAG_ACTION = [{"type": "add_tag", "tag": "reminded"}]


def _date_automation(database_url: str, **trigger: object) -> None:
    make_automation(
        database_url, {"trigger": {"type": "date_field", "attribute": "renewal", **trigger}, "actions": TAG_ACTION}
    )


def _keys(database_url: str) -> list[str]:
    return sorted(row[0] for row in fetch(database_url, "SELECT trigger_key FROM automation_runs"))


def test_date_field_fires_the_offset_days_before_once(database_url: str) -> None:
    _date_automation(database_url, offset_days=-3, recurring=False)
    make_contact(database_url, timezone="UTC", attributes={"renewal": "2026-07-10"})
    make_contact(database_url, timezone="UTC", attributes={"renewal": "2026-07-11"})
    for moment in (datetime(2026, 7, 7, 8, 0, tzinfo=UTC), datetime(2026, 7, 7, 9, 0, tzinfo=UTC)):
        clock.set_now(moment)
        birthday_and_date_tick(moment)
    assert _keys(database_url) == ["date:renewal:2026-07-10"]
    birthday_and_date_tick(datetime(2026, 7, 7, 15, 0, tzinfo=UTC))
    assert _keys(database_url) == ["date:renewal:2026-07-10"]


def test_recurring_date_field_fires_every_anniversary(database_url: str) -> None:
    _date_automation(database_url, recurring=True)
    make_contact(database_url, timezone="America/Sao_Paulo", attributes={"renewal": "2019-03-05"})
    birthday_and_date_tick(datetime(2026, 3, 5, 11, 59, tzinfo=UTC))  # 08:59 in São Paulo
    assert _keys(database_url) == []
    birthday_and_date_tick(datetime(2026, 3, 5, 12, 0, tzinfo=UTC))
    birthday_and_date_tick(datetime(2027, 3, 5, 12, 0, tzinfo=UTC))
    assert _keys(database_url) == ["date:renewal:2026-03-05", "date:renewal:2027-03-05"]


def _schedule_automation(database_url: str) -> None:
    make_automation(
        database_url,
        {
            "trigger": {
                "type": "schedule",
                "cron": "0 10 * * 1",
                "timezone": "Europe/Paris",
                "segment": [{"type": "has_tags", "tags": ["newsletter"]}],
            },
            "actions": TAG_ACTION,
        },
    )


def test_schedule_fires_each_slot_once_for_its_segment(database_url: str) -> None:
    clock.set_now(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))  # created before the Monday slot
    _schedule_automation(database_url)
    for _ in range(2):
        make_contact(database_url, tags=["newsletter"])
    make_contact(database_url, tags=["other"])
    slot = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # Monday 10:00 in Paris
    assert schedule_tick(slot - timedelta(minutes=1)).runs_created == 0
    assert schedule_tick(slot).runs_created == 2
    assert schedule_tick(slot + timedelta(minutes=1)).runs_created == 0
    assert _keys(database_url) == [f"schedule:{slot.isoformat()}"] * 2


def test_schedule_does_not_fire_a_slot_older_than_the_automation(database_url: str) -> None:
    clock.set_now(datetime(2026, 6, 1, 8, 30, tzinfo=UTC))  # created after the 10:00 Paris slot
    _schedule_automation(database_url)
    make_contact(database_url, tags=["newsletter"])
    assert schedule_tick(datetime(2026, 6, 1, 8, 31, tzinfo=UTC)).runs_created == 0


def test_candidate_dates_cover_only_zones_past_the_hour() -> None:
    # 12:00 UTC: every zone is on 1 May or (UTC+12 and east) before 03:00 on 2 May.
    assert candidate_month_days(datetime(2026, 5, 1, 12, 0, tzinfo=UTC), 9) == [(5, 1)]
    # 00:30 UTC: 30 April afternoon in the Americas, 1 May morning in Asia.
    assert candidate_month_days(datetime(2026, 5, 1, 0, 30, tzinfo=UTC), 9) == [(4, 30), (5, 1)]
    # 28 February of a common year also stands for 29 February.
    assert (2, 29) in candidate_month_days(datetime(2027, 2, 28, 12, 0, tzinfo=UTC), 9)


def test_quiet_hours_end_is_the_next_local_opening() -> None:
    zone = ZoneInfo("America/New_York")
    late = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)  # 22:00 in New York
    assert quiet_hours_end(late, zone, time(21, 0), time(8, 0)) == datetime(2026, 1, 10, 13, 0, tzinfo=UTC)
    assert quiet_hours_end(datetime(2026, 1, 10, 15, 0, tzinfo=UTC), zone, time(21, 0), time(8, 0)) is None


def test_wait_until_a_local_time_skipped_by_daylight_saving_lands_after_the_jump() -> None:
    zone = ZoneInfo("Europe/Lisbon")
    before = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 00:30 in Lisbon; clocks jump 01:00 -> 02:00
    assert next_local_time(before, zone, time(1, 30)).astimezone(zone).date() == date(2026, 3, 29)


def test_keywords_ignore_case_and_accents() -> None:
    assert keyword_matches("  Olá   MUNDO ", "exact", ["ola mundo"], None)
    assert keyword_matches("quero a PROMOÇÃO!", "contains", ["promocao"], None)
    assert not keyword_matches("promo", "exact", ["promocao"], None)
    assert keyword_matches("Pedido 123", "regex", [], r"^pedido \d+$")


def test_the_registered_jobs_run_the_ticks(database_url: str) -> None:
    from herald.jobs.registry import get_job
    from herald.jobs.runner import run_job

    make_automation(database_url, {"trigger": {"type": "birthday", "hour": 9}, "actions": TAG_ACTION})
    make_contact(database_url, timezone="UTC", birthday=(5, 1))
    at = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    tick = run_job(get_job("automation-tick"), at)
    assert tick.outcome == "succeeded" and tick.counts["runs_created"] == 1
    sweep = run_job(get_job("automation-schedule"), at)
    assert sweep.outcome == "succeeded" and sweep.counts["waits_resumed"] == 0


def test_sweep_re_enqueues_stuck_runs_and_gives_up_after_a_day(database_url: str) -> None:
    from services.automation.tick import resume_due_waits

    automation_id = make_automation(database_url, {"trigger": {"type": "contact_created"}, "actions": TAG_ACTION})
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    for key, age in (("event:recent", timedelta(minutes=10)), ("event:old", timedelta(days=2))):
        fetch(
            database_url,
            "INSERT INTO automation_runs (id, automation_id, contact_id, trigger_key, status, definition, trigger,"
            " steps, definition_version, current_step, created_at, updated_at)"
            " SELECT gen_random_uuid(), a.id, %s, %s, 'running', a.definition, '{}', '[]', 1, 0, %s, %s"
            " FROM automations a WHERE a.id = %s RETURNING id",
            make_contact(database_url), key, now - age, now - age, automation_id,
        )  # fmt: skip
    report = resume_due_waits(now)
    assert report.enqueued == 1
    rows = dict(fetch(database_url, "SELECT trigger_key, status FROM automation_runs"))
    assert rows == {"event:recent": "running", "event:old": "failed"}
