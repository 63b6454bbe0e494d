"""Retry classification keys off Meta's error code (HTTP status only for unknown codes)."""

from __future__ import annotations

import pytest

from herald.whatsapp import (
    AuthError,
    CloudAPITransportError,
    PairRateLimitError,
    RateLimitError,
    RecipientError,
    RetryPolicy,
    ServerError,
    SpamRateLimitError,
    TemplateError,
    classify,
    classify_webhook_error,
    error_from_response,
    error_from_webhook,
)

RETRY = [130429, 131000, 131016, 131057, 1, 2, 4, 80007]
PERMANENT = [
    131026, 131047, 131050, 131051, 132000, 132001, 132005, 132007, 132012, 132015, 132016,
    100, 131008, 131009, 131021, 131031, 131042, 131045, 133010, 135000, 368, 10, 200, 250, 299,
]  # fmt: skip


@pytest.mark.parametrize("code", RETRY)
def test_transient_codes_retry(code: int) -> None:
    assert classify(code, 400) is RetryPolicy.RETRY


@pytest.mark.parametrize("code", PERMANENT)
def test_permanent_codes_do_not_retry(code: int) -> None:
    assert classify(code, 400) is RetryPolicy.PERMANENT


@pytest.mark.parametrize("code", [131048, 131049, 133016])
def test_quality_limits_retry_much_later(code: int) -> None:
    assert classify(code) is RetryPolicy.RETRY_LATER


def test_pair_limit_retries_later_for_that_recipient() -> None:
    assert classify(131056, 429) is RetryPolicy.RETRY_LATER_RECIPIENT


@pytest.mark.parametrize("code", [0, 190])
def test_token_errors_need_a_new_token(code: int) -> None:
    assert classify(code, 401) is RetryPolicy.AUTH


def test_known_code_wins_over_http_status() -> None:
    # 131045 was published with HTTP 500, yet it needs re-registration, not a retry.
    assert classify(131045, 500) is RetryPolicy.PERMANENT
    assert classify(130429, 400) is classify(130429, 429) is RetryPolicy.RETRY


def test_unknown_codes_fall_back_to_http_status() -> None:
    assert classify(999_999, 400) is RetryPolicy.PERMANENT
    assert classify(999_999, 503) is RetryPolicy.RETRY
    assert classify(None, 502) is RetryPolicy.RETRY


def test_error_from_response_reads_meta_error_body() -> None:
    body = {
        "error": {
            "message": "(#130429) Rate limit hit",
            "type": "OAuthException",
            "code": 130429,
            "error_data": {"messaging_product": "whatsapp", "details": "too many messages"},
            "error_subcode": 2494055,
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
    }
    error = error_from_response(400, body)
    assert isinstance(error, RateLimitError)
    assert (error.code, error.subcode, error.details, error.fbtrace_id) == (
        130429,
        2494055,
        "too many messages",
        "Az8or2yhqkZfEZ-_4Qn_Bam",
    )
    assert error.is_retryable


@pytest.mark.parametrize(
    ("code", "cls"),
    [(190, AuthError), (131056, PairRateLimitError), (131049, SpamRateLimitError), (132001, TemplateError),
     (131026, RecipientError), (131000, ServerError)],
)  # fmt: skip
def test_error_subclass_per_code(code: int, cls: type) -> None:
    assert isinstance(error_from_response(400, {"error": {"code": code, "message": "x"}}), cls)


def test_html_5xx_without_graph_body_is_a_retryable_server_error() -> None:
    error = error_from_response(502, None)
    assert isinstance(error, ServerError)
    assert error.code is None
    assert error.retry_policy is RetryPolicy.RETRY


def test_webhook_error_object_is_classified_like_a_sync_error() -> None:
    failed = {
        "code": 131049,
        "title": "This message was not delivered to maintain healthy ecosystem engagement.",
        "message": "This message was not delivered to maintain healthy ecosystem engagement.",
        "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
    error = error_from_webhook(failed)
    assert isinstance(error, SpamRateLimitError)
    assert error.details.startswith("In order to maintain")
    assert error.retry_policy is classify_webhook_error(failed) is RetryPolicy.RETRY_LATER
    assert classify_webhook_error({"code": 130472, "title": "experiment"}) is RetryPolicy.PERMANENT


def test_transport_errors_always_retry() -> None:
    error = CloudAPITransportError("connect refused")
    assert error.is_retryable and error.retry_policy is RetryPolicy.RETRY


def test_errors_survive_pickling() -> None:
    import pickle

    error = error_from_response(400, {"error": {"code": 131056, "message": "pair", "fbtrace_id": "abc"}})
    restored = pickle.loads(pickle.dumps(error))
    assert isinstance(restored, PairRateLimitError)
    assert (restored.code, restored.fbtrace_id, str(restored)) == (131056, "abc", str(error))
    transport = pickle.loads(pickle.dumps(CloudAPITransportError("boom", timeout=True)))
    assert transport.timeout and transport.is_retryable
