"""Graph API answers byte-for-byte like Meta's, and the control API records what happened."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.fixtures.simulator import SimulatorHandle

CUSTOMER = "16505551234"
WAMID = re.compile(r"^wamid\.[A-Za-z0-9+/=_-]+$")


def post_message(sim: SimulatorHandle, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or sim.token}"}
    return sim.http.post(f"/{sim.api_version}/{sim.phone_number_id}/messages", json=body, headers=headers)


def template(to: str = CUSTOMER, callback: str | None = None, name: str = "hello_world") -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {"name": name, "language": {"code": "en_US"}},
    }
    if callback:
        body["biz_opaque_callback_data"] = callback
    return body


def test_success_body_is_exactly_metas(simulator: SimulatorHandle) -> None:
    response = post_message(simulator, template(to="+" + CUSTOMER))
    body = response.json()
    wamid = body["messages"][0]["id"]
    assert WAMID.match(wamid) and len(wamid) <= 128
    assert body == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+" + CUSTOMER, "wa_id": CUSTOMER}],
        "messages": [{"id": wamid, "message_status": "accepted"}],
    }


def test_error_body_is_exactly_metas(simulator: SimulatorHandle) -> None:
    response = post_message(simulator, template(name="nope"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["message"].startswith("(#132001) ")
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"


def test_missing_token_gives_190(simulator: SimulatorHandle) -> None:
    response = simulator.http.post(
        f"/{simulator.api_version}/{simulator.phone_number_id}/messages", json=template()
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 190
    assert post_message(simulator, template(), token="stolen").json()["error"]["code"] == 190


def test_messages_log_lists_every_accepted_send_in_order(simulator: SimulatorHandle) -> None:
    first = post_message(simulator, template(callback="m1")).json()["messages"][0]["id"]
    post_message(simulator, template(name="nope"))  # rejected: not listed
    second = post_message(simulator, template(to="16505550000", callback="m2")).json()["messages"][0]["id"]
    rows = simulator.messages()
    assert [r["wamid"] for r in rows] == [first, second]
    assert rows[0]["to"] == CUSTOMER and rows[0]["type"] == "template"
    assert rows[0]["template"] == {"name": "hello_world", "language": "en_US"}
    assert rows[1]["biz_opaque_callback_data"] == "m2"
    assert rows[0]["timestamp"] <= rows[1]["timestamp"]
    assert [r["wamid"] for r in simulator.messages(to="16505550000")] == [second]


def test_stats_count_duplicates_and_rejections(simulator: SimulatorHandle) -> None:
    for callback in ("herald-1", "herald-1", "herald-2", "herald-1"):
        post_message(simulator, template(to=f"1650555{len(callback)}{callback[-1]}00", callback=callback))
    post_message(simulator, template(name="nope"))
    stats = simulator.stats()
    assert stats["accepted"] == 4
    assert stats["duplicates"] == 2
    assert stats["rejected_by_code"] == {"132001": 1}


def test_reset_forgets_everything(simulator: SimulatorHandle) -> None:
    simulator.configure(throughput_per_second=1)
    post_message(simulator, template())
    simulator.reset()
    assert simulator.messages() == []
    assert simulator.stats()["accepted"] == 0
    assert simulator.config()["throughput_per_second"] == 80


def test_put_config_starts_from_startup_settings(simulator: SimulatorHandle) -> None:
    simulator.configure(read_rate=0.5)
    config = simulator.replace_config(duplicate_rate=0.25)
    assert (config["read_rate"], config["duplicate_rate"]) == (1.0, 0.25)


def test_config_rejects_unknown_and_invalid_values(simulator: SimulatorHandle) -> None:
    assert simulator.http.patch("/_sim/config", json={"nope": 1}).status_code == 422
    assert simulator.http.patch("/_sim/config", json={"read_rate": 7}).status_code == 422
    assert simulator.config()["read_rate"] == 1.0


def test_mark_as_read_answers_success(simulator: SimulatorHandle) -> None:
    response = post_message(
        simulator, {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLMTY1MDM4"}
    )
    assert response.json() == {"success": True}


def test_added_template_is_sendable_and_unknown_ids_are_404(simulator: SimulatorHandle) -> None:
    simulator.add_template(name="shipping_notice", components=[{"type": "BODY", "text": "Shipped {{1}}"}])
    body = template(name="shipping_notice")
    body["template"]["components"] = [{"type": "body", "parameters": [{"type": "text", "text": "today"}]}]
    assert post_message(simulator, body).status_code == 200
    assert simulator.http.patch("/_sim/templates/1", json={"status": "PAUSED"}).status_code == 404


def test_start_simulator_applies_environment() -> None:
    from tests.fixtures.simulator import start_simulator

    sim = start_simulator(throughput_per_second=3, not_on_whatsapp=["15550001", "15550002"])
    try:
        config = sim.config()
        assert config["throughput_per_second"] == 3
        assert config["not_on_whatsapp"] == ["15550001", "15550002"]
    finally:
        sim.stop()
