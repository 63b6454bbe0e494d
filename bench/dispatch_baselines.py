"""Dispatch baselines that persist statuses like Herald does (bench/dispatch.py has the
simulator's raw rate and a wire-only httpx loop), measured in the same run:

- a sequential httpx dispatcher (one process: load the row, send, write the status, next);
- the brief's original design: a real `celery worker` (bench/celery_baseline.py, Celery's
  defaults) doing the same send per message against the same PostgreSQL and Redis (its own
  Redis database number).

Each dispatcher sends freshly queued template messages (the rows Herald's own code builds) to
a simulator with its limits off and no status webhooks, and the rate is taken from the
`sent_at` the dispatcher wrote: messages sent between the 10th and 90th percentile over that
span, so start-up and the last stragglers do not count (sustained rate).

Run alone: `uv run python -m bench.dispatch_baselines [--quick]`.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

import httpx

from bench.dispatch import queue_messages
from bench.stack import SIM_TOKEN, Simulator, Stack, wait_for

TEMPLATE = {"name": "hello_world", "language": "en_US"}
GROUP = "Dispatch"


def sustained_rate(stack: Stack, ids: list[uuid.UUID]) -> float:
    """Messages per second between the 10th and 90th percentile of `sent_at`."""
    with stack.connect() as connection:
        times = [
            row[0].timestamp()
            for row in connection.execute(
                "SELECT sent_at FROM messages WHERE id = ANY(%s) AND status = 'sent' ORDER BY sent_at", (ids,)
            )
        ]
    if len(times) < 10:
        return 0.0
    low, high = int(len(times) * 0.1), int(len(times) * 0.9)
    span = times[high] - times[low]
    return (high - low) / span if span > 0 else 0.0


def sent_count(stack: Stack, ids: list[uuid.UUID]) -> int:
    return stack.count("SELECT count(*) FROM messages WHERE id = ANY(%s) AND status IN ('sent', 'failed')", ids)


def plain_loop(stack: Stack, sim: Simulator, ids: list[uuid.UUID]) -> None:
    """The simplest dispatcher: one message at a time, load, send, write back."""
    import psycopg

    from bench.celery_baseline import _FAILED, _LOAD, _SENT

    with (
        psycopg.connect(stack.database_url, autocommit=True) as db,
        httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {SIM_TOKEN}"}, timeout=10.0) as http,
    ):
        path = sim.send_url.removeprefix(sim.url)
        for message_id in ids:
            row = db.execute(_LOAD, (message_id,)).fetchone()
            if row is None:
                continue
            body, phone = row
            response = http.post(path, json={**body, "to": phone, "biz_opaque_callback_data": str(message_id)})
            if response.status_code == 200:
                db.execute(_SENT, (response.json()["messages"][0]["id"], message_id))
            else:
                db.execute(_FAILED, (response.json().get("error", {}).get("code"), message_id))


def celery_run(stack: Stack, sim: Simulator, ids: list[uuid.UUID], timeout: float) -> None:
    """Enqueue one Celery task per message, then start a real `celery worker` and wait for all."""
    broker = stack.claim_redis()
    from bench import celery_baseline

    celery_baseline.app.conf.broker_url = broker
    with celery_baseline.app.connection_for_write() as connection:
        producer = celery_baseline.app.amqp.Producer(connection)
        for message_id in ids:
            celery_baseline.send_message.apply_async((str(message_id),), producer=producer)
    env = stack.env(BENCH_CELERY_BROKER=broker, WHATSAPP_API_BASE_URL=sim.url)
    worker = stack.spawn(
        "celery",
        [sys.executable, "-m", "celery", "-A", "bench.celery_baseline", "worker", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env,
        role="worker celery (baseline)",
    )  # fmt: skip
    try:
        wait_for(lambda: sent_count(stack, ids) >= len(ids), timeout=timeout, interval=0.25, what="celery sends")
    finally:
        stack.stop(worker)


def run(quick: bool) -> list[dict[str, Any]]:
    count = 400 if quick else 3_000
    rows: list[dict[str, Any]] = []
    with Stack("baselines") as stack:
        sim = stack.simulator(limits_enabled="false", callback_url="", seed=1)

        ids = queue_messages(stack, count)
        started = time.perf_counter()
        plain_loop(stack, sim, ids)
        rows.append(_row("Sequential httpx dispatcher (1 process: load row, send, write status)",
                         sustained_rate(stack, ids), "baseline",
                         notes=f"{count} messages in {time.perf_counter() - started:.1f} s"))  # fmt: skip

        sim.reset()
        ids = queue_messages(stack, count)
        started = time.perf_counter()
        celery_run(stack, sim, ids, timeout=60 + count / 20)
        duplicates = sim.stats().get("duplicates", 0)
        rows.append(_row("Celery worker, same send (brief's design; prefork, 1 child per core)",
                         sustained_rate(stack, ids), "baseline",
                         notes=f"{count} messages in {time.perf_counter() - started:.1f} s incl. start; duplicates {duplicates}"))  # fmt: skip
    return rows


def _row(figure: str, value: float, kind: str, notes: str = "") -> dict[str, Any]:
    return {"group": GROUP, "figure": figure, "value": round(value, 1), "unit": "msg/s", "kind": kind,
            "goal": "", "notes": notes}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in run(args.quick):
        print(row)


if __name__ == "__main__":
    main()
