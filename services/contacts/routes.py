"""HTTP layer of /api/v1/contacts: parse, authorize, call the service, shape the answer."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from herald.api import SessionDep
from herald.auth import Operator, Viewer
from herald.errors import UnsupportedMediaType, ValidationFailed
from herald.models import OptInStatus
from services.contacts import importer, repository, service
from services.contacts.repository import ContactFilters
from services.contacts.schemas import (
    ContactCreate,
    ContactList,
    ContactPublic,
    ContactUpdate,
    ImportReport,
    OptChange,
    TagsAdd,
    check_attribute_name,
    normalize_tag,
)

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])

MAX_ATTRIBUTE_FILTERS = 10
CSV_CONTENT_TYPES = {
    "text/csv",
    "application/csv",
    "text/plain",
    "application/vnd.ms-excel",
    "application/octet-stream",
    "",
}
_ATTR_PARAM = re.compile(r"^attr\.(.+)$")


def contact_filters(
    request: Request,
    tag: Annotated[list[str] | None, Query(description="Contacts having every one of these tags")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text search on name and phone")] = None,
    opt_in_status: Annotated[OptInStatus | None, Query()] = None,
    birthday_month: Annotated[int | None, Query(ge=1, le=12)] = None,
) -> ContactFilters:
    """Shared by the list and the export; `attr.<name>=<value>` query parameters filter attributes."""
    attributes: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:
            raise ValidationFailed.on_field(key, "query parameters cannot contain NUL characters")
        match = _ATTR_PARAM.match(key)
        if match is None:
            continue
        try:
            attributes[check_attribute_name(match.group(1))] = value
        except ValueError as exc:
            raise ValidationFailed.on_field(key, str(exc)) from exc
    if len(attributes) > MAX_ATTRIBUTE_FILTERS:
        raise ValidationFailed.on_field("attr", f"at most {MAX_ATTRIBUTE_FILTERS} attribute filters")
    try:
        tags = [normalize_tag(value) for value in tag or []]
    except ValueError as exc:
        raise ValidationFailed.on_field("tag", str(exc)) from exc
    return ContactFilters(
        tags=tags,
        q=q.strip() or None if q else None,
        opt_in_status=opt_in_status.value if opt_in_status else None,
        birthday_month=birthday_month,
        attributes=attributes,
    )


@router.post("", status_code=201, summary="Create a contact")
async def create_contact(body: ContactCreate, session: SessionDep, _: Operator) -> ContactPublic:
    return await service.create_contact(session, body)


@router.get(
    "",
    summary="List contacts (newest first, keyset-paginated)",
    description="Filters: `tag` (repeatable), `q`, `opt_in_status`, `birthday_month`, and "
    "`attr.<name>=<value>` for attribute equality (e.g. `?attr.plan=gold`).",
)
async def list_contacts(
    request: Request,
    session: SessionDep,
    _: Viewer,
    tag: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    opt_in_status: Annotated[OptInStatus | None, Query()] = None,
    birthday_month: Annotated[int | None, Query(ge=1, le=12)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    include_total: bool = False,
) -> ContactList:
    filters = contact_filters(request, tag, q, opt_in_status, birthday_month)
    rows, next_cursor = await repository.page(session, filters, limit, cursor)
    total = await repository.count(session, filters) if include_total else None
    return ContactList(data=[service.to_public(row) for row in rows], next_cursor=next_cursor, count=total)


@router.post(
    "/import",
    summary="Import contacts from a CSV upload (multipart field `file`)",
    description="Columns: phone (required), name, language, timezone, birthday (MM-DD or YYYY-MM-DD), "
    "tags (separated by ; or |), opt_in, and attr.<name>. Rows upsert by phone; bad rows are "
    "reported, good rows stored.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def import_contacts(request: Request, _: Operator) -> ImportReport:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            "send the CSV as multipart/form-data in a field named file", code="multipart_required"
        )
    # Starlette spools the upload to a temporary file, so memory stays flat for large files.
    async with request.form(max_files=1, max_fields=5) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed.on_field("file", "a CSV file is required in the field named file")
        media_type = (upload.content_type or "").split(";")[0].strip().lower()
        if media_type not in CSV_CONTENT_TYPES:
            raise UnsupportedMediaType(
                f"expected a CSV file, got {media_type}",
                code="not_csv",
                errors=[{"field": "file", "message": f"content type {media_type} is not CSV"}],
            )
        # Its own transaction (not SessionDep), so events can be sent in batches after commit.
        return await importer.import_file(upload.file)


@router.get(
    "/export",
    summary="Export contacts as CSV (same columns as the import, same filters as the list)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_contacts(
    request: Request,
    _: Viewer,
    tag: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    opt_in_status: Annotated[OptInStatus | None, Query()] = None,
    birthday_month: Annotated[int | None, Query(ge=1, le=12)] = None,
) -> StreamingResponse:
    filters = contact_filters(request, tag, q, opt_in_status, birthday_month)
    return StreamingResponse(
        importer.export_contacts(filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


@router.get("/{contact_id}", summary="Get a contact")
async def get_contact(contact_id: uuid.UUID, session: SessionDep, _: Viewer) -> ContactPublic:
    return service.to_public(await service.get_contact(session, contact_id))


@router.patch("/{contact_id}", summary="Update a contact (only the fields sent)")
async def update_contact(contact_id: uuid.UUID, body: ContactUpdate, session: SessionDep, _: Operator) -> ContactPublic:
    return await service.update_contact(session, contact_id, body)


@router.delete(
    "/{contact_id}",
    status_code=204,
    summary="Erase a contact (GDPR): the row, its messages and automation runs",
)
async def erase_contact(contact_id: uuid.UUID, session: SessionDep, principal: Operator) -> Response:
    await service.erase_contact(session, contact_id, principal)
    return Response(status_code=204)


@router.post("/{contact_id}/tags", summary="Add tags")
async def add_tags(contact_id: uuid.UUID, body: TagsAdd, session: SessionDep, _: Operator) -> ContactPublic:
    return await service.add_tags(session, contact_id, body.tags)


@router.delete("/{contact_id}/tags/{tag}", summary="Remove a tag")
async def remove_tag(contact_id: uuid.UUID, tag: str, session: SessionDep, _: Operator) -> ContactPublic:
    try:
        normalized = normalize_tag(tag)
    except ValueError as exc:
        raise ValidationFailed.on_field("tag", str(exc)) from exc
    return await service.remove_tag(session, contact_id, normalized)


@router.post("/{contact_id}/opt-in", summary="Record a WhatsApp opt-in")
async def opt_in(contact_id: uuid.UUID, body: OptChange, session: SessionDep, _: Operator) -> ContactPublic:
    return await service.set_opt_in(session, contact_id, OptInStatus.OPTED_IN, body.source)


@router.post("/{contact_id}/opt-out", summary="Record a WhatsApp opt-out")
async def opt_out(contact_id: uuid.UUID, body: OptChange, session: SessionDep, _: Operator) -> ContactPublic:
    return await service.set_opt_in(session, contact_id, OptInStatus.OPTED_OUT, body.source)
