"""The JSON shape of an automation: a trigger, optional conditions and an ordered list of actions.

Every part is a pydantic model discriminated by `type`, so an unknown trigger, a bad cron
expression, a regular expression that does not compile or a wait of -1 hours is refused with
the offending field named (`parse_definition` turns pydantic's errors into field paths such as
`actions.2.hours`). Checks that need the database (a template exists) or the network (a webhook
host resolves to a public address) are made by the automation service on top of these.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from herald.automation.keywords import MAX_PATTERN_LENGTH, compile_pattern
from herald.errors import ValidationFailed
from herald.messaging.content import HeaderMedia
from herald.settings import get_settings

NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
TagName = Annotated[str, Field(min_length=1, max_length=64)]
AttributeName = Annotated[str, Field(pattern=NAME)]
# Contact fields a template parameter or text placeholder can use; `attributes.<name>` too.
CONTACT_FIELDS = frozenset(
    {"first_name", "last_name", "name", "profile_name", "phone", "language", "timezone", "birthday"}
)
MAX_WAIT = timedelta(days=366)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_field_reference(value: str) -> str:
    if value in CONTACT_FIELDS:
        return value
    prefix, _, name = value.partition(".")
    if prefix == "attributes" and re.match(NAME, name):
        return value
    known = ", ".join(sorted(CONTACT_FIELDS))
    raise ValueError(f"unknown contact field {value!r}; use one of {known} or attributes.<name>")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def _local_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("give a local time without an offset: it is read in the contact's time zone")
    return value


# --- triggers ---------------------------------------------------------------------------------


class BirthdayTrigger(_Model):
    """On the contact's birthday at `hour` (local to the contact); 29 Feb fires on 28 Feb."""

    type: Literal["birthday"]
    hour: int = Field(9, ge=0, le=23)


class DateFieldTrigger(_Model):
    """On a date attribute (ISO `YYYY-MM-DD`), shifted by `offset_days` (-3 = three days before).

    `recurring` fires every year on the anniversary; otherwise only on the date itself.
    """

    type: Literal["date_field"]
    attribute: AttributeName
    offset_days: int = Field(0, ge=-365, le=365)
    hour: int = Field(9, ge=0, le=23)
    recurring: bool = True


class ContactCreatedTrigger(_Model):
    type: Literal["contact_created"]


class TagAddedTrigger(_Model):
    type: Literal["tag_added"]
    tag: TagName


class InboundKeywordTrigger(_Model):
    """An inbound text matching `keywords` (exact or contains) or `pattern` (regex)."""

    type: Literal["inbound_keyword"]
    match: Literal["exact", "contains", "regex"] = "exact"
    keywords: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=50)
    pattern: str | None = Field(None, max_length=MAX_PATTERN_LENGTH)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_pattern(value)
            except re.error as exc:
                raise ValueError(f"regular expression does not compile: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _has_keywords(self) -> InboundKeywordTrigger:
        if self.match == "regex" and not self.pattern:
            raise ValueError("pattern is required when match is regex")
        if self.match != "regex" and not self.keywords:
            raise ValueError(f"keywords are required when match is {self.match}")
        return self


# --- conditions -------------------------------------------------------------------------------


class HasTagsCondition(_Model):
    """The contact has every one of `tags`."""

    type: Literal["has_tags"]
    tags: list[TagName] = Field(min_length=1, max_length=20)


class LacksTagsCondition(_Model):
    """The contact has none of `tags`."""

    type: Literal["lacks_tags"]
    tags: list[TagName] = Field(min_length=1, max_length=20)


class AttributeCondition(_Model):
    """Compare `attributes[attribute]` with `value` (ordering compares values of the same JSON type)."""

    type: Literal["attribute"]
    attribute: AttributeName
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists", "not_exists"] = "eq"
    value: Any = None

    @model_validator(mode="after")
    def _value_given(self) -> AttributeCondition:
        if self.op not in ("exists", "not_exists") and self.value is None:
            raise ValueError(f"value is required for op {self.op}")
        return self


class LanguageCondition(_Model):
    """The contact's language is one of `languages` ("pt" also matches "pt_BR")."""

    type: Literal["language"]
    languages: list[Annotated[str, Field(min_length=2, max_length=16)]] = Field(min_length=1, max_length=50)


class OptedInCondition(_Model):
    """The contact has opted in to messages."""

    type: Literal["opted_in"]


class QuietHoursCondition(_Model):
    """No sends between `start` and `end` local time; a send due then waits for `end`."""

    type: Literal["quiet_hours"]
    start: time
    end: time

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        return _local_time(value)

    @model_validator(mode="after")
    def _window(self) -> QuietHoursCondition:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


SegmentCondition = Annotated[
    HasTagsCondition | LacksTagsCondition | AttributeCondition | LanguageCondition | OptedInCondition,
    Field(discriminator="type"),
]
Condition = Annotated[
    HasTagsCondition
    | LacksTagsCondition
    | AttributeCondition
    | LanguageCondition
    | OptedInCondition
    | QuietHoursCondition,
    Field(discriminator="type"),
]


class ScheduleTrigger(_Model):
    """A five-field cron expression in `timezone`, firing for every contact of `segment`."""

    type: Literal["schedule"]
    cron: str = Field(min_length=9, max_length=120)
    timezone: str = "UTC"
    segment: list[SegmentCondition] = Field(default_factory=list, max_length=20)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"not a valid five-field cron expression: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return _check_timezone(value)


class ManualTrigger(_Model):
    """Run on demand (`POST /automations/{id}/run`) for one contact or a segment."""

    type: Literal["manual"]
    segment: list[SegmentCondition] = Field(default_factory=list, max_length=20)


Trigger = Annotated[
    BirthdayTrigger
    | DateFieldTrigger
    | ContactCreatedTrigger
    | TagAddedTrigger
    | InboundKeywordTrigger
    | ScheduleTrigger
    | ManualTrigger,
    Field(discriminator="type"),
]


# --- actions ----------------------------------------------------------------------------------


class ParameterSource(_Model):
    """Where a template parameter comes from: a contact `field` (with a `default`) or a `value`."""

    field: str | None = None
    value: str | None = Field(None, min_length=1, max_length=1024)
    default: str = Field("", max_length=1024)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str | None) -> str | None:
        return _check_field_reference(value) if value is not None else None

    @model_validator(mode="after")
    def _one_source(self) -> ParameterSource:
        if (self.field is None) == (self.value is None):
            raise ValueError("give exactly one of field or value")
        return self


class ButtonSource(ParameterSource):
    index: int = Field(ge=0, le=9)
    sub_type: Literal["url", "copy_code"] = "url"


Parameters = list[ParameterSource] | dict[str, ParameterSource]


class SendTemplateAction(_Model):
    """Send an approved template; parameters are filled from the contact when the step runs."""

    type: Literal["send_template"]
    template: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16)
    body: Parameters = Field(default_factory=list)
    header: Parameters = Field(default_factory=list)
    header_media: HeaderMedia | None = None
    buttons: list[ButtonSource] = Field(default_factory=list, max_length=10)


class SendTextAction(_Model):
    """Free text (only inside the 24-hour window); `{{first_name}}`-style placeholders are filled."""

    type: Literal["send_text"]
    text: str = Field(min_length=1, max_length=4096)

    @field_validator("text")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        for reference in re.findall(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}", value):
            _check_field_reference(reference)
        return value


class AddTagAction(_Model):
    type: Literal["add_tag"]
    tag: TagName


class RemoveTagAction(_Model):
    type: Literal["remove_tag"]
    tag: TagName


class SetAttributeAction(_Model):
    type: Literal["set_attribute"]
    attribute: AttributeName
    value: Any = None


class WaitAction(_Model):
    """Pause for a duration (`days`/`hours`/`minutes`/`seconds`) or until a local time (`until`)."""

    type: Literal["wait"]
    days: int = Field(0, ge=0, le=366)
    hours: int = Field(0, ge=0, le=8784)
    minutes: int = Field(0, ge=0, le=527_040)
    seconds: int = Field(0, ge=0, le=31_622_400)
    until: time | None = None

    @field_validator("until")
    @classmethod
    def _local(cls, value: time | None) -> time | None:
        return _local_time(value) if value is not None else None

    @property
    def duration(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)

    @model_validator(mode="after")
    def _one_mode(self) -> WaitAction:
        if self.until is not None and self.duration:
            raise ValueError("give either a duration or until, not both")
        if self.until is None and not self.duration:
            raise ValueError("a wait needs a positive duration or an until time")
        if self.duration > MAX_WAIT:
            raise ValueError("a wait is at most 366 days")
        return self


class WebhookAction(_Model):
    """POST the run's context to `url`, signed with the automation's secret (HMAC-SHA256)."""

    type: Literal["webhook"]
    url: str = Field(min_length=8, max_length=2048)
    timeout_seconds: float = Field(10.0, gt=0, le=30)
    retries: int = Field(2, ge=0, le=5)

    @field_validator("url")
    @classmethod
    def _public_http_url(cls, value: str, info: ValidationInfo) -> str:
        # Stored definitions were checked when saved; the address is checked again at call time.
        stored = bool(info.context and info.context.get("stored"))
        check_webhook_url(value, stored or get_settings().automation_webhook_allow_private)
        return value


class StopAction(_Model):
    type: Literal["stop"]


Action = Annotated[
    SendTemplateAction
    | SendTextAction
    | AddTagAction
    | RemoveTagAction
    | SetAttributeAction
    | WaitAction
    | WebhookAction
    | StopAction,
    Field(discriminator="type"),
]
SEND_ACTIONS = (SendTemplateAction, SendTextAction)


class AutomationDefinition(_Model):
    trigger: Trigger
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    actions: list[Action] = Field(min_length=1, max_length=50)

    @field_validator("conditions")
    @classmethod
    def _one_quiet_window(cls, value: list[Any]) -> list[Any]:
        if sum(isinstance(c, QuietHoursCondition) for c in value) > 1:
            raise ValueError("at most one quiet_hours condition")
        return value

    @property
    def quiet_hours(self) -> QuietHoursCondition | None:
        return next((c for c in self.conditions if isinstance(c, QuietHoursCondition)), None)

    @property
    def gating_conditions(self) -> list[Any]:
        """Conditions checked when a run starts (quiet hours only defer sends)."""
        return [c for c in self.conditions if not isinstance(c, QuietHoursCondition)]


# --- webhook address policy -------------------------------------------------------------------

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_private_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified: not a public host."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_webhook_url(url: str, allow_private: bool) -> str:
    """Refuse non-http(s) URLs and, unless allowed, literal private addresses; returns the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("only http and https URLs are allowed")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError("the URL has no host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not allowed; the request is signed instead")
    if allow_private:
        return host
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        raise ValueError("loopback hosts are not allowed")
    try:
        private = is_private_address(host)
    except ValueError:
        return host  # a name: resolved and checked again when called
    if private:
        raise ValueError("private, loopback and link-local addresses are not allowed")
    return host


# --- parsing with field paths -----------------------------------------------------------------


def error_path(location: tuple[int | str, ...], data: Any) -> str:
    """Pydantic's error location without the discriminator tags it inserts (`actions.2.wait.hours`
    becomes `actions.2.hours`), so the path matches the JSON the client sent."""
    parts: list[str] = []
    node = data
    for segment in location:
        if isinstance(node, dict) and isinstance(segment, str) and segment not in node and node.get("type") == segment:
            continue
        parts.append(str(segment))
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
            node = node[segment]
        else:
            node = None
    return ".".join(parts)


def parse_definition(data: Any, prefix: str = "definition") -> AutomationDefinition:
    """Validate a definition; a ValidationFailed (422) names every offending field."""
    try:
        return AutomationDefinition.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            path = error_path(tuple(error.get("loc", ())), data)
            if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
                path = f"{path}.type" if path else "type"
            field = f"{prefix}.{path}" if path else prefix
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            errors.append({"field": field, "message": message})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise ValidationFailed(detail, errors=errors, code="invalid_definition") from None


def load_definition(data: Any) -> AutomationDefinition:
    """A definition read back from the database (or a run's snapshot), validated when it was saved."""
    return AutomationDefinition.model_validate(data, context={"stored": True})


def next_fire_times(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` fire times (UTC) of a cron expression evaluated in `timezone`."""
    from datetime import UTC

    iterator = croniter(cron, after.astimezone(ZoneInfo(timezone)))
    return [iterator.get_next(datetime).astimezone(UTC) for _ in range(count)]


def previous_fire_time(cron: str, timezone: str, at: datetime) -> datetime:
    """The latest fire time (UTC) at or before `at`."""
    from datetime import UTC

    local = at.astimezone(ZoneInfo(timezone))
    iterator = croniter(cron, local + timedelta(seconds=1))
    return iterator.get_prev(datetime).astimezone(UTC)
