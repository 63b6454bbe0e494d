"""Automations: the birthday tick over 100,000 and 1,000,000 generated contacts.

For each size a fresh database gets the contacts by COPY (birthdays spread over all 366 days,
29 February included; twelve time zones from UTC-8 to UTC+10) and one enabled birthday
automation at 09:00. Then, in a fresh child process per size (so its peak RSS is the tick's own):

- due set: the indexed (month, day) candidates streamed and filtered in each contact's zone
  (what the tick does before writing anything);
- full tick: due set + bulk run inserts (ON CONFLICT DO NOTHING RETURNING) + one
  `automation.run_step` per new run enqueued to Redis, committed per batch;
- re-run: the same tick again (creates nothing; the unique key does the work).

Baseline: the same candidate query with index scans disabled (a sequential scan of contacts).
Goal: due set in under 1 s, and peak memory flat from 100k to 1M.

Run alone: `uv run python -m bench.birthday_tick [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.stack import REPO_ROOT, Stack

GROUP = "Automations"
GOAL_SECONDS = 1.0
# 23:00 UTC: 1 May in the west and 2 May east of UTC+10 both have passed 09:00 (two candidate dates).
TICK_AT = datetime(2026, 5, 1, 23, 0, tzinfo=UTC)
ZONES = (
    "America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York", "America/Sao_Paulo",
    "UTC", "Europe/Lisbon", "Europe/Paris", "Africa/Lagos", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney",
)  # fmt: skip
LEAP_DAYS = [date(2024, 1, 1) + timedelta(days=offset) for offset in range(366)]
DEFINITION = {
    "trigger": {"type": "birthday", "hour": 9},
    "conditions": [],
    "actions": [
        {"type": "send_template", "template": "happy_birthday", "language": "en_US",
         "body": [{"field": "first_name", "default": "friend"}]},
    ],
}  # fmt: skip


def seed(stack: Stack, count: int) -> None:
    """`count` contacts by COPY, with birthdays and zones spread evenly."""
    with stack.connect() as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY contacts (id, phone, name, timezone, opt_in_status, attributes, tags, birthday_month, birthday_day)"
            " FROM STDIN"
        ) as copy:
            for index in range(count):
                day = LEAP_DAYS[(index * 7919) % 366]
                copy.write_row(
                    (uuid.uuid4(), f"+1555{index:07d}", f"Contact {index}", ZONES[index % len(ZONES)],
                     "opted_in", "{}", "{}", day.month, day.day)
                )  # fmt: skip
        cursor.execute(
            "INSERT INTO automations (id, name, description, enabled, trigger_type, definition, version)"
            " VALUES (%s, 'Birthday bench', '', true, 'birthday', %s::jsonb, 1)",
            (uuid.uuid4(), json.dumps(DEFINITION)),
        )
        # A live table is vacuumed by autovacuum; without it the first read after COPY pays for
        # setting every tuple's hint bits, which is a loading artefact, not the tick's cost.
        cursor.execute("VACUUM ANALYZE contacts")


def child(at: datetime) -> dict[str, Any]:
    """Runs in a fresh process pointed at the stack: time the due set, the tick and a re-run."""
    from sqlalchemy import text

    from herald import db
    from herald.automation.definitions import BirthdayTrigger
    from services.automation import tick

    trigger = BirthdayTrigger(type="birthday", hour=9)
    due = 0

    class _Count:
        id = "bench"

    def count_due(automation: Any, contact_ids: list[Any], keys: list[str], *args: Any, **kwargs: Any) -> None:
        nonlocal due
        due += len(contact_ids)

    with db.sync_engine().connect() as connection:  # connect once so the timing excludes set-up
        connection.execute(text("SELECT 1"))
    # Due set only: the tick's query and per-zone filter, with the insert step replaced by a counter.
    original = tick._insert_batch
    tick._insert_batch = count_due  # type: ignore[assignment]
    timings = []
    for _ in range(2):  # first: heap pages cold after loading; second: warm, as in a tick every 5 minutes
        due = 0
        report = tick.TickReport(tick="bench", now=at)
        started = time.perf_counter()
        tick._birthdays(_Count(), trigger, at, report)
        timings.append(time.perf_counter() - started)
    find_seconds, warm_seconds = timings
    candidates = report.candidates
    tick._insert_batch = original  # type: ignore[assignment]

    # Baseline: the same candidate query as a sequential scan.
    pairs = tick.candidate_month_days(at, trigger.hour)
    values = ", ".join(f"({m}, {d})" for m, d in pairs)
    with db.sync_engine().connect() as connection:
        connection.execute(text("SET enable_indexscan = off"))
        connection.execute(text("SET enable_bitmapscan = off"))
        started = time.perf_counter()
        connection.execute(
            text(
                "SELECT id, timezone, birthday_month, birthday_day FROM contacts"
                f" WHERE (birthday_month, birthday_day) IN ({values})"
            )
        ).fetchall()
        seq_seconds = time.perf_counter() - started

    started = time.perf_counter()
    full = tick.birthday_and_date_tick(at)
    full_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = tick.birthday_and_date_tick(at)
    rerun_seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "candidates": candidates,
        "due": due,
        "find_seconds": find_seconds,
        "find_warm_seconds": warm_seconds,
        "seq_scan_seconds": seq_seconds,
        "full_seconds": full_seconds,
        "runs_created": full.runs_created,
        "enqueued": full.enqueued,
        "rerun_seconds": rerun_seconds,
        "rerun_created": again.runs_created,
        "peak_rss_mb": peak_kib / 1024,
    }


def measure(count: int) -> dict[str, Any]:
    with Stack(f"birthday_{count}") as stack:
        started = time.perf_counter()
        seed(stack, count)
        seeded = time.perf_counter() - started
        output = subprocess.run(
            [sys.executable, "-m", "bench.birthday_tick", "--child", TICK_AT.isoformat()],
            cwd=REPO_ROOT,
            env=stack.env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout
        result = dict(json.loads(output.strip().splitlines()[-1]))
        result["contacts"] = count
        result["seed_seconds"] = seeded
        result["runs_stored"] = stack.count("SELECT count(*) FROM automation_runs")
        return result


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
    results = [measure(size) for size in sizes]
    small = results[0]
    rows: list[dict[str, Any]] = []
    for result in results:
        n = f"{result['contacts']:,}"
        rows.append({
            "group": GROUP, "figure": f"Birthday tick: due set found, {n} contacts",
            "value": round(result["find_seconds"] * 1000, 1), "unit": "ms", "kind": "herald",
            "goal": f"< {GOAL_SECONDS * 1000:.0f} ms",
            "baseline_figure": "same candidate query as a sequential scan",
            "baseline": round(result["seq_scan_seconds"] * 1000, 1),
            "notes": f"first run after loading; warm {result['find_warm_seconds'] * 1000:.0f} ms; "
                     f"{result['candidates']:,} candidates by (month, day) index, {result['due']:,} due at "
                     f"{TICK_AT:%H:%M} UTC in their own zones",
        })  # fmt: skip
        rows.append({
            "group": GROUP, "figure": f"Birthday tick: find + insert runs + enqueue, {n} contacts",
            "value": round(result["full_seconds"], 2), "unit": "s", "kind": "herald", "goal": "",
            "baseline_figure": "re-run of the same tick (nothing new to insert)",
            "baseline": round(result["rerun_seconds"], 2),
            "notes": f"{result['runs_created']:,} runs created and enqueued; re-run created {result['rerun_created']}",
        })  # fmt: skip
        rows.append({
            "group": GROUP, "figure": f"Birthday tick peak RSS, {n} contacts",
            "value": round(result["peak_rss_mb"], 1), "unit": "MiB", "kind": "herald",
            "goal": "flat as contacts grow",
            "baseline_figure": f"peak RSS at {small['contacts']:,} contacts",
            "baseline": round(small["peak_rss_mb"], 1),
            "notes": "fresh process per size (ru_maxrss); contacts streamed in batches of "
                     "HERALD_AUTOMATION_TICK_BATCH_SIZE",
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", metavar="AT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(datetime.fromisoformat(args.child))))
        return
    for row in run(args.quick):
        print(row)


if __name__ == "__main__":
    main()
