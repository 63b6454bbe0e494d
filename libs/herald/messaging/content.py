"""What a caller asks to send: typed content, turned into the Cloud API body we store and send."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from herald.whatsapp.payloads import ListSection, MediaKind, ReplyButtonBody

TemplateValues = (
    list[Annotated[str, Field(max_length=1024)]] | dict[str, Annotated[str, Field(max_length=1024)]]
)


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeaderMedia(_Content):
    """The media of a template whose header is an IMAGE, VIDEO or DOCUMENT."""

    kind: Literal["image", "video", "document"]
    link: str | None = Field(None, max_length=2048)
    media_id: str | None = Field(None, max_length=128)
    filename: str | None = Field(None, max_length=240)

    @model_validator(mode="after")
    def _one_source(self) -> HeaderMedia:
        if (self.link is None) == (self.media_id is None):
            raise ValueError("give exactly one of link or media_id")
        return self


class ButtonParameter(_Content):
    """The value of a URL button's variable or a copy-code button's code, by button index."""

    index: int = Field(ge=0, le=9)
    sub_type: Literal["url", "copy_code"] = "url"
    value: str = Field(min_length=1, max_length=2000)


class TemplateContent(_Content):
    """An approved template. A list fills positional `{{1}}..`; a mapping fills named variables."""

    type: Literal["template"] = "template"
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16)
    body_parameters: TemplateValues = Field(default_factory=list)
    header_parameters: TemplateValues = Field(default_factory=list)
    header_media: HeaderMedia | None = None
    button_parameters: list[ButtonParameter] = Field(default_factory=list, max_length=10)


class TextContent(_Content):
    """Free-form text: only inside the contact's 24-hour customer service window."""

    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = False


class MediaContent(_Content):
    """An image, document, audio, video or sticker by public link or uploaded media id."""

    type: Literal["media"] = "media"
    kind: MediaKind
    link: str | None = Field(None, max_length=2048)
    media_id: str | None = Field(None, max_length=128)
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = Field(None, max_length=240)

    @model_validator(mode="after")
    def _one_source(self) -> MediaContent:
        if (self.link is None) == (self.media_id is None):
            raise ValueError("give exactly one of link or media_id")
        if self.caption and self.kind in ("audio", "sticker"):
            raise ValueError(f"{self.kind} messages take no caption")
        return self


class InteractiveContent(_Content):
    """Reply buttons (up to 3) or a list menu (up to 10 rows)."""

    type: Literal["interactive"] = "interactive"
    kind: Literal["button", "list"]
    body: str = Field(min_length=1, max_length=1024)
    header: str | None = Field(None, max_length=60)
    footer: str | None = Field(None, max_length=60)
    buttons: list[ReplyButtonBody] | None = Field(None, min_length=1, max_length=3)
    button: str | None = Field(None, min_length=1, max_length=20)
    sections: list[ListSection] | None = Field(None, min_length=1, max_length=10)

    @model_validator(mode="after")
    def _shape(self) -> InteractiveContent:
        if self.kind == "button" and not self.buttons:
            raise ValueError("button messages need buttons")
        if self.kind == "list":
            if not (self.button and self.sections):
                raise ValueError("list messages need button and sections")
            if sum(len(s.rows) for s in self.sections) > 10:
                raise ValueError("a list message has at most 10 rows in total")
        return self


OutboundContent = Annotated[
    TemplateContent | TextContent | MediaContent | InteractiveContent, Field(discriminator="type")
]


def message_type(content: TemplateContent | TextContent | MediaContent | InteractiveContent) -> str:
    """The Cloud API `type` of the message this content becomes."""
    if isinstance(content, MediaContent):
        return content.kind
    return content.type


def _text_parameters(values: list[str] | dict[str, str]) -> list[dict[str, Any]]:
    if isinstance(values, dict):
        return [{"type": "text", "parameter_name": name, "text": value} for name, value in values.items()]
    return [{"type": "text", "text": value} for value in values]


def _media_object(link: str | None, media_id: str | None, **extra: str | None) -> dict[str, Any]:
    media: dict[str, Any] = {"link": link} if link is not None else {"id": media_id}
    media.update({key: value for key, value in extra.items() if value})
    return media


def cloud_api_body(
    content: TemplateContent | TextContent | MediaContent | InteractiveContent,
) -> dict[str, Any]:
    """The `POST /{phone_number_id}/messages` body without `to` and `biz_opaque_callback_data`.

    Those two are added at send time (the contact's current phone and Herald's message id), so
    the stored body is exactly what goes over the wire minus the recipient.
    """
    kind = message_type(content)
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "type": kind}
    if isinstance(content, TextContent):
        body["text"] = {"body": content.body, "preview_url": content.preview_url}
    elif isinstance(content, MediaContent):
        body[kind] = _media_object(
            content.link, content.media_id, caption=content.caption, filename=content.filename
        )
    elif isinstance(content, InteractiveContent):
        interactive: dict[str, Any] = {"type": content.kind, "body": {"text": content.body}}
        if content.header:
            interactive["header"] = {"type": "text", "text": content.header}
        if content.footer:
            interactive["footer"] = {"text": content.footer}
        if content.kind == "button":
            interactive["action"] = {
                "buttons": [{"type": "reply", "reply": b.model_dump()} for b in content.buttons or ()]
            }
        else:
            interactive["action"] = {
                "button": content.button,
                "sections": [s.model_dump(exclude_none=True) for s in content.sections or ()],
            }
        body["interactive"] = interactive
    else:
        components: list[dict[str, Any]] = []
        if content.header_media is not None:
            media = content.header_media
            components.append(
                {
                    "type": "header",
                    "parameters": [
                        {
                            "type": media.kind,
                            media.kind: _media_object(media.link, media.media_id, filename=media.filename),
                        }
                    ],
                }
            )
        elif content.header_parameters:
            components.append({"type": "header", "parameters": _text_parameters(content.header_parameters)})
        if content.body_parameters:
            components.append({"type": "body", "parameters": _text_parameters(content.body_parameters)})
        for button in sorted(content.button_parameters, key=lambda b: b.index):
            parameter = (
                {"type": "text", "text": button.value}
                if button.sub_type == "url"
                else {"type": "coupon_code", "coupon_code": button.value}
            )
            components.append(
                {
                    "type": "button",
                    "sub_type": button.sub_type,
                    "index": str(button.index),
                    "parameters": [parameter],
                }
            )
        template: dict[str, Any] = {"name": content.name, "language": {"code": content.language}}
        if components:
            template["components"] = components
        body["template"] = template
    return body


def searchable_text(content: TemplateContent | TextContent | MediaContent | InteractiveContent) -> str | None:
    """Plain text kept beside the message for search and conversation views."""
    if isinstance(content, TextContent):
        return content.body
    if isinstance(content, MediaContent):
        return content.caption
    if isinstance(content, InteractiveContent):
        return content.body
    return None
