"""Processing one stored webhook body: statuses, inbound messages, opt-outs, templates, numbers.

Everything here is idempotent and order-tolerant, with the database's constraints doing the
dedupe (never a read followed by a write):
- statuses go through `herald.messaging.status.apply_status` (monotonic; one row per
  (message, status) in `message_status_events`);
- inbound messages are inserted `ON CONFLICT (wamid) DO NOTHING`, and only a new row emits
  the automation event or acts on a keyword;
- contacts are upserted on their unique phone; `last_inbound_at` only moves forward;
- opt-out/opt-in apply only when newer than the opposite choice, so STOP then START ends
  opted in whatever order they arrive in.
Parts we do not handle (new fields, new types) are logged and skipped, never an error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from herald import contracts, queue
from herald.clock import utcnow
from herald.contacts_events import emit_contact_event
from herald.errors import ValidationFailed
from herald.messaging.content import TextContent
from herald.messaging.errors import OutboundRefused
from herald.messaging.outbound import queue_message
from herald.messaging.status import MessageNotFound, apply_status
from herald.models import (
    Contact,
    Direction,
    Log,
    LogLevel,
    Message,
    MessageCategory,
    MessageStatus,
    MessageTemplate,
    OptInStatus,
    PhoneNumber,
    TemplateStatus,
)
from herald.observability import metrics
from herald.phones import phone_from_wa_id
from herald.settings import get_settings
from services.webhook.keywords import KeywordAction, match_keyword

log = structlog.get_logger("herald.webhook")

SOURCE = "webhook"
STATUSES = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED})
# Meta's "user stopped marketing messages": the contact told WhatsApp, not us; honour it.
ERROR_MARKETING_STOPPED = 131050
TEMPLATE_STATUSES = frozenset(status.value for status in TemplateStatus)
# Fields we handle; any other is stored and skipped (metric label "other" keeps labels bounded).
FIELD_MESSAGES = "messages"
FIELD_TEMPLATE_STATUS = "message_template_status_update"
FIELD_TEMPLATE_QUALITY = "message_template_quality_update"
FIELD_PHONE_QUALITY = "phone_number_quality_update"
FIELD_USER_PREFERENCES = "user_preferences"
HANDLED_FIELDS = frozenset(
    {
        FIELD_MESSAGES,
        FIELD_TEMPLATE_STATUS,
        FIELD_TEMPLATE_QUALITY,
        FIELD_PHONE_QUALITY,
        FIELD_USER_PREFERENCES,
    }
)
TEXT_TYPES = frozenset({"text", "button", "interactive"})


class MalformedPayload(ValueError):
    """The body is JSON but not shaped like a WhatsApp webhook where it must be."""


@dataclass
class Outcome:
    """What processing one body did: handled items, ignored parts, statuses still waiting."""

    handled: int = 0
    ignored: list[str] = field(default_factory=list)
    # Statuses whose message we do not know (yet): wamid -> status.
    waiting: list[str] = field(default_factory=list)


def _timestamp(value: Any, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise MalformedPayload(f"{where}: timestamp {value!r} is not Unix seconds") from exc


def _list(container: dict[str, Any], key: str, where: str) -> list[Any]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where}.{key} is not a list")
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where} is not an object")
    return value


def _sub(container: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional nested object; anything else (absent, wrong type) reads as empty."""
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def _count(field_name: str, kind: Literal["status", "message", "error", "other"]) -> None:
    # kind follows the metric catalog: status | message | error | other.
    metrics.WEBHOOK_EVENTS.labels(field_name if field_name in HANDLED_FIELDS else "other", kind).inc()


def _audit(
    session: AsyncSession,
    event: str,
    message: str,
    *,
    level: LogLevel = LogLevel.INFO,
    entity_type: str | None = None,
    entity_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        Log(
            level=level.value,
            source=SOURCE,
            event=event,
            message=message[:2000],
            entity_type=entity_type,
            entity_id=entity_id,
            data=data or {},
        )
    )


async def process_payload(session: AsyncSession, payload: Any) -> Outcome:
    """Apply every change in one webhook body inside the caller's transaction."""
    outcome = Outcome()
    body = _dict(payload, "body")
    if body.get("object") != "whatsapp_business_account":
        outcome.ignored.append(f"object {str(body.get('object'))[:64]!r} is not whatsapp_business_account")
        log.info("webhook_object_ignored", object=str(body.get("object"))[:64])
        return outcome
    for e, entry in enumerate(_list(body, "entry", "body")):
        entry = _dict(entry, f"entry[{e}]")
        for c, change in enumerate(_list(entry, "changes", f"entry[{e}]")):
            where = f"entry[{e}].changes[{c}]"
            change = _dict(change, where)
            field_name = str(change.get("field", ""))
            value = _dict(change.get("value"), f"{where}.value")
            handler = _HANDLERS.get(field_name)
            if handler is None:
                _count(field_name, "other")
                outcome.ignored.append(f"field {field_name[:64]!r}")
                log.info("webhook_field_skipped", field=field_name[:64], where=where)
                continue
            await handler(session, value, entry, outcome, where)
    return outcome


# --- field "messages": statuses, inbound messages, errors -------------------------------------


async def _messages_change(
    session: AsyncSession, value: dict[str, Any], _entry: dict[str, Any], outcome: Outcome, where: str
) -> None:
    metadata = _sub(value, "metadata")
    phone_number_id = str(metadata.get("phone_number_id") or "")[:32] or None
    for s, status in enumerate(_list(value, "statuses", where)):
        await _status(session, _dict(status, f"{where}.statuses[{s}]"), outcome, f"{where}.statuses[{s}]")
    profiles: dict[str, str | None] = {}
    for contact in _list(value, "contacts", where):
        if isinstance(contact, dict) and contact.get("wa_id"):
            profile = _sub(contact, "profile")
            profiles[str(contact["wa_id"])] = str(profile.get("name")) if profile.get("name") else None
    for m, message in enumerate(_list(value, "messages", where)):
        await _inbound(
            session,
            _dict(message, f"{where}.messages[{m}]"),
            profiles,
            phone_number_id,
            outcome,
            f"{where}.messages[{m}]",
        )
    for error in _list(value, "errors", where):
        # App- or account-level errors (e.g. 131000 unsupported payload): kept for operators.
        error = error if isinstance(error, dict) else {"error": error}
        _count(FIELD_MESSAGES, "error")
        _audit(
            session,
            "webhook.error",
            f"Cloud API reported error {error.get('code')}: {error.get('title')}",
            level=LogLevel.WARNING,
            data=error,
        )
        log.warning("webhook_error_reported", code=error.get("code"), title=error.get("title"))
        outcome.handled += 1


def billing_details(name: str, status: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(pricing, conversation) of a status, from `sent` only: Meta repeats them on later statuses,
    not always identically (the `sent` copy has the expiry), so this keeps the result
    independent of the order statuses arrive in."""
    if name != MessageStatus.SENT:
        return None, None
    pricing, conversation = status.get("pricing"), status.get("conversation")
    return (pricing if isinstance(pricing, dict) else None), (conversation if isinstance(conversation, dict) else None)


def callback_message_id(status: dict[str, Any]) -> uuid.UUID | None:
    """Herald's message id, which every send carries as `biz_opaque_callback_data`."""
    try:
        return uuid.UUID(str(status.get("biz_opaque_callback_data")))
    except ValueError:
        return None


async def _status(session: AsyncSession, status: dict[str, Any], outcome: Outcome, where: str) -> None:
    wamid = str(status.get("id") or "")
    name = str(status.get("status") or "")
    if not wamid:
        raise MalformedPayload(f"{where}.id is missing")
    if name not in STATUSES:
        _count(FIELD_MESSAGES, "other")
        outcome.ignored.append(f"status {name[:32]!r}")
        log.info("webhook_status_skipped", status=name[:32], where=where)
        return
    occurred_at = _timestamp(status.get("timestamp"), where)
    errors = status.get("errors")
    error = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
    pricing, conversation = billing_details(name, status)
    arguments: dict[str, Any] = {
        "status": name,
        "occurred_at": occurred_at,
        "error": error,
        "pricing": pricing,
        "conversation": conversation,
    }
    message_id = callback_message_id(status)
    try:
        if message_id is not None:
            try:
                await apply_status(session, message_id=message_id, wamid=wamid, **arguments)
            except MessageNotFound:
                await apply_status(session, wamid=wamid, **arguments)
        else:
            await apply_status(session, wamid=wamid, **arguments)
    except MessageNotFound:
        outcome.waiting.append(f"{name} for {wamid}")
        return
    _count(FIELD_MESSAGES, "status")
    outcome.handled += 1
    if name == MessageStatus.FAILED and error is not None and _error_code(error) == ERROR_MARKETING_STOPPED:
        message_table: Any = Message.__table__  # type: ignore[attr-defined]
        contact_id = (
            await session.execute(select(message_table.c.contact_id).where(message_table.c.wamid == wamid))
        ).scalar_one_or_none()
        if contact_id is not None:
            await set_opt_status(session, contact_id, opted_out=True, at=occurred_at, source="error_131050")


def _error_code(error: dict[str, Any]) -> int | None:
    try:
        return int(error.get("code"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _inbound_text(message: dict[str, Any], kind: str) -> str | None:
    """Plain text for search and keyword matching: text body, button or list title, caption."""
    part = _sub(message, kind)
    if kind == "text":
        return str(part.get("body")) if part.get("body") is not None else None
    if kind == "button":
        return str(part.get("text") or part.get("payload") or "") or None
    if kind == "interactive":
        reply_kind = str(part.get("type") or "")
        reply = _sub(part, reply_kind)
        if reply_kind == "nfm_reply":
            return None
        return str(reply.get("title")) if reply.get("title") is not None else None
    if kind in {"image", "video", "document"}:
        return str(part.get("caption")) if part.get("caption") else None
    if kind == "location":
        named = " ".join(str(part[key]) for key in ("name", "address") if part.get(key))
        return named or None
    return None


def _context_wamid(message: dict[str, Any], kind: str) -> str | None:
    context = message.get("context")
    if isinstance(context, dict) and context.get("id"):
        return str(context["id"])[:128]
    if kind == "reaction" and isinstance(message.get("reaction"), dict):
        reacted = message["reaction"].get("message_id")
        return str(reacted)[:128] if reacted else None
    return None


async def upsert_contact(
    session: AsyncSession, *, phone: str, wa_id: str, profile_name: str | None, inbound_at: datetime | None
) -> tuple[uuid.UUID, bool]:
    """Create or update the contact for a WhatsApp user; (id, created).

    `last_inbound_at` only moves forward and the profile name follows the newest message, so
    an old webhook processed late changes neither.
    """
    table: Any = Contact.__table__  # type: ignore[attr-defined]
    now = utcnow()
    newer = or_(
        table.c.last_inbound_at.is_(None), text("excluded.last_inbound_at >= contacts.last_inbound_at")
    )
    statement = (
        insert(table)
        .values(
            id=uuid.uuid4(),
            phone=phone,
            wa_id=wa_id[:32],
            name=(profile_name or "")[:200],
            profile_name=profile_name[:200] if profile_name else None,
            opt_in_status=OptInStatus.UNKNOWN.value,
            last_inbound_at=inbound_at,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["phone"],
            set_={
                "wa_id": func.coalesce(table.c.wa_id, text("excluded.wa_id")),
                # The WHERE below lets only a message at least as new as the last one rename.
                "profile_name": func.coalesce(text("excluded.profile_name"), table.c.profile_name)
                if inbound_at is not None
                else func.coalesce(table.c.profile_name, text("excluded.profile_name")),
                "last_inbound_at": func.greatest(table.c.last_inbound_at, text("excluded.last_inbound_at")),
                "updated_at": now,
            },
            where=newer if inbound_at is not None else None,
        )
        .returning(table.c.id, text("(xmax = 0) AS created"))
    )
    row = (await session.execute(statement)).first()
    if row is None:
        # The WHERE kept an older message from touching a newer contact row: just find it.
        contact_id = (await session.execute(select(table.c.id).where(table.c.phone == phone))).scalar_one()
        return contact_id, False
    return row[0], bool(row[1])


async def _inbound(
    session: AsyncSession,
    message: dict[str, Any],
    profiles: dict[str, str | None],
    phone_number_id: str | None,
    outcome: Outcome,
    where: str,
) -> None:
    wamid = str(message.get("id") or "")
    wa_id = str(message.get("from") or "")
    if not wamid or not wa_id:
        raise MalformedPayload(f"{where} needs id and from")
    kind = str(message.get("type") or "unknown")[:24]
    received_at = _timestamp(message.get("timestamp"), where)
    try:
        phone = phone_from_wa_id(wa_id)
    except ValidationFailed:
        _count(FIELD_MESSAGES, "other")
        outcome.ignored.append(f"inbound {wamid} from invalid number")
        log.warning("webhook_inbound_invalid_sender", wa_id=wa_id, wamid=wamid)
        return
    contact_id, created = await upsert_contact(
        session, phone=phone, wa_id=wa_id, profile_name=profiles.get(wa_id), inbound_at=received_at
    )
    if created:
        emit_contact_event("created", contact_id, {"source": "whatsapp_inbound"})
    body_text = _inbound_text(message, kind)
    context_wamid = _context_wamid(message, kind)
    message_table: Any = Message.__table__  # type: ignore[attr-defined]
    now = utcnow()
    inserted = (
        await session.execute(
            insert(message_table)
            .values(
                id=uuid.uuid4(),
                contact_id=contact_id,
                direction=Direction.INBOUND.value,
                type=kind,
                category=MessageCategory.SERVICE.value,
                status=MessageStatus.RECEIVED.value,
                body=message,
                text=body_text,
                wamid=wamid[:128],
                context_wamid=context_wamid,
                phone_number_id=phone_number_id,
                attempts=0,
                received_at=received_at,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["wamid"])
            .returning(message_table.c.id)
        )
    ).scalar_one_or_none()
    _count(FIELD_MESSAGES, "message")
    outcome.handled += 1
    if inserted is None:
        return  # a redelivery: the first copy already did everything below
    queue.enqueue(
        contracts.INBOUND_MESSAGE,
        contracts.InboundMessageEvent(
            message_id=inserted,
            contact_id=contact_id,
            text=body_text,
            message_type=kind,
            context_wamid=context_wamid,
            received_at=received_at,
        ),
    )
    if kind in TEXT_TYPES:
        match = match_keyword(body_text)
        if match is not None:
            changed = await set_opt_status(
                session,
                contact_id,
                opted_out=match.action is KeywordAction.OPT_OUT,
                at=received_at,
                source="keyword",
                data={"keyword": match.keyword, "language": match.language, "wamid": wamid},
            )
            if changed and match.action is KeywordAction.OPT_OUT:
                await _confirm_opt_out(session, contact_id)


async def set_opt_status(
    session: AsyncSession,
    contact_id: uuid.UUID,
    *,
    opted_out: bool,
    at: datetime,
    source: str,
    data: dict[str, Any] | None = None,
) -> bool:
    """Opt a contact out of (or back into) marketing; True when its state changed.

    Each choice is remembered with its time (`opted_out_at` / `opted_in_at`, newest kept) and
    the newer of the two decides, so reordered webhooks end in the state of the latest one.
    The contact row is locked until commit, so concurrent choices are serialised. Emits the
    contact event and an audit row when the state changes.
    """
    table: Any = Contact.__table__  # type: ignore[attr-defined]
    current = (
        await session.execute(
            select(table.c.opt_in_status, table.c.opted_in_at, table.c.opted_out_at)
            .where(table.c.id == contact_id)
            .with_for_update()
        )
    ).first()
    if current is None:
        return False
    status, opted_in_at, opted_out_at = current
    target = OptInStatus.OPTED_OUT if opted_out else OptInStatus.OPTED_IN
    own, opposite = (opted_out_at, opted_in_at) if opted_out else (opted_in_at, opted_out_at)
    if opposite is not None and opposite > at:
        return False  # a newer opposite choice already stands
    changes: dict[str, Any] = {}
    if own is None or own < at:
        changes["opted_out_at" if opted_out else "opted_in_at"] = at
    if status != target.value:
        changes.update(opt_in_status=target.value, opt_in_source=source[:64])
    if not changes:
        return False
    changes["updated_at"] = utcnow()
    await session.execute(update(table).where(table.c.id == contact_id).values(changes))
    if status == target.value:
        return False
    kind: Literal["opted_out", "opted_in"] = "opted_out" if opted_out else "opted_in"
    details = {"source": source, **(data or {})}
    emit_contact_event(kind, contact_id, details)
    _audit(
        session,
        f"contact.{kind}",
        f"contact {kind.replace('_', ' ')} via {source}",
        entity_type="contact",
        entity_id=str(contact_id),
        data=details,
    )
    log.info("contact_opt_status_changed", contact_id=str(contact_id), status=target.value, source=source)
    return True


async def _confirm_opt_out(session: AsyncSession, contact_id: uuid.UUID) -> None:
    confirmation = get_settings().opt_out_confirmation
    if not confirmation:
        return
    contact = (
        await session.execute(
            select(Contact).where(Contact.id == contact_id).execution_options(populate_existing=True)  # type: ignore[arg-type]
        )
    ).scalar_one()
    try:
        # A service message inside the window the STOP itself just opened; never marketing.
        await queue_message(
            session, contact=contact, content=TextContent(body=confirmation), category=MessageCategory.SERVICE
        )
    except OutboundRefused as exc:
        log.info("opt_out_confirmation_not_sent", contact_id=str(contact_id), reason=exc.code)


# --- user preferences ("stop promotions") -----------------------------------------------------


async def _user_preferences_change(
    session: AsyncSession, value: dict[str, Any], _entry: dict[str, Any], outcome: Outcome, where: str
) -> None:
    profiles: dict[str, str | None] = {}
    for contact in _list(value, "contacts", where):
        if isinstance(contact, dict) and contact.get("wa_id"):
            profile = _sub(contact, "profile")
            profiles[str(contact["wa_id"])] = str(profile.get("name")) if profile.get("name") else None
    for p, preference in enumerate(_list(value, "user_preferences", where)):
        preference = _dict(preference, f"{where}.user_preferences[{p}]")
        category = str(preference.get("category") or "")
        choice = str(preference.get("value") or "").lower()
        if category != "marketing_messages" or choice not in {"stop", "resume"}:
            _count(FIELD_USER_PREFERENCES, "other")
            outcome.ignored.append(f"user preference {category[:32]}={choice[:16]}")
            log.info("webhook_user_preference_skipped", category=category[:32], value=choice[:16])
            continue
        wa_id = str(preference.get("wa_id") or "")
        try:
            phone = phone_from_wa_id(wa_id)
        except ValidationFailed:
            outcome.ignored.append("user preference for invalid number")
            continue
        at = _timestamp(preference.get("timestamp"), f"{where}.user_preferences[{p}]")
        # No inbound message: the contact is created (so a later import cannot resurrect
        # marketing to them) but its 24-hour window is untouched.
        contact_id, created = await upsert_contact(
            session, phone=phone, wa_id=wa_id, profile_name=profiles.get(wa_id), inbound_at=None
        )
        if created:
            emit_contact_event("created", contact_id, {"source": "whatsapp_user_preferences"})
        await set_opt_status(
            session,
            contact_id,
            opted_out=choice == "stop",
            at=at,
            source="user_preferences",
            data={"detail": str(preference.get("detail") or "")[:200]},
        )
        _count(FIELD_USER_PREFERENCES, "status")
        outcome.handled += 1


# --- templates and phone numbers --------------------------------------------------------------


def _template_filter(value: dict[str, Any]) -> Any:
    table: Any = MessageTemplate.__table__  # type: ignore[attr-defined]
    meta_id = str(value.get("message_template_id") or "")
    name = str(value.get("message_template_name") or "")
    language = str(value.get("message_template_language") or "")
    conditions = []
    if meta_id:
        conditions.append(table.c.meta_template_id == meta_id)
    if name and language:
        conditions.append(and_(table.c.name == name, table.c.language == language))
    if not conditions:
        raise MalformedPayload("a template update needs message_template_id or name and language")
    return or_(*conditions)


async def _template_status_change(
    session: AsyncSession, value: dict[str, Any], _entry: dict[str, Any], outcome: Outcome, where: str
) -> None:
    table: Any = MessageTemplate.__table__  # type: ignore[attr-defined]
    event = str(value.get("event") or "").upper()
    label = f"{value.get('message_template_name')} ({value.get('message_template_language')})"
    if event not in TEMPLATE_STATUSES:
        _count(FIELD_TEMPLATE_STATUS, "other")
        outcome.ignored.append(f"template event {event[:32]!r}")
        log.info("webhook_template_event_skipped", template=label, status=event[:32])
        return
    reason = str(value.get("reason") or "") or None
    changes: dict[str, Any] = {
        "status": event,
        "updated_at": utcnow(),
        "rejected_reason": (reason[:64] if reason and reason != "NONE" else None)
        if event == "REJECTED"
        else None,
    }
    if value.get("message_template_id"):
        changes["meta_template_id"] = str(value["message_template_id"])[:64]
    if isinstance(value.get("message_template_category"), str):
        changes["category"] = value["message_template_category"][:32]
    updated = list(
        (
            await session.execute(
                update(table).where(_template_filter(value)).values(changes).returning(table.c.id)
            )
        ).scalars()
    )
    known = bool(updated)
    _audit(
        session,
        "template.status_updated",
        f"template {label} is {event}"
        + (f" ({reason})" if reason and reason != "NONE" else "")
        + ("" if known else " (not synced here yet)"),
        level=LogLevel.WARNING if event in {"REJECTED", "PAUSED", "DISABLED"} else LogLevel.INFO,
        entity_type="template",
        entity_id=str(updated[0]) if known else str(value.get("message_template_id") or ""),
        data=value,
    )
    log.info("template_status_updated", template=label, status=event, known=known)
    _count(FIELD_TEMPLATE_STATUS, "status")
    outcome.handled += 1


async def _template_quality_change(
    session: AsyncSession, value: dict[str, Any], _entry: dict[str, Any], outcome: Outcome, where: str
) -> None:
    table: Any = MessageTemplate.__table__  # type: ignore[attr-defined]
    score = str(value.get("new_quality_score") or "").upper()[:16] or None
    label = f"{value.get('message_template_name')} ({value.get('message_template_language')})"
    updated = list(
        (
            await session.execute(
                update(table)
                .where(_template_filter(value))
                .values(quality_score=score, updated_at=utcnow())
                .returning(table.c.id)
            )
        ).scalars()
    )
    _audit(
        session,
        "template.quality_updated",
        f"template {label} quality {value.get('previous_quality_score')} -> {score}",
        level=LogLevel.WARNING if score == "RED" else LogLevel.INFO,
        entity_type="template",
        entity_id=str(updated[0]) if updated else str(value.get("message_template_id") or ""),
        data=value,
    )
    _count(FIELD_TEMPLATE_QUALITY, "status")
    outcome.handled += 1


async def _phone_quality_change(
    session: AsyncSession, value: dict[str, Any], entry: dict[str, Any], outcome: Outcome, where: str
) -> None:
    """Meta names the number only by its display number; match it, else the configured number."""
    table: Any = PhoneNumber.__table__  # type: ignore[attr-defined]
    display = "".join(ch for ch in str(value.get("display_phone_number") or "") if ch.isdigit())[:32] or None
    event = str(value.get("event") or "")[:32] or None
    limit = str(value.get("current_limit") or "")[:32] or None
    quality = value.get("quality_rating") or value.get("current_quality_rating")
    changes: dict[str, Any] = {"last_event": event, "updated_at": utcnow()}
    if limit:
        changes["messaging_limit"] = limit
    if quality:
        changes["quality_rating"] = str(quality)[:16]
    matched = []
    if display:
        matched = list(
            (
                await session.execute(
                    update(table)
                    .where(table.c.display_phone_number == display)
                    .values(changes)
                    .returning(table.c.phone_number_id)
                )
            ).scalars()
        )
    if not matched:
        phone_number_id = get_settings().phone_number_id
        if not phone_number_id:
            outcome.ignored.append(f"phone number quality update for unknown number {display}")
            log.warning("webhook_phone_quality_unknown_number", display_phone_number=display)
            return
        await session.execute(
            insert(table)
            .values(phone_number_id=phone_number_id, display_phone_number=display, **changes)
            .on_conflict_do_update(
                index_elements=["phone_number_id"], set_={**changes, "display_phone_number": display}
            )
        )
        matched = [phone_number_id]
    _audit(
        session,
        "phone_number.quality_updated",
        f"phone number {display}: {event}, limit {limit}",
        level=LogLevel.WARNING if event in {"FLAGGED", "DOWNGRADE"} else LogLevel.INFO,
        entity_type="phone_number",
        entity_id=matched[0],
        data={**value, "waba_id": entry.get("id")},
    )
    _count(FIELD_PHONE_QUALITY, "status")
    outcome.handled += 1


_HANDLERS = {
    FIELD_MESSAGES: _messages_change,
    FIELD_TEMPLATE_STATUS: _template_status_change,
    FIELD_TEMPLATE_QUALITY: _template_quality_change,
    FIELD_PHONE_QUALITY: _phone_quality_change,
    FIELD_USER_PREFERENCES: _user_preferences_change,
}
