"""The gateway over real HTTP: small upstream apps on free ports stand in for the four services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from services.gateway.app import ROUTES, SERVICES, create_app
from services.gateway.config import GatewaySettings
from tests.fixtures.simulator import free_port

APP_SECRET = "gateway-test-app-secret"


class ServerThread:
    """A uvicorn server in a background thread, stopped by the fixture."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def upstream_app(service: str) -> FastAPI:
    """Echoes what arrived; documents one GET path per prefix the service owns, plus /health."""
    app = FastAPI(title=service)

    async def echo(request: Request) -> Response:
        body = await request.body()
        seen = {
            "service": service,
            "method": request.method,
            "path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in request.headers.raw},
            "body": base64.b64encode(body).decode(),
        }
        response = Response(json.dumps(seen), status_code=201 if request.method == "POST" else 200)
        response.headers.append("set-cookie", "a=1")
        response.headers.append("set-cookie", "b=2")
        response.headers["x-upstream"] = service
        response.headers["content-type"] = "application/json"
        return response

    for prefix, owner in ROUTES:
        if owner == service:
            app.add_api_route(prefix, echo, methods=["GET"])
    app.add_api_route("/health", echo, methods=["GET"])
    app.add_api_route(
        "/{path:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    return app


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    upstreams = {service: ServerThread(upstream_app(service), free_port()).start() for service in SERVICES}
    # The automation service is "down": its port has no listener.
    down_port = upstreams["automation"].port
    upstreams["automation"].stop()
    settings = GatewaySettings(
        HERALD_CONTACTS_URL=f"http://127.0.0.1:{upstreams['contacts'].port}",
        HERALD_MESSAGING_URL=f"http://127.0.0.1:{upstreams['messaging'].port}",
        HERALD_AUTOMATION_URL=f"http://127.0.0.1:{down_port}",
        HERALD_WEBHOOK_URL=f"http://127.0.0.1:{upstreams['webhook'].port}",
    )
    gateway = ServerThread(create_app(settings), free_port()).start()
    yield f"http://127.0.0.1:{gateway.port}"
    gateway.stop()
    for name, server in upstreams.items():
        if name != "automation":
            server.stop()


@pytest.mark.parametrize(("prefix", "service"), [r for r in ROUTES if r[1] != "automation"])
def test_each_prefix_reaches_its_service(gateway_url: str, prefix: str, service: str) -> None:
    answer = httpx.get(f"{gateway_url}{prefix}/some/thing")
    assert answer.status_code == 200
    assert answer.json()["service"] == service
    assert answer.json()["path"] == f"{prefix}/some/thing"


def test_signed_webhook_body_arrives_byte_for_byte(gateway_url: str) -> None:
    # Odd spacing, unicode and key order: any re-serialisation would break the signature.
    body = '{"object":"whatsapp_business_account",  "entry":[{"id":"1","x":"caf\u00e9 \\u00e9"}]}\n'.encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(
        f"{gateway_url}/webhooks/whatsapp",
        content=body,
        headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
    )
    seen = answer.json()
    assert seen["service"] == "webhook"
    assert base64.b64decode(seen["body"]) == body
    assert seen["headers"]["x-hub-signature-256"] == signature
    assert seen["headers"]["content-length"] == str(len(body))


def test_method_query_and_encoded_path_are_forwarded(gateway_url: str) -> None:
    answer = httpx.patch(f"{gateway_url}/api/v1/contacts/a%2Fb?tag=vip&tag=new&q=caf%C3%A9", json={"x": 1})
    seen = answer.json()
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/api/v1/contacts/a%2Fb"
    assert seen["query"] == "tag=vip&tag=new&q=caf%C3%A9"
    assert base64.b64decode(seen["body"]) == b'{"x":1}'


def test_authorization_and_forwarding_headers_reach_the_service(gateway_url: str) -> None:
    answer = httpx.get(f"{gateway_url}/api/v1/messages", headers={"Authorization": "Bearer abc"})
    headers = answer.json()["headers"]
    assert headers["authorization"] == "Bearer abc"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == gateway_url.removeprefix("http://")


def test_upstream_status_and_repeated_headers_come_back(gateway_url: str) -> None:
    answer = httpx.post(f"{gateway_url}/api/v1/users", json={})
    assert answer.status_code == 201
    assert answer.headers["x-upstream"] == "contacts"
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_down_service_answers_502_problem(gateway_url: str) -> None:
    answer = httpx.get(f"{gateway_url}/api/v1/automations")
    assert answer.status_code == 502
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "upstream_unavailable"
    assert problem["service"] == "automation"


def test_unrouted_path_answers_404_problem(gateway_url: str) -> None:
    answer = httpx.get(f"{gateway_url}/api/v2/nothing")
    assert answer.status_code == 404
    assert answer.json()["code"] == "route_not_found"


def test_prefix_match_is_on_path_segments(gateway_url: str) -> None:
    # /api/v1/usersX is not under /api/v1/users.
    assert httpx.get(f"{gateway_url}/api/v1/usersX").status_code == 404


def test_merged_openapi_holds_every_running_service_paths(gateway_url: str) -> None:
    document = httpx.get(f"{gateway_url}/openapi.json").json()
    expected = {prefix for prefix, service in ROUTES if service != "automation"}
    assert expected <= set(document["paths"])
    assert "/health" not in document["paths"]
    assert document["info"]["x-unavailable-services"] == ["automation"]
    flow = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "/api/v1/auth/token"


def test_docs_page_loads_the_merged_document(gateway_url: str) -> None:
    answer = httpx.get(f"{gateway_url}/docs")
    assert answer.status_code == 200
    assert "/openapi.json" in answer.text


def test_health_reports_each_service(gateway_url: str) -> None:
    health = httpx.get(f"{gateway_url}/health").json()
    assert health["status"] == "ok"
    assert health["services"] == {"contacts": "up", "messaging": "up", "automation": "down", "webhook": "up"}
