"""Real-shaped Meta webhook bodies: the reference files in payloads/ with our ids swapped in,
plus the kinds the reference only describes (built from the shapes in the Cloud API fact sheet)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from herald.webhooks import sign_body
from tests.conftest import APP_SECRET_FOR_TESTS

HERE = Path(__file__).parent / "payloads"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550001111"


@cache
def _reference(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text())


def reference(name: str) -> dict[str, Any]:
    return copy.deepcopy(_reference(name))


def _value(body: dict[str, Any]) -> dict[str, Any]:
    return body["entry"][0]["changes"][0]["value"]


def status(wamid: str, name: str, timestamp: int, *, wa_id: str = "14155550100", **extra: Any) -> dict[str, Any]:
    """status_<name>.json for our message: same envelope, our wamid, time and recipient."""
    body = reference(f"status_{name}")
    value = _value(body)
    value["metadata"] = {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    value["contacts"][0]["wa_id"] = wa_id
    item = value["statuses"][0]
    item.update({"id": wamid, "timestamp": str(timestamp), "recipient_id": wa_id, **extra})
    return body


def statuses_body(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Several statuses in one POST (Meta batches them)."""
    body = reference("status_sent")
    value = _value(body)
    value["statuses"] = [_value(item)["statuses"][0] for item in items]
    return body


def inbound(wa_id: str, wamid: str, timestamp: int, message: dict[str, Any], *, name: str = "Ada") -> dict[str, Any]:
    """inbound_text.json's envelope around any message object (type-specific part given)."""
    body = reference("inbound_text")
    value = _value(body)
    value["metadata"] = {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    value["messages"] = [{"from": wa_id, "id": wamid, "timestamp": str(timestamp), **message}]
    return body


def text(body_text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body_text}}


def button_reply(title: str, reply_id: str, context_wamid: str) -> dict[str, Any]:
    message = reference("inbound_interactive_button_reply")["entry"][0]["changes"][0]["value"]["messages"][0]
    return {
        "context": {"from": DISPLAY_NUMBER, "id": context_wamid},
        "type": "interactive",
        "interactive": {**message["interactive"], "button_reply": {"id": reply_id, "title": title}},
    }


def list_reply(title: str, reply_id: str) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {"type": "list_reply", "list_reply": {"id": reply_id, "title": title, "description": "d"}},
    }


def reaction(reacted_wamid: str, emoji: str = "\U0001f44d") -> dict[str, Any]:
    return {"type": "reaction", "reaction": {"message_id": reacted_wamid, "emoji": emoji}}


def image(caption: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"mime_type": "image/jpeg", "sha256": "aGFzaA==", "id": "1037543291543636"}
    if caption:
        part["caption"] = caption
    return {"type": "image", "image": part}


def location() -> dict[str, Any]:
    return {
        "type": "location",
        "location": {"latitude": 40.4168, "longitude": -3.7038, "name": "Sol", "address": "Puerta del Sol, Madrid"},
    }


def shared_contacts() -> dict[str, Any]:
    return {
        "type": "contacts",
        "contacts": [{"name": {"formatted_name": "Grace Hopper", "first_name": "Grace"},
                      "phones": [{"phone": "+1 415 555 0199", "type": "CELL", "wa_id": "14155550199"}]}],
    }


def template_status(event: str, *, name: str = "order_confirmation", language: str = "en_US",
                    template_id: int = 1689556908129832, reason: str = "NONE") -> dict[str, Any]:
    body = reference("template_status_approved")
    value = _value(body)
    value.update({"event": event, "message_template_name": name, "message_template_language": language,
                  "message_template_id": template_id, "reason": reason})
    return body


def _change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "time": 1751247548, "changes": [{"value": value, "field": field}]}],
    }


def phone_quality(event: str, limit: str, display: str = DISPLAY_NUMBER) -> dict[str, Any]:
    return _change("phone_number_quality_update", {
        "display_phone_number": display, "event": event, "current_limit": limit,
        "max_daily_conversations_per_business": 10000,
    })


def user_preferences(wa_id: str, value: str, timestamp: int) -> dict[str, Any]:
    return _change("user_preferences", {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"wa_id": wa_id, "profile": {"name": "Ada"}}],
        "user_preferences": [{"wa_id": wa_id, "detail": "User requested to stop marketing messages",
                              "category": "marketing_messages", "value": value, "timestamp": timestamp}],
    })


def unknown_field(field: str = "account_update") -> dict[str, Any]:
    return _change(field, {"phone_number": DISPLAY_NUMBER, "event": "VERIFIED_ACCOUNT", "brand_new": {"x": 1}})


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def signed_headers(raw: bytes, secret: str = APP_SECRET_FOR_TESTS) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign_body(secret, raw), "Content-Type": "application/json"}
