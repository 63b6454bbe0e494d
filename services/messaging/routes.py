"""HTTP layer of the messaging service: parse, authorize, call the service, shape the answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import ORJSONResponse
from sqlalchemy import select

from herald.api import SessionDep
from herald.auth import Admin, Operator, Principal, Viewer
from herald.clock import utcnow
from herald.errors import HeraldError, NotFound, ServiceUnavailable
from herald.messaging.templates import sync_templates
from herald.models import Direction, MessageStatus, MessageTemplate, TemplateStatus
from herald.settings import get_settings
from herald.whatsapp import CloudAPIClient, CloudAPIError
from services.messaging import idempotency, service
from services.messaging.schemas import (
    BroadcastDryRun,
    BroadcastIn,
    BroadcastPublic,
    MessageDetail,
    MessageList,
    MessagePublic,
    SendMessageIn,
    SyncReportPublic,
    TemplateCreate,
    TemplateList,
    TemplatePublic,
)

messages_router = APIRouter(prefix="/api/v1/messages", tags=["messages"])
broadcasts_router = APIRouter(prefix="/api/v1/broadcasts", tags=["broadcasts"])
conversations_router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
templates_router = APIRouter(prefix="/api/v1/templates", tags=["templates"])

IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1-255 printable ASCII characters; a repeat with the same body replays the first answer",
    ),
]


async def _idempotent(
    session: SessionDep,
    *,
    route: str,
    principal: Principal,
    key: str | None,
    body: Any,
    status_code: int,
    handler: Any,
) -> ORJSONResponse:
    claim = None
    if key is not None:
        claim = await idempotency.claim(
            session, route=route, principal=principal, key=idempotency.validate_key(key), body=body
        )
        if claim.replay is not None:
            replay_status, replay_body = claim.replay
            return ORJSONResponse(replay_body, status_code=replay_status, headers={"Idempotent-Replayed": "true"})
    result = await handler()
    payload = result.model_dump(mode="json")
    if claim is not None:
        await idempotency.remember(session, claim, status_code, payload)
    return ORJSONResponse(payload, status_code=status_code)


# --- messages ---------------------------------------------------------------------------------


@messages_router.post(
    "",
    status_code=202,
    response_model=MessagePublic,
    summary="Send one message to a contact (a template, or free-form inside the 24-hour window)",
    responses={409: {"description": "contact opted out of marketing"}, 422: {"description": "refused"}},
)
async def send_message(
    request: SendMessageIn, session: SessionDep, principal: Operator, idempotency_key: IdempotencyHeader = None
) -> ORJSONResponse:
    async def handler() -> MessagePublic:
        return service.to_public(await service.send_message(session, request))

    return await _idempotent(
        session,
        route="messages",
        principal=principal,
        key=idempotency_key,
        body=request.model_dump(mode="json"),
        status_code=202,
        handler=handler,
    )


@messages_router.get("", response_model=MessageList, summary="List messages (newest first, keyset-paginated)")
async def list_messages(
    session: SessionDep,
    _: Viewer,
    status: MessageStatus | None = None,
    direction: Direction | None = None,
    contact_id: uuid.UUID | None = None,
    template: Annotated[str | None, Query(max_length=512)] = None,
    automation_id: uuid.UUID | None = None,
    broadcast_id: uuid.UUID | None = None,
    created_from: Annotated[datetime | None, Query(description="inclusive, ISO 8601 with offset")] = None,
    created_to: Annotated[datetime | None, Query(description="exclusive, ISO 8601 with offset")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MessageList:
    filters = service.MessageFilters(
        status=status.value if status else None,
        direction=direction.value if direction else None,
        contact_id=contact_id,
        template=template,
        automation_id=automation_id,
        broadcast_id=broadcast_id,
        created_from=created_from,
        created_to=created_to,
    )
    rows, next_cursor = await service.list_messages(session, filters, limit, cursor)
    return MessageList(data=rows, next_cursor=next_cursor)


@messages_router.get("/{message_id}", response_model=MessageDetail, summary="One message with its status timeline")
async def get_message(message_id: uuid.UUID, session: SessionDep, _: Viewer) -> MessageDetail:
    return await service.message_detail(session, message_id)


# --- conversations ----------------------------------------------------------------------------


@conversations_router.get(
    "/{contact_id}", response_model=MessageList, summary="One contact's messages in both directions, newest first"
)
async def conversation(
    contact_id: uuid.UUID,
    session: SessionDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MessageList:
    await service.require_contact(session, contact_id)
    rows, next_cursor = await service.list_messages(
        session, service.MessageFilters(contact_id=contact_id), limit, cursor
    )
    return MessageList(data=rows, next_cursor=next_cursor)


# --- broadcasts -------------------------------------------------------------------------------


@broadcasts_router.post(
    "",
    status_code=202,
    response_model=BroadcastPublic | BroadcastDryRun,
    summary="Send a template to a segment (tags, attributes); `dry_run` returns the audience size and a sample",
)
async def create_broadcast(
    request: BroadcastIn, session: SessionDep, principal: Operator, idempotency_key: IdempotencyHeader = None
) -> ORJSONResponse:
    async def handler() -> BroadcastPublic | BroadcastDryRun:
        return await service.create_broadcast(session, request, principal.user_id)

    return await _idempotent(
        session,
        route="broadcasts",
        principal=principal,
        key=idempotency_key,
        body=request.model_dump(mode="json"),
        status_code=200 if request.dry_run else 202,
        handler=handler,
    )


@broadcasts_router.get(
    "/{broadcast_id}", response_model=BroadcastPublic, summary="A broadcast and its messages by status"
)
async def get_broadcast(broadcast_id: uuid.UUID, session: SessionDep, _: Viewer) -> BroadcastPublic:
    return await service.broadcast_summary(session, broadcast_id)


# --- templates --------------------------------------------------------------------------------


def _client() -> CloudAPIClient:
    return CloudAPIClient.from_settings(get_settings())


def _upstream(exc: CloudAPIError) -> HeraldError:
    """A Cloud API refusal of a template operation, passed on as a clear problem."""
    if exc.http_status is not None and 400 <= exc.http_status < 500 and exc.code not in (0, 190):
        return HeraldError(
            f"the Cloud API refused: {exc.message}" + (f" ({exc.details})" if exc.details else ""),
            code="cloud_api_rejected",
            extra={"cloud_api_error": exc.to_dict()},
        )
    return ServiceUnavailable(f"the Cloud API is unavailable: {exc.message}", code="cloud_api_unavailable")


@templates_router.get("", response_model=TemplateList, summary="Templates as last synced from the Cloud API")
async def list_templates(
    session: SessionDep,
    _: Viewer,
    status: TemplateStatus | None = None,
    name: Annotated[str | None, Query(max_length=512)] = None,
) -> TemplateList:
    statement = select(MessageTemplate).order_by(MessageTemplate.name, MessageTemplate.language)  # type: ignore[arg-type]
    if status is not None:
        statement = statement.where(MessageTemplate.status == status.value)  # type: ignore[arg-type]
    if name is not None:
        statement = statement.where(MessageTemplate.name == name)  # type: ignore[arg-type]
    rows = (await session.execute(statement)).scalars().all()
    data = [TemplatePublic.model_validate(row, from_attributes=True) for row in rows]
    return TemplateList(data=data, count=len(data))


@templates_router.post("/sync", response_model=SyncReportPublic, summary="Fetch the WABA's templates now")
async def sync(session: SessionDep, _: Operator) -> SyncReportPublic:
    try:
        async with _client() as client:
            report = await sync_templates(session, client)
    except CloudAPIError as exc:
        raise _upstream(exc) from exc
    return SyncReportPublic(**report.as_dict())


@templates_router.post(
    "", status_code=201, response_model=TemplatePublic, summary="Submit a new template for Meta's review (admin)"
)
async def create_template(request: TemplateCreate, session: SessionDep, _: Admin, http: Request) -> TemplatePublic:
    try:
        async with _client() as client:
            created = await client.create_template(
                request.name,
                request.language,
                request.category,
                request.components,
                parameter_format=request.parameter_format,
            )
    except CloudAPIError as exc:
        raise _upstream(exc) from exc
    status = str(created.get("status") or TemplateStatus.PENDING.value).upper()
    template = MessageTemplate(
        meta_template_id=str(created.get("id") or "") or None,
        name=request.name,
        language=request.language,
        category=str(created.get("category") or request.category).upper(),
        status=status if status in TemplateStatus.__members__ else TemplateStatus.PENDING.value,
        components=request.components,
        parameter_format=request.parameter_format or "POSITIONAL",
        synced_at=utcnow(),
    )
    existing = (
        await session.execute(
            select(MessageTemplate).where(
                MessageTemplate.name == request.name,  # type: ignore[arg-type]
                MessageTemplate.language == request.language,  # type: ignore[arg-type]
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        for field in ("meta_template_id", "category", "status", "components", "parameter_format", "synced_at"):
            setattr(existing, field, getattr(template, field))
        template = existing
    else:
        session.add(template)
    await session.flush()
    return TemplatePublic.model_validate(template, from_attributes=True)


@templates_router.delete("/{name}", status_code=204, summary="Delete a template in every language (admin)")
async def delete_template(name: str, session: SessionDep, _: Admin) -> None:
    rows = (
        (
            await session.execute(select(MessageTemplate).where(MessageTemplate.name == name))  # type: ignore[arg-type]
        )
        .scalars()
        .all()
    )
    if not rows:
        raise NotFound(f"no template named {name!r}", code="template_not_found")
    try:
        async with _client() as client:
            await client.delete_template(name)
    except CloudAPIError as exc:
        raise _upstream(exc) from exc
    for row in rows:
        row.status = TemplateStatus.DELETED.value
        row.synced_at = utcnow()
    await session.flush()


routers = [messages_router, broadcasts_router, conversations_router, templates_router]
