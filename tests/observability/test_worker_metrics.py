"""A real dramatiq command with two worker processes serves one aggregated /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from herald.queue import enqueue, get_broker
from tests.fixtures.simulator import free_port, wait_until
from tests.observability.promtext import value
from tests.observability.worker_contracts import EXPLODES, PIDS_KEY, TRACKED, Work

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class WorkerCommand:
    def __init__(self, port: int, metrics_dir: Path, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.metrics_dir = metrics_dir
        self.process = process
        self.log = log

    def scrape(self) -> str:
        try:
            response = httpx.get(self.url, timeout=5)
        except httpx.HTTPError:
            return ""
        return response.text if response.status_code == 200 else ""


@pytest.fixture
def worker_command(tmp_path: Path) -> Iterator[WorkerCommand]:
    port = free_port()
    metrics_dir = tmp_path / "worker-metrics"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "HERALD_WORKER_METRICS_PORT": str(port),
        "HERALD_WORKER_METRICS_HOST": "127.0.0.1",
        "HERALD_WORKER_METRICS_DIR": str(metrics_dir),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "dramatiq", "herald.runner:setup_broker",
                "tests.observability.worker_actors",
                "--queues", "analytics", "--processes", "2", "--threads", "2",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    command = WorkerCommand(port, metrics_dir, process, log)
    try:
        wait_until(lambda: process.poll() is not None or command.scrape(), timeout=120, interval=0.2)
        if process.poll() is not None:
            pytest.fail(f"worker exited: {log.read_text()[-4000:]}")
        yield command
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_counts_from_both_worker_processes_add_up(worker_command: WorkerCommand, redis_client: redis.Redis) -> None:
    for n in range(40):
        enqueue(TRACKED, Work(n=n, pause_seconds=0.1))
    for n in range(3):
        enqueue(EXPLODES, Work(n=n))

    labels = {"queue": "analytics", "actor": TRACKED.actor_name}
    failing = {"queue": "analytics", "actor": EXPLODES.actor_name}

    last = {"text": ""}

    def settled() -> bool:
        last["text"] = text = worker_command.scrape()
        done = value(text, "herald_queue_messages_processed_total", **labels) == 40
        failed = value(text, "herald_queue_messages_dead_lettered_total", **failing) == 3
        return done and failed

    try:
        wait_until(settled, timeout=120, interval=0.2)
    except AssertionError:
        queue_lines = [line for line in last["text"].splitlines() if "herald_queue_messages" in line]
        raise AssertionError(f"counts never settled: {queue_lines}\n{worker_command.log.read_text()[-3000:]}")
    text = last["text"]
    assert value(text, "herald_queue_messages_failed_total", **failing) == 3
    assert value(text, "herald_queue_messages_failed_total", **labels) == 0
    assert value(text, "herald_queue_message_duration_seconds_count", **labels) == 40
    assert value(text, "herald_queue_message_duration_seconds_sum", **labels) >= 40 * 0.1
    assert value(text, "herald_queue_messages_in_progress", **labels) == 0
    # Both processes did part of the work, and each wrote its own sample files.
    worker_pids = {int(pid) for pid in redis_client.smembers(PIDS_KEY)}
    assert len(worker_pids) == 2, worker_pids
    run_dirs = list(worker_command.metrics_dir.iterdir())
    assert len(run_dirs) == 1, run_dirs
    file_pids = {int(path.stem.rsplit("_", 1)[1]) for path in run_dirs[0].glob("counter_*.db")}
    assert worker_pids <= file_pids, (worker_pids, file_pids)


def test_worker_endpoint_exports_queue_depth_and_age(worker_command: WorkerCommand) -> None:
    text = wait_until(lambda: worker_command.scrape(), timeout=10)
    for queue in ("messages", "automation", "analytics"):
        assert f'herald_queue_depth{{queue="{queue}"}}' in text
        assert f'herald_queue_oldest_message_age_seconds{{queue="{queue}"}}' in text
    assert "herald_job_expected_interval_seconds" in text
    assert value(text, "herald_contacts") == 0


def test_enqueues_are_counted_where_they_happen() -> None:
    from herald.observability import metrics

    labels = ("analytics", TRACKED.actor_name)
    before = metrics.QUEUE_ENQUEUED.labels(*labels)._value.get()
    for n in range(5):
        enqueue(TRACKED, Work(n=n))
    assert metrics.QUEUE_ENQUEUED.labels(*labels)._value.get() - before == 5
    assert get_broker().client.llen("herald:analytics") == 5
