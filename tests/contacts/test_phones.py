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
