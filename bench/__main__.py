"""`make bench` / `make bench-quick`: run every benchmark, print one table, write bench/results/.

Each benchmark module exposes `run(quick: bool) -> list[row]` where a row is
{group, figure, value, unit, kind (herald | baseline | ceiling), goal, notes}; figures are
printed beside the baselines measured in the same run. Results go to bench/results/latest.md
and latest.json (latest-quick.* for `--quick`, which CI runs) together with the machine's
description (core count first).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import traceback
from pathlib import Path
from typing import Any

from bench.stack import machine

RESULTS = Path(__file__).parent / "results"
# Order matters only for reading; a module that is not present is skipped.
# memory comes last: it reports the peaks sampled while the others ran, then the scheduler's.
MODULES = (
    "dispatch",
    "dispatch_scaling",
    "dispatch_baselines",
    "webhook_ingest",
    "lifecycle",
    "contacts",
    "birthday_tick",
    "memory",
)


def _available(name: str) -> bool:
    return (Path(__file__).parent / f"{name}.py").exists()


def run(quick: bool, only: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in MODULES:
        if (only and name not in only) or not _available(name):
            continue
        started = time.perf_counter()
        print(f"-- {name} ...", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            rows.extend(module.run(quick))
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        print(f"   {name} took {time.perf_counter() - started:.0f} s", flush=True)
    return rows, [*errors, *_missing(only)]


def _missing(only: list[str] | None) -> list[str]:
    return [f"{name}: bench/{name}.py is not present" for name in MODULES if not only and not _available(name)]


def _normalised(row: dict[str, Any]) -> dict[str, Any]:
    """Rows in the common shape; a row in another shape keeps every field, shown in the notes."""
    if "figure" in row and "value" in row:
        return row
    text = {k: v for k, v in row.items() if isinstance(v, str)}
    numbers = {k: v for k, v in row.items() if not isinstance(v, str)}
    return {
        "group": text.pop("group", text.pop("benchmark", "")),
        "figure": " / ".join(text.values()),
        "value": "",
        "unit": "",
        "kind": "",
        "notes": ", ".join(f"{k} {v}" for k, v in numbers.items()),
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]], info: dict[str, Any], quick: bool, errors: list[str]) -> str:
    lines = [
        f"# Herald benchmarks ({'quick' if quick else 'full'} run)",
        "",
        f"Machine: {info['cores']} cores ({info['physical_cores']} physical), {info['memory_gb']} GB, "
        f"Python {info['python']}, {info['platform']}. Run at {info['at']}.",
        "",
        "Each figure stands beside a baseline measured in the same run: `baseline` and `ceiling` rows in",
        "its group, or the baseline column of its own row.",
        "",
        "| group | figure | value | kind | baseline (same run) | goal | notes |",
        "|---|---|---:|---|---|---|---|",
    ]
    for raw in rows:
        row = _normalised(raw)
        unit = row.get("unit", "")
        value = f"{row['value']} {unit}".strip()
        baseline = ""
        if row.get("baseline") not in (None, ""):
            baseline = f"{row['baseline']} {unit}: {row.get('baseline_figure', '')}".strip()
        cells = [row.get("group", ""), row["figure"], value, row.get("kind", ""), baseline,
                 row.get("goal", ""), row.get("notes", "")]  # fmt: skip
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    if errors:
        lines += ["", "Benchmarks that failed in this run:", *[f"- {error}" for error in errors]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Herald benchmarks")
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds each")
    parser.add_argument("--only", nargs="*", help=f"run only these of {', '.join(MODULES)}")
    args = parser.parse_args()
    info = {**machine(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rows, errors = run(args.quick, args.only)
    text = table(rows, info, args.quick, errors)
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    # Not tracked: a run never dirties the checkout (CI runs the quick size); results worth
    # keeping are copied under a name of their own.
    name = "latest-quick" if args.quick else "latest"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": info, "quick": args.quick, "rows": rows, "errors": errors}, indent=2) + "\n"
    )
    if errors:
        raise SystemExit(f"{len(errors)} benchmark(s) failed: {', '.join(errors)}")


if __name__ == "__main__":
    main()
