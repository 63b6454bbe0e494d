"""queue_message: what is refused before anything is stored, and what a queued message holds."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from herald.db import session_scope
from herald.messaging.content import ButtonParameter, TemplateContent, TextContent
from herald.messaging.errors import (
    ContactOptedOut,
    TemplateNotApproved,
    TemplateNotFound,
    TemplateParameterMismatch,
    WindowClosed,
)
from herald.messaging.outbound import queue_message
from herald.models import Message, MessageStatusEvent
from tests.messaging.factories import NAMED_TEMPLATE, SALE_TEMPLATE, make_contact, make_template

pytestmark = pytest.mark.usefixtures("dispose_engines")

ORDER = TemplateContent(
    name="order_update",
    language="en_US",
    header_parameters=["#42"],
    body_parameters=["Ada", "#42"],
    button_parameters=[ButtonParameter(index=0, value="42")],
)


async def _messages() -> int:
    async with session_scope() as session:
        return (await session.execute(select(func.count()).select_from(Message))).scalar_one()


async def test_template_message_is_stored_queued_with_the_cloud_api_body() -> None:
    contact = await make_contact()
    await make_template()
    async with session_scope() as session:
        message = await queue_message(session, contact=contact, content=ORDER)
    async with session_scope() as session:
        stored = await session.get(Message, message.id)
        events = (
            (
                await session.execute(
                    select(MessageStatusEvent.status).where(MessageStatusEvent.message_id == message.id)
                )
            )
            .scalars()
            .all()
        )
    assert stored is not None
    assert stored.status == "queued" and stored.queued_at is not None and stored.category == "utility"
    assert stored.text == "Hi Ada, your order #42 is on its way."
    components = stored.body["template"]["components"]
    assert [c["type"] for c in components] == ["header", "body", "button"]
    assert components[2] == {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "42"}],
    }
    assert "to" not in stored.body
    assert list(events) == ["queued"]


async def test_marketing_to_opted_out_contact_is_refused() -> None:
    contact = await make_contact(opted_out=True)
    await make_template("spring_sale", category="MARKETING", components=SALE_TEMPLATE)
    with pytest.raises(ContactOptedOut):
        async with session_scope() as session:
            await queue_message(
                session,
                contact=contact,
                content=TemplateContent(name="spring_sale", language="en_US", body_parameters=["20%"]),
            )
    assert await _messages() == 0


async def test_utility_to_opted_out_contact_is_allowed() -> None:
    contact = await make_contact(opted_out=True)
    await make_template()
    async with session_scope() as session:
        await queue_message(session, contact=contact, content=ORDER)
    assert await _messages() == 1


async def test_text_outside_the_window_is_refused() -> None:
    contact = await make_contact(inbound_hours_ago=25)
    with pytest.raises(WindowClosed):
        async with session_scope() as session:
            await queue_message(session, contact=contact, content=TextContent(body="hello"))
    assert await _messages() == 0


async def test_text_inside_the_window_is_a_service_message() -> None:
    contact = await make_contact(inbound_hours_ago=1)
    async with session_scope() as session:
        message = await queue_message(session, contact=contact, content=TextContent(body="hello"))
    assert message.category == "service" and message.body["text"] == {"body": "hello", "preview_url": False}


async def test_unknown_template_is_refused() -> None:
    contact = await make_contact()
    with pytest.raises(TemplateNotFound):
        async with session_scope() as session:
            await queue_message(session, contact=contact, content=ORDER)


@pytest.mark.parametrize("status", ["PAUSED", "DISABLED", "PENDING", "REJECTED"])
async def test_template_not_approved_is_refused(status: str) -> None:
    contact = await make_contact()
    await make_template(status=status)
    with pytest.raises(TemplateNotApproved):
        async with session_scope() as session:
            await queue_message(session, contact=contact, content=ORDER)


async def test_missing_body_parameter_is_refused_naming_the_field() -> None:
    contact = await make_contact()
    await make_template()
    content = ORDER.model_copy(update={"body_parameters": ["Ada"]})
    with pytest.raises(TemplateParameterMismatch) as caught:
        async with session_scope() as session:
            await queue_message(session, contact=contact, content=content)
    assert caught.value.field == "content.body_parameters"
    assert await _messages() == 0


async def test_missing_button_parameter_is_refused() -> None:
    contact = await make_contact()
    await make_template()
    with pytest.raises(TemplateParameterMismatch) as caught:
        async with session_scope() as session:
            await queue_message(session, contact=contact, content=ORDER.model_copy(update={"button_parameters": []}))
    assert caught.value.field == "content.button_parameters"


async def test_named_template_needs_the_named_parameters() -> None:
    contact = await make_contact()
    await make_template("appointment", components=NAMED_TEMPLATE, parameter_format="NAMED")
    good = TemplateContent(name="appointment", language="en_US", body_parameters={"first_name": "Ada", "date": "May 1"})
    async with session_scope() as session:
        message = await queue_message(session, contact=contact, content=good)
    assert message.body["template"]["components"][0]["parameters"][0]["parameter_name"] == "first_name"
    with pytest.raises(TemplateParameterMismatch):
        async with session_scope() as session:
            await queue_message(
                session,
                contact=contact,
                content=good.model_copy(update={"body_parameters": ["Ada", "May 1"]}),
            )
