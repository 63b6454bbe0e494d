"""The automation API over HTTP: validation with field names, CRUD with an audit trail, previews,
test sends, manual runs, run history and performance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from herald import clock
from tests.automation.factories import birthday_definition, fetch, make_contact, make_template
from tests.fixtures.auth import TestUser

pytestmark = pytest.mark.usefixtures("dispose_engines")

BASE = "/api/v1/automations"


async def _create(
    client: httpx.AsyncClient, user: TestUser, definition: dict[str, Any], **fields: Any
) -> httpx.Response:
    body = {"name": fields.pop("name", "Birthday greetings"), "definition": definition, **fields}
    return await client.post(BASE, json=body, headers=user.headers)


async def _manual_automation(client: httpx.AsyncClient, user: TestUser, database_url: str) -> dict[str, Any]:
    make_template(database_url)
    definition = birthday_definition()
    definition["trigger"] = {"type": "manual"}
    return dict((await _create(client, user, definition, enabled=True)).json())


async def test_create_stores_the_definition_and_logs_who_did_it(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    response = await _create(client, operator, birthday_definition(), enabled=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["trigger_type"] == "birthday" and body["version"] == 1 and body["enabled"] is True
    assert body["created_by"] == str(operator.id)
    assert body["webhook_secret"]
    logs = fetch(database_url, "SELECT event, user_id, entity_id FROM logs WHERE source = 'automation'")
    assert logs == [("automation.created", operator.id, body["id"])]


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"trigger": {"type": "full_moon"}, "actions": [{"type": "stop"}]}, "definition.trigger.type"),
        (
            {"trigger": {"type": "schedule", "cron": "0 25 * * *"}, "actions": [{"type": "stop"}]},
            "definition.trigger.cron",
        ),
        (
            {
                "trigger": {"type": "inbound_keyword", "match": "regex", "pattern": "([a-z"},
                "actions": [{"type": "stop"}],
            },
            "definition.trigger.pattern",
        ),
        (
            {
                "trigger": {"type": "birthday"},
                "actions": [{"type": "add_tag", "tag": "x"}, {"type": "wait", "hours": -1}],
            },
            "definition.actions.1.hours",
        ),
        (
            {
                "trigger": {"type": "birthday"},
                "actions": [{"type": "send_template", "template": "nope", "language": "en_US"}],
            },
            "definition.actions.0.template",
        ),
        (
            {"trigger": {"type": "birthday"}, "actions": [{"type": "webhook", "url": "ftp://example.com/hook"}]},
            "definition.actions.0.url",
        ),
        (
            {"trigger": {"type": "birthday"}, "actions": [{"type": "webhook", "url": "http://10.1.2.3/hook"}]},
            "definition.actions.0.url",
        ),
        (
            {
                "trigger": {"type": "birthday"},
                "actions": [{"type": "send_template", "template": "happy_birthday", "language": "en_US", "body": []}],
            },
            "definition.actions.0.body",
        ),
        ({"trigger": {"type": "birthday"}, "actions": []}, "definition.actions"),
    ],
    ids=[
        "unknown-trigger",
        "bad-cron",
        "regex-does-not-compile",
        "negative-wait",
        "missing-template",
        "webhook-scheme",
        "webhook-private-address",
        "template-parameter-count",
        "no-actions",
    ],
)
async def test_invalid_definition_is_a_422_naming_the_field(
    client: httpx.AsyncClient, operator: TestUser, database_url: str, definition: dict[str, Any], field: str
) -> None:
    make_template(database_url)
    response = await _create(client, operator, definition)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]]
    assert fetch(database_url, "SELECT count(*) FROM automations")[0][0] == 0


async def test_viewer_cannot_create(client: httpx.AsyncClient, viewer: TestUser, database_url: str) -> None:
    make_template(database_url)
    assert (await _create(client, viewer, birthday_definition())).status_code == 403


async def test_edit_bumps_the_version_and_stale_edits_conflict(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    created = (await _create(client, operator, birthday_definition())).json()
    url = f"{BASE}/{created['id']}"
    edited = await client.patch(
        url, json={"definition": birthday_definition(hour=10), "expected_version": 1}, headers=operator.headers
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    assert edited.json()["definition"]["trigger"]["hour"] == 10
    stale = await client.patch(url, json={"name": "again", "expected_version": 1}, headers=operator.headers)
    assert stale.status_code == 409
    events = [row[0] for row in fetch(database_url, "SELECT event FROM logs ORDER BY id")]
    assert events == ["automation.created", "automation.updated"]


async def test_enable_disable_and_delete_are_logged(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    created = (await _create(client, operator, birthday_definition())).json()
    url = f"{BASE}/{created['id']}"
    assert (await client.post(f"{url}/enable", headers=operator.headers)).json()["enabled"] is True
    assert (await client.post(f"{url}/disable", headers=operator.headers)).json()["enabled"] is False
    assert (await client.delete(url, headers=operator.headers)).status_code == 204
    assert (await client.get(url, headers=operator.headers)).status_code == 404
    rows = fetch(database_url, "SELECT event, user_id FROM logs ORDER BY id")
    assert [r[0] for r in rows] == [
        "automation.created",
        "automation.enabled",
        "automation.disabled",
        "automation.deleted",
    ]
    assert {r[1] for r in rows} == {operator.id}


async def test_enable_refuses_when_the_template_disappeared(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    created = (await _create(client, operator, birthday_definition())).json()
    fetch(database_url, "UPDATE message_templates SET status = 'DELETED' RETURNING id")
    response = await client.post(f"{BASE}/{created['id']}/enable", headers=operator.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "definition.actions.0.template"


async def test_preview_counts_birthdays_on_the_date_with_a_sample(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    created = (await _create(client, operator, birthday_definition(conditions=[{"type": "opted_in"}]))).json()
    make_contact(database_url, birthday=(5, 1), name="Due One")
    make_contact(database_url, birthday=(5, 1), name="Opted Out", opted_out=True)
    make_contact(database_url, birthday=(5, 2))
    response = await client.get(
        f"{BASE}/{created['id']}/preview", params={"date": "2026-05-01"}, headers=operator.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 1
    assert [c["name"] for c in response.json()["sample"]] == ["Due One"]


async def test_test_send_queues_the_message_outside_the_automation_stats(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    created = (await _create(client, operator, birthday_definition())).json()
    contact = make_contact(database_url, name="Grace Hopper")
    response = await client.post(
        f"{BASE}/{created['id']}/test-send", json={"contact_id": str(contact)}, headers=operator.headers
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["status"] == "sent"
    rows = fetch(
        database_url, "SELECT text, automation_id FROM messages WHERE id = %s", uuid.UUID(result["message_id"])
    )
    assert rows == [("Happy birthday, Grace!", None)]


async def test_manual_run_for_one_contact_is_idempotent_per_request_id(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    created = await _manual_automation(client, operator, database_url)
    contact = make_contact(database_url)
    body = {"contact_id": str(contact), "request_id": "campaign-7"}
    first = await client.post(f"{BASE}/{created['id']}/run", json=body, headers=operator.headers)
    again = await client.post(f"{BASE}/{created['id']}/run", json=body, headers=operator.headers)
    assert first.status_code == 202 and first.json()["runs_created"] == 1
    assert again.json()["runs_created"] == 0
    assert fetch(database_url, "SELECT trigger_key FROM automation_runs") == [("manual:campaign-7",)]


async def test_manual_run_for_a_segment_starts_one_run_per_matching_contact(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    created = await _manual_automation(client, operator, database_url)
    for _ in range(3):
        make_contact(database_url, tags=["vip"])
    make_contact(database_url, tags=["lead"])
    response = await client.post(
        f"{BASE}/{created['id']}/run",
        json={"segment": [{"type": "has_tags", "tags": ["vip"]}]},
        headers=operator.headers,
    )
    assert response.json()["runs_created"] == 3
    bad = await client.post(
        f"{BASE}/{created['id']}/run", json={"segment": [{"type": "has_tags", "tags": []}]}, headers=operator.headers
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "segment.0.tags"


async def test_runs_list_filters_and_detail_shows_steps(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    created = await _manual_automation(client, operator, database_url)
    first, second = make_contact(database_url), make_contact(database_url)
    for contact in (first, second):
        await client.post(f"{BASE}/{created['id']}/run", json={"contact_id": str(contact)}, headers=operator.headers)
    listed = await client.get(
        "/api/v1/automation-runs",
        params={"automation_id": created["id"], "contact_id": str(first)},
        headers=operator.headers,
    )
    assert listed.status_code == 200 and listed.json()["count"] == 1
    run = listed.json()["data"][0]
    detail = await client.get(f"/api/v1/automation-runs/{run['id']}", headers=operator.headers)
    assert detail.json()["definition"]["trigger"] == {"type": "manual", "segment": []}
    assert detail.json()["status"] == "pending" and detail.json()["steps"] == []
    pending = await client.get("/api/v1/automation-runs", params={"status": "completed"}, headers=operator.headers)
    assert pending.json()["count"] == 0


async def test_performance_counts_sends_deliveries_replies_and_opt_outs(
    client: httpx.AsyncClient, operator: TestUser, database_url: str
) -> None:
    make_template(database_url)
    created = (await _create(client, operator, birthday_definition())).json()
    automation_id = uuid.UUID(created["id"])
    sent_at = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    outcomes = [("read", True, False), ("delivered", False, True), ("sent", False, False), ("failed", False, False)]
    for status, replies, opts_out in outcomes:
        contact = make_contact(database_url)
        run_id = uuid.uuid4()
        fetch(
            database_url,
            "INSERT INTO automation_runs (id, automation_id, contact_id, trigger_key, status, definition, trigger, steps, definition_version, current_step,"
            " created_at, updated_at) VALUES (%s, %s, %s, 'birthday:2026', 'completed', '{}', '{}', '[]', 1, 0, %s, %s) RETURNING id",
            run_id, automation_id, contact, sent_at, sent_at,
        )  # fmt: skip
        fetch(
            database_url,
            "INSERT INTO messages (id, contact_id, direction, type, category, status, body, automation_id,"
            " automation_run_id, attempts, sent_at, delivered_at, read_at, created_at, updated_at)"
            " VALUES (%s, %s, 'outbound', 'template', 'marketing', %s, '{}', %s, %s, 1, %s, %s, %s, %s, %s) RETURNING id",
            uuid.uuid4(), contact, status, automation_id, run_id,
            sent_at if status != "failed" else None,
            sent_at if status in ("delivered", "read") else None,
            sent_at if status == "read" else None,
            sent_at, sent_at,
        )  # fmt: skip
        if replies:
            fetch(
                database_url,
                "INSERT INTO messages (id, contact_id, direction, type, category, status, body, attempts, created_at, updated_at)"
                " VALUES (%s, %s, 'inbound', 'text', 'service', 'received', '{}', 0, %s, %s) RETURNING id",
                uuid.uuid4(), contact, sent_at + timedelta(hours=2), sent_at + timedelta(hours=2),
            )  # fmt: skip
        if opts_out:
            fetch(
                database_url,
                "UPDATE contacts SET opt_in_status = 'opted_out', opted_out_at = %s WHERE id = %s RETURNING id",
                sent_at + timedelta(days=1), contact,
            )  # fmt: skip
    response = await client.get(
        f"{BASE}/{automation_id}/performance",
        params={"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z", "reply_window_hours": 24},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    numbers = response.json()
    assert (numbers["triggered"], numbers["sent"], numbers["delivered"], numbers["read"]) == (4, 3, 2, 1)
    assert (numbers["replied"], numbers["failed"], numbers["opted_out_after"]) == (1, 1, 1)
    assert numbers["rates"]["delivered"] == round(2 / 3, 4)
    assert numbers["from"].startswith("2026-05-01")


async def test_unknown_automation_is_404(client: httpx.AsyncClient, viewer: TestUser) -> None:
    clock.set_now(None)
    response = await client.get(f"{BASE}/{uuid.uuid4()}", headers=viewer.headers)
    assert response.status_code == 404 and response.json()["code"] == "automation_not_found"
