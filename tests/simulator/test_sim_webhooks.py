"""Signed status and message webhooks: shape, signature, order, retries, duplicates, reorder."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from herald.whatsapp import RecipientError, RetryPolicy, error_from_webhook
from tests.fixtures.simulator import SimulatorHandle, wait_until
from tests.fixtures.webhook_receiver import WebhookReceiver

CUSTOMER = "16505551234"
Wired = tuple[SimulatorHandle, WebhookReceiver]


def send_template(sim: SimulatorHandle, to: str = CUSTOMER, **extra: Any) -> str:
    body = {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
        **extra,
    }
    response = sim.http.post(
        f"/{sim.api_version}/{sim.phone_number_id}/messages",
        json=body,
        headers={"Authorization": f"Bearer {sim.token}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["messages"][0]["id"])


def statuses_for(receiver: WebhookReceiver, wamid: str) -> list[dict[str, Any]]:
    return [s for s in receiver.statuses() if s["id"] == wamid]


def test_statuses_arrive_signed_in_order_with_meta_envelope(wired: Wired) -> None:
    sim, receiver = wired
    wamid = send_template(sim, biz_opaque_callback_data="herald:42")
    statuses = wait_until(lambda: len(statuses_for(receiver, wamid)) == 3 and statuses_for(receiver, wamid))
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    for status in statuses:
        assert status["recipient_id"] == CUSTOMER
        assert status["biz_opaque_callback_data"] == "herald:42"
        assert status["timestamp"].isdigit()
    assert statuses[0]["pricing"]["category"] == "utility"
    for post in receiver.posts:
        expected = hmac.new(sim.app_secret.encode(), post.body, hashlib.sha256).hexdigest()
        assert post.headers["x-hub-signature-256"] == f"sha256={expected}"
        envelope = post.json
        assert envelope["object"] == "whatsapp_business_account"
        assert envelope["entry"][0]["id"] == sim.waba_id
        change = envelope["entry"][0]["changes"][0]
        assert change["field"] == "messages"
        assert change["value"]["messaging_product"] == "whatsapp"
        assert change["value"]["metadata"]["phone_number_id"] == sim.phone_number_id


def test_failed_post_is_retried_with_the_same_body(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(read_rate=0.0, webhook_retry_base_ms=50)
    receiver.fail_next(1)
    wamid = send_template(sim)
    wait_until(lambda: {"sent", "delivered"} <= {s["status"] for s in statuses_for(receiver, wamid)})
    assert len(receiver.failed_posts) == 1
    assert receiver.failed_posts[0].body in [post.body for post in receiver.posts]
    webhooks = sim.stats()["webhooks"]
    assert webhooks["failed"] == 1
    assert webhooks["retried"] == 1


def test_not_on_whatsapp_fails_asynchronously_with_131026(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(not_on_whatsapp=["+15550009999"])
    wamid = send_template(sim, to="15550009999")  # accepted with 200, like Meta
    statuses = wait_until(lambda: statuses_for(receiver, wamid))
    assert [s["status"] for s in statuses] == ["failed"]
    error = statuses[0]["errors"][0]
    assert error["code"] == 131026
    assert error["error_data"]["details"]
    typed = error_from_webhook(error)
    assert isinstance(typed, RecipientError)
    assert typed.retry_policy is RetryPolicy.PERMANENT


def test_window_can_fail_asynchronously_with_131047(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(window_error_mode="async")
    response = sim.http.post(
        f"/{sim.api_version}/{sim.phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "hi"}},
        headers={"Authorization": f"Bearer {sim.token}"},
    )
    assert response.status_code == 200
    wamid = response.json()["messages"][0]["id"]
    statuses = wait_until(lambda: statuses_for(receiver, wamid))
    assert statuses[0]["status"] == "failed"
    assert statuses[0]["errors"][0]["code"] == 131047


def test_unknown_media_id_fails_asynchronously_with_131053(wired: Wired) -> None:
    sim, receiver = wired
    sim.inbound(CUSTOMER)
    response = sim.http.post(
        f"/{sim.api_version}/{sim.phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image", "image": {"id": "404404"}},
        headers={"Authorization": f"Bearer {sim.token}"},
    )
    wamid = response.json()["messages"][0]["id"]
    statuses = wait_until(lambda: statuses_for(receiver, wamid))
    assert statuses[0]["errors"][0]["code"] == 131053


def test_inbound_message_webhook_opens_the_window(wired: Wired) -> None:
    sim, receiver = wired
    sent = sim.inbound(
        CUSTOMER, "button_reply", reply_id="slot_yes", text="Yes", context_message_id="wamid.abc"
    )
    message = wait_until(lambda: receiver.messages())[0]
    assert message["id"] == sent["wamid"]
    assert message["from"] == CUSTOMER
    assert message["type"] == "interactive"
    assert message["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "slot_yes", "title": "Yes"},
    }
    assert message["context"]["id"] == "wamid.abc"
    value = receiver.posts[0].values()[0]
    assert value["contacts"][0]["wa_id"] == CUSTOMER
    response = sim.http.post(
        f"/{sim.api_version}/{sim.phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "thanks"}},
        headers={"Authorization": f"Bearer {sim.token}"},
    )
    assert response.status_code == 200


def test_every_inbound_kind_has_meta_shape(simulator: SimulatorHandle) -> None:
    shapes = {
        "text": {"type": "text", "text": {"body": "hello"}},
        "list_reply": {
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "hello"}},
        },
        "button": {"type": "button", "button": {"payload": "r1", "text": "hello"}},
        "reaction": {"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "❤"}},
    }
    for kind, expected in shapes.items():
        sent = simulator.inbound(CUSTOMER, kind, text="hello", reply_id="r1", message_id="wamid.x", emoji="❤")
        message = sent["value"]["messages"][0]
        assert {k: message[k] for k in expected} == expected, kind


def test_duplicate_mode_sends_each_status_twice(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(duplicate_rate=1.0)
    wamid = send_template(sim)
    statuses = wait_until(lambda: len(statuses_for(receiver, wamid)) == 6 and statuses_for(receiver, wamid))
    assert sorted(s["status"] for s in statuses) == ["delivered", "delivered", "read", "read", "sent", "sent"]
    assert sim.stats()["webhooks"]["statuses_duplicated"] == 3


def test_reorder_mode_reverses_arrival_but_not_timestamps(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(reorder_rate=1.0, sent_delay_ms=0, delivered_delay_ms=400, read_delay_ms=800)
    wamid = send_template(sim)
    statuses = wait_until(lambda: len(statuses_for(receiver, wamid)) == 3 and statuses_for(receiver, wamid))
    assert [s["status"] for s in statuses] == ["read", "delivered", "sent"]


def test_statuses_are_batched_per_post(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(webhook_batch_max=4, webhook_batch_interval_ms=300, read_rate=0.0)
    wamids = [send_template(sim, to=f"1650555{i:04d}") for i in range(10)]
    wait_until(lambda: len(receiver.statuses()) == 20)
    per_post = [len(value.get("statuses", ())) for post in receiver.posts for value in post.values()]
    assert max(per_post) > 1
    assert max(per_post) <= 4
    assert {s["id"] for s in receiver.statuses()} == set(wamids)


def test_failure_rate_produces_failed_statuses(wired: Wired) -> None:
    sim, receiver = wired
    sim.configure(status_failure_rate=1.0, status_failure_code=131000)
    wamid = send_template(sim)
    statuses = wait_until(lambda: statuses_for(receiver, wamid))
    assert statuses[0]["status"] == "failed"
    assert error_from_webhook(statuses[0]["errors"][0]).retry_policy is RetryPolicy.RETRY


def test_template_status_change_sends_webhook_and_blocks_sends(wired: Wired) -> None:
    sim, receiver = wired
    template = next(t for t in sim.http.get("/_sim/templates").json()["data"] if t["name"] == "hello_world")
    sim.set_template_status(template["id"], "PAUSED")
    post = wait_until(lambda: receiver.posts)[0]
    value = post.values("message_template_status_update")[0]
    assert value["event"] == "PAUSED"
    assert value["message_template_name"] == "hello_world"
    assert "time" in post.json["entry"][0]
    response = sim.http.post(
        f"/{sim.api_version}/{sim.phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
              "template": {"name": "hello_world", "language": {"code": "en_US"}}},
        headers={"Authorization": f"Bearer {sim.token}"},
    )  # fmt: skip
    assert response.json()["error"]["code"] == 132015
