"""Opt-out / opt-in keywords: whole-message matches, case- and accent-insensitive.

"Stop", " STOP ", "stop!" and "Bája" match; "please stop sending" does not (LESSONS #11: a
keyword inside a sentence is not a request to unsubscribe).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from herald.settings import get_settings


class KeywordAction(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


@dataclass(frozen=True)
class KeywordMatch:
    action: KeywordAction
    keyword: str
    language: str


def normalize(text: str) -> str:
    """NFKD, combining marks removed, case-folded, surrounding spaces and punctuation trimmed."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    start, end = 0, len(stripped)
    while start < end and _trimmable(stripped[start]):
        start += 1
    while end > start and _trimmable(stripped[end - 1]):
        end -= 1
    return " ".join(stripped[start:end].split())


def _trimmable(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


@lru_cache(maxsize=8)
def _table(
    opt_out: tuple[tuple[str, tuple[str, ...]], ...], opt_in: tuple[tuple[str, tuple[str, ...]], ...]
) -> dict[str, KeywordMatch]:
    table: dict[str, KeywordMatch] = {}
    # Opt-in first so that a word configured in both lists opts out (the safe reading).
    for action, config in ((KeywordAction.OPT_IN, opt_in), (KeywordAction.OPT_OUT, opt_out)):
        for language, words in config:
            for word in words:
                key = normalize(word)
                if key:
                    table[key] = KeywordMatch(action, word, language)
    return table


def _frozen(config: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((language, tuple(words)) for language, words in config.items()))


def match_keyword(text: str | None) -> KeywordMatch | None:
    """The configured keyword this whole message is, in any language, or None."""
    if not text or len(text) > 64:
        return None
    settings = get_settings()
    table = _table(_frozen(settings.opt_out_keywords), _frozen(settings.opt_in_keywords))
    return table.get(normalize(text))
