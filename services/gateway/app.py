"""One local entry URL (:8000) in front of every service, routed by the Ingress's path prefixes.

A small streaming reverse proxy: method, path, query, headers and body bytes go upstream as they
came (a signed webhook body must arrive byte for byte), and the upstream's status, headers and
body come back the same way. It also serves a combined `/docs` over the services' OpenAPI
documents and answers 502 problem+json when a service is down. Local use only: in Kubernetes
the Ingress does this routing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from herald.errors import problem
from services.gateway.config import GatewaySettings

# Path prefix -> service, identical to the Ingress in charts/herald (DEVELOPERS.md, "Fixed names").
ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/auth", "contacts"),
    ("/api/v1/users", "contacts"),
    ("/api/v1/api-keys", "contacts"),
    ("/api/v1/contacts", "contacts"),
    ("/api/v1/messages", "messaging"),
    ("/api/v1/broadcasts", "messaging"),
    ("/api/v1/templates", "messaging"),
    ("/api/v1/conversations", "messaging"),
    ("/api/v1/analytics", "messaging"),
    ("/api/v1/automations", "automation"),
    ("/api/v1/automation-runs", "automation"),
    ("/webhooks/whatsapp", "webhook"),
    ("/api/v1/webhook-events", "webhook"),
)
SERVICES: tuple[str, ...] = ("contacts", "messaging", "automation", "webhook")
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret  # nosec B105

# Connection-scoped headers (RFC 9110 section 7.6.1) are not forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def route_for(path: str) -> str | None:
    """The service owning `path`, or None."""
    for prefix, service in ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


def _request_headers(request: Request) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in request.headers.raw if k not in HOP_BY_HOP and k != b"host"]
    client = request.client.host if request.client else ""
    forwarded_for = request.headers.get("x-forwarded-for")
    headers.append((b"x-forwarded-for", (f"{forwarded_for}, {client}" if forwarded_for else client).encode()))
    headers.append((b"x-forwarded-proto", request.url.scheme.encode()))
    headers.append((b"x-forwarded-host", request.headers.get("host", "").encode("latin-1")))
    return headers


async def proxy(request: Request) -> Response:
    service = route_for(request.url.path)
    if service is None:
        return problem(request, 404, "Not Found", f"no service serves {request.url.path}", "route_not_found")
    settings: GatewaySettings = request.app.state.settings
    client: httpx.AsyncClient = request.app.state.client
    # raw_path keeps the client's own percent-encoding.
    target = settings.upstream(service) + request.scope["raw_path"].decode("latin-1")
    if request.scope["query_string"]:
        target += "?" + request.scope["query_string"].decode("latin-1")
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    upstream_request = client.build_request(
        request.method,
        target,
        headers=_request_headers(request),
        content=request.stream() if has_body else None,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException:
        detail = f"the {service} service did not answer in time"
        return problem(
            request, 504, "Gateway Timeout", detail, "upstream_timeout", extra={"service": service}
        )
    except httpx.TransportError:
        detail = f"the {service} service is not reachable"
        return problem(
            request, 502, "Bad Gateway", detail, "upstream_unavailable", extra={"service": service}
        )
    response = StreamingResponse(
        upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
    )
    # Raw pairs keep repeated headers (set-cookie) and the upstream's content-length/-encoding.
    response.raw_headers = [(k, v) for k, v in upstream.headers.raw if k.lower() not in HOP_BY_HOP]
    return response


async def _fetch_openapi(client: httpx.AsyncClient, base: str) -> dict[str, Any] | None:
    try:
        answer = await client.get(f"{base}/openapi.json", timeout=5)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    document = answer.json()
    return document if isinstance(document, dict) else None


def merge_openapi(documents: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """One OpenAPI document from each service's: the paths each service owns behind the gateway,
    their components, and an OAuth2 password flow against the contacts service's token endpoint."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald API",
            "version": "1",
            "description": "Every Herald service behind one URL. Authorize with an admin, operator or "
            "viewer login (OAuth2 password flow) or an API key.",
        },
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
        "tags": [],
    }
    unavailable = []
    seen_tags: set[str] = set()
    for service, document in documents.items():
        if document is None:
            unavailable.append(service)
            continue
        merged["openapi"] = document.get("openapi", merged["openapi"])
        for path, item in document.get("paths", {}).items():
            if route_for(path) == service:
                merged["paths"][path] = item
        for kind, entries in document.get("components", {}).items():
            bucket = merged["components"].setdefault(kind, {})
            for name, entry in entries.items():
                bucket.setdefault(name, entry)
        for tag in document.get("tags", []):
            if tag.get("name") not in seen_tags:
                seen_tags.add(tag.get("name"))
                merged["tags"].append(tag)
    schemes = merged["components"]["securitySchemes"]
    has_password_flow = False
    for scheme in schemes.values():
        password_flow = scheme.get("flows", {}).get("password") if scheme.get("type") == "oauth2" else None
        if password_flow is not None:
            password_flow["tokenUrl"] = TOKEN_URL
            has_password_flow = True
    if not has_password_flow:
        schemes["OAuth2PasswordBearer"] = {
            "type": "oauth2",
            "flows": {"password": {"tokenUrl": TOKEN_URL, "scopes": {}}},
        }
    if unavailable:
        merged["info"]["x-unavailable-services"] = unavailable
    return merged


async def openapi(request: Request) -> Response:
    settings: GatewaySettings = request.app.state.settings
    client: httpx.AsyncClient = request.app.state.client
    documents = await asyncio.gather(*(_fetch_openapi(client, settings.upstream(s)) for s in SERVICES))
    return JSONResponse(merge_openapi(dict(zip(SERVICES, documents, strict=True))))


async def docs(request: Request) -> Response:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Herald API",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": True},
    )


async def oauth2_redirect(request: Request) -> Response:
    return get_swagger_ui_oauth2_redirect_html()


async def health(request: Request) -> Response:
    """The gateway is up; each service's own /health is reported alongside."""
    settings: GatewaySettings = request.app.state.settings
    client: httpx.AsyncClient = request.app.state.client

    async def check(service: str) -> str:
        try:
            answer = await client.get(f"{settings.upstream(service)}/health", timeout=2)
        except httpx.HTTPError:
            return "down"
        return "up" if answer.status_code == 200 else "down"

    states = await asyncio.gather(*(check(s) for s in SERVICES))
    return JSONResponse({"status": "ok", "services": dict(zip(SERVICES, states, strict=True))})


def create_app(settings: GatewaySettings | None = None) -> Starlette:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One pooled keep-alive client per process; no overall timeout on bodies being streamed.
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds, connect=5.0),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            follow_redirects=False,
        ) as client:
            app.state.client = client
            yield

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Route("/docs/oauth2-redirect", oauth2_redirect, methods=["GET"]),
            Route("/{path:path}", proxy, methods=METHODS),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


app = create_app()
