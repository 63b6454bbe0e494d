"""Runs on a real worker: keyword triggers, waits across restarts, quiet hours, skips, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald import clock, queue
from herald.contacts_events import emit_contact_event
from herald.contracts import INBOUND_MESSAGE, MESSAGE_STATUS, InboundMessageEvent, MessageStatusEvent
from herald.settings import get_settings
from services.automation.tick import resume_due_waits
from services.automation.webhooks import webhook_secret
from tests.automation.conftest import AutomationWorker
from tests.automation.factories import (
    WELCOME_TEMPLATE,
    birthday_definition,
    fetch,
    make_automation,
    make_contact,
    make_template,
)
from tests.fixtures.simulator import wait_until
from tests.fixtures.webhook_receiver import WebhookReceiver

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def _run(database_url: str, automation_id: uuid.UUID) -> dict[str, Any] | None:
    rows = fetch(
        database_url,
        "SELECT id, status, steps, resume_at, current_step, trigger_key FROM automation_runs WHERE automation_id = %s",
        automation_id,
    )
    if not rows:
        return None
    run_id, status, steps, resume_at, current_step, key = rows[0]
    return {"id": run_id, "status": status, "steps": steps, "resume_at": resume_at, "step": current_step, "key": key}


def _status_is(database_url: str, automation_id: uuid.UUID, *statuses: str) -> dict[str, Any] | None:
    run = _run(database_url, automation_id)
    return run if run is not None and run["status"] in statuses else None


def _messages_for(database_url: str, contact_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return fetch(
        database_url, "SELECT id, type, text, automation_run_id FROM messages WHERE contact_id = %s", contact_id
    )


def _inbound(contact_id: uuid.UUID, text: str, message_id: uuid.UUID | None = None) -> uuid.UUID:
    message_id = message_id or uuid.uuid4()
    queue.enqueue(
        INBOUND_MESSAGE,
        InboundMessageEvent(
            message_id=message_id, contact_id=contact_id, text=text, message_type="text", received_at=clock.utcnow()
        ),
    )
    return message_id


def _keyword_automation(database_url: str, **trigger: Any) -> uuid.UUID:
    make_template(database_url, "welcome", components=WELCOME_TEMPLATE)
    return make_automation(
        database_url,
        {
            "trigger": {"type": "inbound_keyword", **trigger},
            "actions": [
                {"type": "send_template", "template": "welcome", "language": "en_US", "body": [{"field": "first_name"}]}
            ],
        },
    )


def test_keyword_reply_triggers_its_automation(database_url: str, automation_worker: AutomationWorker) -> None:
    clock.set_now(NOW)
    automation_id = _keyword_automation(database_url, match="exact", keywords=["promoção"])
    contact = make_contact(database_url, name="Joana Silva")
    message_id = _inbound(contact, "  PROMOCAO ")
    run = wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    assert run["key"] == f"inbound:{message_id}"
    messages = _messages_for(database_url, contact)
    assert [(m[1], m[2]) for m in messages] == [("template", "Welcome Joana, thanks for writing.")]
    assert run["steps"][-1]["message_id"] == str(messages[0][0])


def test_keyword_that_does_not_match_starts_nothing(database_url: str, automation_worker: AutomationWorker) -> None:
    clock.set_now(NOW)
    automation_id = _keyword_automation(database_url, match="regex", pattern=r"^order\s+\d+$")
    contact = make_contact(database_url)
    _inbound(contact, "where is my order?")
    _inbound(contact, "Order 42")
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    queue.get_broker().join("automation", timeout=20_000)
    assert fetch(database_url, "SELECT count(*) FROM automation_runs")[0][0] == 1


def test_redelivered_inbound_event_starts_one_run(database_url: str, automation_worker: AutomationWorker) -> None:
    clock.set_now(NOW)
    automation_id = _keyword_automation(database_url, match="contains", keywords=["help"])
    contact = make_contact(database_url)
    message_id = uuid.uuid4()
    for _ in range(3):
        _inbound(contact, "I need HELP please", message_id)
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    queue.get_broker().join("automation", timeout=20_000)
    assert fetch(database_url, "SELECT count(*) FROM automation_runs")[0][0] == 1
    assert len(_messages_for(database_url, contact)) == 1


def test_tag_added_event_triggers_matching_automation(database_url: str, automation_worker: AutomationWorker) -> None:
    automation_id = make_automation(
        database_url,
        {
            "trigger": {"type": "tag_added", "tag": "vip"},
            "actions": [{"type": "set_attribute", "attribute": "tier", "value": "gold"}],
        },
    )
    contact = make_contact(database_url, tags=["vip"])
    emit_contact_event("tag_added", contact, {"tag": "other"})
    emit_contact_event("tag_added", contact, {"tag": "vip"})
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    queue.get_broker().join("automation", timeout=20_000)
    assert fetch(database_url, "SELECT attributes FROM contacts WHERE id = %s", contact)[0][0] == {"tier": "gold"}
    assert fetch(database_url, "SELECT count(*) FROM automation_runs")[0][0] == 1


def _wait_definition(**wait: Any) -> dict[str, Any]:
    return {
        "trigger": {"type": "contact_created"},
        "actions": [
            {"type": "add_tag", "tag": "welcomed"},
            {"type": "wait", **wait},
            {"type": "add_tag", "tag": "followed-up"},
        ],
    }


def _tags(database_url: str, contact_id: uuid.UUID) -> list[str]:
    return list(fetch(database_url, "SELECT tags FROM contacts WHERE id = %s", contact_id)[0][0])


def test_wait_step_resumes_after_the_delay(database_url: str, automation_worker: AutomationWorker) -> None:
    automation_id = make_automation(database_url, _wait_definition(seconds=2))
    contact = make_contact(database_url)
    emit_contact_event("created", contact)
    waiting = wait_until(lambda: _status_is(database_url, automation_id, "waiting"), timeout=20)
    assert _tags(database_url, contact) == ["welcomed"] and waiting["resume_at"] is not None
    # The delayed Dramatiq message alone brings it back.
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=30)
    assert _tags(database_url, contact) == ["welcomed", "followed-up"]


def test_wait_step_resumes_after_a_worker_restart(database_url: str, automation_worker: AutomationWorker) -> None:
    clock.set_now(NOW)
    automation_id = make_automation(database_url, _wait_definition(hours=1))
    contact = make_contact(database_url)
    emit_contact_event("created", contact)
    waiting = wait_until(lambda: _status_is(database_url, automation_id, "waiting"), timeout=20)
    assert waiting["resume_at"] == NOW + timedelta(hours=1)
    automation_worker.restart()
    # Half-way: the sweep leaves it alone.
    clock.set_now(NOW + timedelta(minutes=30))
    assert resume_due_waits().enqueued == 0
    clock.set_now(NOW + timedelta(hours=1, minutes=2))
    assert resume_due_waits().enqueued == 1
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    assert _tags(database_url, contact) == ["welcomed", "followed-up"]


def test_quiet_hours_defer_a_send_until_the_window_opens(
    database_url: str, automation_worker: AutomationWorker
) -> None:
    make_template(database_url)
    definition = birthday_definition(conditions=[{"type": "quiet_hours", "start": "21:00", "end": "08:00"}])
    definition["trigger"] = {"type": "contact_created"}
    automation_id = make_automation(database_url, definition)
    contact = make_contact(database_url, timezone="Europe/Lisbon")
    clock.set_now(datetime(2026, 6, 10, 22, 30, tzinfo=UTC))  # 23:30 in Lisbon
    emit_contact_event("created", contact)
    deferred = wait_until(lambda: _status_is(database_url, automation_id, "waiting"), timeout=20)
    assert deferred["resume_at"] == datetime(2026, 6, 11, 7, 0, tzinfo=UTC)  # 08:00 in Lisbon
    assert deferred["steps"][-1]["status"] == "deferred" and deferred["steps"][-1]["reason"] == "quiet_hours"
    assert _messages_for(database_url, contact) == []
    clock.set_now(datetime(2026, 6, 11, 7, 5, tzinfo=UTC))
    resume_due_waits()
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    assert len(_messages_for(database_url, contact)) == 1


def test_opted_out_contact_is_skipped_and_the_skip_is_logged(
    database_url: str, automation_worker: AutomationWorker
) -> None:
    make_template(database_url)  # a MARKETING template
    definition = birthday_definition()
    definition["trigger"] = {"type": "contact_created"}
    automation_id = make_automation(database_url, definition)
    contact = make_contact(database_url, opted_out=True)
    emit_contact_event("created", contact)
    run = wait_until(lambda: _status_is(database_url, automation_id, "skipped"), timeout=20)
    assert run["steps"][-1]["status"] == "skipped"
    assert run["steps"][-1]["reason"] == "contact_opted_out"
    assert _messages_for(database_url, contact) == []


def test_failing_condition_skips_the_run_with_the_condition_logged(
    database_url: str, automation_worker: AutomationWorker
) -> None:
    make_template(database_url)
    definition = birthday_definition(conditions=[{"type": "has_tags", "tags": ["customer"]}])
    definition["trigger"] = {"type": "contact_created"}
    automation_id = make_automation(database_url, definition)
    contact = make_contact(database_url, tags=["lead"])
    emit_contact_event("created", contact)
    run = wait_until(lambda: _status_is(database_url, automation_id, "skipped"), timeout=20)
    assert run["steps"][0]["reason"] == "condition_false"
    assert run["steps"][0]["conditions"] == [{"type": "has_tags", "tags": ["customer"]}]


def test_text_outside_the_window_is_skipped_as_window_closed(
    database_url: str, automation_worker: AutomationWorker
) -> None:
    automation_id = make_automation(
        database_url,
        {"trigger": {"type": "contact_created"}, "actions": [{"type": "send_text", "text": "Hi {{first_name}}"}]},
    )
    contact = make_contact(database_url, last_inbound_at=datetime.now(UTC) - timedelta(hours=30))
    emit_contact_event("created", contact)
    run = wait_until(lambda: _status_is(database_url, automation_id, "skipped"), timeout=20)
    assert run["steps"][-1]["reason"] == "window_closed"


def test_edit_does_not_disturb_a_run_in_flight(database_url: str, automation_worker: AutomationWorker) -> None:
    clock.set_now(NOW)
    automation_id = make_automation(database_url, _wait_definition(hours=1))
    contact = make_contact(database_url)
    emit_contact_event("created", contact)
    wait_until(lambda: _status_is(database_url, automation_id, "waiting"), timeout=20)
    fetch(
        database_url,
        "UPDATE automations SET definition = jsonb_set(definition, '{actions,2,tag}', '\"changed\"'), version = 2"
        " WHERE id = %s RETURNING id",
        automation_id,
    )
    clock.set_now(NOW + timedelta(hours=2))
    resume_due_waits()
    wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    assert _tags(database_url, contact) == ["welcomed", "followed-up"]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HERALD_AUTOMATION_WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    server = WebhookReceiver().start()
    yield server
    server.stop()
    get_settings.cache_clear()


def test_webhook_action_posts_a_signed_body_and_retries(
    database_url: str, automation_worker: AutomationWorker, receiver: WebhookReceiver
) -> None:
    automation_id = make_automation(
        database_url,
        {
            "trigger": {"type": "contact_created"},
            "actions": [{"type": "webhook", "url": receiver.url, "retries": 2, "timeout_seconds": 5}],
        },
    )
    contact = make_contact(database_url)
    receiver.fail_next(1)
    emit_contact_event("created", contact)
    run = wait_until(lambda: _status_is(database_url, automation_id, "completed", "failed"), timeout=30)
    assert run["status"] == "completed"
    assert run["steps"][-1]["attempts"] == 2
    post = receiver.posts[0]
    assert post.json["contact"]["id"] == str(contact)
    expected = hmac.new(
        webhook_secret(automation_id).encode(),
        post.headers["x-herald-timestamp"].encode() + b"." + post.body,
        hashlib.sha256,
    ).hexdigest()
    assert post.headers["x-herald-signature"] == f"sha256={expected}"
    assert post.headers["x-herald-delivery"] == f"{run['id']}:0"


def test_webhook_to_a_private_address_is_refused_at_call_time(
    database_url: str, automation_worker: AutomationWorker, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    automation_id = make_automation(
        database_url,
        {"trigger": {"type": "contact_created"}, "actions": [{"type": "webhook", "url": receiver.url}]},
    )
    monkeypatch.setenv("HERALD_AUTOMATION_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    emit_contact_event("created", make_contact(database_url))
    run = wait_until(lambda: _status_is(database_url, automation_id, "failed"), timeout=20)
    assert run["steps"][-1]["reason"] == "address_refused"
    assert receiver.posts == []


def test_message_status_is_noted_on_the_step_and_never_starts_a_run(
    database_url: str, automation_worker: AutomationWorker
) -> None:
    clock.set_now(NOW)
    automation_id = _keyword_automation(database_url, match="exact", keywords=["hi"])
    contact = make_contact(database_url)
    _inbound(contact, "hi")
    run = wait_until(lambda: _status_is(database_url, automation_id, "completed"), timeout=20)
    message_id = uuid.UUID(run["steps"][-1]["message_id"])
    for status in ("delivered", "sent", "read"):  # out of order: the furthest one stays
        queue.enqueue(
            MESSAGE_STATUS,
            MessageStatusEvent(
                message_id=message_id,
                contact_id=contact,
                status=status,
                automation_run_id=run["id"],
                occurred_at=clock.utcnow(),
            ),
        )
    queue.get_broker().join("automation", timeout=20_000)
    wait_until(lambda: _run(database_url, automation_id)["steps"][-1].get("message_status") == "read", timeout=20)
    assert fetch(database_url, "SELECT count(*) FROM automation_runs")[0][0] == 1
