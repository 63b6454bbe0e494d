"""Pydantic builders for Cloud API request bodies, dumped to Meta's exact JSON shapes.

Every model dumps with ``exclude_none`` so optional keys Meta does not expect are simply
absent. Limits checked here are the documented ones (button title <= 20 chars, at most 3
reply buttons, at most 10 list rows, body <= 4096 chars); Meta enforces more server-side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MediaKind = Literal["image", "document", "audio", "video", "sticker"]
MEDIA_KINDS: tuple[MediaKind, ...] = ("image", "document", "audio", "video", "sticker")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict Meta expects (``None`` fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


# --- message content -------------------------------------------------------------------------


class Text(_Payload):
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = False


class Media(_Payload):
    """An image/document/audio/video/sticker, by public ``link`` or uploaded ``id`` (never both)."""

    id: str | None = None
    link: str | None = None
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = None  # documents only

    @model_validator(mode="after")
    def _one_source(self) -> Media:
        if (self.id is None) == (self.link is None):
            raise ValueError("media needs exactly one of id or link")
        return self


class Reaction(_Payload):
    message_id: str
    emoji: str  # "" removes a previous reaction


class Context(_Payload):
    message_id: str


# --- templates -------------------------------------------------------------------------------


class CurrencyValue(_Payload):
    fallback_value: str
    code: str
    amount_1000: int


class DateTimeValue(_Payload):
    fallback_value: str


class TemplateParameter(_Payload):
    """One template parameter. ``parameter_name`` is set only for NAMED-format templates."""

    type: Literal["text", "currency", "date_time", "image", "document", "video", "payload", "coupon_code"]
    parameter_name: str | None = None
    text: str | None = None
    currency: CurrencyValue | None = None
    date_time: DateTimeValue | None = None
    image: Media | None = None
    document: Media | None = None
    video: Media | None = None
    payload: str | None = None
    coupon_code: str | None = None

    @model_validator(mode="after")
    def _value_matches_type(self) -> TemplateParameter:
        if getattr(self, self.type) is None:
            raise ValueError(f"a {self.type!r} parameter needs its {self.type!r} value")
        return self

    @classmethod
    def of_text(cls, text: str, name: str | None = None) -> TemplateParameter:
        """A text parameter, positional (``name=None``) or named."""
        return cls(type="text", text=text, parameter_name=name)


class TemplateComponent(_Payload):
    type: Literal["header", "body", "button"]
    sub_type: Literal["quick_reply", "url", "copy_code", "flow", "catalog"] | None = None
    index: str | None = None  # buttons only; Meta wants a string ("0", "1", ...)
    parameters: list[TemplateParameter] = Field(default_factory=list)


class TemplateLanguage(_Payload):
    code: str
    policy: Literal["deterministic"] | None = None  # legacy, optional


class Template(_Payload):
    name: str
    language: TemplateLanguage
    components: list[TemplateComponent] | None = None  # omitted for templates without variables


def text_parameters(values: Sequence[str] | Mapping[str, str]) -> list[TemplateParameter]:
    """Text parameters: a sequence gives positional ``{{1}}..``, a mapping gives named ones."""
    if isinstance(values, Mapping):
        return [TemplateParameter.of_text(str(v), name=k) for k, v in values.items()]
    return [TemplateParameter.of_text(str(v)) for v in values]


# --- interactive -----------------------------------------------------------------------------


class InteractiveText(_Payload):
    text: str


class InteractiveHeader(_Payload):
    type: Literal["text", "image", "video", "document"] = "text"
    text: str | None = Field(None, max_length=60)
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None


class ReplyButtonBody(_Payload):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=20)


class ReplyButton(_Payload):
    type: Literal["reply"] = "reply"
    reply: ReplyButtonBody

    @classmethod
    def of(cls, button_id: str, title: str) -> ReplyButton:
        """A reply button with this id (echoed in the user's reply) and title."""
        return cls(reply=ReplyButtonBody(id=button_id, title=title))


class ListRow(_Payload):
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(None, max_length=72)


class ListSection(_Payload):
    title: str | None = Field(None, max_length=24)
    rows: list[ListRow] = Field(min_length=1)


class InteractiveAction(_Payload):
    buttons: list[ReplyButton] | None = Field(None, min_length=1, max_length=3)
    button: str | None = Field(None, max_length=20)  # list messages: the menu button label
    sections: list[ListSection] | None = Field(None, min_length=1, max_length=10)

    @model_validator(mode="after")
    def _row_limit(self) -> InteractiveAction:
        if self.sections and sum(len(s.rows) for s in self.sections) > 10:
            raise ValueError("a list message has at most 10 rows in total")
        return self


class Interactive(_Payload):
    type: Literal["button", "list"]
    header: InteractiveHeader | None = None
    body: InteractiveText
    footer: InteractiveText | None = None
    action: InteractiveAction

    @classmethod
    def with_text(
        cls,
        type: Literal["button", "list"],
        body: str,
        action: InteractiveAction,
        header: str | None = None,
        footer: str | None = None,
    ) -> Interactive:
        """An interactive message whose header, body and footer are plain text."""
        return cls(
            type=type,
            header=InteractiveHeader(text=header) if header else None,
            body=InteractiveText(text=body),
            footer=InteractiveText(text=footer) if footer else None,
            action=action,
        )


# --- envelopes -------------------------------------------------------------------------------


class OutboundMessage(_Payload):
    """``POST /{phone_number_id}/messages`` body for every sendable message kind."""

    messaging_product: Literal["whatsapp"] = "whatsapp"
    recipient_type: Literal["individual", "group"] = "individual"
    to: str = Field(min_length=1)
    type: Literal["text", "template", "image", "document", "audio", "video", "sticker", "interactive", "reaction"]
    text: Text | None = None
    template: Template | None = None
    image: Media | None = None
    document: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    sticker: Media | None = None
    interactive: Interactive | None = None
    reaction: Reaction | None = None
    context: Context | None = None
    biz_opaque_callback_data: str | None = Field(None, max_length=512)

    @model_validator(mode="after")
    def _content_matches_type(self) -> OutboundMessage:
        if getattr(self, self.type) is None:
            raise ValueError(f"type {self.type!r} needs a {self.type!r} object")
        return self


class TypingIndicator(_Payload):
    type: Literal["text"] = "text"


class MarkAsRead(_Payload):
    """Mark an inbound message read (optionally showing a typing indicator)."""

    messaging_product: Literal["whatsapp"] = "whatsapp"
    status: Literal["read"] = "read"
    message_id: str
    typing_indicator: TypingIndicator | None = None
