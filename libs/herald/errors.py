"""One error shape for the whole platform: RFC 9457 problem+json with field errors.

Domain code raises HeraldError subclasses; `install_error_handlers` maps them, FastAPI's
validation errors and anything unexpected to the same body:
{"type", "title", "status", "detail", "code", "errors": [{"field", "message"}], "request_id"}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    """problem+json as pure ASCII: the media type has no charset parameter, so clients that guess
    an encoding still read client-supplied text echoed in `detail` correctly."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")
log = structlog.get_logger("herald.errors")


class HeraldError(Exception):
    status_code = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors or [])
        if code:
            self.code = code
        self.headers = headers
        self.extra = extra or {}


class ValidationFailed(HeraldError):
    status_code = 422
    code = "validation_error"
    title = "Validation failed"

    @classmethod
    def on_field(cls, field: str, message: str, code: str | None = None) -> ValidationFailed:
        return cls(message, errors=[{"field": field, "message": message}], code=code)


class NotAuthenticated(HeraldError):
    status_code = 401
    code = "not_authenticated"
    title = "Not authenticated"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(HeraldError):
    status_code = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(HeraldError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class Conflict(HeraldError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(HeraldError):
    status_code = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(HeraldError):
    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class TooManyRequests(HeraldError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(HeraldError):
    status_code = 503
    code = "unavailable"
    title = "Service unavailable"


def problem(
    request: Request | None,
    status: int,
    title: str,
    detail: str,
    code: str,
    errors: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://herald.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": list(errors),
    }
    if extra:
        body.update(extra)
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    if request_id:
        body["request_id"] = request_id
    return ProblemResponse(body, status_code=status, headers=headers)


def _field_path(location: Sequence[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        errors.append({"field": _field_path(error.get("loc", ())), "message": error.get("msg", "invalid")})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeraldError)
    async def _herald_error(request: Request, exc: HeraldError) -> JSONResponse:
        return problem(
            request, exc.status_code, exc.title, exc.detail, exc.code, exc.errors, exc.headers, exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
        return problem(request, 422, "Validation failed", detail, "validation_error", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            401: "not_authenticated",
            403: "forbidden",
            413: "payload_too_large",
        }
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return problem(request, exc.status_code, detail, detail, code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem(request, 500, "Internal error", "An unexpected error occurred", "internal_error")
