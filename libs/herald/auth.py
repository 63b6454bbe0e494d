"""Authentication and authorization shared by every service.

Humans log in with the OAuth2 password flow (so /docs "Authorize" works) and get a short-lived
JWT access token plus a refresh token; machines use API keys (`X-API-Key: hk_...`, stored as
SHA-256, shown once). Roles: admin > operator > viewer.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select, update

from herald.clock import utcnow
from herald.errors import Forbidden, NotAuthenticated
from herald.models import ApiKey, Role
from herald.settings import get_settings

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "hk_"
ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
TokenType = Literal["access", "refresh"]

_hasher = PasswordHasher()
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so timing does not reveal emails.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (via JWT) or an API key acting with its own role."""

    user_id: uuid.UUID
    role: Role
    via: Literal["jwt", "api_key"]
    api_key_id: uuid.UUID | None = None

    def can(self, needed: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]


def create_token(user_id: uuid.UUID, role: Role | str, token_type: TokenType, token_version: int = 0) -> str:
    settings = get_settings()
    now = utcnow()
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if token_type == "access"  # noqa: S105 - a token type, not a password  # nosec B105
        else timedelta(days=settings.refresh_token_days)
    )
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "role": str(role),
        "type": token_type,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if token_type == "refresh":  # noqa: S105 - a token type, not a password  # nosec B105
        claims["ver"] = token_version
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=JWT_ALGORITHM)


def decode_token(token: str, expected_type: TokenType) -> dict[str, Any]:
    """Verify signature, expiry and type; only HS256 is accepted (no `alg: none`, no key confusion)."""
    settings = get_settings()
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "sub", "type"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated("token expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("invalid token", code="invalid_token") from exc
    if claims.get("type") != expected_type:
        raise NotAuthenticated(f"expected a {expected_type} token", code="invalid_token")
    if claims.get("role") not in {r.value for r in Role}:
        raise NotAuthenticated("invalid token", code="invalid_token")
    return claims


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (the key shown once, its prefix for listings, its stored hash)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:10], hash_api_key(key)


def hash_api_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


async def _principal_from_api_key(key: str) -> Principal:
    from herald.db import session_scope

    async with session_scope() as session:
        now = utcnow()
        result = await session.execute(
            select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))  # type: ignore[union-attr,arg-type]
        )
        api_key = result.scalar_one_or_none()
        if api_key is None or (api_key.expires_at is not None and api_key.expires_at <= now):
            raise NotAuthenticated("invalid API key", code="invalid_api_key")
        await session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))  # type: ignore[arg-type]
        return Principal(user_id=api_key.user_id, role=Role(api_key.role), via="api_key", api_key_id=api_key.id)


async def current_principal(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_header)],
) -> Principal:
    if api_key:
        principal = await _principal_from_api_key(api_key)
    elif token:
        if token.startswith(API_KEY_PREFIX):
            principal = await _principal_from_api_key(token)
        else:
            claims = decode_token(token, "access")
            try:
                user_id = uuid.UUID(claims["sub"])
            except ValueError as exc:
                raise NotAuthenticated("invalid token", code="invalid_token") from exc
            principal = Principal(user_id=user_id, role=Role(claims["role"]), via="jwt")
    else:
        raise NotAuthenticated("missing credentials: send a Bearer token or X-API-Key")
    request.state.principal = principal
    return principal


def require_role(role: Role) -> Any:
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(role):
            raise Forbidden(f"this action needs the {role.value} role", code="insufficient_role")
        return principal

    return Depends(dependency)


Viewer = Annotated[Principal, require_role(Role.VIEWER)]
Operator = Annotated[Principal, require_role(Role.OPERATOR)]
Admin = Annotated[Principal, require_role(Role.ADMIN)]
