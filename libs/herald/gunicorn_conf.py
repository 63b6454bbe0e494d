"""gunicorn hooks for `herald serve`: with several uvicorn workers, every worker writes its
Prometheus samples to one shared directory, so any worker's /metrics shows the whole server."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    # Set in the master before any worker forks and imports prometheus_client.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    base = Path(os.environ.get("HERALD_WEB_METRICS_DIR") or Path(tempfile.gettempdir()) / "herald-web-metrics")
    directory = base / str(os.getpid())
    shutil.rmtree(directory, ignore_errors=True)  # a previous server with the same pid (containers)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def child_exit(server: Any, worker: Any) -> None:
    from herald.observability.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and Path(directory).parent.name == "herald-web-metrics":
        shutil.rmtree(directory, ignore_errors=True)
