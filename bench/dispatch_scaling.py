"""Dispatch scaling: Herald's sustained dispatch rate with 1, 2 and 4 worker processes.

The same measurement as bench/dispatch.py (its `herald_dispatch`), each size in a fresh stack
(database, Redis, simulator with limits off), so the figures differ only in `--processes`.
The 1-process figure is the baseline of the other two.

Run alone: `uv run python -m bench.dispatch_scaling [--quick]`.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.dispatch import herald_dispatch
from bench.stack import PEAK_MEMORY, Stack

ROLE = "worker messages"

GROUP = "Dispatch scaling"
PROCESSES = (1, 2, 4)
THREADS = 8


def run(quick: bool) -> list[dict[str, Any]]:
    count = 1_000 if quick else 10_000
    results: dict[int, dict[str, Any]] = {}
    # The quick size only keeps the harness working: 1 and 2 processes.
    for processes in PROCESSES[:2] if quick else PROCESSES:
        # Each size's worker tree gets its own memory figure, named for its process count.
        earlier = PEAK_MEMORY.peaks.pop(ROLE, None)
        with Stack(f"scaling{processes}") as stack:
            sim = stack.simulator(limits_enabled="false", callback_url="", record_payloads="false", seed=1)
            results[processes] = herald_dispatch(stack, sim, count, processes, THREADS)
        PEAK_MEMORY.peaks[f"{ROLE}, {processes} process{'es' if processes > 1 else ''} in one container (scaling)"] = (
            PEAK_MEMORY.peaks.pop(ROLE, 0.0)
        )
        if earlier is not None:
            PEAK_MEMORY.peaks[ROLE] = earlier
    one = results[1]["rate"]
    return [
        {"group": GROUP, "figure": f"Herald dispatch, {processes} worker process{'es' if processes > 1 else ''} x {THREADS} threads",
         "value": round(result["rate"], 1), "unit": "msg/s", "kind": "herald" if processes > 1 else "baseline",
         "goal": "", "baseline_figure": "1 worker process" if processes > 1 else "", "baseline": round(one, 1) if processes > 1 else "",
         "notes": f"{count} messages; x{result['rate'] / one:.2f} of 1 process; duplicates {result['duplicates']}, failed {result['failed']}; "
                  f"{result['cpu_ms_per_message']:.2f} ms worker CPU per message"}
        for processes, result in results.items()
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
