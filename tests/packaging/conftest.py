"""Fixtures for the packaging checks: the pinned helm binary and rendered chart manifests.

The container end-to-end module needs a Docker engine started as root and takes minutes, so it
is collected only when HERALD_CONTAINER_TESTS=1 (`make test-containers` sets it); it never skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "herald"
HELM = ROOT / ".tools" / "bin" / "helm"
# The Kubernetes version rendered manifests are validated against (strict schemas).
KUBERNETES_VERSION = "1.34.0"
CRD_API_VERSIONS = ["monitoring.coreos.com/v1", "keda.sh/v1alpha1"]

if os.environ.get("HERALD_CONTAINER_TESTS") != "1":
    collect_ignore = ["test_containers.py"]


def ensure_tools() -> None:
    if not HELM.exists() or not (ROOT / ".tools" / "bin" / "docker-compose").exists():
        subprocess.run([str(ROOT / "scripts" / "tools.sh")], check=True)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ensure_tools()
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check)


def render(*values_files: Path, extra: tuple[str, ...] = ()) -> list[dict]:
    args = ["template", "herald", str(CHART), "--namespace", "herald"]
    for api in CRD_API_VERSIONS:
        args += ["--api-versions", api]
    for values in values_files:
        args += ["-f", str(values)]
    result = helm(*args, *extra)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


DEV_VALUES = ROOT / "k8s-dev" / "values.yaml"
PROD_VALUES = CHART / "ci" / "prod-values.yaml"
VALUES_SETS = {"dev": (DEV_VALUES,), "prod": (PROD_VALUES,)}


@pytest.fixture(scope="session", params=sorted(VALUES_SETS))
def rendered(request: pytest.FixtureRequest) -> list[dict]:
    """The chart rendered with each values set (dev and prod)."""
    return render(*VALUES_SETS[request.param])


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]
