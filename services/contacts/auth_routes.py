"""HTTP layer of /api/v1/auth, /api/v1/users and /api/v1/api-keys."""

from __future__ import annotations

import uuid
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from herald import ratelimit, users
from herald.api import SessionDep
from herald.auth import Admin, Principal, Viewer, create_token, current_principal, decode_token
from herald.clock import utcnow
from herald.errors import Forbidden, NotAuthenticated, TooManyRequests
from herald.models import ApiKey, Role, User
from herald.observability import metrics
from herald.settings import get_settings
from services.contacts.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Me,
    PasswordReset,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
    UserUpdate,
)

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"])
api_keys_router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])

Authenticated = Annotated[Principal, Depends(current_principal)]
USED_REFRESH_PREFIX = "herald:auth:refresh-used:"


def _issue_tokens(user: User) -> TokenPair:
    settings = get_settings()
    return TokenPair(
        access_token=create_token(user.id, user.role, "access"),
        refresh_token=create_token(user.id, user.role, "refresh", user.token_version),
        expires_in=settings.access_token_minutes * 60,
    )


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def _key_public(api_key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(api_key, from_attributes=True)


@auth_router.post(
    "/token",
    summary="Log in (OAuth2 password flow: username is the email)",
    responses={429: {"description": "Too many login attempts; see Retry-After"}},
)
async def login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep
) -> TokenPair:
    settings = get_settings()
    email = form.username.strip().lower()
    limit = await ratelimit.hit("login", f"{email}|{_client_ip(request)}", settings.login_attempts_per_minute, 60)
    if not limit.allowed:
        metrics.LOGIN_ATTEMPTS.labels("rate_limited").inc()
        raise TooManyRequests(
            "too many login attempts; try again later",
            code="login_rate_limited",
            headers={"Retry-After": str(limit.retry_after)},
        )
    user = await users.authenticate(session, email, form.password)
    if user is None:
        metrics.LOGIN_ATTEMPTS.labels("invalid").inc()
        raise NotAuthenticated("incorrect email or password", code="invalid_credentials")
    if not user.is_active:
        metrics.LOGIN_ATTEMPTS.labels("disabled").inc()
        raise NotAuthenticated("this account is disabled", code="account_disabled")
    await users.record_login(session, user.id)
    metrics.LOGIN_ATTEMPTS.labels("success").inc()
    return _issue_tokens(user)


@auth_router.post("/refresh", summary="Trade a refresh token for a new token pair (the old one stops working)")
async def refresh(body: RefreshRequest, session: SessionDep) -> TokenPair:
    claims = decode_token(body.refresh_token, "refresh")
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError as exc:
        raise NotAuthenticated("invalid token", code="invalid_token") from exc
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("the account is unknown or disabled", code="account_disabled")
    if claims.get("ver") != user.token_version:
        raise NotAuthenticated("this refresh token was revoked; log in again", code="token_revoked")
    jti = claims.get("jti")
    if not jti:
        raise NotAuthenticated("invalid token", code="invalid_token")
    # Rotation: each refresh token works once; SET NX makes a concurrent reuse lose the race.
    ttl = max(1, int(claims["exp"]) - int(utcnow().timestamp()))
    client = aioredis.from_url(get_settings().redis_url)
    try:
        first_use = await client.set(USED_REFRESH_PREFIX + str(jti), "1", nx=True, ex=ttl)
    finally:
        await client.aclose()  # type: ignore[attr-defined]
    if not first_use:
        raise NotAuthenticated("this refresh token was already used; log in again", code="token_reused")
    return _issue_tokens(user)


@auth_router.get("/me", summary="Who am I")
async def me(principal: Authenticated, session: SessionDep) -> Me:
    user = await session.get(User, principal.user_id)
    if user is None:
        raise NotAuthenticated("the account no longer exists", code="account_disabled")
    return Me(**_user_public(user).model_dump(), via=principal.via, effective_role=principal.role)


# --- users (admin only) ------------------------------------------------------------------------


@users_router.get("", summary="List users")
async def list_users(session: SessionDep, _: Admin) -> list[UserPublic]:
    return [_user_public(user) for user in await users.list_users(session)]


@users_router.post("", status_code=201, summary="Create a user")
async def create_user(body: UserCreate, session: SessionDep, _: Admin) -> UserPublic:
    user = await users.create_user(session, body.email, body.password, body.role, body.full_name)
    return _user_public(user)


@users_router.get("/{user_id}", summary="Get a user")
async def get_user(user_id: uuid.UUID, session: SessionDep, _: Admin) -> UserPublic:
    return _user_public(await users.get_user(session, user_id))


@users_router.patch("/{user_id}", summary="Change a user's role, active flag or name")
async def update_user(user_id: uuid.UUID, body: UserUpdate, session: SessionDep, principal: Admin) -> UserPublic:
    if user_id == principal.user_id and (body.is_active is False or (body.role and body.role is not Role.ADMIN)):
        # An admin demoting or disabling themselves could leave nobody able to manage users.
        raise Forbidden("you cannot demote or disable yourself", code="self_lockout")
    user = await users.update_user(session, user_id, role=body.role, is_active=body.is_active, full_name=body.full_name)
    return _user_public(user)


@users_router.post(
    "/{user_id}/reset-password",
    summary="Set a new password; every refresh token issued before stops working",
)
async def reset_password(user_id: uuid.UUID, body: PasswordReset, session: SessionDep, _: Admin) -> UserPublic:
    return _user_public(await users.reset_password(session, user_id, body.password))


# --- API keys ----------------------------------------------------------------------------------


@api_keys_router.post("", status_code=201, summary="Create an API key (the key is shown only in this answer)")
async def create_api_key(body: ApiKeyCreate, session: SessionDep, principal: Viewer) -> ApiKeyCreated:
    user = await users.get_user(session, principal.user_id)
    if not user.is_active:
        raise Forbidden("this account is disabled", code="account_disabled")
    api_key, key = await users.create_api_key(
        session, user, body.name, body.role, body.expires_at, max_role=principal.role
    )
    return ApiKeyCreated(**_key_public(api_key).model_dump(), key=key)


@api_keys_router.get("", summary="List API keys (prefix only; admins see everyone's)")
async def list_api_keys(session: SessionDep, principal: Viewer) -> list[ApiKeyPublic]:
    owner = None if principal.role is Role.ADMIN else principal.user_id
    return [_key_public(api_key) for api_key in await users.list_api_keys(session, owner)]


@api_keys_router.delete("/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Response:
    owner = None if principal.role is Role.ADMIN else principal.user_id
    await users.revoke_api_key(session, key_id, owner)
    return Response(status_code=204)
