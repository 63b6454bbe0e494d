"""Each error path raises the typed error with Meta's code, details, fbtrace_id and retry policy."""

from __future__ import annotations

import pytest

from herald.whatsapp import (
    AuthError,
    CloudAPITransportError,
    InvalidRequestError,
    PairRateLimitError,
    RateLimitError,
    ReEngagementError,
    RetryPolicy,
    ServerError,
    TemplateError,
)
from tests.fixtures.simulator import SimulatorHandle, free_port

CUSTOMER = "16505551234"


async def test_bad_token_raises_auth_error(simulator: SimulatorHandle) -> None:
    async with simulator.client(token="wrong") as client:
        with pytest.raises(AuthError) as caught:
            await client.send_template(CUSTOMER, "hello_world")
    error = caught.value
    assert (error.code, error.http_status, error.retry_policy) == (190, 401, RetryPolicy.AUTH)
    assert error.fbtrace_id
    assert not error.is_retryable


async def test_free_form_outside_window_raises_re_engagement(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        with pytest.raises(ReEngagementError) as caught:
            await client.send_text(CUSTOMER, "hello?")
    error = caught.value
    assert error.code == 131047
    assert "24 hours" in (error.details or "")
    assert error.fbtrace_id
    assert error.retry_policy is RetryPolicy.PERMANENT


async def test_window_expires(simulator: SimulatorHandle) -> None:
    simulator.configure(window_seconds=0.001)
    simulator.inbound(CUSTOMER)
    async with simulator.client() as client:
        with pytest.raises(ReEngagementError):
            await client.send_text(CUSTOMER, "too late")


@pytest.mark.parametrize(
    ("name", "language", "params", "code"),
    [
        ("no_such_template", "en_US", None, 132001),
        ("order_update", "fr", ["a", "b"], 132001),  # exists, but not in this language
        ("crypto_promo", "en_US", None, 132001),  # rejected, never sendable
        ("order_update", "en_US", ["only one"], 132000),
        ("hello_world", "en_US", ["unexpected"], 132000),
        ("spring_sale", "en_US", ["10%"], 132015),
        ("legacy_offer", "en_US", ["x"], 132016),
    ],
)
async def test_template_errors(
    simulator: SimulatorHandle, name: str, language: str, params: list[str] | None, code: int
) -> None:
    async with simulator.client() as client:
        with pytest.raises(TemplateError) as caught:
            await client.send_template(CUSTOMER, name, language, body_parameters=params)
    assert caught.value.code == code
    assert caught.value.retry_policy is RetryPolicy.PERMANENT


async def test_named_template_rejects_wrong_parameter_names(simulator: SimulatorHandle) -> None:
    async with simulator.client() as client:
        with pytest.raises(TemplateError) as caught:
            await client.send_template(
                CUSTOMER, "appointment_reminder", body_parameters={"name": "A", "day": "B"}
            )
    assert caught.value.code == 132000


async def test_throughput_limit_gives_130429(simulator: SimulatorHandle) -> None:
    simulator.configure(throughput_per_second=0.001, throughput_burst=1)
    async with simulator.client() as client:
        await client.send_template(CUSTOMER, "hello_world")
        with pytest.raises(RateLimitError) as caught:
            await client.send_template("16505550000", "hello_world")
    error = caught.value
    assert (error.code, error.subcode, error.http_status) == (130429, 2494055, 400)
    assert error.retry_policy is RetryPolicy.RETRY


async def test_throttling_http_status_is_configurable_and_ignored(simulator: SimulatorHandle) -> None:
    simulator.configure(throughput_per_second=0.001, throughput_burst=1, rate_limit_http_status=429)
    async with simulator.client() as client:
        await client.send_template(CUSTOMER, "hello_world")
        with pytest.raises(RateLimitError) as caught:
            await client.send_template(CUSTOMER, "hello_world")
    assert (caught.value.code, caught.value.http_status) == (130429, 429)
    assert caught.value.retry_policy is RetryPolicy.RETRY


async def test_pair_limit_gives_131056_for_that_recipient_only(simulator: SimulatorHandle) -> None:
    simulator.configure(pair_limit_burst=2)
    async with simulator.client() as client:
        for _ in range(2):
            await client.send_template(CUSTOMER, "hello_world")
        with pytest.raises(PairRateLimitError) as caught:
            await client.send_template(CUSTOMER, "hello_world")
        await client.send_template("16505550000", "hello_world")  # another recipient is unaffected
    assert caught.value.code == 131056
    assert caught.value.subcode == 2494071
    assert caught.value.retry_policy is RetryPolicy.RETRY_LATER_RECIPIENT


async def test_limits_can_be_switched_off(simulator: SimulatorHandle) -> None:
    simulator.configure(
        limits_enabled=False, throughput_per_second=0.001, throughput_burst=1, pair_limit_burst=1
    )
    async with simulator.client() as client:
        for _ in range(5):
            await client.send_text(CUSTOMER, "no window needed either")
    assert simulator.stats()["accepted"] == 5


async def test_injected_429_burst_then_recovery(simulator: SimulatorHandle) -> None:
    simulator.configure(fault_429_count=2)
    async with simulator.client() as client:
        for _ in range(2):
            with pytest.raises(RateLimitError):
                await client.send_template(CUSTOMER, "hello_world")
        assert (await client.send_template(CUSTOMER, "hello_world")).wamid


async def test_injected_5xx_is_a_retryable_server_error(simulator: SimulatorHandle) -> None:
    simulator.configure(fault_5xx_count=1, fault_5xx_status=503)
    async with simulator.client() as client:
        with pytest.raises(ServerError) as caught:
            await client.send_template(CUSTOMER, "hello_world")
        assert (await client.send_template(CUSTOMER, "hello_world")).wamid
    assert (caught.value.code, caught.value.http_status) == (131000, 503)
    assert caught.value.is_retryable


async def test_slow_answer_still_succeeds(simulator: SimulatorHandle) -> None:
    simulator.configure(fault_slow_ms=100)
    async with simulator.client() as client:
        assert (await client.send_template(CUSTOMER, "hello_world")).wamid


async def test_hung_request_raises_retryable_timeout(simulator: SimulatorHandle) -> None:
    simulator.configure(fault_timeout_count=1, fault_timeout_seconds=3)
    async with simulator.client(timeout=0.3) as client:
        with pytest.raises(CloudAPITransportError) as caught:
            await client.send_template(CUSTOMER, "hello_world")
    assert caught.value.timeout
    assert caught.value.retry_policy is RetryPolicy.RETRY


async def test_connection_refused_raises_transport_error(simulator: SimulatorHandle) -> None:
    async with simulator.client(base_url=f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(CloudAPITransportError) as caught:
            await client.send_template(CUSTOMER, "hello_world")
    assert caught.value.is_retryable
    assert not caught.value.timeout


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, 131008),
        (
            {"messaging_product": "whatsapp", "to": "not-a-number", "type": "text", "text": {"body": "x"}},
            131009,
        ),
        ({"to": CUSTOMER, "type": "text", "text": {"body": "x"}}, 100),
        ({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text"}, 131008),
        ({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "hologram", "hologram": {}}, 100),
        (
            {
                "messaging_product": "whatsapp",
                "to": CUSTOMER,
                "type": "image",
                "image": {"id": "1", "link": "https://x"},
            },
            131009,
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": CUSTOMER,
                "type": "template",
                "template": {"name": "hello_world"},
            },
            131008,
        ),
    ],
)
async def test_invalid_requests_raise_invalid_request_error(
    simulator: SimulatorHandle, payload: dict[str, object], code: int
) -> None:
    simulator.inbound(CUSTOMER)
    async with simulator.client() as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.send_message(payload)
    assert caught.value.code == code
    assert caught.value.details
    assert caught.value.retry_policy is RetryPolicy.PERMANENT
