"""Every send kind reaches the simulator in Meta's exact shape and returns a wamid."""

from __future__ import annotations

from typing import Any

import pytest

from herald.whatsapp import SendResult
from tests.fixtures.simulator import SimulatorHandle

CUSTOMER = "16505551234"


def last_payload(sim: SimulatorHandle) -> dict[str, Any]:
    return sim.messages()[-1]["payload"]


def assert_wamid(result: SendResult) -> None:
    assert result.wamid.startswith("wamid.")
    assert len(result.wamid) <= 128
    assert result.wa_id == CUSTOMER


async def test_send_text_inside_window(simulator: SimulatorHandle) -> None:
    simulator.inbound(CUSTOMER, text="hello")
    async with simulator.client() as client:
        result = await client.send_text("+" + CUSTOMER, "Hi there", preview_url=True)
    assert_wamid(result)
    assert result.input == "+" + CUSTOMER
    assert last_payload(simulator) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+" + CUSTOMER,
        "type": "text",
        "text": {"body": "Hi there", "preview_url": True},
    }


async def test_send_template_positional_parameters(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        result = await client.send_template(
            CUSTOMER, "order_update", "en_US", body_parameters=["John", "#42"]
        )
    assert_wamid(result)
    assert result.message_status == "accepted"
    assert last_payload(simulator)["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "John"}, {"type": "text", "text": "#42"}],
            }
        ],
    }


async def test_send_template_named_parameters(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        await client.send_template(
            CUSTOMER, "appointment_reminder", body_parameters={"first_name": "Ana", "date": "May 4"}
        )
    assert last_payload(simulator)["template"]["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Ana"},
                {"type": "text", "parameter_name": "date", "text": "May 4"},
            ],
        }
    ]


async def test_send_template_without_variables_omits_components(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        assert_wamid(await client.send_template(CUSTOMER, "hello_world"))
    assert last_payload(simulator)["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


async def test_send_template_in_second_language(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        await client.send_template(CUSTOMER, "birthday_greeting", "es", body_parameters=["María"])
    assert simulator.messages()[-1]["template"] == {"name": "birthday_greeting", "language": "es"}


@pytest.mark.parametrize("kind", ["image", "audio", "video", "sticker"])
async def test_send_media_by_link(simulator: SimulatorHandle, kind: str) -> None:
    simulator.inbound(CUSTOMER)
    caption = "Look" if kind in {"image", "video"} else None
    async with simulator.client() as client:
        assert_wamid(await client.send_media(CUSTOMER, kind, link="https://example.com/a", caption=caption))  # type: ignore[arg-type]
    payload = last_payload(simulator)
    assert payload["type"] == kind
    assert payload[kind] == {"link": "https://example.com/a", **({"caption": caption} if caption else {})}


async def test_send_document_by_uploaded_media_id(simulator: SimulatorHandle) -> None:
    simulator.inbound(CUSTOMER)
    async with simulator.client() as client:
        media_id = await client.upload_media(b"%PDF-1.4 invoice", "application/pdf", "invoice.pdf")
        await client.send_media(
            CUSTOMER, "document", media_id=media_id, filename="invoice.pdf", caption="Invoice"
        )
    assert last_payload(simulator)["document"] == {
        "id": media_id,
        "caption": "Invoice",
        "filename": "invoice.pdf",
    }


async def test_send_interactive_buttons(simulator: SimulatorHandle) -> None:
    simulator.inbound(CUSTOMER)
    async with simulator.client() as client:
        assert_wamid(
            await client.send_interactive_buttons(
                CUSTOMER,
                "Confirm delivery slot?",
                [("slot_yes", "Yes"), ("slot_no", "No")],
                header="Order #42",
                footer="Reply below",
            )
        )
    assert last_payload(simulator)["interactive"] == {
        "type": "button",
        "header": {"type": "text", "text": "Order #42"},
        "body": {"text": "Confirm delivery slot?"},
        "footer": {"text": "Reply below"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "slot_yes", "title": "Yes"}},
                {"type": "reply", "reply": {"id": "slot_no", "title": "No"}},
            ]
        },
    }


async def test_send_interactive_list(simulator: SimulatorHandle) -> None:
    simulator.inbound(CUSTOMER)
    sections = [
        {
            "title": "Sizes",
            "rows": [{"id": "s", "title": "Small", "description": "8 inch"}, {"id": "l", "title": "Large"}],
        }
    ]
    async with simulator.client() as client:
        assert_wamid(await client.send_interactive_list(CUSTOMER, "Pick a size", "Choose", sections))
    assert last_payload(simulator)["interactive"] == {
        "type": "list",
        "body": {"text": "Pick a size"},
        "action": {"button": "Choose", "sections": sections},
    }


async def test_send_reaction_with_context_and_callback_data(simulator: SimulatorHandle) -> None:
    inbound = simulator.inbound(CUSTOMER)
    async with simulator.client() as client:
        assert_wamid(
            await client.send_reaction(
                CUSTOMER,
                inbound["wamid"],
                "👍",
                context_message_id=inbound["wamid"],
                biz_opaque_callback_data="herald-message-7",
            )
        )
    payload = last_payload(simulator)
    assert payload["reaction"] == {"message_id": inbound["wamid"], "emoji": "👍"}
    assert payload["context"] == {"message_id": inbound["wamid"]}
    assert payload["biz_opaque_callback_data"] == "herald-message-7"
    assert simulator.messages()[-1]["biz_opaque_callback_data"] == "herald-message-7"


async def test_mark_as_read_with_typing_indicator(simulator: SimulatorHandle) -> None:
    inbound = simulator.inbound(CUSTOMER)
    async with simulator.client() as client:
        assert await client.mark_as_read(inbound["wamid"], typing_indicator=True) is True
    assert simulator.stats()["marked_read"] == 1


async def test_send_message_accepts_a_raw_payload(simulator: SimulatorHandle) -> None:
    payload = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    async with simulator.client() as client:
        assert_wamid(await client.send_message(payload))
    assert last_payload(simulator) == payload
