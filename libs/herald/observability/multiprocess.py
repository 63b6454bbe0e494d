"""Prometheus multi-process mode for Dramatiq worker pods (several processes, one endpoint).

Each worker process writes its samples to memory-mapped files in a directory private to the
running `dramatiq` command; the exporter process started next to them aggregates those files.
The directory is keyed by the parent's pid and start time, so a restarted command (same pid
in a container, same emptyDir) never adds up the previous run's counters: the exporter removes
every other run's directory when it starts.

Imports nothing from prometheus_client at module level: callers must be able to switch modes
before the first metric value is created.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKER_METRICS_PORT = 9191


@dataclass(frozen=True)
class WorkerMetricsConfig:
    port: int
    host: str
    base_dir: Path


def worker_metrics_config() -> WorkerMetricsConfig:
    """HERALD_WORKER_METRICS_PORT (9191; 0 turns the endpoint off), _HOST and _DIR.

    Read from the environment directly because the exporter runs in a process forked from the
    dramatiq command before any herald settings are loaded there.
    """
    port = int(os.environ.get("HERALD_WORKER_METRICS_PORT", str(DEFAULT_WORKER_METRICS_PORT)))
    host = os.environ.get("HERALD_WORKER_METRICS_HOST", "0.0.0.0")  # noqa: S104 - scraped from outside the pod  # nosec B104
    base = os.environ.get("HERALD_WORKER_METRICS_DIR") or str(Path(tempfile.gettempdir()) / "herald-worker-metrics")
    return WorkerMetricsConfig(port=port, host=host, base_dir=Path(base))


def _process_start_ticks(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    # Field 22 (starttime); the command name in field 2 may hold spaces, so split after ')'.
    return stat.rpartition(")")[2].split()[19]


def run_dir_for_parent(base_dir: Path, parent_pid: int | None = None) -> Path:
    """The samples directory shared by one dramatiq command's worker and exporter processes."""
    pid = os.getppid() if parent_pid is None else parent_pid
    return base_dir / f"{pid}-{_process_start_ticks(pid)}"


def clean_other_runs(base_dir: Path, keep: Path) -> None:
    """Remove directories left by finished runs (their counters must not be added to ours).

    Several dramatiq commands may share the base directory (a developer machine, parallel
    tests): a directory whose command is still running is left alone.
    """
    if not base_dir.exists():
        return
    for child in base_dir.iterdir():
        if child == keep or _run_is_alive(child.name):
            continue
        shutil.rmtree(child, ignore_errors=True)


def _run_is_alive(name: str) -> bool:
    pid, _, ticks = name.partition("-")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Same pid, different start time: the pid was reused by another process; the run is over.
    return _process_start_ticks(int(pid)) == ticks


def enable_multiprocess(directory: Path) -> None:
    """Write this process's samples to `directory` from now on.

    prometheus_client picks its value class when first imported; when that already happened
    (herald modules import the metrics catalog early), switch the class now. Labelled metrics
    create their values on first use, so they follow; the few unlabelled ones are rebuilt.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values
    from prometheus_client.metrics import MetricWrapperBase

    from herald.observability import metrics

    values.ValueClass = values.MultiProcessValue()
    for candidate in vars(metrics).values():
        if isinstance(candidate, MetricWrapperBase) and not candidate._labelnames:
            candidate._metric_init()


def mark_process_dead(pid: int | None = None) -> None:
    """Drop this process's live gauges (in-flight, in-progress) from the aggregate on exit."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid() if pid is None else pid, directory)
