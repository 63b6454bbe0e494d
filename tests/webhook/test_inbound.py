"""Inbound messages, keywords, user preferences, templates, phone numbers and unknown kinds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from herald.models import OptInStatus
from tests.webhook import payloads as p
from tests.webhook.conftest import Database, next_wa_id, next_wamid, post_signed, queued_jobs
from tests.webhook.factories import make_contact, make_template, sent_message, ts

pytestmark = pytest.mark.usefixtures("webhook_worker")

CONTACT = "SELECT id, phone, wa_id, profile_name, opt_in_status, opt_in_source, last_inbound_at FROM contacts" \
    " WHERE wa_id = %s"


def _inbound_rows(database: Database, wa_id: str) -> list[dict[str, Any]]:
    return database.rows(
        "SELECT m.type, m.text, m.wamid, m.context_wamid, m.direction, m.status, m.body FROM messages m"
        " JOIN contacts c ON c.id = m.contact_id WHERE c.wa_id = %s AND m.direction = 'inbound' ORDER BY m.received_at",
        wa_id,
    )


async def _deliver(client: httpx.AsyncClient, database: Database, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        assert (await post_signed(client, body)).status_code == 200
    database.settled()


async def test_inbound_text_creates_the_contact_with_its_window(client: httpx.AsyncClient, database: Database) -> None:
    wa_id, wamid, t = next_wa_id(), next_wamid(), ts()
    await _deliver(client, database, p.inbound(wa_id, wamid, t, p.text("Hello there"), name="Grace"))
    contact = database.one(CONTACT, wa_id)
    assert contact["phone"] == f"+{wa_id}"
    assert contact["profile_name"] == "Grace"
    assert contact["last_inbound_at"].timestamp() == t
    [message] = _inbound_rows(database, wa_id)
    assert (message["type"], message["text"], message["wamid"], message["status"]) == ("text", "Hello there", wamid, "received")


async def test_duplicate_inbound_is_stored_and_announced_once(
    client: httpx.AsyncClient, database: Database, redis_client: redis.Redis
) -> None:
    wa_id, wamid, t = next_wa_id(), next_wamid(), ts()
    body = p.inbound(wa_id, wamid, t, p.text("once"))
    await _deliver(client, database, body, body, body)
    assert len(_inbound_rows(database, wa_id)) == 1
    inbound_jobs = [job for job in queued_jobs(redis_client, "automation") if job["actor"] == "automation.inbound_message"]
    assert len(inbound_jobs) == 1
    assert inbound_jobs[0]["payload"]["text"] == "once"


async def test_older_message_processed_late_never_moves_the_window_back(
    client: httpx.AsyncClient, database: Database
) -> None:
    wa_id, t = next_wa_id(), ts()
    await _deliver(
        client, database,
        p.inbound(wa_id, next_wamid(), t + 5, p.text("newer"), name="New Name"),
        p.inbound(wa_id, next_wamid(), t, p.text("older"), name="Old Name"),
    )
    contact = database.one(CONTACT, wa_id)
    assert contact["last_inbound_at"].timestamp() == t + 5
    assert contact["profile_name"] == "New Name"


async def test_every_inbound_kind_is_stored_with_its_text_and_context(
    client: httpx.AsyncClient, database: Database
) -> None:
    wa_id, t = next_wa_id(), ts()
    _, our_wamid = await sent_message(database, wa_id)
    kinds = [
        p.button_reply("Yes please", "slot_yes", our_wamid),
        p.list_reply("Tuesday", "row_2"),
        p.reaction(our_wamid),
        p.image(caption="my receipt"),
        p.location(),
        p.shared_contacts(),
    ]
    await _deliver(client, database, *(p.inbound(wa_id, next_wamid(), t + i, kind) for i, kind in enumerate(kinds)))
    rows = _inbound_rows(database, wa_id)
    assert [(row["type"], row["text"], row["context_wamid"]) for row in rows] == [
        ("interactive", "Yes please", our_wamid),
        ("interactive", "Tuesday", None),
        ("reaction", None, our_wamid),
        ("image", "my receipt", None),
        ("location", "Sol Puerta del Sol, Madrid", None),
        ("contacts", None, None),
    ]
    assert rows[3]["body"]["image"] == {"mime_type": "image/jpeg", "sha256": "aGFzaA==", "id": "1037543291543636",
                                       "caption": "my receipt"}


@pytest.mark.parametrize("word", ["STOP", "  stop ", "Stop!", "unsubscribe", "BAJA", "Bája", "alto"])
async def test_opt_out_keyword_opts_the_contact_out(client: httpx.AsyncClient, database: Database, word: str) -> None:
    wa_id = next_wa_id()
    await make_contact(wa_id)
    await _deliver(client, database, p.inbound(wa_id, next_wamid(), ts(), p.text(word)))
    contact = database.one(CONTACT, wa_id)
    assert (contact["opt_in_status"], contact["opt_in_source"]) == (OptInStatus.OPTED_OUT, "keyword")


async def test_keyword_inside_a_sentence_changes_nothing(client: httpx.AsyncClient, database: Database) -> None:
    wa_id = next_wa_id()
    await make_contact(wa_id)
    await _deliver(client, database, p.inbound(wa_id, next_wamid(), ts(), p.text("please stop the car")))
    assert database.one(CONTACT, wa_id)["opt_in_status"] == OptInStatus.OPTED_IN


async def test_opt_out_is_announced_once_with_its_keyword(
    client: httpx.AsyncClient, database: Database, redis_client: redis.Redis
) -> None:
    wa_id = next_wa_id()
    await make_contact(wa_id)
    await _deliver(client, database, *(p.inbound(wa_id, next_wamid(), ts(), p.text("STOP")) for _ in range(2)))
    events = [job["payload"] for job in queued_jobs(redis_client, "automation") if job["actor"] == "automation.contact_event"]
    assert [(event["kind"], event["data"]["keyword"]) for event in events] == [("opted_out", "STOP")]
    logs = database.rows("SELECT event FROM logs WHERE entity_type = 'contact'")
    assert logs == [{"event": "contact.opted_out"}]


async def test_start_after_stop_opts_back_in_whatever_the_arrival_order(
    client: httpx.AsyncClient, database: Database
) -> None:
    wa_id, t = next_wa_id(), ts()
    await make_contact(wa_id)
    stop = p.inbound(wa_id, next_wamid(), t, p.text("STOP"))
    start = p.inbound(wa_id, next_wamid(), t + 10, p.text("ALTA"))
    await _deliver(client, database, start)
    await _deliver(client, database, stop)
    contact = database.one(CONTACT, wa_id)
    assert contact["opt_in_status"] == OptInStatus.OPTED_IN


async def test_stop_promotions_preference_opts_out_of_marketing(client: httpx.AsyncClient, database: Database) -> None:
    wa_id = next_wa_id()
    await _deliver(client, database, p.user_preferences(wa_id, "stop", ts()))
    contact = database.one(CONTACT, wa_id)
    assert (contact["opt_in_status"], contact["opt_in_source"]) == (OptInStatus.OPTED_OUT, "user_preferences")
    assert contact["last_inbound_at"] is None


async def test_failed_status_131050_opts_the_contact_out(client: httpx.AsyncClient, database: Database) -> None:
    wa_id = next_wa_id()
    _, wamid = await sent_message(database, wa_id)
    body = p.status(wamid, "failed", ts(), wa_id=wa_id)
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = [
        {"code": 131050, "title": "User stopped marketing messages", "message": "User stopped marketing messages",
         "error_data": {"details": "Unable to deliver the message: the user opted out of marketing messages"}}
    ]
    await _deliver(client, database, body)
    contact = database.one(CONTACT, wa_id)
    assert (contact["opt_in_status"], contact["opt_in_source"]) == (OptInStatus.OPTED_OUT, "error_131050")


@pytest.mark.parametrize(("event", "reason"), [("APPROVED", "NONE"), ("REJECTED", "INVALID_FORMAT"),
                                               ("PAUSED", "NONE"), ("DISABLED", "NONE")])
async def test_template_status_update_changes_the_template_and_is_logged(
    client: httpx.AsyncClient, database: Database, event: str, reason: str
) -> None:
    await make_template()
    await _deliver(client, database, p.template_status(event, reason=reason))
    template = database.one("SELECT status, rejected_reason FROM message_templates WHERE name = 'order_confirmation'")
    assert template["status"] == event
    assert template["rejected_reason"] == (reason if event == "REJECTED" else None)
    [log] = database.rows("SELECT event, message FROM logs WHERE entity_type = 'template'")
    assert log["event"] == "template.status_updated"
    assert event in log["message"]


async def test_phone_number_quality_update_is_recorded_and_logged(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _deliver(client, database, p.phone_quality("UPGRADE", "TIER_10K"))
    number = database.one("SELECT * FROM phone_numbers")
    assert (number["phone_number_id"], number["display_phone_number"]) == (p.PHONE_NUMBER_ID, p.DISPLAY_NUMBER)
    assert (number["last_event"], number["messaging_limit"]) == ("UPGRADE", "TIER_10K")
    await _deliver(client, database, p.phone_quality("DOWNGRADE", "TIER_2K"))
    assert database.one("SELECT messaging_limit FROM phone_numbers")["messaging_limit"] == "TIER_2K"
    assert len(database.rows("SELECT 1 FROM logs WHERE event = 'phone_number.quality_updated'")) == 2


async def test_unknown_field_is_stored_and_skipped_with_the_reason(
    client: httpx.AsyncClient, database: Database
) -> None:
    await post_signed(client, p.unknown_field("brand_new_field"))
    [event] = database.settled()
    assert event["status"] == "skipped"
    assert "brand_new_field" in event["error"]


async def test_unknown_message_type_and_new_fields_are_stored_not_a_crash(
    client: httpx.AsyncClient, database: Database
) -> None:
    wa_id = next_wa_id()
    message = {"type": "hologram", "hologram": {"frames": 3}, "brand_new_top_level": True}
    await _deliver(client, database, p.inbound(wa_id, next_wamid(), ts(), message))
    [row] = _inbound_rows(database, wa_id)
    assert row["type"] == "hologram"
    assert database.inbox()[0]["status"] == "processed"


async def test_payload_that_cannot_be_processed_is_kept_failed_with_its_error(
    client: httpx.AsyncClient, database: Database
) -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": "not-a-list"}]}
    await post_signed(client, body)
    [event] = database.settled()
    assert event["status"] == "failed"
    assert "changes is not a list" in event["error"]
