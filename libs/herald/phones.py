"""Phone numbers: everything Herald stores is E.164 (`+14155550123`), parsed with `phonenumbers`."""

from __future__ import annotations

import functools
import re

import phonenumbers

from herald.errors import ValidationFailed
from herald.settings import get_settings

_MAX_RAW_LENGTH = 64
# phonenumbers' bounds on a national significant number (parse refuses numbers outside them).
_MIN_NATIONAL_LENGTH = 2
_MAX_NATIONAL_LENGTH = 17


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
    if text.startswith("+") and _is_valid_plain_e164(text):
        return text
    try:
        parsed = phonenumbers.parse(text, (region or get_settings().default_region).upper())
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed.on_field(field, f"not a phone number: {exc}", code="invalid_phone") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed.on_field(field, "not a valid phone number for its country", code="invalid_phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _is_valid_plain_e164(text: str) -> bool:
    """Whether `text`, a '+' and digits, is a valid number that `phonenumbers.parse` would read
    unchanged, so it is already its own E.164 form.

    Imports are mostly such numbers, and parse spends most of its time on what they lack
    (punctuation, extensions, national prefixes). This builds the same PhoneNumber parse would and
    validates it with phonenumbers; anything parse could rewrite (a national prefix, leading zeros)
    answers False, and the caller takes the full path, which also words the errors.
    """
    digits = text[1:]
    if not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return False
    # The shortest known calling-code prefix, as phonenumbers reads it.
    for length in range(1, 4):
        country_code = int(digits[:length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = digits[length:]
    if not _MIN_NATIONAL_LENGTH <= len(national) <= _MAX_NATIONAL_LENGTH or national[0] == "0":
        return False
    metadata = _metadata(country_code)
    if metadata is None:
        return False
    prefix = metadata.national_prefix_for_parsing
    if prefix and _compiled(prefix).match(national):
        return False  # parse might strip or transform a national prefix here
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return bool(phonenumbers.is_valid_number(number))


@functools.cache
def _metadata(country_code: int) -> phonenumbers.PhoneMetadata | None:
    # The metadata parse uses for a number with this calling code (its main region's).
    region = phonenumbers.region_code_for_country_code(country_code)
    return phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def phone_from_wa_id(wa_id: str) -> str:
    """WhatsApp's user id (the number's digits, no '+') as E.164.

    Raises ValidationFailed naming `phone` when the id is not a valid international number.
    """
    digits = (wa_id or "").strip().lstrip("+")
    if not digits.isdigit():
        raise ValidationFailed.on_field("phone", "a WhatsApp id is the number's digits", code="invalid_phone")
    return normalize_phone("+" + digits)
