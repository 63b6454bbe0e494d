"""The Helm chart: lint, strict schema validation, and the properties every install relies on."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import tempfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from herald.contracts import Queue
from tests.packaging.conftest import (
    CHART,
    DEV_VALUES,
    KUBERNETES_VERSION,
    PROD_VALUES,
    ROOT,
    by_kind,
    helm,
    render,
)

WORKLOAD_KINDS = {"Deployment", "CronJob", "Job", "Pod"}
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}


def pod_spec(doc: dict) -> dict:
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def is_api(doc: dict) -> bool:
    return doc["kind"] == "Deployment" and "serve" in pod_spec(doc)["containers"][0]["args"]


@pytest.mark.parametrize("values", [DEV_VALUES, PROD_VALUES], ids=["dev", "prod"])
def test_helm_lint_passes_strict(values: Path) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_manifests_validate_strictly(rendered: list[dict]) -> None:
    core = [doc for doc in rendered if doc["kind"] not in CRD_KINDS]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as out:
        yaml.safe_dump_all(core, out)
        out.flush()
        result = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, out.name],
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dev_dependencies_validate_strictly() -> None:
    result = subprocess.run(
        [
            "kubernetes-validate",
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES_VERSION,
            str(ROOT / "k8s-dev" / "dependencies.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("services.contacts.replicas=-1", "/services/contacts/replicas"),
        ("securityContext.readOnlyRootFilesystem=false", "/securityContext/readOnlyRootFilesystem"),
        ("config.environment=prod", "/config/environment"),
        ("jobDefaults.concurrencyPolicy=Sometimes", "/jobDefaults/concurrencyPolicy"),
        ("secrets.secretKey=too-short", "/secrets/secretKey"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("unknownTopLevel=1", "unknownTopLevel"),
    ],
)
def test_wrong_value_fails_through_the_schema(setting: str, message: str) -> None:
    result = helm("template", "herald", str(CHART), "-f", str(DEV_VALUES), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_production_without_secrets_fails_with_a_clear_message() -> None:
    result = helm("template", "herald", str(CHART), check=False)
    assert result.returncode != 0
    assert "secrets.databaseUrl" in result.stderr


def test_every_deployment_has_probes_limits_and_a_hardened_security_context(rendered: list[dict]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert deployments
    for doc in deployments:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            name = f"{doc['metadata']['name']}/{container['name']}"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in container, f"{name} has no {probe}"
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True, name
            # Only the dev values' HTTP services (devReload) take file sync into /app.
            if not (is_api(doc) and "--reload" in container["args"]):
                assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name


def test_api_probes_use_health_and_ready(rendered: list[dict]) -> None:
    for doc in by_kind(rendered, "Deployment"):
        if doc["metadata"]["labels"]["app.kubernetes.io/component"].startswith("worker-"):
            continue
        container = pod_spec(doc)["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_every_workload_is_non_root_with_limits(rendered: list[dict]) -> None:
    for doc in rendered:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            if not (is_api(doc) and "--reload" in container["args"]):
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert "limits" in container["resources"]


def test_one_worker_deployment_per_queue() -> None:
    from herald.contracts import Queue

    docs = render(PROD_VALUES)
    queues = {
        pod_spec(doc)["containers"][0]["args"][1]
        for doc in by_kind(docs, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"].startswith("worker-")
    }
    assert queues == {queue.value for queue in Queue}


def registry_jobs() -> list[dict]:
    registry = importlib.import_module("herald.jobs.registry")
    return [
        {
            "name": job.name,
            "schedule": job.schedule,
            "timezone": job.timezone,
            "deadlineSeconds": job.deadline_seconds,
            "startingDeadlineSeconds": job.starting_deadline_seconds,
            "description": job.description,
        }
        for job in registry.JOBS
    ]


def test_values_jobs_match_the_job_registry() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["jobs"] == registry_jobs()


def test_every_cronjob_matches_the_job_registry(rendered: list[dict]) -> None:
    cronjobs = {doc["metadata"]["labels"]["herald.dev/job"]: doc for doc in by_kind(rendered, "CronJob")}
    jobs = {job["name"]: job for job in registry_jobs()}
    assert set(cronjobs) == set(jobs)
    for name, job in jobs.items():
        spec = cronjobs[name]["spec"]
        assert spec["schedule"] == job["schedule"]
        assert spec["timeZone"] == job["timezone"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] == job["startingDeadlineSeconds"]
        assert spec["successfulJobsHistoryLimit"] >= 1
        assert spec["failedJobsHistoryLimit"] >= 1
        job_spec = spec["jobTemplate"]["spec"]
        assert job_spec["activeDeadlineSeconds"] == job["deadlineSeconds"]
        assert job_spec["template"]["spec"]["containers"][0]["args"] == ["job", name]


def developer_guide_prefixes() -> dict[str, set[str]]:
    """The path prefixes per service from the table in DEVELOPERS.md (the gateway's routes)."""
    prefixes: dict[str, set[str]] = {}
    for line in (ROOT / "DEVELOPERS.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in {"contacts", "messaging", "automation", "webhook"}:
            prefixes[cells[0]] = set(re.findall(r"`(/[^`]+)`", cells[2]))
    return prefixes


def ingress_prefixes(docs: list[dict]) -> dict[str, set[str]]:
    (ingress,) = by_kind(docs, "Ingress")
    routes: dict[str, set[str]] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            service = path["backend"]["service"]["name"].removeprefix("herald-")
            routes.setdefault(service, set()).add(path["path"])
            assert path["pathType"] == "Prefix"
    return routes


def test_ingress_routes_are_the_path_prefixes_make_run_serves(rendered: list[dict]) -> None:
    assert ingress_prefixes(rendered) == developer_guide_prefixes()


def test_ingress_routes_cover_every_service_route() -> None:
    """Each service's own routes fall under the prefixes the Ingress sends to that service."""
    routes = ingress_prefixes(render(PROD_VALUES))
    for service, prefixes in routes.items():
        module = importlib.import_module(f"services.{service}.app")
        app = module.app if hasattr(module, "app") else module.create_app()
        public = {"/health", "/ready", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}
        for route in app.routes:
            path = getattr(route, "path", "")
            if not path or path in public:
                continue
            assert any(path == p or path.startswith(p + "/") for p in prefixes), (service, path)


def test_hpa_targets_exist(rendered: list[dict]) -> None:
    deployments = {doc["metadata"]["name"] for doc in by_kind(rendered, "Deployment")}
    for hpa in by_kind(rendered, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in deployments
    for scaled in by_kind(rendered, "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments


def test_workers_scale_on_cpu_by_default_and_on_queue_length_with_keda() -> None:
    defaults = render(DEV_VALUES, extra=("--set", "workers.messages.autoscaling.enabled=true"))
    assert any(h["metadata"]["name"] == "herald-worker-messages" for h in by_kind(defaults, "HorizontalPodAutoscaler"))
    keda = render(PROD_VALUES)
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in by_kind(keda, "ScaledObject")}
    assert set(scaled) == {"herald-worker-messages", "herald-worker-automation", "herald-worker-analytics"}
    trigger = scaled["herald-worker-messages"]["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    hpa_names = {h["metadata"]["name"] for h in by_kind(keda, "HorizontalPodAutoscaler")}
    assert not hpa_names & set(scaled), "KEDA owns the worker HPAs"


def broker_namespace() -> str:
    # Read from the source: building the broker would replace the process-wide Dramatiq broker.
    source = (ROOT / "libs" / "herald" / "queue.py").read_text()
    (namespace,) = re.findall(r"RedisBroker\([^)]*namespace=\"([^\"]+)\"", source)
    return namespace


def test_keda_watches_the_lists_the_broker_pushes_to() -> None:
    scaled = by_kind(render(PROD_VALUES), "ScaledObject")
    lists = {
        doc["spec"]["scaleTargetRef"]["name"]: doc["spec"]["triggers"][0]["metadata"]["listName"] for doc in scaled
    }
    namespace = broker_namespace()
    assert lists == {f"herald-worker-{queue.value}": f"{namespace}:{queue.value}" for queue in Queue}


def test_secrets_are_never_rendered_into_configmaps(rendered: list[dict]) -> None:
    secret_keys = {
        "DATABASE_URL",
        "REDIS_URL",
        "WHATSAPP_TOKEN",
        "WEBHOOK_VERIFY_TOKEN",
        "WHATSAPP_APP_SECRET",
        "SECRET_KEY",
    }
    dev_values = yaml.safe_load(DEV_VALUES.read_text())["secrets"]
    secret_values = {v for k, v in dev_values.items() if k != "existingSecret" and v}
    for config_map in by_kind(rendered, "ConfigMap"):
        data = config_map.get("data", {})
        assert not secret_keys & set(data), config_map["metadata"]["name"]
        text = yaml.safe_dump(data)
        for value in secret_values:
            assert value not in text, config_map["metadata"]["name"]
    for doc in rendered:
        if doc["kind"] in WORKLOAD_KINDS:
            for container in pod_spec(doc)["containers"]:
                for env in container.get("env", []):
                    assert env["name"] not in secret_keys or "valueFrom" in env, env["name"]


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(rendered: list[dict]) -> None:
    jobs = [doc for doc in by_kind(rendered, "Job") if doc["metadata"]["name"].endswith("-migrate")]
    assert len(jobs) == 1
    annotations = jobs[0]["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert pod_spec(jobs[0])["containers"][0]["args"] == ["migrate"]


def test_existing_secret_and_operator_database_secret_are_referenced() -> None:
    docs = render(PROD_VALUES)
    assert not [d for d in by_kind(docs, "Secret")], "existingSecret: the chart renders no Secret"
    (contacts,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "herald-contacts"]
    container = pod_spec(contacts)["containers"][0]
    assert {"secretRef": {"name": "herald-secrets"}} in container["envFrom"]
    database = next(env for env in container["env"] if env["name"] == "DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"] == {"name": "herald-db-app", "key": "uri"}


def test_network_policies_default_deny_and_select_real_pods(rendered: list[dict]) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    if not policies:
        return
    names = {p["metadata"]["name"] for p in policies}
    assert "herald-default-deny" in names
    labels = [pod_spec(d) and d["spec"]["template"]["metadata"]["labels"] for d in by_kind(rendered, "Deployment")]
    for policy in policies:
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert any(selector.items() <= pod_labels.items() for pod_labels in labels), policy["metadata"]["name"]


def test_pdbs_and_services_select_deployment_pods(rendered: list[dict]) -> None:
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(rendered, "Deployment")]
    for doc in by_kind(rendered, "PodDisruptionBudget"):
        selector = doc["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= pod.items() for pod in labels), doc["metadata"]["name"]
    for doc in by_kind(rendered, "Service"):
        assert any(doc["spec"]["selector"].items() <= pod.items() for pod in labels), doc["metadata"]["name"]


def test_monitoring_resources_render_when_the_crds_exist() -> None:
    docs = render(PROD_VALUES)
    kinds = {doc["kind"] for doc in docs}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds
    (rule,) = by_kind(docs, "PrometheusRule")
    assert all(group["rules"] for group in rule["spec"]["groups"])
    without_crds = helm("template", "herald", str(CHART), "-f", str(PROD_VALUES)).stdout
    assert "kind: ServiceMonitor" not in without_crds


def test_every_dashboard_ships_as_a_sidecar_configmap() -> None:
    dashboards = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    docs = render(PROD_VALUES)
    shipped = sorted(
        key
        for doc in by_kind(docs, "ConfigMap")
        if doc["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key in doc["data"]
    )
    assert shipped == dashboards


def test_helm_test_pod_checks_ready_through_every_service(rendered: list[dict]) -> None:
    (pod,) = by_kind(rendered, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = pod["spec"]["containers"][0]["args"]
    services = {d["metadata"]["name"] for d in by_kind(rendered, "Service")}
    assert urls and all(u.endswith("/ready") for u in urls)
    assert {u.split("//")[1].split(":")[0] for u in urls} == services


def test_readme_lists_every_value() -> None:
    """Every leaf key of values.yaml appears in the chart README's values table."""
    readme = (CHART / "README.md").read_text()

    def leaves(node: object, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node:
            return [leaf for key, value in node.items() for leaf in leaves(value, f"{prefix}{key}.")]
        return [prefix.rstrip(".")]

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [key for key in leaves(values) if f"`{key}`" not in readme]
    assert not missing, f"chart README does not list: {missing}"


# The parts of the PrometheusRule CRD's schema (monitoring.coreos.com/v1) that the rules use;
# no schema for it ships in a package the project can install.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
PROMETHEUS_RULE_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["expr"],
                            "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                            "properties": {
                                "alert": {"type": "string", "minLength": 1},
                                "record": {"type": "string", "minLength": 1},
                                "expr": {"type": "string", "minLength": 1},
                                "for": {"type": "string", "pattern": DURATION},
                                "keep_firing_for": {"type": "string", "pattern": DURATION},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        }
    },
}


def test_prometheus_rule_carries_the_alerts_file_unchanged_and_matches_the_crd_schema() -> None:
    (rule,) = by_kind(render(PROD_VALUES), "PrometheusRule")
    jsonschema.validate(rule["spec"], PROMETHEUS_RULE_SPEC)
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    # Helm must not evaluate the alerts' own {{ $labels }} templates.
    assert rule["spec"]["groups"] == alerts["groups"]
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
            assert alert["annotations"]["summary"], alert["alert"]


def test_every_dashboard_configmap_holds_valid_grafana_json() -> None:
    docs = render(PROD_VALUES)
    for doc in by_kind(docs, "ConfigMap"):
        if doc["metadata"]["labels"].get("grafana_dashboard") != "1":
            continue
        for name, text in doc["data"].items():
            dashboard = json.loads(text)
            assert dashboard == json.loads((CHART / "dashboards" / name).read_text()), name
            assert dashboard["title"] and dashboard["panels"], name


def test_dev_values_serve_with_reload_on_a_writable_root_for_http_services_only() -> None:
    docs = render(DEV_VALUES)
    api = [doc for doc in docs if is_api(doc)]
    assert {doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in api} == {
        "contacts", "messaging", "automation", "webhook", "simulator",
    }  # fmt: skip
    for doc in api:
        (container,) = pod_spec(doc)["containers"]
        assert container["args"][-1] == "--reload", doc["metadata"]["name"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is False, doc["metadata"]["name"]
    others = [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS and not is_api(doc)]
    assert others
    for doc in others:
        for container in pod_spec(doc)["containers"]:
            assert "--reload" not in container.get("args", []), doc["metadata"]["name"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, doc["metadata"]["name"]


def test_prod_values_serve_without_reload_on_a_read_only_root() -> None:
    docs = render(PROD_VALUES)
    assert any(is_api(doc) for doc in docs)
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            for container in pod_spec(doc)["containers"]:
                assert "--reload" not in container.get("args", []), doc["metadata"]["name"]
                assert container["securityContext"]["readOnlyRootFilesystem"] is True, doc["metadata"]["name"]


def test_dev_reload_is_refused_in_production() -> None:
    result = helm("template", "herald", str(CHART), "-f", str(PROD_VALUES), "--set", "devReload=true", check=False)
    assert result.returncode != 0
    assert "devReload" in result.stderr
