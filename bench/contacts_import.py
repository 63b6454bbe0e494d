"""Contacts CSV import: wall time AND CPU time of 100,000 rows, new then the same file again.

bench/contacts.py puts the import's wall time in the benchmark table; on a shared, loaded machine
wall time mostly measures the neighbours, so this reports where the CPU went too: the API
process tree (gunicorn + its worker), and PostgreSQL (the stack database's backends and the
server's background processes).

Run: `uv run python -m bench.contacts_import [--rows N]`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psutil

from bench.contacts import admin_headers, copy_baseline, import_csv, make_csv
from bench.stack import PEAK_MEMORY, Stack, postgres_cpu, tree_cpu


def run(rows: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with Stack("contacts-import") as stack:
        url, process = stack.service("contacts")
        headers = admin_headers(stack)
        csv = make_csv(rows)
        results.append(
            {"figure": "PostgreSQL COPY of the same CSV into a plain table", "wall_s": copy_baseline(stack, csv)}
        )
        for label in ("new contacts", "same file again (all updates)"):
            api_before, db_before = tree_cpu(process.pid), postgres_cpu(stack.db_name)
            load = psutil.getloadavg()[0]
            elapsed, report = import_csv(url, headers, csv)
            time.sleep(0.5)  # let the backend's counters settle
            PEAK_MEMORY.sample()
            results.append({
                "figure": f"import of {rows:,} rows, {label}",
                "wall_s": elapsed,
                "api_cpu_s": tree_cpu(process.pid) - api_before,
                "postgres_cpu_s": postgres_cpu(stack.db_name) - db_before,
                "load_1m": load,
                "api_peak_rss_mb": PEAK_MEMORY.peaks.get("api contacts", 0.0),
                "report": {k: report[k] for k in ("created", "updated", "failed")},
            })  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    for row in run(parser.parse_args().rows):
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)


if __name__ == "__main__":
    main()
