"""Inbound keyword matching, insensitive to case and accents ("Olá" matches "ola")."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_PATTERN_LENGTH = 200
MAX_MATCHED_TEXT = 4096


def normalize_text(text: str) -> str:
    """NFKD, drop combining marks, casefold and collapse whitespace."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a keyword regular expression (raises re.error); matched against normalized text."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise re.error(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    return re.compile(pattern, re.IGNORECASE)


def keyword_matches(text: str | None, match: str, keywords: list[str], pattern: str | None) -> bool:
    """True when `text` matches: `exact` (whole message), `contains` (substring) or `regex`."""
    if not text:
        return False
    normalized = normalize_text(text[:MAX_MATCHED_TEXT])
    if match == "regex":
        return pattern is not None and compile_pattern(pattern).search(normalized) is not None
    wanted = [normalize_text(keyword) for keyword in keywords]
    if match == "exact":
        return normalized in wanted
    return any(keyword and keyword in normalized for keyword in wanted)
