"""The four services as real uvicorn processes on the test database (for fuzzing over HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fixtures.simulator import REPO_ROOT, free_port


@dataclass
class ServiceProcess:
    service: str
    url: str
    process: subprocess.Popen[bytes]
    log: Any

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(service: str, env: dict[str, str] | None = None) -> ServiceProcess:
    """`uvicorn services.<service>.app:app` on a free port with this process's environment."""
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"services.{service}.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=REPO_ROOT,
        env={**os.environ, "HERALD_LOG_FORMAT": "json", **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    handle = ServiceProcess(service, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{service} exited with {process.returncode}:\n{handle.output()}")
        try:
            if httpx.get(f"{handle.url}/health", timeout=1).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError(f"{service} did not start within 60 s:\n{handle.output()}")
        time.sleep(0.1)
