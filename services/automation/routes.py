"""HTTP layer of the automation service: parse, authorize, call the service, shape the answer."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from herald.api import SessionDep
from herald.auth import Operator, Viewer
from herald.models import RunStatus, TriggerType
from herald.settings import get_settings
from services.automation import schemas, service

automations = APIRouter(prefix="/api/v1/automations", tags=["automations"])
runs = APIRouter(prefix="/api/v1/automation-runs", tags=["automation runs"])


@automations.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.AutomationPublic)
async def create_automation(
    body: schemas.AutomationCreate, session: SessionDep, principal: Operator
) -> schemas.AutomationPublic:
    """Create an automation; the definition is validated (422 names the offending field)."""
    automation = await service.create_automation(session, principal, body)
    return service.to_public(automation, principal)


@automations.get("", response_model=schemas.AutomationList)
async def list_automations(
    session: SessionDep,
    principal: Viewer,
    enabled: bool | None = None,
    trigger_type: TriggerType | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> schemas.AutomationList:
    rows, total = await service.list_automations(
        session,
        enabled=enabled,
        trigger_type=trigger_type.value if trigger_type else None,
        limit=limit,
        offset=offset,
    )
    return schemas.AutomationList(data=[service.to_public(a, principal) for a in rows], count=total)


@automations.get("/{automation_id}", response_model=schemas.AutomationPublic)
async def get_automation(automation_id: uuid.UUID, session: SessionDep, principal: Viewer) -> schemas.AutomationPublic:
    return service.to_public(await service.get_automation(session, automation_id), principal)


@automations.patch("/{automation_id}", response_model=schemas.AutomationPublic)
async def update_automation(
    automation_id: uuid.UUID, body: schemas.AutomationUpdate, session: SessionDep, principal: Operator
) -> schemas.AutomationPublic:
    """Edit name, description or definition; runs in flight keep the version they started with."""
    automation = await service.update_automation(session, principal, automation_id, body)
    return service.to_public(automation, principal)


@automations.delete("/{automation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_automation(automation_id: uuid.UUID, session: SessionDep, principal: Operator) -> Response:
    await service.delete_automation(session, principal, automation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@automations.post("/{automation_id}/enable", response_model=schemas.AutomationPublic)
async def enable_automation(
    automation_id: uuid.UUID, session: SessionDep, principal: Operator
) -> schemas.AutomationPublic:
    return service.to_public(await service.set_enabled(session, principal, automation_id, True), principal)


@automations.post("/{automation_id}/disable", response_model=schemas.AutomationPublic)
async def disable_automation(
    automation_id: uuid.UUID, session: SessionDep, principal: Operator
) -> schemas.AutomationPublic:
    return service.to_public(await service.set_enabled(session, principal, automation_id, False), principal)


@automations.get("/{automation_id}/preview", response_model=schemas.AudiencePreview)
async def preview_audience(
    automation_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    on: Annotated[date | None, Query(alias="date", description="YYYY-MM-DD; default today (UTC)")] = None,
) -> schemas.AudiencePreview:
    """How many contacts would fire on the date (or for the event), and a sample of them."""
    automation = await service.get_automation(session, automation_id)
    return await service.preview(session, automation, on)


@automations.post("/{automation_id}/test-send", response_model=schemas.TestSendResult)
async def test_send(
    automation_id: uuid.UUID, body: schemas.TestSendRequest, session: SessionDep, principal: Operator
) -> schemas.TestSendResult:
    """Send the automation's messages to one contact now (opt-out and window rules still apply)."""
    automation = await service.get_automation(session, automation_id)
    return await service.test_send(session, principal, automation, body.contact_id)


@automations.post("/{automation_id}/run", status_code=status.HTTP_202_ACCEPTED, response_model=schemas.RunStarted)
async def run_automation(
    automation_id: uuid.UUID, body: schemas.RunRequest, session: SessionDep, principal: Operator
) -> schemas.RunStarted:
    """Run now for one contact or a segment; repeating a `request_id` starts nothing new."""
    automation = await service.get_automation(session, automation_id)
    return await service.run_now(session, principal, automation, body)


@automations.get("/{automation_id}/performance", response_model=schemas.Performance, response_model_by_alias=True)
async def automation_performance(
    automation_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    reply_window_hours: Annotated[int | None, Query(ge=1, le=720)] = None,
) -> schemas.Performance:
    """Triggered, sent, delivered, read, replied, failed and opted out after, with rates."""
    automation = await service.get_automation(session, automation_id)
    window = reply_window_hours or get_settings().automation_reply_window_hours
    return await service.performance(session, automation, start, end, window)


@runs.get("", response_model=schemas.RunList)
async def list_runs(
    session: SessionDep,
    principal: Viewer,
    automation_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    run_status: Annotated[RunStatus | None, Query(alias="status")] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> schemas.RunList:
    rows, total = await service.list_runs(
        session,
        automation_id=automation_id,
        contact_id=contact_id,
        status=run_status.value if run_status else None,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        offset=offset,
    )
    return schemas.RunList(data=[schemas.RunPublic.model_validate(r, from_attributes=True) for r in rows], count=total)


@runs.get("/{run_id}", response_model=schemas.RunDetail)
async def get_run(run_id: uuid.UUID, session: SessionDep, principal: Viewer) -> schemas.RunDetail:
    """One run with its definition snapshot and per-step log."""
    return schemas.RunDetail.model_validate(await service.get_run(session, run_id), from_attributes=True)
