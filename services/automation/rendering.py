"""Fill template parameters and text placeholders from the contact when a send step runs."""

from __future__ import annotations

import re
from typing import Any

from herald.automation.definitions import ParameterSource, SendTemplateAction, SendTextAction
from herald.messaging.content import ButtonParameter, TemplateContent, TextContent
from herald.models import Contact

# Meta's limits: 1,024 characters per template parameter, 4,096 per text body.
MAX_PARAMETER_LENGTH = 1024
MAX_TEXT_LENGTH = 4096
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class MissingParameter(Exception):
    """A parameter resolved to nothing and has no default (Meta refuses empty parameters)."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"no value for {reference} and no default")
        self.reference = reference


def contact_value(contact: Contact, reference: str) -> str | None:
    """The text of a contact field (`first_name`, ...) or attribute (`attributes.plan`), or None."""
    full_name = (contact.name or contact.profile_name or "").strip()
    if reference == "first_name":
        return full_name.split()[0] if full_name else None
    if reference == "last_name":
        rest = full_name.split()[1:]
        return " ".join(rest) if rest else None
    if reference == "name":
        return full_name or None
    if reference == "birthday":
        if contact.birthday_month is None or contact.birthday_day is None:
            return None
        return f"{contact.birthday_month:02d}-{contact.birthday_day:02d}"
    if reference.startswith("attributes."):
        value: Any = (contact.attributes or {}).get(reference.removeprefix("attributes."))
        if value is None or isinstance(value, dict | list):
            return None
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return text or None
    value = getattr(contact, reference, None)
    return str(value) if value else None


def resolve(contact: Contact, source: ParameterSource) -> str:
    if source.value is not None:
        return source.value
    assert source.field is not None
    value = contact_value(contact, source.field) or source.default
    if not value:
        raise MissingParameter(source.field)
    return value[:MAX_PARAMETER_LENGTH]


def _values(contact: Contact, parameters: list[ParameterSource] | dict[str, ParameterSource]) -> Any:
    if isinstance(parameters, dict):
        return {name: resolve(contact, source) for name, source in parameters.items()}
    return [resolve(contact, source) for source in parameters]


def template_content(action: SendTemplateAction, contact: Contact) -> TemplateContent:
    """The template send for this contact (raises MissingParameter)."""
    return TemplateContent(
        name=action.template,
        language=action.language,
        body_parameters=_values(contact, action.body),
        header_parameters=_values(contact, action.header),
        header_media=action.header_media,
        button_parameters=[
            ButtonParameter(index=b.index, sub_type=b.sub_type, value=resolve(contact, b)) for b in action.buttons
        ],
    )


def text_content(action: SendTextAction, contact: Contact) -> TextContent:
    """The text with `{{field}}` placeholders filled (an unknown value becomes empty)."""
    body = PLACEHOLDER.sub(lambda m: contact_value(contact, m.group(1)) or "", action.text).strip()
    if not body:
        raise MissingParameter("text")
    return TextContent(body=body[:MAX_TEXT_LENGTH])
