"""Typed Cloud API errors and their retry classification.

Classification keys off Meta's numeric ``error.code`` (Meta: "build logic on code and
error_data.details, not on titles or HTTP status"). The HTTP status is only consulted for
codes this table does not know, or when no Graph error body came back at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class RetryPolicy(StrEnum):
    """What a caller should do with a failed request."""

    RETRY = "retry"  # transient: retry with (short) exponential backoff
    RETRY_LATER_RECIPIENT = "retry_later_recipient"  # pair limit: back off for this recipient only
    RETRY_LATER = "retry_later"  # quality/marketing limits: retry after a long wait (hours)
    PERMANENT = "permanent"  # retrying the same request cannot succeed
    AUTH = "auth"  # token expired/invalid: permanent until a new token is configured


AUTH_CODES = frozenset({0, 190})
PAIR_RATE_LIMIT_CODE = 131056
RETRY_LATER_CODES = frozenset({131048, 131049, 133016})
RETRY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131057})
PERMANENT_CODES = frozenset(
    {
        3, 10, 100, 368, 130472, 131005, 131008, 131009, 131021, 131026, 131031, 131042, 131045,
        131047, 131050, 131051, 131052, 131053, 132000, 132001, 132005, 132007, 132008, 132012,
        132015, 132016, 133010, 135000,
    }
)  # fmt: skip
RATE_LIMIT_CODES = frozenset({4, 80007, 130429})
SERVER_CODES = frozenset({1, 2, 131000, 131016, 131057})
TEMPLATE_CODES = frozenset({132000, 132001, 132005, 132007, 132008, 132012, 132015, 132016})
RECIPIENT_CODES = frozenset({131021, 131026, 131050})
INVALID_REQUEST_CODES = frozenset({100, 131008, 131009, 131051})
PERMISSION_CODES = frozenset({3, 10, 368, 131005, 131031, 131042, 131045, 133010})
RE_ENGAGEMENT_CODE = 131047


def classify(code: int | None, http_status: int | None = None) -> RetryPolicy:
    """Retry policy for a Cloud API error code (HTTP status only breaks ties for unknown codes)."""
    if code is not None:
        if code in AUTH_CODES:
            return RetryPolicy.AUTH
        if code == PAIR_RATE_LIMIT_CODE:
            return RetryPolicy.RETRY_LATER_RECIPIENT
        if code in RETRY_LATER_CODES:
            return RetryPolicy.RETRY_LATER
        if code in RETRY_CODES:
            return RetryPolicy.RETRY
        if code in PERMANENT_CODES or 200 <= code <= 299:
            return RetryPolicy.PERMANENT
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return RetryPolicy.RETRY
    # Unknown 4xx, or an unknown code in an async status webhook: retrying blindly risks
    # sending the same message twice, so treat it as final.
    return RetryPolicy.PERMANENT


class CloudAPIError(Exception):
    """An error answered by the Cloud API (synchronous body or async webhook error object).

    ``code`` is Meta's ``error.code``; it is ``None`` only when no Graph error body was
    available (a proxy's HTML 502, or a transport failure).
    """

    def __init__(
        self,
        code: int | None,
        message: str,
        *,
        subcode: int | None = None,
        title: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(f"[{code}] {message}" + (f": {details}" if details else ""))
        self.code = code
        self.subcode = subcode
        self.message = message
        self.title = title
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.error_type = error_type

    @property
    def retry_policy(self) -> RetryPolicy:
        """How a caller should react; see :class:`RetryPolicy`."""
        return classify(self.code, self.http_status)

    @property
    def is_retryable(self) -> bool:
        """True when the same request may succeed later (any policy but PERMANENT and AUTH)."""
        return self.retry_policy not in (RetryPolicy.PERMANENT, RetryPolicy.AUTH)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary to store beside a failed message."""
        return {
            "code": self.code,
            "subcode": self.subcode,
            "message": self.message,
            "title": self.title,
            "details": self.details,
            "fbtrace_id": self.fbtrace_id,
            "http_status": self.http_status,
            "retry_policy": self.retry_policy.value,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments would break default exception pickling, and
        # errors cross process boundaries (worker results, multiprocessing).
        return (_restore_error, (type(self), self.args, self.__dict__.copy()))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"details={self.details!r}, http_status={self.http_status!r}, fbtrace_id={self.fbtrace_id!r})"
        )


def _restore_error(cls: type[CloudAPIError], args: tuple[Any, ...], state: dict[str, Any]) -> CloudAPIError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class AuthError(CloudAPIError):
    """0 / 190: the access token is invalid or expired."""


class RateLimitError(CloudAPIError):
    """130429 (throughput), 4 (app call rate), 80007 (WABA call rate)."""


class PairRateLimitError(CloudAPIError):
    """131056: too many messages to the same recipient; other recipients are unaffected."""


class SpamRateLimitError(CloudAPIError):
    """131048 / 131049 / 133016: quality or per-user marketing limits; retry hours later."""


class ReEngagementError(CloudAPIError):
    """131047: outside the 24-hour customer service window; only templates may be sent."""


class TemplateError(CloudAPIError):
    """132xxx: template missing, not approved, paused, disabled, or parameters wrong."""


class RecipientError(CloudAPIError):
    """131026 / 131050 / 131021: the recipient cannot (or does not want to) receive this."""


class InvalidRequestError(CloudAPIError):
    """100 / 131008 / 131009 / 131051: the request itself is malformed."""


class PermissionDeniedError(CloudAPIError):
    """Permission, policy, account or registration problems (10, 200-299, 368, 131031, ...)."""


class ServerError(CloudAPIError):
    """Meta-side transient failures (1, 2, 131000, 131016, 131057) and bare 5xx answers."""


class CloudAPITransportError(CloudAPIError):
    """No usable answer: timeout, connection refused/reset. Always retryable."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(None, message)
        self.timeout = timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.RETRY


def error_class_for(code: int | None, http_status: int | None = None) -> type[CloudAPIError]:
    """The most specific :class:`CloudAPIError` subclass for a code."""
    if code is None:
        return ServerError if http_status is not None and http_status >= 500 else CloudAPIError
    if code in AUTH_CODES:
        return AuthError
    if code in RATE_LIMIT_CODES:
        return RateLimitError
    if code == PAIR_RATE_LIMIT_CODE:
        return PairRateLimitError
    if code in RETRY_LATER_CODES:
        return SpamRateLimitError
    if code == RE_ENGAGEMENT_CODE:
        return ReEngagementError
    if code in TEMPLATE_CODES:
        return TemplateError
    if code in RECIPIENT_CODES:
        return RecipientError
    if code in INVALID_REQUEST_CODES:
        return InvalidRequestError
    if code in PERMISSION_CODES or 200 <= code <= 299:
        return PermissionDeniedError
    if code in SERVER_CODES:
        return ServerError
    return CloudAPIError


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def error_from_response(http_status: int, body: object) -> CloudAPIError:
    """Build the typed error for a non-2xx Graph API answer (``{"error": {...}}`` body)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return error_class_for(None, http_status)(
            None, f"HTTP {http_status} without a Graph API error body", http_status=http_status
        )
    code = _int_or_none(error.get("code"))
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, Mapping) else None
    return error_class_for(code, http_status)(
        code,
        str(error.get("message") or ""),
        subcode=_int_or_none(error.get("error_subcode")),
        title=error.get("error_user_title") or error.get("title"),
        details=details,
        fbtrace_id=error.get("fbtrace_id"),
        http_status=http_status,
        error_type=error.get("type"),
    )


def error_from_webhook(error: Mapping[str, Any]) -> CloudAPIError:
    """Build the typed error for an async error object from a webhook.

    The object sits in ``statuses[].errors[]`` (status ``failed``), ``value.errors[]`` or
    ``messages[].errors[]`` and looks like ``{"code", "title", "message", "error_data":
    {"details"}, "href"}``. There is no HTTP status, so unknown codes classify as PERMANENT.
    """
    code = _int_or_none(error.get("code"))
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, Mapping) else None
    title = error.get("title")
    return error_class_for(code)(
        code,
        str(error.get("message") or title or ""),
        title=title,
        details=details,
    )


def classify_webhook_error(error: Mapping[str, Any]) -> RetryPolicy:
    """Retry policy for an async webhook error object (same table as synchronous errors)."""
    return classify(_int_or_none(error.get("code")))
