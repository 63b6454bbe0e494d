"""Images built and run for real: a private Docker engine, the debootstrapped base, every image,
non-root and HEALTHCHECK checks, then the compose stack end to end through the simulator.

Collected only by `make test-containers` (HERALD_CONTAINER_TESTS=1). Needs root; an engine that
cannot start fails the run. The engine's data root (/var/lib/herald-docker) keeps the base image
and the layer cache between runs.

Where the engine has to fall back to the vfs storage driver, every container copies its whole
image, so the image checks read `docker image inspect` and only the compose stack's containers
are started (their HEALTHCHECKs run there and must report `healthy`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.packaging.conftest import ROOT

SOCK = os.environ.get("HERALD_DOCKER_SOCK", "/run/herald-docker/docker.sock")
COMPOSE = str(ROOT / ".tools" / "bin" / "docker-compose")
COMPOSE_FILES = ["-f", "docker-compose.prod.yml", "-f", "docker-compose.test.yml"]
TARGETS = ["contacts", "messaging", "automation", "webhook", "simulator", "gateway", "worker", "jobs", "migrate"]
TAG = "e2e"
PROJECT = "herald-e2e"
PUBLISHED = ["CONTACTS", "MESSAGING", "AUTOMATION", "WEBHOOK", "SIMULATOR", "GATEWAY"]
# One message end to end needs these; the other workers, automation and the scheduler run the
# same images (checked by inspection) and would only add containers to start and remove.
STACK = ["postgres", "redis", "contacts", "messaging", "webhook", "gateway", "worker-messages", "simulator"]
HERALD_SERVICES = ["contacts", "messaging", "webhook", "gateway", "worker-messages", "simulator"]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "e2e-admin-password-123"
PHONE = "+14155550123"


def docker_cli() -> str:
    """Debian's client speaks the engine's API version; a newer CLI earlier on PATH may not (and may
    lack buildx). Looked up when used: the engine script installs docker.io on a fresh machine."""
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "DOCKER_HOST": f"unix://{SOCK}",
        "DOCKER_BUILDKIT": "1",
        "HERALD_DOCKER_CLI": docker_cli(),
        "IMAGE_TAG": TAG,
        "IMAGE_PREFIX": "herald-",
        "COMPOSE_PROJECT_NAME": PROJECT,
        "POSTGRES_PASSWORD": "e2e-postgres",
        "WHATSAPP_TOKEN": "e2e-token",
        "PHONE_NUMBER_ID": "100000000000001",
        "BUSINESS_ID": "200000000000001",
        "WEBHOOK_VERIFY_TOKEN": "e2e-verify",
        "WHATSAPP_APP_SECRET": "e2e-app-secret",
        "SECRET_KEY": "e2e-secret-key-0123456789-abcdefghijklmnop",
        "WHATSAPP_API_BASE_URL": "http://simulator:8090",
        # One web worker per service: the stack shares two cores with the image builds.
        "HERALD_WEB_WORKERS": "1",
        # Host port 0: the engine picks free ports, so nothing else running on the machine collides
        # (the test finds the gateway's with `compose port`).
        **{f"HERALD_{name}_PORT": "0" for name in PUBLISHED},
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(list(args), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    log(f"[{time.monotonic() - started:6.1f} s] {' '.join(args)[:140]}")
    if check:
        assert result.returncode == 0, f"{args}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def docker(*args: str, timeout: float = 900) -> str:
    return run(docker_cli(), *args, timeout=timeout).stdout


def compose(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(COMPOSE, *COMPOSE_FILES, *args, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    assert os.geteuid() == 0, "the container tests start dockerd and must run as root"
    run(str(ROOT / "scripts" / "tools.sh"))
    run(str(ROOT / "docker" / "local" / "engine.sh"), "start")
    try:
        yield
    finally:
        # Dangling images are the previous builds of this run's tags: dropping them keeps the data
        # root from growing with every run that changes the code; the tagged ones stay cached.
        run(docker_cli(), "image", "prune", "--force", check=False)
        run(str(ROOT / "docker" / "local" / "engine.sh"), "stop", check=False)


@pytest.fixture(scope="module")
def images(engine: None) -> list[str]:
    base = run(str(ROOT / "docker" / "local" / "base-image.sh")).stdout.strip().splitlines()[-1]
    run(str(ROOT / "scripts" / "wheelhouse.sh"))
    build_env = {"BASE_IMAGE": base}
    os.environ.update(build_env)
    try:
        run(str(ROOT / "docker" / "build-images.sh"), timeout=1500)
        for name, dockerfile in [("postgres:15", "postgres"), ("redis:7", "redis")]:
            docker(
                "build",
                "--quiet",
                "-f",
                f"docker/test/{dockerfile}.Dockerfile",
                "--build-arg",
                f"BASE_IMAGE={base}",
                "-t",
                f"herald-test/{name}",
                ".",
            )
    finally:
        for key in build_env:
            os.environ.pop(key, None)
    return [f"herald-{target}:{TAG}" for target in TARGETS]


def image_config(image: str) -> dict:
    return json.loads(docker("image", "inspect", image))[0]["Config"]


def test_every_image_runs_as_uid_10001(images: list[str]) -> None:
    users = {image: image_config(image)["User"] for image in images}
    assert users == {image: "10001:10001" for image in images}


def test_every_image_declares_an_exec_form_healthcheck(images: list[str]) -> None:
    for image in images:
        healthcheck = image_config(image).get("Healthcheck") or {}
        test = healthcheck.get("Test", [])
        assert test[:3] == ["CMD", "/opt/venv/bin/python", "/opt/herald/healthcheck.py"], (image, test)


def compose_logs() -> str:
    result = compose("logs", "--no-color", "--tail", "60", check=False)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def stack(images: list[str], request: pytest.FixtureRequest) -> Iterator[None]:
    compose("down", "--volumes", "--remove-orphans", check=False)
    failed_before = request.session.testsfailed
    ok = False
    try:
        # --wait returns once every started service is healthy (migrate has completed first).
        compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", "300", *STACK, timeout=420)
        # The admin comes from the environment, as an operator would seed it after deploying.
        compose(
            "exec",
            "-T",
            "-e",
            f"HERALD_ADMIN_EMAIL={ADMIN_EMAIL}",
            "-e",
            f"HERALD_ADMIN_PASSWORD={ADMIN_PASSWORD}",
            "contacts",
            "herald",
            "seed-admin",
        )
        yield
        ok = request.session.testsfailed == failed_before
    finally:
        if not ok:
            log(compose_logs())
        # Nothing is kept, so no graceful stop (the workers' 60 s grace period would apply).
        compose("down", "--volumes", "--remove-orphans", "--timeout", "3", check=False)


def container_id(service: str) -> str:
    ids = compose("ps", "--quiet", service).stdout.split()
    assert len(ids) == 1, (service, ids)
    return ids[0]


def test_stack_healthchecks_report_healthy(stack: None) -> None:
    status = {
        service: docker("inspect", "--format", "{{.State.Health.Status}}", container_id(service)).strip()
        for service in HERALD_SERVICES
    }
    assert status == {service: "healthy" for service in HERALD_SERVICES}


def test_dependency_healthcheck_reaches_postgres_and_redis(stack: None) -> None:
    # The `deps` check of the jobs and migrate images, run with the stack's real addresses.
    docker("exec", container_id("worker-messages"), "/opt/venv/bin/python", "/opt/herald/healthcheck.py", "deps")


def test_every_process_in_the_stack_runs_as_uid_10001(stack: None) -> None:
    for service in HERALD_SERVICES:
        # `docker top` needs the pid column; the uid is the second.
        rows = docker("top", container_id(service), "-eo", "pid,uid").splitlines()[1:]
        uids = [row.split()[1] for row in rows]
        assert uids and set(uids) == {"10001"}, (service, uids)


def test_migrations_completed_in_their_one_shot_container(stack: None) -> None:
    result = compose("ps", "--all", "--format", "json", "migrate").stdout
    rows = [json.loads(line) for line in result.splitlines() if line.strip()]
    assert [(row["State"], row["ExitCode"]) for row in rows] == [("exited", 0)]


def test_template_message_is_delivered_through_the_simulator(stack: None) -> None:
    gateway = compose("port", "gateway", "8000").stdout.strip()
    with httpx.Client(base_url=f"http://{gateway}", timeout=30) as client:
        token = client.post("/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert token.status_code == 200, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

        contact = client.post("/api/v1/contacts", json={"phone": PHONE, "name": "Ada"})
        assert contact.status_code == 201, contact.text
        synced = client.post("/api/v1/templates/sync")
        assert synced.status_code == 200, synced.text
        sent = client.post(
            "/api/v1/messages",
            json={
                "contact_id": contact.json()["id"],
                "content": {"type": "template", "name": "hello_world", "language": "en_US"},
            },
        )
        assert sent.status_code == 202, sent.text

        deadline = time.monotonic() + 90
        message = sent.json()
        while message["status"] not in ("delivered", "read", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            response = client.get(f"/api/v1/messages/{message['id']}")
            assert response.status_code == 200, response.text
            message = response.json()
        assert message["status"] in ("delivered", "read"), message
        assert message["wamid"], message
