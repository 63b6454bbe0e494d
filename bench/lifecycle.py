"""Full lifecycle: messages per second from the API request to `read`, through signed status webhooks.

Real processes: `herald serve messaging`, `herald serve webhook`, `herald worker messages`
(send actor and webhook processing), and the simulator posting signed, batched status webhooks
(sent -> delivered -> read) to the webhook service. N template sends go through
`POST /api/v1/messages` (32 concurrent clients); the figure is N divided by the time from the
first request until every message is `read` in PostgreSQL.

Baseline: the same simulator round trip without Herald: a client sends straight to the
simulator (32 concurrent) and a bare receiver (bench/status_counter.py) counts `read` statuses.

Run alone: `uv run python -m bench.lifecycle [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx

from bench.contacts import admin_headers
from bench.stack import SIM_TOKEN, Stack, free_port, load_client, wait_for

GROUP = "Lifecycle"
CONCURRENCY = 32
# Far above what either side reaches, so neither the simulator's bucket nor ours is the limit.
THROUGHPUT = 10_000  # the highest WHATSAPP_THROUGHPUT_PER_SECOND accepts


async def _drive(count: int, send: Any) -> float:
    """Call `send(i)` for i in range(count) with CONCURRENCY in flight; returns seconds taken."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    started = time.perf_counter()

    async def one(index: int) -> None:
        async with semaphore:
            await send(index)

    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


def herald_lifecycle(stack: Stack, count: int) -> tuple[float, float]:
    """(lifecycle msg/s, API accept req/s)."""
    webhook_url, _ = stack.service("webhook")
    sim = stack.simulator(
        throughput_per_second=THROUGHPUT, pair_limit_enabled="false", callback_url=f"{webhook_url}/webhooks/whatsapp"
    )
    env = {"WHATSAPP_API_BASE_URL": sim.url, "WHATSAPP_THROUGHPUT_PER_SECOND": THROUGHPUT}
    messaging_url, _ = stack.service("messaging", env=env)
    for _ in range(2):  # two worker containers of one process, as the chart scales them
        stack.worker("messages", processes=1, threads=8, env=env)
    headers = admin_headers(stack)
    httpx.post(f"{messaging_url}/api/v1/templates/sync", headers=headers, timeout=60).raise_for_status()
    stack.seed_contacts(count)
    with stack.connect() as connection:
        contact_ids = [str(row[0]) for row in connection.execute("SELECT id FROM contacts ORDER BY phone")]

    async def run_sends() -> float:
        async with load_client(headers, CONCURRENCY) as client:

            async def send(index: int) -> None:
                async with client.post(
                    f"{messaging_url}/api/v1/messages",
                    json={"contact_id": contact_ids[index],
                          "content": {"type": "template", "name": "hello_world", "language": "en_US"}},
                ) as response:  # fmt: skip
                    response.raise_for_status()

            return await _drive(count, send)

    started = time.perf_counter()
    accept_seconds = asyncio.run(run_sends())
    wait_for(
        lambda: stack.count("SELECT count(*) FROM messages WHERE status = 'read'") >= count,
        timeout=120 + count / 10,
        interval=0.2,
        what=f"{count} messages read",
    )
    return count / (time.perf_counter() - started), count / accept_seconds


def bare_lifecycle(stack: Stack, count: int) -> float:
    port = free_port()
    counter = stack.spawn(
        "status-counter",
        [sys.executable, "-m", "uvicorn", "bench.status_counter:app", "--host", "127.0.0.1", "--port", str(port),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        stack.env(),
    )  # fmt: skip
    counter_url = f"http://127.0.0.1:{port}"
    stack.wait_http(f"{counter_url}/health", counter)
    sim = stack.simulator(
        throughput_per_second=THROUGHPUT, pair_limit_enabled="false", callback_url=f"{counter_url}/hook"
    )

    async def run_sends() -> None:
        async with load_client({"Authorization": f"Bearer {SIM_TOKEN}"}, CONCURRENCY) as client:

            async def send(index: int) -> None:
                body = {"messaging_product": "whatsapp", "to": f"1555{index:07d}", "type": "template",
                        "template": {"name": "hello_world", "language": {"code": "en_US"}}}  # fmt: skip
                async with client.post(sim.send_url, json=body) as response:
                    response.raise_for_status()

            await _drive(count, send)

    started = time.perf_counter()
    asyncio.run(run_sends())
    wait_for(
        lambda: httpx.get(f"{counter_url}/count").json()["read"] >= count,
        timeout=60 + count / 10,
        interval=0.2,
        what=f"{count} reads counted",
    )
    return count / (time.perf_counter() - started)


def run(quick: bool) -> list[dict[str, Any]]:
    count = 100 if quick else 2_000
    with Stack("lifecycle") as stack:
        baseline = bare_lifecycle(stack, count)
        for process in list(stack.processes):
            stack.stop(process)
        rate, accept = herald_lifecycle(stack, count)
    return [
        {"group": GROUP, "figure": f"API request to `read` via signed status webhooks ({count:,} messages)",
         "value": round(rate, 1), "unit": "msg/s", "kind": "subject", "goal": "",
         "baseline_figure": "send straight to the simulator, bare receiver counting reads", "baseline": round(baseline, 1),
         "notes": f"API accepted {accept:.0f} req/s ({CONCURRENCY} clients); 1 API process each, 2 workers (one process each) x 8 threads"},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
