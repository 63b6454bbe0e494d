"""Request and response models of the contacts service (never the table models), and the field
parsers shared by the JSON API and the CSV importer."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from herald.models import OptInStatus, Role

MAX_TAGS = 50
MAX_TAG_LENGTH = 64
MAX_ATTRIBUTES_BYTES = 16_384
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_BIRTHDAY = re.compile(r"^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})$")
# A leap year, so 02-29 is a valid birthday when the year is unknown.
_LEAP_YEAR = 2000


# --- field parsers (raise ValueError with a message meant for the API user) -------------------


def reject_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters: refuse them as a validation error, not a crash."""
    if "\x00" in value:
        raise ValueError("text cannot contain NUL characters")
    return value


@lru_cache(maxsize=1024)
def parse_timezone(value: str) -> str:
    """An IANA zone name such as Europe/Berlin."""
    name = value.strip()
    if not name:
        raise ValueError("time zone is empty")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


@lru_cache(maxsize=1024)
def parse_language(value: str) -> str:
    """A BCP 47-style language tag (en, pt_BR, es-419)."""
    tag = value.strip()
    if not _LANGUAGE.fullmatch(tag) or len(tag) > 16:
        raise ValueError("language must be a code such as en, pt_BR or es-419")
    return tag


def parse_birthday(value: str) -> tuple[int, int, int | None]:
    """MM-DD or YYYY-MM-DD -> (month, day, year or None); the day must exist in that month."""
    match = _BIRTHDAY.fullmatch(value.strip())
    if match is None:
        raise ValueError("birthday must be MM-DD or YYYY-MM-DD")
    year = int(match.group(1)) if match.group(1) else None
    month, day = int(match.group(2)), int(match.group(3))
    if year is not None and not 1900 <= year <= 2100:
        raise ValueError("birthday year must be between 1900 and 2100")
    try:
        date(year or _LEAP_YEAR, month, day)
    except ValueError as exc:
        raise ValueError(f"no such date: {value.strip()}") from exc
    return month, day, year


def format_birthday(month: int | None, day: int | None, year: int | None) -> str | None:
    if month is None or day is None:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if year is not None else f"{month:02d}-{day:02d}"


def normalize_tag(value: str) -> str:
    """Tags are trimmed and lower-cased so 'VIP' and 'vip ' are one tag."""
    tag = reject_nul(value).strip().lower()
    if not tag:
        raise ValueError("tags cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"a tag is at most {MAX_TAG_LENGTH} characters")
    return tag


def normalize_tags(values: list[str]) -> list[str]:
    tags = list(dict.fromkeys(normalize_tag(value) for value in values))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a contact has at most {MAX_TAGS} tags")
    return tags


def check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"attribute name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    encoded = orjson.dumps(value)
    if b"\\u0000" in encoded:
        raise ValueError("attributes cannot contain NUL characters")
    if len(encoded) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes are at most {MAX_ATTRIBUTES_BYTES} bytes of JSON")
    return value


def check_attribute_name(name: str) -> str:
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise ValueError(f"attribute name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return name


# --- contacts --------------------------------------------------------------------------------

Text = Annotated[str, AfterValidator(reject_nul)]
Name = Annotated[Text, Field(max_length=200)]
Source = Annotated[Text, Field(min_length=1, max_length=64)]


class ContactFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(None, examples=["en"])
    timezone: str | None = Field(None, examples=["America/New_York"])
    birthday: str | None = Field(None, description="MM-DD or YYYY-MM-DD", examples=["05-17", "1990-05-17"])

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return parse_language(value) if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return parse_timezone(value) if value is not None else None

    @field_validator("birthday")
    @classmethod
    def _birthday(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return format_birthday(*parse_birthday(value))


class ContactCreate(ContactFields):
    phone: str = Field(max_length=64, description="Any format; stored as E.164", examples=["+14155550123"])
    name: Name = ""
    attributes: dict[str, Any] = Field(default_factory=dict, examples=[{"plan": "gold"}])
    tags: list[str] = Field(default_factory=list, examples=[["vip"]])
    opt_in_status: OptInStatus = OptInStatus.UNKNOWN
    opt_in_source: Source | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return normalize_tags(value)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_attributes(value)


class ContactUpdate(ContactFields):
    """Only the fields sent change. `attributes` is merged (a null value removes that attribute);
    `tags` replaces the list; `birthday`, `language`, `timezone` set to null clear them."""

    phone: str | None = Field(None, max_length=64)
    name: Name | None = None
    attributes: dict[str, Any] | None = None
    tags: list[str] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return normalize_tags(value) if value is not None else None

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_attributes(value) if value is not None else None


class ContactPublic(BaseModel):
    id: uuid.UUID
    phone: str
    wa_id: str | None
    name: str
    profile_name: str | None
    language: str | None
    timezone: str | None
    birthday: str | None
    attributes: dict[str, Any]
    tags: list[str]
    opt_in_status: OptInStatus
    opt_in_source: str | None
    opted_in_at: datetime | None
    opted_out_at: datetime | None
    last_inbound_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContactList(BaseModel):
    data: list[ContactPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    count: int | None = Field(description="Total matching contacts when include_total=true")


class TagsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(min_length=1, max_length=MAX_TAGS)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return normalize_tags(value)


class OptChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Source = Field(examples=["web_form", "keyword", "support"])


class ImportRowError(BaseModel):
    row: int = Field(description="CSV line number (the header is row 1)")
    field: str
    message: str


class ImportReport(BaseModel):
    created: int
    updated: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool = Field(description="True when more rows failed than errors listed")


# --- auth, users, API keys ---------------------------------------------------------------------


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int = Field(description="Access token lifetime in seconds")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class UserPublic(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime


class Me(UserPublic):
    via: str = Field(description="jwt or api_key")
    effective_role: Role = Field(description="The role this credential acts with")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=8, max_length=256)
    role: Role = Role.VIEWER
    full_name: Name = ""


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None
    full_name: Name | None = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=8, max_length=256)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=100)
    role: Role | None = Field(None, description="Defaults to your own role; can never exceed it")
    expires_at: AwareDatetime | None = None


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, store it now")
