"""Images built and run for real: a private Docker engine, the debootstrapped base, every image,
non-root and HEALTHCHECK checks, then the compose stack end to end through the simulator.

Collected only by `make test-containers` (HERALD_CONTAINER_TESTS=1). Needs root; an engine that
cannot start fails the run. The engine's data root (/var/lib/herald-docker) keeps the base image
and the layer cache between runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.packaging.conftest import ROOT

SOCK = os.environ.get("HERALD_DOCKER_SOCK", "/run/herald-docker/docker.sock")
DOCKER_CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
COMPOSE = str(ROOT / ".tools" / "bin" / "docker-compose")
TARGETS = ["contacts", "messaging", "automation", "webhook", "simulator", "gateway", "worker", "jobs", "migrate"]
TAG = "e2e"
PORTS = {"CONTACTS": 18001, "MESSAGING": 18002, "AUTOMATION": 18003, "WEBHOOK": 18004, "SIMULATOR": 18090}
ADMIN = {"HERALD_ADMIN_EMAIL": "admin@example.com", "HERALD_ADMIN_PASSWORD": "e2e-admin-password-123"}


def env() -> dict[str, str]:
    return {
        **os.environ,
        "DOCKER_HOST": f"unix://{SOCK}",
        "DOCKER_BUILDKIT": "1",
        "HERALD_DOCKER_CLI": DOCKER_CLI,
        "IMAGE_TAG": TAG,
        "IMAGE_PREFIX": "herald-",
        "POSTGRES_PASSWORD": "e2e-postgres",
        "WHATSAPP_TOKEN": "e2e-token",
        "PHONE_NUMBER_ID": "100000000000001",
        "BUSINESS_ID": "200000000000001",
        "WEBHOOK_VERIFY_TOKEN": "e2e-verify",
        "WHATSAPP_APP_SECRET": "e2e-app-secret",
        "SECRET_KEY": "e2e-secret-key-0123456789-abcdefghijklmnop",
        "WHATSAPP_API_BASE_URL": "http://simulator:8090",
        "COMPOSE_PROJECT_NAME": "herald-e2e",
        **{f"HERALD_{name}_PORT": str(port) for name, port in PORTS.items()},
        **ADMIN,
    }


def run(*args: str, timeout: float = 900) -> str:
    started = time.monotonic()
    result = subprocess.run(list(args), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    print(f"[{time.monotonic() - started:6.1f} s] {' '.join(args)[:120]}")
    assert result.returncode == 0, f"{args}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def docker(*args: str, timeout: float = 900) -> str:
    return run(DOCKER_CLI, *args, timeout=timeout)


def compose(*args: str, timeout: float = 600) -> str:
    return run(COMPOSE, "-f", "docker-compose.prod.yml", "-f", "docker-compose.test.yml", *args, timeout=timeout)


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    assert os.geteuid() == 0, "the container tests start dockerd and must run as root"
    run(str(ROOT / "scripts" / "tools.sh"))
    run(str(ROOT / "docker" / "local" / "engine.sh"), "start")
    try:
        yield
    finally:
        subprocess.run([str(ROOT / "docker" / "local" / "engine.sh"), "stop"], env=env(), check=False)


@pytest.fixture(scope="module")
def base_image(engine: None) -> str:
    return run(str(ROOT / "docker" / "local" / "base-image.sh"), timeout=900).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def images(base_image: str) -> list[str]:
    run(str(ROOT / "scripts" / "wheelhouse.sh"))
    os.environ["BASE_IMAGE"] = base_image
    try:
        run(str(ROOT / "docker" / "build-images.sh"), timeout=1500)
        for name, dockerfile in [("postgres:15", "postgres"), ("redis:7", "redis")]:
            docker(
                "build",
                "--quiet",
                "-f",
                f"docker/test/{dockerfile}.Dockerfile",
                "--build-arg",
                f"BASE_IMAGE={base_image}",
                "-t",
                f"herald-test/{name}",
                ".",
            )
    finally:
        os.environ.pop("BASE_IMAGE", None)
    return [f"herald-{target}:{TAG}" for target in TARGETS]


def test_images_run_as_a_fixed_non_root_user(images: list[str]) -> None:
    for image in images:
        config = json.loads(docker("image", "inspect", image))[0]["Config"]
        assert config["User"] == "10001:10001", image
        uid = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--entrypoint", "id", image, "-u").strip()
        assert uid == "10001", image


def test_images_declare_a_healthcheck(images: list[str]) -> None:
    for image in images:
        config = json.loads(docker("image", "inspect", image))[0]["Config"]
        assert config["Healthcheck"]["Test"][0] == "CMD", image


def test_herald_command_works_on_a_read_only_root(images: list[str]) -> None:
    for image in images:
        assert "migrate" in docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", image, "--help")


def wait_healthy(container: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        status = docker("inspect", "--format", "{{.State.Health.Status}}", container).strip()
        if status == "healthy":
            return
        time.sleep(2)
    logs = subprocess.run([DOCKER_CLI, "logs", container], env=env(), capture_output=True, text=True)
    raise AssertionError(f"{container} is not healthy: {logs.stdout[-2000:]}{logs.stderr[-2000:]}")


def test_simulator_becomes_healthy_alone(images: list[str]) -> None:
    name = "herald-e2e-simulator-alone"
    subprocess.run([DOCKER_CLI, "rm", "-f", name], env=env(), capture_output=True)
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        f"herald-simulator:{TAG}",
    )
    try:
        wait_healthy(name, time.monotonic() + 90)
    finally:
        subprocess.run([DOCKER_CLI, "rm", "-f", name], env=env(), capture_output=True)


@pytest.fixture(scope="module")
def stack(images: list[str]) -> Iterator[None]:
    compose("down", "--volumes", "--remove-orphans")
    try:
        compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "240", timeout=400)
        compose("run", "--rm", "--no-deps", "scheduler", "seed-admin")
        yield
    except AssertionError:
        print(
            subprocess.run(
                [COMPOSE, "-f", "docker-compose.prod.yml", "-f", "docker-compose.test.yml", "logs", "--tail", "40"],
                cwd=ROOT,
                env=env(),
                capture_output=True,
                text=True,
            ).stdout
        )
        raise
    finally:
        compose("down", "--volumes", "--remove-orphans")


def test_message_is_delivered_end_to_end(stack: None) -> None:
    contacts = f"http://127.0.0.1:{PORTS['CONTACTS']}"
    messaging = f"http://127.0.0.1:{PORTS['MESSAGING']}"
    with httpx.Client(timeout=10) as client:
        token = client.post(
            f"{contacts}/api/v1/auth/token",
            data={"username": ADMIN["HERALD_ADMIN_EMAIL"], "password": ADMIN["HERALD_ADMIN_PASSWORD"]},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        contact = client.post(
            f"{contacts}/api/v1/contacts", json={"phone": "+14155550123", "name": "Ada"}, headers=headers
        )
        assert contact.status_code in (200, 201), contact.text
        sent = client.post(
            f"{messaging}/api/v1/messages",
            json={"contact_id": contact.json()["id"], "template": {"name": "hello_world", "language": "en_US"}},
            headers=headers,
        )
        assert sent.status_code in (200, 201, 202), sent.text
        message_id = sent.json()["id"]
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = client.get(f"{messaging}/api/v1/messages/{message_id}", headers=headers).json()["status"]
            if status in ("delivered", "read"):
                break
            time.sleep(1)
        assert status in ("delivered", "read"), status


def test_engine_tools_are_present() -> None:
    assert shutil.which(DOCKER_CLI) or os.path.exists(DOCKER_CLI)
