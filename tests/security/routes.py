"""Every HTTP route of every service, found by walking each app's routes (no hand-kept list),
with the role its dependencies demand."""

from __future__ import annotations

import importlib
import inspect
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from herald.auth import current_principal
from herald.models import Role
from herald.runner import DOMAIN_SERVICES

SERVICES = tuple(service.value for service in DOMAIN_SERVICES)


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    path: str
    # None: public (no principal needed); otherwise the least role that may call it.
    role: Role | None
    path_params: tuple[tuple[str, Any], ...]
    has_body: bool

    @property
    def id(self) -> str:
        return f"{self.service}:{self.method} {self.path}"

    def url(self) -> str:
        path = self.path
        for name, annotation in self.path_params:
            path = path.replace("{" + name + "}", _sample(annotation))
        return path


def _sample(annotation: Any) -> str:
    if annotation is uuid.UUID:
        return str(uuid.uuid4())
    if annotation is int:
        return "1"
    return "sample"


def service_app(service: str) -> FastAPI:
    module = importlib.import_module(f"services.{service}.app")
    return module.create_app() if hasattr(module, "create_app") else module.app


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):  # FastAPI's lazily included router
            context = getattr(route, "include_context", None)
            yield from _walk(route.original_router.routes, prefix + (getattr(context, "prefix", "") or ""))


def required_role(dependant: Dependant) -> Role | None:
    """The highest role any dependency in the tree demands; VIEWER when only a principal is needed."""
    found: Role | None = None
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        call = dep.call
        if call is current_principal:
            found = found or Role.VIEWER
        if call is not None and getattr(call, "__qualname__", "").startswith("require_role."):
            role = inspect.getclosurevars(call).nonlocals.get("role")
            if isinstance(role, Role) and (found is None or _rank(role) > _rank(found)):
                found = role
        stack.extend(dep.dependencies)
    return found


def _rank(role: Role) -> int:
    return {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}[role]


def endpoints(service: str, app: FastAPI) -> list[Endpoint]:
    found = []
    for path, route in _walk(list(app.routes)):
        params = tuple((p.name, p.field_info.annotation) for p in route.dependant.path_params)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            found.append(
                Endpoint(
                    service=service,
                    method=method,
                    path=path,
                    role=required_role(route.dependant),
                    path_params=params,
                    has_body=bool(route.dependant.body_params),
                )
            )
    return found
