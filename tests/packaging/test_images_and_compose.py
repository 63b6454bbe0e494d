"""Offline checks of the Dockerfiles, compose files and skaffold.yaml."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.packaging.conftest import CHART, ROOT

DOCKERFILES = sorted(ROOT.glob("docker/**/*Dockerfile"))
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.prod.yml", "docker-compose.test.yml"]


def dockerfile_targets() -> list[str]:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    return re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.M)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(dockerfile) -> None:
    result = subprocess.run(["hadolint", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfiles_take_a_base_image_argument(dockerfile) -> None:
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, flags=re.M)
    assert all(
        line.startswith("FROM ${BASE_IMAGE}")
        for line in re.findall(r"^FROM .*", text, flags=re.M)
        if " AS " not in line or "${BASE_IMAGE}" in line or line.split()[1] not in dockerfile_targets()
    )


def test_app_images_run_as_a_fixed_non_root_user_with_a_healthcheck() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    final = {s.split()[2]: s for s in stages if s.split()[0] in {"api", "runtime"}}
    for name in ["contacts", "messaging", "automation", "webhook", "simulator", "gateway", "worker", "jobs", "migrate"]:
        assert "USER 10001:10001" in final[name], name
    for name in ["api", "worker", "jobs", "migrate"]:
        stage = next(s for s in stages if s.split()[2] == name)
        assert "HEALTHCHECK" in stage, name


def test_dockerignore_is_an_allow_list() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    assert not any(line.startswith("!.env") for line in lines)


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(compose_file: str) -> None:
    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(ROOT / compose_file)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "version" not in yaml.safe_load((ROOT / compose_file).read_text())


def test_prod_compose_has_limits_restarts_and_no_source_mounts() -> None:
    prod = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())["services"]
    expected = {
        "postgres": "1G",
        "redis": "256M",
        "contacts": "512M",
        "messaging": "512M",
        "automation": "512M",
        "webhook": "512M",
        "worker-messages": "256M",
        "worker-automation": "256M",
        "worker-analytics": "256M",
        "scheduler": "128M",
    }
    for name, memory in expected.items():
        assert prod[name]["deploy"]["resources"]["limits"]["memory"] == memory, name
        assert prod[name]["restart"] == "unless-stopped", name
    for name, service in prod.items():
        for volume in service.get("volumes", []):
            assert not str(volume).startswith("."), f"{name} mounts source: {volume}"
        if name.startswith("worker-"):
            assert "container_name" not in service and "ports" not in service, "workers must scale"


def test_dev_compose_waits_for_migrations_and_has_health_checks() -> None:
    dev = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = dev["services"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    for name in [
        "contacts",
        "messaging",
        "automation",
        "webhook",
        "worker-messages",
        "worker-automation",
        "worker-analytics",
        "scheduler",
    ]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert {"postgres-data", "redis-data"} <= set(dev["volumes"])
    assert services["prometheus"]["profiles"] == ["monitoring"]


def test_skaffold_artifacts_and_profiles_match_the_images_and_chart() -> None:
    """No published skaffold schema is available from a package registry here, so the config is
    checked against what it refers to: Dockerfile targets, the chart, values files, services."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4")
    targets = set(dockerfile_targets())
    images = set()
    for artifact in config["build"]["artifacts"]:
        assert artifact["docker"]["dockerfile"] == "docker/Dockerfile"
        assert artifact["docker"]["target"] in targets
        assert artifact["image"] == f"herald-{artifact['docker']['target']}"
        images.add(artifact["docker"]["target"])
    assert images == targets - {"builder", "sources", "runtime", "api", "gateway"}
    (release,) = config["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]) == CHART
    for values in release["valuesFiles"]:
        assert (ROOT / values).exists()
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    forwarded = {pf["resourceName"].removeprefix("herald-"): pf["port"] for pf in config["portForward"]}
    for service, port in forwarded.items():
        assert chart_values["services"][service]["port"] == port
    profiles = {p["name"]: p for p in config["profiles"]}
    assert {"dev", "prod"} <= set(profiles)
    for patch in profiles["prod"]["patches"]:
        if patch["op"] == "replace" and patch["path"].endswith("valuesFiles"):
            assert all((ROOT / v).exists() for v in patch["value"])


API_TARGETS = {"contacts", "messaging", "automation", "webhook", "simulator"}


def skaffold_config(profile: str | None = None) -> dict:
    """skaffold.yaml with one profile's JSON patches applied (the add/replace/remove it uses)."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    profiles = {p["name"]: p for p in config.pop("profiles")}
    for patch in profiles[profile]["patches"] if profile else []:
        *parents, last = patch["path"].strip("/").split("/")
        node = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: int | str = int(last) if isinstance(node, list) else last
        if patch["op"] == "remove":
            del node[key]
        else:
            assert patch["op"] == "replace" or key not in node, f"add over an existing {patch['path']}"
            node[key] = patch["value"]
    return config


def stage_chain(target: str) -> str:
    """The Dockerfile text of `target` and every stage it is built FROM (not COPY --from)."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    stages = {s.split()[2]: s for s in re.split(r"^FROM ", text, flags=re.M)[1:] if " AS " in s.splitlines()[0]}
    chain = []
    while target in stages:
        chain.append(stages[target])
        target = stages[target].split()[0]
    return "\n".join(chain)


def test_dev_profile_syncs_python_sources_into_paths_the_http_images_have() -> None:
    artifacts = skaffold_config("dev")["build"]["artifacts"]
    synced = {a["docker"]["target"]: a["sync"]["manual"] for a in artifacts if "sync" in a}
    # Workers do not reload, and CronJobs and the migration hook start from the image: those
    # rebuild instead of receiving files that nothing would load.
    assert set(synced) == API_TARGETS
    for target, rules in synced.items():
        chain = stage_chain(target)
        assert {rule["src"] for rule in rules} == {"services/**/*.py", "libs/herald/**/*.py"}, target
        for rule in rules:
            source = next(ROOT.glob(rule["src"].replace("services/**", f"services/{target}/**")))
            relative = source.relative_to(ROOT).as_posix().removeprefix(rule.get("strip", ""))
            destination = f"{rule['dest'].rstrip('/')}/{relative}"
            # The synced file's package directory is put in place by this image's stages.
            package = "/app/libs/herald/" if relative.startswith("libs/") else f"/app/services/{target}/"
            assert destination.startswith(package), (target, destination)
            assert re.search(rf"\s{re.escape(package.rstrip('/'))}/?(\s|;|$)", chain, flags=re.M), (target, package)


def test_code_owner_build_argument_is_set_in_dev_only() -> None:
    for artifact in skaffold_config("dev")["build"]["artifacts"]:
        assert artifact["docker"]["buildArgs"]["CODE_OWNER"] == "10001:10001", artifact["image"]
    for artifact in skaffold_config("prod")["build"]["artifacts"]:
        assert "CODE_OWNER" not in artifact["docker"].get("buildArgs", {}), artifact["image"]


def test_application_code_is_root_owned_unless_the_build_argument_says_otherwise() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG CODE_OWNER=0:0$", text, flags=re.M)
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    code_copies = 0
    for stage in stages:
        if stage.split()[2] in {"builder", "sources"}:
            continue
        copies = re.findall(r"^COPY --from=sources .*$", stage, flags=re.M)
        for copy in copies:
            assert copy.startswith("COPY --from=sources --chown=${CODE_OWNER} "), copy
        if "${CODE_OWNER}" in stage:
            assert re.search(r"^ARG CODE_OWNER$", stage, flags=re.M), stage.split()[2]
        code_copies += len(copies)
    assert code_copies >= 10
