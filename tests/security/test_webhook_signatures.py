"""Meta's webhook endpoint against replayed and stale signatures. Meta signs the body with the app
secret and no timestamp, so a replay is caught by idempotent processing, and a stale signature
(the app secret before a rotation) or a header lifted from another request is refused unstored.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from tests.conftest import APP_SECRET_FOR_TESTS
from tests.webhook.conftest import WEBHOOK_PATH, client, database, post_signed, webhook_worker, webhook_worker_process
from tests.webhook.factories import sent_message, ts
from tests.webhook.payloads import encode, reference, signed_headers, status

__all__ = ["client", "database", "webhook_worker", "webhook_worker_process"]

pytestmark = pytest.mark.usefixtures("dispose_engines")


def _header(value: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": value, "Content-Type": "application/json"}


async def test_signature_made_with_the_app_secret_before_rotation_is_refused_unstored(
    client: httpx.AsyncClient, database
) -> None:
    raw = encode(reference("status_sent"))
    response = await client.post(
        WEBHOOK_PATH, content=raw, headers=signed_headers(raw, secret="the-previous-app-secret")
    )
    assert response.status_code == 401
    assert database.inbox() == []


async def test_signature_header_lifted_from_an_earlier_request_is_refused_unstored(
    client: httpx.AsyncClient, database
) -> None:
    earlier = encode(status("wamid.EARLIER", "delivered", ts()))
    later = encode(status("wamid.EARLIER", "read", ts() + 5))
    response = await client.post(WEBHOOK_PATH, content=later, headers=signed_headers(earlier))
    assert response.status_code == 401
    assert database.inbox() == []


@pytest.mark.parametrize(
    "make_header",
    [
        lambda raw: "sha1=" + hmac.new(APP_SECRET_FOR_TESTS.encode(), raw, hashlib.sha1).hexdigest(),
        lambda raw: hmac.new(APP_SECRET_FOR_TESTS.encode(), raw, hashlib.sha256).hexdigest(),
        lambda raw: "sha256=",
        lambda raw: "sha256=" + "0" * 64,
        lambda raw: "sha256=" + hmac.new(b"", raw, hashlib.sha256).hexdigest(),
        lambda raw: "sha256=" + hmac.new(APP_SECRET_FOR_TESTS.encode(), raw, hashlib.sha256).hexdigest()[:32],
    ],
    ids=["sha1", "no-prefix", "empty", "zeros", "empty-key", "truncated"],
)
async def test_malformed_or_downgraded_signatures_are_refused_unstored(
    make_header, client: httpx.AsyncClient, database
) -> None:
    raw = encode(reference("status_sent"))
    response = await client.post(WEBHOOK_PATH, content=raw, headers=_header(make_header(raw)))
    assert response.status_code == 401
    assert database.inbox() == []


async def test_replayed_signed_status_is_stored_again_but_applied_once(
    client: httpx.AsyncClient, database, webhook_worker
) -> None:
    message_id, wamid = await sent_message(database, "14155550177")
    raw = encode(status(wamid, "delivered", ts(), wa_id="14155550177"))
    for _ in range(3):
        assert (await post_signed(client, raw)).status_code == 200
    events = database.settled()
    assert len(events) == 3 and {event["status"] for event in events} == {"processed"}
    timeline = database.rows(
        "SELECT status, count(*) AS n FROM message_status_events WHERE message_id = %s GROUP BY status", message_id
    )
    assert {row["status"]: row["n"] for row in timeline}.get("delivered") == 1
    assert database.one("SELECT status FROM messages WHERE id = %s", message_id)["status"] == "delivered"
