"""Phone numbers: everything Herald stores is E.164 (`+14155550123`), parsed with `phonenumbers`."""

from __future__ import annotations

import phonenumbers

from herald.errors import ValidationFailed
from herald.settings import get_settings

_MAX_RAW_LENGTH = 64


def normalize_phone(raw: str, region: str | None = None, *, field: str = "phone") -> str:
    """Parse a human-written number into E.164.

    Numbers without a leading `+` are read in `region` (default HERALD_DEFAULT_REGION).
    Raises ValidationFailed naming `field` when the number cannot be parsed or is not a
    valid number for its country.
    """
    text = (raw or "").strip()
    if not text:
        raise ValidationFailed.on_field(field, "phone number is required", code="invalid_phone")
    if len(text) > _MAX_RAW_LENGTH:
        raise ValidationFailed.on_field(field, "phone number is too long", code="invalid_phone")
    if text.startswith("00"):
        # International dialling prefix written instead of '+'.
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, (region or get_settings().default_region).upper())
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed.on_field(field, f"not a phone number: {exc}", code="invalid_phone") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed.on_field(
            field, "not a valid phone number for its country", code="invalid_phone"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_from_wa_id(wa_id: str) -> str:
    """WhatsApp's user id (the number's digits, no '+') as E.164.

    Raises ValidationFailed naming `phone` when the id is not a valid international number.
    """
    digits = (wa_id or "").strip().lstrip("+")
    if not digits.isdigit():
        raise ValidationFailed.on_field("phone", "a WhatsApp id is the number's digits", code="invalid_phone")
    return normalize_phone("+" + digits)
