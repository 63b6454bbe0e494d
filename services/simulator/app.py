"""WhatsApp Cloud API simulator: Meta's Graph API shapes under ``/v{version}/...`` and a
control API under ``/_sim/...`` for tests, demos and benchmarks.

Run: ``uv run uvicorn services.simulator.app:app --port 8090 --loop uvloop --http httptools --no-access-log``
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.simulator import graph
from services.simulator.config import SimulatorSettings
from services.simulator.schemas import InboundMessage, TemplateIn, TemplateStatusIn
from services.simulator.state import MediaRecord, SimState, TemplateRecord
from services.simulator.webhooks import WebhookDispatcher, envelope

TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
TEMPLATE_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
# Widely cited size limits per media family (UNCERTAIN, Meta's pages vary).
MEDIA_LIMITS = {
    "image": 5 << 20,
    "video": 16 << 20,
    "audio": 16 << 20,
    "application": 100 << 20,
    "text": 100 << 20,
}
STICKER_LIMIT = 500 << 10
JSON = "application/json"
JSON_HEADERS = [(b"content-type", b"application/json")]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _answer(answer: graph.Answer) -> Response:
    return Response(answer[1], status_code=answer[0], media_type=JSON)


class SendFastPath:
    """Serves ``POST /{version}/{phone_number_id}/messages`` straight from ASGI.

    This route is the dispatch benchmark's baseline; skipping FastAPI's routing and request
    objects roughly doubles what one process accepts. Every other path goes to FastAPI.
    """

    def __init__(self, app: ASGIApp, state: SimState, dispatcher: WebhookDispatcher) -> None:
        self.app = app
        self.state = state
        self.dispatcher = dispatcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            parts = scope["path"].split("/")
            if len(parts) == 4 and parts[3] == "messages" and parts[1][:1] == "v":
                await self._messages(scope, receive, send, parts[2])
                return
        await self.app(scope, receive, send)

    async def _messages(self, scope: Scope, receive: Receive, send: Send, phone_number_id: str) -> None:
        chunks: list[bytes] = []
        while True:
            message: Message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        state = self.state
        answer = None
        if graph.faults_armed(state) and graph.authorized(state, authorization):
            answer = await graph.apply_faults(state)
        if answer is None:
            answer = graph.handle_messages(
                state, self.dispatcher, phone_number_id, authorization, b"".join(chunks)
            )
        status, body = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(settings: SimulatorSettings | None = None) -> FastAPI:
    """The simulator app; settings default to the SIM_* environment."""
    state = SimState(settings or SimulatorSettings())
    dispatcher = WebhookDispatcher(state)
    review_tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dispatcher.start()
        try:
            yield
        finally:
            for task in list(review_tasks):
                task.cancel()
            await dispatcher.stop()

    app = FastAPI(
        title="Herald WhatsApp Cloud API simulator",
        description="Behaves like Meta's Cloud API for local runs, tests and benchmarks.",
        lifespan=lifespan,
    )
    app.state.sim = state
    app.state.dispatcher = dispatcher

    async def graph_guard(authorization: str | None) -> Response | None:
        if not graph.authorized(state, authorization):
            return _answer(graph.auth_error(state))
        if graph.faults_armed(state):
            fault = await graph.apply_faults(state)
            if fault is not None:
                return _answer(fault)
        return None

    def template_status_webhook(record: TemplateRecord, reason: str = "NONE") -> None:
        value = {
            "event": record.status,
            "message_template_id": int(record.id),
            "message_template_name": record.name,
            "message_template_language": record.language,
            "reason": reason,
            "message_template_category": record.category,
        }
        if state.settings.callback_url:
            dispatcher.push_delivery(
                envelope(state.settings.waba_id, "message_template_status_update", value, with_time=True)
            )

    async def review(record: TemplateRecord) -> None:
        await asyncio.sleep(state.settings.template_review_seconds)
        if state.templates.get((record.name, record.language)) is record and record.status == "PENDING":
            record.status = state.settings.template_review_outcome
            reason = "INVALID_FORMAT" if record.status == "REJECTED" else "NONE"
            record.rejected_reason = reason
            template_status_webhook(record, reason)

    control = APIRouter(prefix="/_sim", tags=["control"])
    api = APIRouter(tags=["graph"])

    # --- control API ----------------------------------------------------------------------

    @control.get("/config")
    async def get_config() -> Response:
        return _json(state.settings.model_dump(mode="json"))

    async def update_config(request: Request, base: SimulatorSettings) -> Response:
        try:
            changes = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(422, "body must be JSON") from exc
        if not isinstance(changes, dict):
            raise HTTPException(422, "body must be a JSON object")
        unknown = sorted(set(changes) - set(SimulatorSettings.model_fields))
        if unknown:
            raise HTTPException(422, f"unknown settings: {unknown}")
        try:
            state.settings = SimulatorSettings.model_validate({**base.model_dump(), **changes})
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        state.limits_changed()
        dispatcher.resize()
        if "seed" in changes:
            state.rng.seed(state.settings.seed)
        return _json(state.settings.model_dump(mode="json"))

    @control.patch("/config")
    async def patch_config(request: Request) -> Response:
        """Change some settings; the rest stay as they are."""
        return await update_config(request, state.settings)

    @control.put("/config")
    async def put_config(request: Request) -> Response:
        """Replace the settings: start-up values plus the given ones."""
        return await update_config(request, state.startup_settings)

    @control.post("/reset")
    async def reset(keep_config: bool = False) -> Response:
        """Forget messages, stats, windows, media, templates and pending webhooks."""
        state.reset(keep_settings=keep_config)
        dispatcher.clear()
        return _json({"reset": True})

    @control.get("/messages")
    async def list_messages(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
        to: str | None = None,
    ) -> Response:
        """Every accepted send, in order."""
        rows = state.messages if to is None else [m for m in state.messages if m["wa_id"] == to.lstrip("+")]
        return _json({"data": rows[offset : offset + limit], "count": len(rows)})

    @control.get("/stats")
    async def stats() -> Response:
        return _json({**state.stats.to_dict(), "webhooks_pending": dispatcher.pending})

    @control.post("/inbound")
    async def inbound(message: InboundMessage) -> Response:
        """Deliver a customer message as a signed ``messages`` webhook and open the 24h window."""
        settings = state.settings
        phone_number_id = message.phone_number_id or settings.phone_number_id
        wa_id = message.from_.lstrip("+")
        wamid = state.next_wamid(wa_id)
        body: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))}
        if message.context_message_id:
            body["context"] = {"from": settings.display_phone_number, "id": message.context_message_id}
        if message.type == "text":
            body |= {"type": "text", "text": {"body": message.text or "Hi"}}
        elif message.type in {"button_reply", "list_reply"}:
            reply = {"id": message.reply_id or "reply_1", "title": message.text or "Yes"}
            if message.type == "list_reply" and message.description:
                reply["description"] = message.description
            body |= {"type": "interactive", "interactive": {"type": message.type, message.type: reply}}
        elif message.type == "button":
            payload = message.reply_id or message.text or "Yes"
            body |= {"type": "button", "button": {"payload": payload, "text": message.text or payload}}
        elif message.type == "reaction":
            if not message.message_id:
                raise HTTPException(422, "a reaction needs message_id")
            body |= {
                "type": "reaction",
                "reaction": {"message_id": message.message_id, "emoji": message.emoji or "👍"},
            }
        else:  # image: stored, so the receiver can fetch it through GET /{media_id}
            content = b"\xff\xd8\xff\xe0" + wamid.encode()
            media = _store_media(content, message.mime_type, "inbound.jpg")
            image = {"mime_type": message.mime_type, "sha256": media.sha256, "id": media.id}
            if message.text:
                image["caption"] = message.text
            body |= {"type": "image", "image": image}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": settings.display_phone_number,
                "phone_number_id": phone_number_id,
            },
            "contacts": [{"profile": {"name": message.name}, "wa_id": wa_id}],
            "messages": [body],
        }
        state.open_window(phone_number_id, wa_id)
        state.stats.inbound += 1
        if settings.callback_url:
            dispatcher.push_delivery(envelope(settings.waba_id, "messages", value))
        return _json({"wamid": wamid, "value": value})

    @control.get("/templates")
    async def control_templates() -> Response:
        return _json({"data": [t.to_graph() for t in state.templates.values()]})

    @control.post("/templates", status_code=201)
    async def control_add_template(template: TemplateIn) -> Response:
        """Add or replace a template in any review state."""
        record = TemplateRecord(id=str(next(state.template_ids)), **template.model_dump())
        state.add_template(record)
        return _json(record.to_graph(), 201)

    @control.patch("/templates/{template_id}")
    async def control_template_status(template_id: str, change: TemplateStatusIn) -> Response:
        """Move a template to another review state and send the status webhook Meta would."""
        record = state.template_by_id(template_id)
        if record is None:
            raise HTTPException(404, "no such template")
        record.status = change.status
        record.rejected_reason = change.reason if change.status == "REJECTED" else "NONE"
        template_status_webhook(record, change.reason)
        return _json(record.to_graph())

    @control.get("/media/{media_id}")
    async def media_download(
        media_id: str, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        """The download URL handed out by ``GET /{media_id}``; needs the bearer token like Meta's."""
        if not graph.authorized(state, authorization):
            return _answer(graph.auth_error(state))
        media = state.media.get(media_id)
        if media is None:
            raise HTTPException(404, "media not found")
        return Response(media.content, media_type=media.mime_type)

    # --- Graph API ------------------------------------------------------------------------

    def _store_media(content: bytes, mime_type: str, filename: str) -> MediaRecord:
        media_id = str(next(state.media_ids))
        record = MediaRecord(media_id, content, mime_type, hashlib.sha256(content).hexdigest(), filename)
        state.media[media_id] = record
        return record

    @api.post("/{version}/{phone_number_id}/messages")
    async def messages(
        version: str,
        phone_number_id: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Send a message, mark one read, or show typing (normally answered by SendFastPath)."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        return _answer(
            graph.handle_messages(state, dispatcher, phone_number_id, authorization, await request.body())
        )

    @api.post("/{version}/{phone_number_id}/media")
    async def upload_media(
        version: str,
        phone_number_id: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Multipart upload: ``file``, ``type`` and ``messaging_product=whatsapp``."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        form = await request.form()
        if form.get("messaging_product") != "whatsapp":
            return _answer(graph.error_answer(state, 100, "The parameter messaging_product is required."))
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _answer(graph.error_answer(state, 131008, "The parameter file is required."))
        mime_type = str(form.get("type") or upload.content_type or "")
        family = mime_type.split("/", 1)[0]
        if family not in MEDIA_LIMITS:
            return _answer(
                graph.error_answer(state, 100, f"Param type {mime_type!r} is not a supported media type.")
            )
        content = await upload.read()
        limit = STICKER_LIMIT if mime_type == "image/webp" else MEDIA_LIMITS[family]
        if len(content) > limit:
            return _answer(
                graph.error_answer(state, 100, f"Media of type {mime_type} is limited to {limit} bytes.")
            )
        return _json({"id": _store_media(content, mime_type, upload.filename or "file").id})

    @api.get("/{version}/{object_id}")
    async def get_object(
        version: str, object_id: str, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        """Media URL and metadata for a media id, or a template by id."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        media = state.media.get(object_id)
        if media is not None:
            return _json(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{str(request.base_url).rstrip('/')}/_sim/media/{media.id}?mid={media.id}",
                    "mime_type": media.mime_type,
                    "sha256": media.sha256,
                    "file_size": len(media.content),
                    "id": media.id,
                }
            )
        template = state.template_by_id(object_id)
        if template is not None:
            return _json(template.to_graph())
        return _answer(graph.object_not_found(state, object_id))

    @api.delete("/{version}/{object_id}")
    async def delete_object(
        version: str, object_id: str, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        """Delete uploaded media."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        if state.media.pop(object_id, None) is None:
            return _answer(graph.object_not_found(state, object_id, "delete"))
        return _json({"success": True})

    @api.get("/{version}/{waba_id}/message_templates")
    async def list_templates(
        version: str,
        waba_id: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 25,
        after: str | None = None,
        name: str | None = None,
        status: str | None = None,
        fields: str | None = None,
    ) -> Response:
        """Templates, filtered, one cursor-paged page at a time."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        rows = sorted(state.templates.values(), key=lambda t: int(t.id))
        if name:
            rows = [t for t in rows if name in t.name]
        if status:
            rows = [t for t in rows if t.status == status.upper()]
        start = _decode_cursor(after) + 1 if after else 0
        page = rows[start : start + limit]
        wanted = {f.strip() for f in fields.split(",")} | {"id"} if fields else None
        data = [{k: v for k, v in t.to_graph().items() if wanted is None or k in wanted} for t in page]
        paging: dict[str, Any] = {}
        if page:
            paging["cursors"] = {"before": _cursor(start), "after": _cursor(start + len(page) - 1)}
            if start + len(page) < len(rows):
                query = {k: v for k, v in request.query_params.items() if k != "after"}
                query["after"] = _cursor(start + len(page) - 1)
                paging["next"] = f"{str(request.base_url).rstrip('/')}{request.url.path}?{urlencode(query)}"
        return _json({"data": data, "paging": paging})

    @api.post("/{version}/{waba_id}/message_templates")
    async def create_template(
        version: str, waba_id: str, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        """Submit a template: it starts PENDING and is reviewed after ``template_review_seconds``."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return _answer(graph.error_answer(state, 100, "The request body must be a JSON object."))
        for required in ("name", "language", "category", "components"):
            if not body.get(required):
                return _answer(graph.error_answer(state, 100, f"The parameter {required} is required."))
        name, language, category = str(body["name"]), str(body["language"]), str(body["category"]).upper()
        components = body["components"]
        if not TEMPLATE_NAME.match(name):
            return _answer(
                graph.error_answer(state, 100, "Template name may hold only lowercase letters, digits and _.")
            )
        if category not in TEMPLATE_CATEGORIES:
            return _answer(
                graph.error_answer(
                    state, 100, f"Param category must be one of {sorted(TEMPLATE_CATEGORIES)}."
                )
            )
        if not isinstance(components, list) or not any(
            isinstance(c, dict) and str(c.get("type", "")).upper() == "BODY" for c in components
        ):
            return _answer(graph.error_answer(state, 100, "A template needs a BODY component."))
        if (name, language) in state.templates:
            # UNCERTAIN: Meta answers this with code 100 and a subcode about existing content.
            return _answer(
                graph.error_answer(state, 100, f"Content in {language} already exists for {name}.")
            )
        record = TemplateRecord(
            id=str(next(state.template_ids)),
            name=name,
            language=language,
            category=category,
            status="PENDING",
            components=components,
            parameter_format=str(body.get("parameter_format") or "POSITIONAL").upper(),
        )
        state.add_template(record)
        task = asyncio.create_task(review(record))
        review_tasks.add(task)
        task.add_done_callback(review_tasks.discard)
        return _json({"id": record.id, "status": record.status, "category": record.category})

    @api.delete("/{version}/{waba_id}/message_templates")
    async def delete_template(
        version: str,
        waba_id: str,
        name: str | None = None,
        hsm_id: str | None = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Delete every language of a template by name, or one by ``hsm_id``."""
        guard = await graph_guard(authorization)
        if guard is not None:
            return guard
        if not name:
            return _answer(graph.error_answer(state, 131008, "The parameter name is required."))
        doomed = [
            key for key, t in state.templates.items() if t.name == name and (not hsm_id or t.id == hsm_id)
        ]
        if not doomed:
            return _answer(graph.error_answer(state, 100, f"Message template {name!r} not found."))
        for key in doomed:
            del state.templates[key]
        return _json({"success": True})

    @app.get("/health", tags=["health"])
    @app.get("/ready", tags=["health"])
    async def health() -> Response:
        return _json({"status": "ok"})

    # Control routes first: "/_sim/x" would otherwise match "/{version}/{object_id}".
    app.include_router(control)
    app.include_router(api)
    app.add_middleware(SendFastPath, state=state, dispatcher=dispatcher)
    return app


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError:
        return -1


app = create_app()
