"""Request bodies of the simulator's control API (``/_sim/...``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class InboundMessage(BaseModel):
    """A customer message to inject; opens the sender's 24-hour window."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=7, max_length=16, pattern=r"^\+?\d+$")
    type: Literal["text", "button_reply", "list_reply", "button", "reaction", "image"] = "text"
    name: str = "Test Customer"
    phone_number_id: str | None = None  # defaults to the configured number
    text: str | None = None  # text body, image caption, or the title of a reply
    reply_id: str | None = None  # button_reply / list_reply id, or template button payload
    description: str | None = None  # list_reply row description
    message_id: str | None = None  # reaction target
    emoji: str | None = None
    context_message_id: str | None = None  # the business message this replies to
    mime_type: str = "image/jpeg"


class TemplateIn(BaseModel):
    """A template added directly, in any review state (the Graph API route always starts PENDING)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = "en_US"
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"] = "UTILITY"
    status: Literal["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"] = "APPROVED"
    parameter_format: Literal["POSITIONAL", "NAMED"] = "POSITIONAL"
    components: list[dict[str, Any]] = Field(default_factory=list)


class TemplateStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"]
    reason: str = "NONE"
