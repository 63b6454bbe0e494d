"""The FastAPI app factory every service uses: one error shape, request ids, CORS, body limits,
/health, /ready, /metrics, and a transactional session dependency."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as aioredis
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald import db
from herald.errors import PROBLEM_JSON, install_error_handlers, problem
from herald.heap import freeze_startup_objects
from herald.observability import metrics
from herald.observability.logging import configure_logging
from herald.observability.tracing import setup_tracing
from herald.settings import get_settings

log = structlog.get_logger("herald.api")


async def get_session() -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed before the response, jobs enqueued after commit."""
    async with db.session_scope() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


class HTTPMiddleware:
    """Request ids, body-size limit and HTTP metrics in one pure ASGI layer (cheap per request)."""

    def __init__(self, app: ASGIApp, service: str, max_body_bytes: int, body_limits: dict[str, int]) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits
        # Label lookups cost more than the increments; route templates and statuses are few.
        self._in_flight = metrics.HTTP_IN_FLIGHT.labels(service)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _observe(self, template: str, method: str, status: int, seconds: float) -> None:
        key = (template, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                metrics.HTTP_REQUESTS.labels(self.service, template, method, str(status)),
                metrics.HTTP_LATENCY.labels(self.service, template, method),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.body_limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self._limit_for(scope["path"])
        declared = headers.get(b"content-length")
        started = time.perf_counter()
        status_holder = {"status": 500}
        self._in_flight.inc()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await self._too_large(scope, receive, send_with_id, limit)
            else:
                try:
                    await self.app(scope, limited_receive, send_with_id)
                except _BodyTooLarge:
                    await self._too_large(scope, receive, send_with_id, limit)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self._in_flight.dec()
            self._observe(template, scope["method"], status_holder["status"], time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        request = Request(scope, receive)
        response = problem(
            request, 413, "Payload too large", f"request body exceeds {limit} bytes", "payload_too_large"
        )
        await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """Raised while streaming a body (no Content-Length) past the limit; renders as 413 wherever caught.

    An HTTPException because FastAPI turns any other error raised while it parses a JSON body
    into a 400 ("error parsing the body"); HTTPExceptions pass through to the 413 handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


async def check_ready() -> dict[str, str]:
    """PostgreSQL and Redis reachable: what /ready reports."""
    checks: dict[str, str] = {}
    try:
        async with db.async_engine().connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {type(exc).__name__}"
    client = aioredis.from_url(get_settings().redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    finally:
        await client.aclose()  # type: ignore[attr-defined]  # the stubs predate redis 5
    return checks


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details, with the offending fields named in `errors`.",
    "required": ["type", "title", "status", "detail", "code", "errors"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "request_id": {"type": "string"},
    },
}


def document_problem_responses(app: FastAPI) -> None:
    """Make the OpenAPI document say what validation errors really are: problem+json, not
    FastAPI's default `HTTPValidationError` (clients generated from the schema parse them right)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Validation failed: problem+json naming each field",
                        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_service_app(
    service: str,
    routers: Sequence[APIRouter],
    *,
    description: str = "",
    body_limits: dict[str, int] | None = None,
    on_startup: Sequence[Callable[[], Any]] = (),
    on_shutdown: Sequence[Callable[[], Any]] = (),
) -> FastAPI:
    settings = get_settings()
    configure_logging(service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            result = hook()
            if hasattr(result, "__await__"):
                await result
        freeze_startup_objects()
        yield
        for hook in on_shutdown:
            result = hook()
            if hasattr(result, "__await__"):
                await result
        await db.dispose_engines()

    app = FastAPI(
        title=f"Herald {service}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        # Traces come from herald.observability.tracing (FastAPIInstrumentor) when an OTLP
        # endpoint is set; FastAPI's own telemetry would record every request a second time.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service
    install_error_handlers(app)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        # A constraint caught what validation did not (a race on a unique key): a conflict, not a crash.
        log.info("integrity_error", constraint=getattr(getattr(exc.orig, "diag", None), "constraint_name", None))
        return problem(request, 409, "Conflict", "the request conflicts with stored data", "conflict")

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # PostgreSQL refused a value validation let through (a NUL character in text, a number
        # beyond bigint): the client sent it, so a 422 rather than a crash.
        log.info("data_error", error=type(exc.orig).__name__)
        return problem(
            request, 422, "Validation failed", "a value in the request cannot be stored (NUL character or out of range)",
            "invalid_value",
        )

    for router in routers:
        app.include_router(router)

    @app.get("/health", tags=["ops"], summary="Process is alive (no dependencies checked)")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/ready", tags=["ops"], summary="PostgreSQL and Redis are reachable")
    async def ready() -> Response:
        checks = await check_ready()
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render_latest()
        return Response(body, media_type=content_type)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID"],
    )
    app.add_middleware(
        HTTPMiddleware,
        service=service,
        max_body_bytes=settings.max_body_bytes,
        body_limits=body_limits or {},
    )
    setup_tracing(service, app)
    document_problem_responses(app)
    return app
