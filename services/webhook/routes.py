"""HTTP layer: Meta's webhook endpoint (verification handshake and signed intake) and the admin API."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from herald.api import SessionDep
from herald.auth import Admin
from herald.errors import Forbidden, HeraldError, NotFound, ValidationFailed
from herald.models import InboxStatus, WebhookEvent
from herald.observability import metrics
from herald.settings import get_settings
from herald.webhooks import SignatureCheck, verify_signature
from herald.webhooks.inbox import list_statement, replay_events
from herald.webhooks.signature import SIGNATURE_HEADER
from services.webhook.ingest import InboxUnavailableError, InboxWriter
from services.webhook.schemas import ReplayResult, WebhookEventDetail, WebhookEventList, WebhookEventSummary

webhook_router = APIRouter(prefix="/webhooks/whatsapp", tags=["webhook"])
admin_router = APIRouter(prefix="/api/v1/webhook-events", tags=["webhook events"])

RECEIVED = b'{"received":true}'


class SignatureRejected(HeraldError):
    status_code = 401
    code = "signature_invalid"
    title = "Invalid webhook signature"


class InboxUnavailable(HeraldError):
    status_code = 503
    code = "inbox_unavailable"
    title = "Webhook inbox unavailable"


class MalformedBody(HeraldError):
    status_code = 400
    code = "malformed_json"
    title = "Malformed JSON"


def inbox_writer(request: Request) -> InboxWriter:
    writer: InboxWriter | None = getattr(request.app.state, "inbox_writer", None)
    if writer is None:
        writer = request.app.state.inbox_writer = InboxWriter()
    return writer


@webhook_router.get(
    "", response_class=PlainTextResponse, summary="Verification handshake: echo hub.challenge to Meta"
)
async def verify(
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=256)] = None,
) -> PlainTextResponse:
    expected = get_settings().webhook_verify_token.get_secret_value()
    token_ok = bool(expected) and token is not None and hmac.compare_digest(token.encode(), expected.encode())
    if mode != "subscribe" or not token_ok or challenge is None:
        raise Forbidden(
            "hub.mode must be subscribe and hub.verify_token must match", code="verification_failed"
        )
    return PlainTextResponse(challenge)


@webhook_router.post(
    "",
    summary="Receive a signed webhook: store it durably, answer 200, process it in a worker",
    responses={
        401: {"description": "signature_missing / signature_invalid: nothing stored"},
        400: {"description": "malformed_json: not stored"},
        413: {"description": "payload_too_large (Meta caps payloads at 3 MB)"},
        503: {"description": "inbox_unavailable: the database is unreachable, nothing stored"},
    },
)
async def receive(request: Request) -> Response:
    body = await request.body()
    check = verify_signature(
        get_settings().whatsapp_app_secret.get_secret_value(), body, request.headers.get(SIGNATURE_HEADER)
    )
    if check is not SignatureCheck.VALID:
        metrics.WEBHOOK_SIGNATURE_FAILURES.labels(check.value).inc()
        raise SignatureRejected(
            f"{SIGNATURE_HEADER} is {check.value}",
            code=f"signature_{check.value}",
            errors=[{"field": SIGNATURE_HEADER, "message": f"signature {check.value}"}],
        )
    try:
        # Well-formedness only; the worker reads the structure. Meta never sends non-JSON, so a
        # signed body that is not a JSON object is refused rather than kept.
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"the body is not JSON: {exc}", errors=[{"field": "body", "message": str(exc)}]
        ) from exc
    if not isinstance(parsed, dict):
        raise MalformedBody(
            "the body must be a JSON object", errors=[{"field": "body", "message": "not an object"}]
        )
    try:
        await inbox_writer(request).store(body.decode())
    except InboxUnavailableError as exc:
        # Not acknowledged, so Meta delivers it again later: nothing is lost.
        raise InboxUnavailable("the event could not be stored; retry later") from exc
    return Response(RECEIVED, media_type="application/json")


# --- admin API ------------------------------------------------------------------------------------


def _summary(row: WebhookEvent) -> WebhookEventSummary:
    return WebhookEventSummary.model_validate(row, from_attributes=True)


@admin_router.get("", response_model=WebhookEventList, summary="List stored webhook events, newest first")
async def list_events(
    session: SessionDep,
    _: Admin,
    status: InboxStatus | None = None,
    received_from: Annotated[datetime | None, Query(alias="from", description="received at or after")] = None,
    received_to: Annotated[datetime | None, Query(alias="to", description="received before")] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WebhookEventList:
    for name, value in (("from", received_from), ("to", received_to)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed.on_field(name, "give a timezone (e.g. 2025-01-01T00:00:00Z)")
    rows_query, total_query = list_statement(
        status=status, received_from=received_from, received_to=received_to, before_id=before_id, limit=limit
    )
    rows = list((await session.execute(rows_query)).scalars())
    total = int((await session.execute(total_query)).scalar_one())
    next_before = rows[-1].id if len(rows) == limit else None
    return WebhookEventList(data=[_summary(row) for row in rows], count=total, next_before_id=next_before)


async def _get(session: SessionDep, event_id: int) -> WebhookEvent:
    row = await session.get(WebhookEvent, event_id)
    if row is None:
        raise NotFound(f"no webhook event {event_id}", code="webhook_event_not_found")
    return row


@admin_router.get(
    "/{event_id}", response_model=WebhookEventDetail, summary="One stored event with its raw body"
)
async def get_event(event_id: int, session: SessionDep, _: Admin) -> WebhookEventDetail:
    row = await _get(session, event_id)
    return WebhookEventDetail.model_validate(row, from_attributes=True)


@admin_router.post(
    "/{event_id}/replay",
    response_model=WebhookEventSummary,
    status_code=202,
    summary="Process one stored event again (any status; processing is idempotent)",
)
async def replay_one(event_id: int, session: SessionDep, _: Admin) -> WebhookEventSummary:
    await _get(session, event_id)
    await replay_events(session, event_id=event_id)
    row = await _get(session, event_id)
    await session.refresh(row)
    return _summary(row)


@admin_router.post(
    "/replay-failed",
    response_model=ReplayResult,
    status_code=202,
    summary="Process every failed (or, with status=skipped, every skipped) event again",
)
async def replay_failed(
    session: SessionDep,
    _: Admin,
    status: Annotated[InboxStatus, Query(description="failed (default) or skipped")] = InboxStatus.FAILED,
) -> ReplayResult:
    if status not in (InboxStatus.FAILED, InboxStatus.SKIPPED):
        raise ValidationFailed.on_field("status", "only failed or skipped events are replayed in bulk")
    ids = await replay_events(session, status=status)
    return ReplayResult(replayed=len(ids), ids=ids)
