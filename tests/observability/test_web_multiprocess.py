"""`herald serve` with several gunicorn workers: whichever worker answers /metrics, it reports
the requests of all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures.simulator import free_port, wait_until
from tests.observability.promtext import value

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_metrics_add_up_across_gunicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "herald.cli", "serve", "contacts", "--port", str(port), "--workers", "2"],
        cwd=REPO_ROOT,
        env={**os.environ, "HERALD_WEB_METRICS_DIR": str(tmp_path / "metrics"), "HERALD_LOG_FORMAT": "json"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"herald serve exited: {(tmp_path / 'serve.log').read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=90, interval=0.2)
        requests = 200
        # Concurrent new connections spread the requests over both workers.
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: httpx.get(f"{url}/health", timeout=10).status_code, range(requests)))
        assert statuses == [200] * requests
        # Every scrape, whichever worker serves it, sees every request (plus the readiness polls).
        for _ in range(4):
            text = httpx.get(f"{url}/metrics", timeout=10).text
            counted = value(text, "herald_http_requests_total", route="/health", status="200")
            assert counted >= requests + 1
        pids = {int(p.name.split("_")[-1].split(".")[0]) for p in (tmp_path / "metrics").rglob("counter_*.db")}
        assert len(pids) == 2  # both workers wrote samples
    finally:
        process.terminate()
        process.wait(timeout=60)
