"""Queue an outbound message: validate, store it `queued` in the caller's transaction, enqueue.

Every check runs before anything is written, so a refused message leaves nothing behind. The
same checks that depend on the contact (opt-out, the 24-hour window) run again at send time
in the dispatcher, because both can change while a message waits in the queue.

Refusals (all `herald.messaging.errors`, rendered as problem+json):
- `contact_opted_out` (409): marketing to a contact who opted out.
- `window_closed` (422): free-form content when the contact's last inbound message is older
  than 24 hours (or there is none).
- `template_not_found` / `template_not_approved` / `template_parameter_mismatch` (422):
  checked against the synced `message_templates` row; PAUSED and DISABLED are not approved.

The stored `body` is the exact Cloud API request body minus `to` and
`biz_opaque_callback_data`, which the dispatcher adds at send time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import contracts, queue
from herald.clock import utcnow
from herald.messaging.content import (
    InteractiveContent,
    MediaContent,
    OutboundContent,
    TemplateContent,
    TextContent,
    cloud_api_body,
    message_type,
    searchable_text,
)
from herald.messaging.errors import (
    ContactOptedOut,
    TemplateNotApproved,
    TemplateNotFound,
    TemplateParameterMismatch,
    WindowClosed,
)
from herald.messaging.templates import TemplateShape, find_template, template_shape
from herald.models import (
    Contact,
    Direction,
    Message,
    MessageCategory,
    MessageStatus,
    MessageStatusEvent,
    MessageTemplate,
    OptInStatus,
    TemplateStatus,
)
from herald.settings import get_settings

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
SEND_BATCH_SIZE = 100  # message ids per SEND_MESSAGES job

Content = TemplateContent | TextContent | MediaContent | InteractiveContent

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "OutboundContent",
    "check_contact",
    "check_template",
    "enqueue_send",
    "queue_message",
    "window_open",
]


def window_open(last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    """True while free-form messages may be sent (less than 24 h since the last inbound message)."""
    if last_inbound_at is None:
        return False
    return (now or utcnow()) - last_inbound_at < CUSTOMER_SERVICE_WINDOW


def check_contact(
    *,
    opt_in_status: str,
    last_inbound_at: datetime | None,
    category: str,
    is_template: bool,
    now: datetime | None = None,
) -> None:
    """Refuse marketing to opted-out contacts and free-form content outside the window."""
    if category == MessageCategory.MARKETING and opt_in_status == OptInStatus.OPTED_OUT:
        raise ContactOptedOut("the contact opted out of marketing messages", field="contact_id")
    if not is_template and not window_open(last_inbound_at, now):
        raise WindowClosed(
            "free-form messages need an inbound message from the contact in the last 24 hours; "
            "send a template instead",
            field="content.type",
        )


def _check_values(
    given: list[str] | dict[str, str], expected: tuple[str, ...], parameter_format: str, field: str
) -> None:
    if parameter_format == "NAMED":
        if isinstance(given, list) and not given and not expected:
            return
        names = set(given) if isinstance(given, dict) else None
        if names != set(expected):
            raise TemplateParameterMismatch(
                f"the template expects named parameters {sorted(expected)}, got "
                f"{sorted(names) if names is not None else f'{len(given)} positional values'}",
                field=field,
            )
        return
    if isinstance(given, dict):
        if not given and not expected:
            return
        raise TemplateParameterMismatch(
            f"the template uses positional parameters; give a list of {len(expected)} values", field=field
        )
    if len(given) != len(expected):
        raise TemplateParameterMismatch(
            f"the template expects {len(expected)} parameters, got {len(given)}", field=field
        )


def check_template(template: MessageTemplate | None, content: TemplateContent) -> TemplateShape:
    """Refuse unknown, unapproved or wrongly filled templates; the shape it was checked against."""
    if template is None:
        raise TemplateNotFound(
            f"no synced template {content.name!r} in language {content.language!r}; sync templates first",
            field="content.name",
        )
    if template.status != TemplateStatus.APPROVED:
        raise TemplateNotApproved(
            f"template {content.name!r} ({content.language}) is {template.status}, not APPROVED",
            field="content.name",
        )
    shape = template_shape(template.components, template.parameter_format)
    _check_values(
        content.body_parameters, shape.body_variables, shape.parameter_format, "content.body_parameters"
    )
    if shape.header_media is not None:
        if content.header_media is None or content.header_media.kind.upper() != shape.header_media:
            raise TemplateParameterMismatch(
                f"the template header needs a {shape.header_media.lower()}", field="content.header_media"
            )
    else:
        if content.header_media is not None:
            raise TemplateParameterMismatch(
                "the template header takes no media", field="content.header_media"
            )
        _check_values(
            content.header_parameters,
            shape.header_variables,
            shape.parameter_format,
            "content.header_parameters",
        )
    given = {b.index: b.sub_type for b in content.button_parameters}
    if len(given) != len(content.button_parameters) or given != shape.button_parameters:
        expected = ", ".join(f"{i}:{t}" for i, t in sorted(shape.button_parameters.items())) or "none"
        raise TemplateParameterMismatch(
            f"the template's buttons take parameters at index:sub_type {expected}",
            field="content.button_parameters",
        )
    return shape


def render_template_text(template: MessageTemplate, content: TemplateContent) -> str | None:
    """The template body with its parameters filled in, for search and conversation views."""
    body = next((c for c in template.components if str(c.get("type", "")).upper() == "BODY"), None)
    if body is None:
        return None
    text = str(body.get("text") or "")
    values = content.body_parameters
    named = values if isinstance(values, dict) else {str(i + 1): v for i, v in enumerate(values)}
    for name, value in named.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def message_category(template: MessageTemplate | None, requested: MessageCategory | None) -> str:
    """Templates take their own category (what Meta bills); free-form is `service` unless told."""
    if template is not None:
        category = template.category.lower()
        if category in MessageCategory.__members__.values():
            return category
        return MessageCategory.MARKETING.value
    return (requested or MessageCategory.SERVICE).value


def build_message_row(
    *,
    contact_id: uuid.UUID,
    content: Content,
    category: str,
    template: MessageTemplate | None,
    now: datetime,
    automation_id: uuid.UUID | None = None,
    automation_run_id: uuid.UUID | None = None,
    broadcast_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Column values of a new queued outbound message (for bulk inserts)."""
    text = (
        render_template_text(template, content) if template and isinstance(content, TemplateContent) else None
    )
    return {
        "id": uuid.uuid4(),
        "contact_id": contact_id,
        "direction": Direction.OUTBOUND.value,
        "type": message_type(content),
        "category": category,
        "status": MessageStatus.QUEUED.value,
        "body": cloud_api_body(content),
        "text": text if text is not None else searchable_text(content),
        "template_name": content.name if isinstance(content, TemplateContent) else None,
        "template_language": content.language if isinstance(content, TemplateContent) else None,
        "phone_number_id": get_settings().phone_number_id or None,
        "broadcast_id": broadcast_id,
        "automation_id": automation_id,
        "automation_run_id": automation_run_id,
        "attempts": 0,
        # Set now: the hand-over follows the commit. If the process dies in between, the relay
        # finds the row still queued once this is stale and hands it over again.
        "enqueued_at": now,
        "queued_at": now,
        "created_at": now,
        "updated_at": now,
    }


def enqueue_send(message_ids: list[uuid.UUID], *, delay_ms: int | None = None) -> None:
    """Hand messages to the dispatcher (after the surrounding transaction commits), in batches."""
    for start in range(0, len(message_ids), SEND_BATCH_SIZE):
        chunk = message_ids[start : start + SEND_BATCH_SIZE]
        queue.enqueue(contracts.SEND_MESSAGES, contracts.SendMessages(message_ids=chunk), delay_ms=delay_ms)


async def insert_queued(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert queued message rows and their `queued` timeline events in two statements."""
    if not rows:
        return
    await session.execute(insert(Message).values(rows))
    await session.execute(
        insert(MessageStatusEvent)
        .values(
            [
                {"message_id": r["id"], "status": MessageStatus.QUEUED.value, "occurred_at": r["queued_at"]}
                for r in rows
            ]
        )
        .on_conflict_do_nothing()
    )


async def queue_message(
    session: AsyncSession,
    *,
    contact: Contact,
    content: Content,
    category: MessageCategory | None = None,
    automation_id: uuid.UUID | None = None,
    automation_run_id: uuid.UUID | None = None,
    broadcast_id: uuid.UUID | None = None,
    enqueue: bool = True,
) -> Message:
    """Validate and store one outbound message as `queued`; hand it to the dispatcher after commit.

    Raises a `herald.messaging.errors.OutboundRefused` subclass before writing anything when the
    message cannot be sent. With `enqueue=False` the caller hands it over itself (`enqueue_send`).
    """
    template: MessageTemplate | None = None
    if isinstance(content, TemplateContent):
        template = await find_template(session, content.name, content.language)
        check_template(template, content)
    now = utcnow()
    resolved_category = message_category(template, category)
    check_contact(
        opt_in_status=contact.opt_in_status,
        last_inbound_at=contact.last_inbound_at,
        category=resolved_category,
        is_template=template is not None,
        now=now,
    )
    row = build_message_row(
        contact_id=contact.id,
        content=content,
        category=resolved_category,
        template=template,
        now=now,
        automation_id=automation_id,
        automation_run_id=automation_run_id,
        broadcast_id=broadcast_id,
    )
    message = Message(**row)
    session.add(message)
    session.add(MessageStatusEvent(message_id=message.id, status=MessageStatus.QUEUED.value, occurred_at=now))
    await session.flush()
    if enqueue:
        enqueue_send([message.id])
    return message
