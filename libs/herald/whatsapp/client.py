"""Async WhatsApp Cloud API client on one pooled httpx.AsyncClient.

Build it once per process (``CloudAPIClient.from_settings``) and share it: the connection
pool and keep-alive are what make high send rates cheap. Every send goes through
``send_message``; failures raise :mod:`herald.whatsapp.errors` types carrying Meta's code,
details and fbtrace_id plus a retry classification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict

from herald.whatsapp.errors import CloudAPITransportError, error_from_response
from herald.whatsapp.payloads import (
    Context,
    Interactive,
    InteractiveAction,
    ListSection,
    MarkAsRead,
    Media,
    MediaKind,
    OutboundMessage,
    Reaction,
    ReplyButton,
    Template,
    TemplateComponent,
    TemplateLanguage,
    Text,
    TypingIndicator,
    text_parameters,
)

if TYPE_CHECKING:
    from herald.settings import Settings

_JSON_HEADERS = {"Content-Type": "application/json"}
TEMPLATE_FIELDS = ("id", "name", "language", "status", "category", "parameter_format", "components")


@dataclass(frozen=True, slots=True)
class SendResult:
    """What Meta answers to an accepted send (accepted is not delivered: statuses follow)."""

    wamid: str
    wa_id: str
    input: str
    message_status: str | None = None  # templates: "accepted" | "held_for_quality_assessment"


class MessageTemplate(BaseModel):
    """One template as listed by ``GET /{waba_id}/message_templates``."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    language: str
    status: str
    category: str | None = None
    parameter_format: str | None = None
    components: list[dict[str, Any]] = []


class MediaInfo(BaseModel):
    """``GET /{media_id}``: a short-lived download URL (needs the bearer token) and metadata."""

    model_config = ConfigDict(extra="allow")

    id: str
    url: str
    mime_type: str
    sha256: str | None = None
    file_size: int | None = None


def _normalize_version(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


class CloudAPIClient:
    """Typed async client for the Cloud API endpoints Herald uses."""

    def __init__(
        self,
        base_url: str,
        api_version: str,
        token: str,
        phone_number_id: str,
        business_id: str,
        timeout: float = 10.0,
        max_connections: int = 100,
        *,
        http2: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.business_id = business_id
        self.api_version = _normalize_version(api_version)
        self.base_url = f"{base_url.rstrip('/')}/{self.api_version}"
        self._messages_path = f"/{phone_number_id}/messages"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "herald-cloud-api-client"},
            # Connect fails fast so a dead endpoint is detected well inside the overall budget.
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            # Keep every pooled connection alive: dispatch reuses them at high rates.
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30.0,
            ),
            http2=http2,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CloudAPIClient:
        """Build the process-wide client from Herald settings (keyword overrides win)."""
        options: dict[str, Any] = {
            "base_url": settings.whatsapp_api_base_url,
            "api_version": settings.whatsapp_api_version,
            "token": settings.whatsapp_token.get_secret_value(),
            "phone_number_id": settings.phone_number_id,
            "business_id": settings.business_id,
            "timeout": settings.whatsapp_timeout_seconds,
            "max_connections": settings.whatsapp_max_connections,
            "http2": settings.whatsapp_http2,
        }
        options.update(overrides)
        return cls(**options)

    async def __aenter__(self) -> CloudAPIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    # --- transport -------------------------------------------------------------------------

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise CloudAPITransportError(f"{method} {url} timed out: {exc!r}", timeout=True) from exc
        except httpx.TransportError as exc:
            raise CloudAPITransportError(f"{method} {url} failed: {exc!r}") from exc
        if response.status_code >= 400:
            try:
                body: object = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = None
            raise error_from_response(response.status_code, body)
        return response

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self._request(method, url, **kwargs)
        return orjson.loads(response.content)

    # --- messages --------------------------------------------------------------------------

    async def send_message(self, payload: Mapping[str, Any]) -> SendResult:
        """POST a ready-made message body to ``/{phone_number_id}/messages``."""
        body = await self._json("POST", self._messages_path, content=orjson.dumps(payload), headers=_JSON_HEADERS)
        message = body["messages"][0]
        contact = body.get("contacts", [{}])[0]
        return SendResult(
            wamid=message["id"],
            wa_id=contact.get("wa_id", ""),
            input=contact.get("input", ""),
            message_status=message.get("message_status"),
        )

    async def _send(
        self,
        to: str,
        kind: str,
        content: BaseModel,
        context_message_id: str | None,
        biz_opaque_callback_data: str | None,
    ) -> SendResult:
        message = OutboundMessage.model_validate(
            {
                "to": to,
                "type": kind,
                kind: content,
                "context": Context(message_id=context_message_id) if context_message_id else None,
                "biz_opaque_callback_data": biz_opaque_callback_data,
            }
        )
        return await self.send_message(message.to_dict())

    async def send_text(
        self,
        to: str,
        body: str,
        *,
        preview_url: bool = False,
        context_message_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send a free-form text (only inside the 24-hour customer service window)."""
        return await self._send(
            to, "text", Text(body=body, preview_url=preview_url), context_message_id, biz_opaque_callback_data
        )

    async def send_template(
        self,
        to: str,
        name: str,
        language: str = "en_US",
        *,
        body_parameters: Sequence[str] | Mapping[str, str] | None = None,
        header_parameters: Sequence[str] | Mapping[str, str] | None = None,
        components: Sequence[TemplateComponent | Mapping[str, Any]] | None = None,
        context_message_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send an approved template.

        ``body_parameters``/``header_parameters`` are text parameters: a sequence fills
        ``{{1}}, {{2}}, ..`` in order, a mapping fills named ``{{first_name}}`` variables.
        ``components`` adds anything else (media headers, currency, buttons) verbatim.
        """
        parts: list[TemplateComponent] = []
        if header_parameters:
            parts.append(TemplateComponent(type="header", parameters=text_parameters(header_parameters)))
        if body_parameters:
            parts.append(TemplateComponent(type="body", parameters=text_parameters(body_parameters)))
        parts.extend(TemplateComponent.model_validate(c) for c in components or ())
        template = Template(name=name, language=TemplateLanguage(code=language), components=parts or None)
        return await self._send(to, "template", template, context_message_id, biz_opaque_callback_data)

    async def send_media(
        self,
        to: str,
        kind: MediaKind,
        *,
        link: str | None = None,
        media_id: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        context_message_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send an image/document/audio/video/sticker by public ``link`` or uploaded ``media_id``."""
        media = Media(id=media_id, link=link, caption=caption, filename=filename)
        return await self._send(to, kind, media, context_message_id, biz_opaque_callback_data)

    async def send_interactive_buttons(
        self,
        to: str,
        body: str,
        buttons: Sequence[ReplyButton | tuple[str, str]],
        *,
        header: str | None = None,
        footer: str | None = None,
        context_message_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send up to 3 reply buttons; ``buttons`` are ``ReplyButton`` or ``(id, title)`` pairs."""
        action = InteractiveAction(buttons=[b if isinstance(b, ReplyButton) else ReplyButton.of(*b) for b in buttons])
        interactive = Interactive.with_text(type="button", body=body, header=header, footer=footer, action=action)
        return await self._send(to, "interactive", interactive, context_message_id, biz_opaque_callback_data)

    async def send_interactive_list(
        self,
        to: str,
        body: str,
        button: str,
        sections: Sequence[ListSection | Mapping[str, Any]],
        *,
        header: str | None = None,
        footer: str | None = None,
        context_message_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send a list menu: ``button`` labels the menu, ``sections`` hold up to 10 rows in all."""
        action = InteractiveAction(button=button, sections=[ListSection.model_validate(s) for s in sections])
        interactive = Interactive.with_text(type="list", body=body, header=header, footer=footer, action=action)
        return await self._send(to, "interactive", interactive, context_message_id, biz_opaque_callback_data)

    async def send_reaction(
        self,
        to: str,
        message_id: str,
        emoji: str,
        *,
        context_message_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """React to a message with an emoji (``""`` removes the reaction)."""
        reaction = Reaction(message_id=message_id, emoji=emoji)
        return await self._send(to, "reaction", reaction, context_message_id, biz_opaque_callback_data)

    async def mark_as_read(self, message_id: str, *, typing_indicator: bool = False) -> bool:
        """Mark an inbound message read (blue ticks), optionally showing "typing..."."""
        payload = MarkAsRead(message_id=message_id, typing_indicator=TypingIndicator() if typing_indicator else None)
        body = await self._json(
            "POST", self._messages_path, content=orjson.dumps(payload.to_dict()), headers=_JSON_HEADERS
        )
        return bool(body.get("success"))

    # --- templates -------------------------------------------------------------------------

    async def list_templates(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        limit: int = 100,
        fields: Sequence[str] = TEMPLATE_FIELDS,
    ) -> list[MessageTemplate]:
        """Every template of the WABA, following ``paging.next`` until the last page."""
        params: dict[str, str | int] = {"limit": limit, "fields": ",".join(fields)}
        if name:
            params["name"] = name
        if status:
            params["status"] = status
        templates: list[MessageTemplate] = []
        url: str | None = f"/{self.business_id}/message_templates"
        request_params: dict[str, str | int] | None = params
        while url:
            page = await self._json("GET", url, params=request_params)
            templates.extend(MessageTemplate.model_validate(t) for t in page.get("data", ()))
            # `next` is an absolute URL that already carries every query parameter.
            url = (page.get("paging") or {}).get("next")
            request_params = None
        return templates

    async def create_template(
        self,
        name: str,
        language: str,
        category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"],
        components: Sequence[Mapping[str, Any]],
        *,
        parameter_format: Literal["POSITIONAL", "NAMED"] | None = None,
    ) -> dict[str, Any]:
        """Submit a template for review; answers ``{"id", "status", "category"}``."""
        payload: dict[str, Any] = {
            "name": name,
            "language": language,
            "category": category,
            "components": list(components),
        }
        if parameter_format:
            payload["parameter_format"] = parameter_format
        result: dict[str, Any] = await self._json(
            "POST",
            f"/{self.business_id}/message_templates",
            content=orjson.dumps(payload),
            headers=_JSON_HEADERS,
        )
        return result

    async def delete_template(self, name: str, *, template_id: str | None = None) -> bool:
        """Delete a template by name (every language), or one language when ``template_id`` is given."""
        params = {"name": name}
        if template_id:
            params["hsm_id"] = template_id
        body = await self._json("DELETE", f"/{self.business_id}/message_templates", params=params)
        return bool(body.get("success"))

    # --- media -----------------------------------------------------------------------------

    async def upload_media(self, content: bytes, mime_type: str, filename: str = "file") -> str:
        """Upload bytes (multipart) for later sends by id; returns the media id."""
        body = await self._json(
            "POST",
            f"/{self.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        return str(body["id"])

    async def get_media_url(self, media_id: str) -> MediaInfo:
        """The short-lived download URL and metadata of a media id."""
        return MediaInfo.model_validate(await self._json("GET", f"/{media_id}"))

    async def download_media(self, url: str) -> bytes:
        """Download media from a URL returned by :meth:`get_media_url` (sent with the bearer token)."""
        response = await self._request("GET", url)
        return response.content

    async def delete_media(self, media_id: str) -> bool:
        """Delete uploaded media."""
        body = await self._json("DELETE", f"/{media_id}")
        return bool(body.get("success"))
