from __future__ import annotations

import pytest

from herald.errors import ValidationFailed
from herald.phones import normalize_phone, phone_from_wa_id


def test_national_number_is_read_in_the_default_region() -> None:
    assert normalize_phone("(415) 555-0123") == "+14155550123"


def test_explicit_region_overrides_the_default() -> None:
    assert normalize_phone("030 12345678", "DE") == "+493012345678"


def test_double_zero_prefix_reads_as_international() -> None:
    assert normalize_phone("00447911123456") == "+447911123456"


@pytest.mark.parametrize("raw", ["", "hello", "+1 555", "+999 123456789", "1" * 80])
def test_invalid_numbers_name_the_phone_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone(raw)
    assert caught.value.errors[0]["field"] == "phone"


def test_wa_id_becomes_e164() -> None:
    assert phone_from_wa_id("14155550123") == "+14155550123"


def test_wa_id_with_letters_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        phone_from_wa_id("1415abc")


def _phonenumbers_reading(text: str) -> str | None:
    """What phonenumbers alone makes of `text` in the default region: E.164, or None when invalid."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _international_forms() -> list[str]:
    """Every region's example numbers written as '+' and digits, plus near misses of each: a digit
    more, a digit less, a 0 or 1 before the national number (national prefixes parse may strip)."""
    import phonenumbers

    forms: set[str] = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            code = str(example.country_code)
            national = phonenumbers.national_significant_number(example)
            forms.update(
                "+" + code + variant
                for variant in (national, national + "5", national[:-1], "0" + national, "1" + national)
            )
    return sorted(forms)


def test_international_numbers_read_exactly_as_phonenumbers_reads_them() -> None:
    # normalize_phone answers '+digits' numbers on a shorter path; it must agree with the library
    # on every one, valid or not.
    for text in _international_forms():
        expected = _phonenumbers_reading(text)
        if expected is None:
            with pytest.raises(ValidationFailed):
                normalize_phone(text)
        else:
            assert normalize_phone(text) == expected, text
