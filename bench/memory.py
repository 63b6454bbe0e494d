"""Memory: peak resident memory of API processes, workers and the scheduler against the brief's
limits (API 512 MiB, worker 256 MiB, scheduler 128 MiB).

API and worker peaks are sampled every 0.2 s for the whole run, while the other benchmarks
load them (bench.stack.PEAK_MEMORY; each figure is the process tree a container would hold:
the gunicorn master and its worker, the dramatiq parent and its worker process). This module
adds the scheduler: `herald scheduler` itself, and every registered job run once as
`herald job <name>` (what each CronJob pod runs). Run it last.

Run alone: `uv run python -m bench.memory [--quick]` (then only the scheduler and jobs appear).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import psutil

from bench.stack import MEMORY_LIMITS_MB, PEAK_MEMORY, Stack

GROUP = "Memory"


def _limit_for(role: str) -> tuple[str, int]:
    kind = role.split(" ", 1)[0]
    return kind, MEMORY_LIMITS_MB.get(kind, 0)


def _sample_while(process: subprocess.Popen[bytes], seconds: float | None) -> float:
    """Peak RSS (MiB) of `process` alone (its children are separate pods in Kubernetes)."""
    peak = 0.0
    deadline = None if seconds is None else time.monotonic() + seconds
    proc = psutil.Process(process.pid)
    while process.poll() is None and (deadline is None or time.monotonic() < deadline):
        try:
            peak = max(peak, proc.memory_info().rss / 1_048_576)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return peak


def scheduler_and_jobs(stack: Stack, seconds: float) -> list[tuple[str, float]]:
    from herald.jobs.registry import JOBS

    sim = stack.simulator(callback_url="")
    env = stack.env(WHATSAPP_API_BASE_URL=sim.url)
    peaks: list[tuple[str, float]] = []
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "herald.cli", "scheduler"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        peaks.append(("scheduler (herald scheduler)", _sample_while(scheduler, seconds)))
    finally:
        scheduler.terminate()
        scheduler.wait(30)
    for spec in JOBS:
        job = subprocess.Popen(
            [sys.executable, "-m", "herald.cli", "job", spec.name], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        peaks.append((f"job {spec.name}", _sample_while(job, None)))
        job.wait(120)
    return peaks


def run(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    PEAK_MEMORY.sample()
    for role, peak in sorted(PEAK_MEMORY.peaks.items()):
        _, limit = _limit_for(role)
        if not limit:
            continue
        rows.append(_row(f"peak RSS, {role} (process tree)", peak, limit))
    with Stack("memory") as stack:
        stack.seed_contacts(2_000 if quick else 20_000)
        peaks = scheduler_and_jobs(stack, 5.0 if quick else 15.0)
    limit = MEMORY_LIMITS_MB["scheduler"]
    scheduler = [(role, peak) for role, peak in peaks if not role.startswith("job ")]
    jobs = [(role, peak) for role, peak in peaks if role.startswith("job ")]
    for role, peak in scheduler:
        rows.append(_row(f"peak RSS, {role}", peak, limit))
    if jobs:
        role, peak = max(jobs, key=lambda item: item[1])
        row = _row(f"peak RSS, largest of {len(jobs)} `herald job` runs (one CronJob pod each)", peak, limit)
        row["notes"] += f"; largest: {role.removeprefix('job ')}; smallest {min(p for _, p in jobs):.0f} MiB"
        rows.append(row)
    return rows


def _row(figure: str, peak: float, limit: int) -> dict[str, Any]:
    return {"group": GROUP, "figure": figure, "value": round(peak, 1), "unit": "MiB", "kind": "subject",
            "goal": f"<= {limit} MiB", "baseline_figure": "the brief's limit", "baseline": limit,
            "notes": "within limit" if peak <= limit else "OVER LIMIT"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
