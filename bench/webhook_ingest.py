"""Webhook ingest: signed status webhooks acknowledged and durably stored, against a bare FastAPI echo.

Both servers run as real processes with the command `herald serve webhook` uses (gunicorn
with uvicorn workers). Two measurements per server:
- capacity: `wrk` (closed loop, many connections) for a fixed time; for the webhook, events/s
  is counted from rows committed in `webhook_events`, not from responses;
- latency at a fixed offered load (1,000 events/s by default), once the capacity run's rows
  are vacuumed and checkpointed: an open-loop generator on raw
  asyncio sockets sends on a fixed schedule and measures from the scheduled send time, so a
  slow server cannot hide its queueing (no coordinated omission).

Run alone: `uv run python -m bench.webhook_ingest [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg

from bench.stack import create_database, drop_database, tree_cpu
from herald.runner import Service, serve_argv
from herald.settings import get_settings
from herald.webhooks import sign_body

ROOT = Path(__file__).resolve().parents[1]
DATABASE_NAME = "herald_bench_webhook"
APP_SECRET = "bench-app-secret"
ECHO_APP = textwrap.dedent(
    """
    from fastapi import FastAPI, Request, Response

    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")
    """
)


def _status_body(index: int) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
        "statuses": [{
            "id": f"wamid.BENCH{index:012d}", "status": "delivered", "timestamp": "1698266945",
            "recipient_id": "14155550100",
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"},
        }],
    }  # fmt: skip
    entry = {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], port: int, health: str) -> None:
        self.log = tempfile.TemporaryFile()
        self.port = port
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"server did not start: {self.log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _raw_request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {sign_body(APP_SECRET, body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """One request on a keep-alive connection; True for a 200."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    await reader.readexactly(int(match.group(1)) if match else 0)
    return head.startswith(b"HTTP/1.1 200")


async def _socket_capacity(port: int, path: str, seconds: int, connections: int) -> dict[str, Any]:
    """Closed-loop capacity without wrk: `connections` keep-alive lanes for `seconds`."""
    requests = [_raw_request(path, _status_body(index)) for index in range(64)]
    latencies: list[float] = []
    non_2xx = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def lane(index: int) -> None:
        nonlocal non_2xx
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while loop.time() < deadline:
            sent = loop.time()
            if not await _exchange(reader, writer, requests[index % len(requests)]):
                non_2xx += 1
            latencies.append(loop.time() - sent)
            index += connections
        writer.close()

    await asyncio.gather(*(lane(index) for index in range(connections)))
    latencies.sort()
    return {
        "requests_per_s": round(len(latencies) / seconds, 2), "requests": len(latencies), "non_2xx": non_2xx,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2) if latencies else None,
    }  # fmt: skip


def _capacity(port: int, path: str, seconds: int, connections: int) -> dict[str, Any]:
    if shutil.which("wrk"):
        return {**_wrk(port, path, seconds, connections), "how": f"wrk, {connections} connections"}
    # wrk is a Debian package (`make bench-tools`); a Python client is a weaker load generator.
    return {**asyncio.run(_socket_capacity(port, path, seconds, connections)),
            "how": f"Python sockets, {connections} connections (no wrk)"}  # fmt: skip


async def _open_loop(port: int, path: str, bodies: list[bytes], rate: float, connections: int) -> dict[str, Any]:
    """Send len(bodies) POSTs at `rate`/s over keep-alive connections; latency from the schedule."""
    requests = [_raw_request(path, body) for body in bodies]
    latencies: list[float] = []
    errors = 0
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(index: int) -> None:
        nonlocal errors
        due = start + index / rate
        reader, writer = await idle.get()
        try:
            if not await _exchange(reader, writer, requests[index]):
                errors += 1
            latencies.append(loop.time() - due)
        finally:
            idle.put_nowait((reader, writer))

    began = time.perf_counter()
    # Tasks are started at their send time (not all up front), so the generator's own start-up
    # work does not show up as server latency.
    tasks = []
    for index in range(len(requests)):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    latencies.sort()
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(len(requests) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "errors": errors,
    }


def _wrk(port: int, path: str, seconds: int, connections: int) -> dict[str, Any]:
    """Closed-loop capacity with wrk; the Lua script cycles through 64 distinct pre-signed bodies."""
    bodies = [_status_body(index) for index in range(64)]
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    table = ",\n".join(
        f'{{{orjson.dumps(body.decode()).decode()}, "{sign_body(APP_SECRET, body)}"}}' for body in bodies
    )
    script.write(
        f"local requests = {{\n{table}\n}}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n % #requests + 1\n"
        "  local body, signature = requests[n][1], requests[n][2]\n"
        '  return wrk.format("POST", nil, {["Content-Type"] = "application/json",'
        ' ["X-Hub-Signature-256"] = signature}, body)\n'
        "end\n"
    )
    script.close()
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_s": rps, "requests": total, "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
    }  # fmt: skip


def _settle(url: str) -> None:
    """Start the latency run from a settled database: the capacity run just inserted tens of
    thousands of rows, and the autovacuum and checkpoint they trigger would otherwise land in
    the middle of the fixed-rate measurement."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE webhook_events")
        try:
            connection.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # a server where the benchmark user may not checkpoint: the vacuum still helps


def _count_rows(url: str) -> int:
    with psycopg.connect(url) as connection:
        return int(connection.execute("SELECT count(*) FROM webhook_events").fetchone()[0])  # type: ignore[index]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure both servers; one result row per (server, measurement)."""
    settings = get_settings()
    # One web worker per core: the intake is CPU-bound once commits are shared.
    workers = int(os.environ.get("BENCH_WEB_WORKERS", str(os.cpu_count() or 2)))
    seconds = 5 if quick else 15
    rate = float(os.environ.get("BENCH_WEBHOOK_RATE", "1000"))
    latency_events = int(rate * (3 if quick else 10))
    # The maintenance database of the configured server holds the CREATE DATABASE.
    admin_url = urlsplit(settings.database_url)._replace(path="/postgres").geturl()
    database_url = create_database(admin_url, DATABASE_NAME)
    redis_url = urlsplit(settings.redis_url)._replace(path="/13").geturl()
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "WHATSAPP_APP_SECRET": APP_SECRET,
        "HERALD_LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "HERALD_WEB_WORKERS": str(workers),
    }  # fmt: skip
    webhook_port, echo_port = _free_port(), _free_port()
    echo_dir = Path(tempfile.mkdtemp())
    (echo_dir / "bench_echo_app.py").write_text(ECHO_APP)
    results: list[dict[str, Any]] = []
    webhook = Server(
        serve_argv(Service.WEBHOOK, host="127.0.0.1", port=webhook_port, workers=workers, reload=False),
        env,
        webhook_port,
        "/health",
    )
    try:
        before = _count_rows(database_url)
        cpu_before = tree_cpu(webhook.process.pid)
        began = time.perf_counter()
        capacity = _capacity(webhook_port, "/webhooks/whatsapp", seconds, 64)
        elapsed = time.perf_counter() - began
        cpu = tree_cpu(webhook.process.pid) - cpu_before
        stored = _count_rows(database_url) - before
        results.append({
            "benchmark": "webhook_ingest", "server": "webhook", "measure": f"capacity ({capacity['how']})",
            "events_per_s": round(stored / elapsed, 1), "acknowledged_per_s": capacity["requests_per_s"],
            "stored": stored, "acknowledged": capacity["requests"] - capacity["non_2xx"],
            "non_200": capacity["non_2xx"], "p99_ms": capacity["p99_ms"],
            "server_cpu_us_per_event": round(cpu / max(stored, 1) * 1e6, 1), "workers": workers,
            "load_average": round(os.getloadavg()[0], 1),
        })  # fmt: skip
        _settle(database_url)
        before = _count_rows(database_url)
        latency = asyncio.run(
            _open_loop(webhook_port, "/webhooks/whatsapp", [_status_body(i) for i in range(latency_events)], rate, 64)
        )
        stored = _count_rows(database_url) - before
        results.append(
            {
                "benchmark": "webhook_ingest",
                "server": "webhook",
                "measure": f"latency at {rate:.0f}/s",
                **latency,
                "stored": stored,
                "workers": workers,
            }
        )
    finally:
        webhook.stop()
        drop_database(admin_url, DATABASE_NAME)
        redis.Redis.from_url(redis_url).flushdb()
    echo_argv = serve_argv(Service.WEBHOOK, host="127.0.0.1", port=echo_port, workers=workers, reload=False)
    echo_argv[echo_argv.index("services.webhook.app:app")] = "bench_echo_app:app"
    echo = Server([*echo_argv, "--chdir", str(echo_dir)], env, echo_port, "/echo")
    try:
        cpu_before = tree_cpu(echo.process.pid)
        capacity = _capacity(echo_port, "/echo", seconds, 64)
        cpu = tree_cpu(echo.process.pid) - cpu_before
        results.append(
            {
                "benchmark": "webhook_ingest",
                "server": "bare FastAPI echo",
                "measure": f"capacity ({capacity['how']})",
                "acknowledged_per_s": capacity["requests_per_s"],
                "non_200": capacity["non_2xx"],
                "p99_ms": capacity["p99_ms"],
                "server_cpu_us_per_event": round(cpu / max(capacity["requests"], 1) * 1e6, 1),
                "workers": workers,
                "load_average": round(os.getloadavg()[0], 1),
            }
        )
        latency = asyncio.run(
            _open_loop(echo_port, "/echo", [_status_body(i) for i in range(latency_events)], rate, 64)
        )
        results.append(
            {
                "benchmark": "webhook_ingest",
                "server": "bare FastAPI echo",
                "measure": f"latency at {rate:.0f}/s",
                **latency,
                "workers": workers,
            }
        )
    finally:
        echo.stop()
        shutil.rmtree(echo_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    for row in run(quick=arguments.quick):
        print(orjson.dumps(row).decode())


if __name__ == "__main__":
    main()
