"""Contacts: CSV import of 100,000 contacts, and the contacts list's p99 under a fixed load with
100,000 contacts stored.

- Import: the CSV is posted to `POST /api/v1/contacts/import` of a real `herald serve contacts`
  (validation, phone normalisation, upsert by phone, report). Baseline: PostgreSQL's own
  `COPY` of the same file into a plain table with the same columns (the floor for getting
  those bytes into this database).
- List: an open-loop generator sends `GET /api/v1/contacts?limit=50` at a fixed rate and
  measures each request from its scheduled start (a slow server cannot hide queueing).
  Baseline: `GET /health` of the same process at the same rate (the HTTP floor).

Run alone: `uv run python -m bench.contacts [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
import uuid
from typing import Any

import aiohttp
import httpx

from bench.stack import Stack, load_client

GROUP = "Contacts"
IMPORT_GOAL_SECONDS = 10.0


def make_csv(count: int) -> bytes:
    out = io.StringIO()
    out.write("phone,name,language,timezone,birthday,tags,opt_in,attr.city\n")
    cities = ("Lisbon", "Madrid", "Austin", "Lagos", "Pune")
    for index in range(count):
        out.write(
            f"+1212{200 + index // 10_000}{index % 10_000:04d},Person {index},en,America/New_York,{index % 12 + 1:02d}-{index % 28 + 1:02d},"
            f"vip;batch{index % 10},yes,{cities[index % 5]}\n"
        )
    return out.getvalue().encode()


def admin_headers(stack: Stack) -> dict[str, str]:
    """A real admin user in the stack's database and an access token signed with its key."""
    from herald.auth import create_token, hash_password
    from herald.models import Role

    user_id = uuid.uuid4()
    with stack.connect() as connection:
        connection.execute(
            "INSERT INTO users (id, email, full_name, password_hash, role, is_active, token_version)"
            " VALUES (%s, %s, 'Bench', %s, 'admin', true, 0)",
            (user_id, f"bench-{user_id.hex[:8]}@example.com", hash_password(uuid.uuid4().hex)),
        )
    return {"Authorization": f"Bearer {create_token(user_id, Role.ADMIN, 'access')}"}


def copy_baseline(stack: Stack, csv: bytes) -> float:
    with stack.connect() as connection:
        connection.execute(
            "CREATE TABLE bench_copy (phone text, name text, language text, timezone text, birthday text,"
            " tags text, opt_in text, city text)"
        )
        started = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy("COPY bench_copy FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(csv)
        elapsed = time.perf_counter() - started
        connection.execute("DROP TABLE bench_copy")
    return elapsed


def import_csv(url: str, headers: dict[str, str], csv: bytes) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/api/v1/contacts/import",
        headers=headers,
        files={"file": ("contacts.csv", csv, "text/csv")},
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


async def open_loop(url: str, headers: dict[str, str], rate: float, seconds: float) -> dict[str, float]:
    """Requests on a fixed schedule; latency counted from the scheduled time. Returns ms percentiles."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with load_client(headers, 256) as client:
        start = time.perf_counter() + 0.2

        async def one(index: int) -> None:
            nonlocal errors
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with client.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        await asyncio.gather(*(one(i) for i in range(total)))
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": errors,
        "requests": total,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    count = 5_000 if quick else 100_000
    # Fixed below one API process's capacity on a small machine: above it, queueing is all one measures.
    rate = 20.0
    seconds = 4.0 if quick else 20.0
    rows: list[dict[str, Any]] = []
    with Stack("contacts") as stack:
        url, _ = stack.service("contacts")
        headers = admin_headers(stack)
        csv = make_csv(count)
        baseline = copy_baseline(stack, csv)
        elapsed, report = import_csv(url, headers, csv)
        stored = stack.count("SELECT count(*) FROM contacts")
        rows.append({
            "group": GROUP, "figure": f"CSV import of {count:,} contacts (API, upsert by phone)",
            "value": round(elapsed, 2), "unit": "s", "kind": "subject",
            "goal": f"< {IMPORT_GOAL_SECONDS:.0f} s at 100,000",
            "baseline_figure": "PostgreSQL COPY of the same CSV into a plain table", "baseline": round(baseline, 2),
            "notes": f"{stored:,} stored; report {_short(report)}",
        })  # fmt: skip

        if stored < count:
            stack.seed_contacts(count - stored)
        with stack.connect() as connection:
            connection.execute("ANALYZE contacts")
        asyncio.run(open_loop(f"{url}/api/v1/contacts?limit=50", headers, rate, 1.0))  # warm-up
        health = asyncio.run(open_loop(f"{url}/health", {}, rate, seconds))
        listing = asyncio.run(open_loop(f"{url}/api/v1/contacts?limit=50", headers, rate, seconds))
        total = stack.count("SELECT count(*) FROM contacts")
        rows.append({
            "group": GROUP, "figure": f"Contacts list p99 at {rate:.0f} req/s, {total:,} contacts (limit 50)",
            "value": round(listing["p99"], 1), "unit": "ms", "kind": "subject", "goal": "",
            "baseline_figure": f"/health p99 at {rate:.0f} req/s, same process", "baseline": round(health["p99"], 1),
            "notes": f"p50 {listing['p50']:.1f} ms; {listing['errors']} errors of {listing['requests']}",
        })  # fmt: skip
    return rows


def _short(report: dict[str, Any]) -> str:
    keys = ("created", "updated", "failed")
    return ", ".join(f"{k}={report[k]}" for k in keys if k in report and not isinstance(report[k], list))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
