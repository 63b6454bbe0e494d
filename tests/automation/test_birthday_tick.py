"""The birthday tick: each contact's own 09:00, once per year, however often the tick runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from herald import clock, queue
from herald.contracts import RUN_AUTOMATION_STEP, RunAutomationStep
from services.automation.tick import birthday_and_date_tick
from tests.automation.conftest import AutomationWorker
from tests.automation.factories import birthday_definition, fetch, make_automation, make_contact, make_template
from tests.fixtures.simulator import wait_until

ZONES = ("Asia/Tokyo", "Europe/Lisbon", "America/New_York")


def _runs(database_url: str) -> dict[str, str]:
    rows = fetch(
        database_url,
        "SELECT c.timezone, r.trigger_key FROM automation_runs r JOIN contacts c ON c.id = r.contact_id",
    )
    return {zone: key for zone, key in rows}


def _tick(at: datetime) -> int:
    clock.set_now(at)
    return birthday_and_date_tick(at).runs_created


def test_each_zone_becomes_due_at_its_own_local_hour(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition(hour=9))
    for zone in ZONES:
        make_contact(database_url, timezone=zone, birthday=(5, 1))

    assert _tick(datetime(2026, 4, 30, 23, 59, tzinfo=UTC)) == 0
    assert _tick(datetime(2026, 5, 1, 0, 0, tzinfo=UTC)) == 1  # 09:00 in Tokyo
    assert set(_runs(database_url)) == {"Asia/Tokyo"}
    assert _tick(datetime(2026, 5, 1, 7, 59, tzinfo=UTC)) == 0
    assert _tick(datetime(2026, 5, 1, 8, 0, tzinfo=UTC)) == 1  # 09:00 in Lisbon (summer time)
    assert _tick(datetime(2026, 5, 1, 12, 59, tzinfo=UTC)) == 0
    assert _tick(datetime(2026, 5, 1, 13, 0, tzinfo=UTC)) == 1  # 09:00 in New York (EDT)
    assert _runs(database_url) == {zone: "birthday:2026" for zone in ZONES}


def test_rerunning_the_tick_starts_nothing_twice(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    for zone in ZONES:
        make_contact(database_url, timezone=zone, birthday=(5, 1))
    moment = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)
    assert _tick(moment) == 3
    for minutes in (0, 5, 10, 300):
        assert _tick(moment + timedelta(minutes=minutes)) == 0
    assert fetch(database_url, "SELECT count(*) FROM automation_runs")[0][0] == 3


def test_a_late_tick_still_fires_the_rest_of_the_local_day(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    make_contact(database_url, timezone="Europe/Lisbon", birthday=(5, 1))
    # 23:30 in Lisbon on the birthday: late, but the same local day.
    assert _tick(datetime(2026, 5, 1, 22, 30, tzinfo=UTC)) == 1


def test_a_tick_after_the_local_day_ended_does_not_fire(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    make_contact(database_url, timezone="Europe/Lisbon", birthday=(5, 1))
    assert _tick(datetime(2026, 5, 1, 23, 30, tzinfo=UTC)) == 0  # 00:30 on 2 May in Lisbon


def test_contact_without_timezone_uses_the_default_zone(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    make_contact(database_url, timezone=None, birthday=(5, 1))  # HERALD_DEFAULT_TIMEZONE is UTC
    assert _tick(datetime(2026, 5, 1, 8, 59, tzinfo=UTC)) == 0
    assert _tick(datetime(2026, 5, 1, 9, 0, tzinfo=UTC)) == 1


def test_29_february_birthdays_fire_on_28_february_in_common_years(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    make_contact(database_url, timezone="UTC", birthday=(2, 29))
    assert _tick(datetime(2027, 2, 28, 10, 0, tzinfo=UTC)) == 1
    assert _tick(datetime(2027, 3, 1, 10, 0, tzinfo=UTC)) == 0
    assert _tick(datetime(2028, 2, 28, 10, 0, tzinfo=UTC)) == 0  # leap year: wait for the 29th
    assert _tick(datetime(2028, 2, 29, 10, 0, tzinfo=UTC)) == 1
    keys = sorted(row[0] for row in fetch(database_url, "SELECT trigger_key FROM automation_runs"))
    assert keys == ["birthday:2027", "birthday:2028"]


def test_disabled_automation_fires_nothing(database_url: str) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition(), enabled=False)
    make_contact(database_url, timezone="UTC", birthday=(5, 1))
    assert _tick(datetime(2026, 5, 1, 10, 0, tzinfo=UTC)) == 0


def _messages(database_url: str) -> list[tuple[str, datetime, str]]:
    return fetch(
        database_url,
        "SELECT c.timezone, m.queued_at, m.text FROM messages m JOIN contacts c ON c.id = m.contact_id"
        " WHERE m.automation_run_id IS NOT NULL",
    )


def _unfinished(database_url: str) -> int:
    return fetch(database_url, "SELECT count(*) FROM automation_runs WHERE status IN ('pending', 'running')")[0][0]


def test_three_zones_each_get_one_message_at_their_own_nine(
    database_url: str, automation_worker: AutomationWorker
) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    for zone in ZONES:
        make_contact(database_url, name=f"Ada {zone}", timezone=zone, birthday=(5, 1))
    moment = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)
    while moment <= datetime(2026, 5, 2, 6, 0, tzinfo=UTC):
        _tick(moment)
        wait_until(lambda: _unfinished(database_url) == 0, timeout=20)
        moment += timedelta(minutes=30)
    messages = _messages(database_url)
    assert len(messages) == 3
    for zone, queued_at, text in messages:
        local = queued_at.astimezone(ZoneInfo(zone))
        assert (local.month, local.day, local.hour, local.minute) == (5, 1, 9, 0)
        assert text == "Happy birthday, Ada!"


def test_redelivered_run_steps_send_nothing_twice(database_url: str, automation_worker: AutomationWorker) -> None:
    make_template(database_url)
    make_automation(database_url, birthday_definition())
    for zone in ZONES:
        make_contact(database_url, timezone=zone, birthday=(5, 1))
    automation_worker.stop()
    assert _tick(datetime(2026, 5, 1, 14, 0, tzinfo=UTC)) == 3
    run_ids = [row[0] for row in fetch(database_url, "SELECT id FROM automation_runs")]
    # Every run's first step delivered three more times, processed concurrently.
    for _ in range(3):
        for run_id in run_ids:
            queue.enqueue(RUN_AUTOMATION_STEP, RunAutomationStep(run_id=run_id))
    automation_worker.start()
    wait_until(lambda: _unfinished(database_url) == 0, timeout=20)
    queue.get_broker().join("automation", timeout=20_000)
    assert len(_messages(database_url)) == 3
    statuses = {row[0] for row in fetch(database_url, "SELECT status FROM automation_runs")}
    assert statuses == {"completed"}
