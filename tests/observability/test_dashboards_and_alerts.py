"""Every metric used by a dashboard panel or an alert rule is one the code exports, and every
expression and rule passes a PromQL parser (the Prometheus parser's Rust port) and the checks
`promtool check rules` makes on a rules file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry, Metric, generate_latest
from sqlalchemy import text

from herald.jobs.registry import JOBS
from herald.observability import metrics
from herald.observability.collectors import ContactsCollector, JobsCollector, QueueStateCollector

CHART = Path(__file__).resolve().parents[2] / "charts" / "herald"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
ALERTS = CHART / "files" / "alerts.yaml"
EXPECTED_DASHBOARDS = {
    "herald-overview",
    "herald-messaging",
    "herald-queues",
    "herald-webhooks",
    "herald-automations-jobs",
}
# Series Prometheus itself adds to every scrape.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Grafana replaces these before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_RULE_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _sample_names(family: Metric) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
    }.get(family.type, ("",))
    return {family.name + suffix for suffix in suffixes} | {sample.name for sample in family.samples}


@pytest.fixture
def exported(redis_client: redis.Redis, database_url: str) -> Iterator[set[str]]:
    """Names of every series the code exports: the registry plus the scrape-time collectors,
    which run against the real Redis and PostgreSQL (a job success is recorded so the job
    collector exports its timestamp too)."""
    from herald import db

    with db.sync_engine().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO logs (level, source, event, message, entity_type, entity_id, data)"
                " VALUES ('info', 'scheduler', 'job.succeeded', 'ok', 'job', :job, '{}'::jsonb)"
            ),
            {"job": JOBS[0].name},
        )
    registry = CollectorRegistry()
    for collector in (
        QueueStateCollector(redis_client, ["messages", "automation", "analytics"]),
        ContactsCollector(),
        JobsCollector(),
    ):
        registry.register(collector)
    names: set[str] = set()
    for family in [*metrics.REGISTRY.collect(), *registry.collect()]:
        names |= _sample_names(family)
    assert generate_latest(registry)  # the collectors render
    yield names


def _dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return found


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _expand(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(_expand(expr)), visit)
    return names


def test_the_five_dashboards_exist_with_unique_uids() -> None:
    assert {path.stem for path in DASHBOARDS} == EXPECTED_DASHBOARDS
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_every_dashboard_panel_has_a_parsable_query() -> None:
    expressions = _dashboard_expressions()
    assert len(expressions) >= 5 * 8
    for where, expr in expressions:
        try:
            promql_parser.parse(_expand(expr))
        except Exception as exc:
            pytest.fail(f"{where}: {expr!r} does not parse: {exc}")


def test_every_metric_in_dashboards_is_exported(exported: set[str]) -> None:
    missing = {
        (where, name)
        for where, expr in _dashboard_expressions()
        for name in _metric_names(expr)
        if name not in exported | SYNTHETIC
    }
    assert not missing


def test_every_metric_in_alert_rules_is_exported(exported: set[str]) -> None:
    missing = {
        (rule["alert"], name)
        for rule in _rules()
        for name in _metric_names(rule["expr"])
        if name not in exported | SYNTHETIC
    }
    assert not missing


def test_alert_rules_pass_rules_file_checks() -> None:
    # What `promtool check rules` verifies: structure, names, durations, expressions, labels.
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    group_names = [group["name"] for group in document["groups"]]
    assert len(set(group_names)) == len(group_names)
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "labels"}
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            allowed = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert set(rule) <= allowed, rule
            assert _RULE_NAME.match(rule["alert"]), rule["alert"]
            promql_parser.parse(rule["expr"])
            if "for" in rule:
                promql_parser.parse_duration(rule["for"])
            for key, value in {**rule.get("labels", {}), **rule.get("annotations", {})}.items():
                assert re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", key), key
                assert isinstance(value, str), (rule["alert"], key)
                assert value.count("{{") == value.count("}}"), (rule["alert"], key)
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]


def test_issue_alerts_are_all_defined() -> None:
    names = {rule["alert"] for rule in _rules()}
    assert {
        "HeraldHighMessageFailureRate",
        "HeraldQueueAgeGrowing",
        "HeraldWebhookSignatureFailures",
        "HeraldJobNotSucceededInWindow",
        "HeraldCloudAPIAuthErrors",
        "HeraldThroughputLimitHits",
    } <= names


def test_a_misspelled_metric_would_be_caught(exported: set[str]) -> None:
    assert "herald_queue_depth" in exported
    assert _metric_names("max by (queue) (herald_queue_dept)") - exported == {"herald_queue_dept"}
