"""Users and API keys: the domain functions behind /api/v1/users, /api/v1/api-keys and the CLI.

Functions take a session and never commit: the request dependency, `session_scope()` or the
CLI's scope does. They are async; the CLI runs them with `asyncio.run` inside `session_scope()`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from herald.auth import DUMMY_PASSWORD_HASH, ROLE_RANK, hash_password, new_api_key, verify_password
from herald.clock import utcnow
from herald.errors import Conflict, Forbidden, NotFound, ValidationFailed
from herald.models import ApiKey, Role, User

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def normalize_email(email: str) -> str:
    """Lower-cased, syntax-checked address (no DNS lookups); ValidationFailed names `email`."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed.on_field("email", str(exc), code="invalid_email") from exc


def check_password_policy(password: str) -> None:
    """Reject passwords too short to resist guessing (or absurdly long); names field `password`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.on_field(
            "password", f"password must be at least {MIN_PASSWORD_LENGTH} characters", code="weak_password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed.on_field(
            "password", f"password must be at most {MAX_PASSWORD_LENGTH} characters", code="invalid_password"
        )


def parse_role(role: Role | str) -> Role:
    """A Role from its name; ValidationFailed names `role` for anything else."""
    try:
        return Role(role)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationFailed.on_field(
            "role", f"role must be one of {allowed}", code="invalid_role"
        ) from exc


async def create_user(
    session: AsyncSession, email: str, password: str, role: Role | str, full_name: str = ""
) -> User:
    """Create a user with an argon2 password hash; Conflict (409) when the email is taken."""
    address = normalize_email(email)
    check_password_policy(password)
    role = parse_role(role)
    now = utcnow()
    # ON CONFLICT instead of read-then-insert: two concurrent creations cannot both succeed.
    statement = (
        insert(User)
        .values(
            id=uuid.uuid4(),
            email=address,
            full_name=full_name,
            password_hash=hash_password(password),
            role=role.value,
            is_active=True,
            token_version=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(User.__table__.c.id)  # type: ignore[attr-defined]
    )
    user_id = (await session.execute(statement)).scalar_one_or_none()
    if user_id is None:
        raise Conflict(
            f"a user with email {address} already exists",
            code="email_taken",
            errors=[{"field": "email", "message": "already registered"}],
        )
    return await get_user(session, user_id)


async def seed_admin(session: AsyncSession, email: str, password: str) -> tuple[User, bool]:
    """Make sure an admin with this email exists: (user, created). An existing user is left as is."""
    address = normalize_email(email)
    existing = await find_user_by_email(session, address)
    if existing is not None:
        return existing, False
    return await create_user(session, address, password, Role.ADMIN, full_name="Administrator"), True


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user with this id, or NotFound."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found", code="user_not_found")
    return user


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this address (compared lower-cased), or None."""
    result = await session.execute(select(User).where(User.email == email.strip().lower()))  # type: ignore[arg-type]
    return result.scalar_one_or_none()


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The user whose email and password match, else None; timing does not reveal unknown emails."""
    user = await find_user_by_email(session, email) if "\x00" not in email else None
    if user is None:
        verify_password(DUMMY_PASSWORD_HASH, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    """Every user, oldest first (a workspace has a handful)."""
    result = await session.execute(select(User).order_by(User.created_at, User.id))  # type: ignore[arg-type]
    return result.scalars().all()


async def update_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    role: Role | str | None = None,
    is_active: bool | None = None,
    full_name: str | None = None,
) -> User:
    """Change role, active flag or name. Deactivating also invalidates refresh tokens."""
    user = await get_user(session, user_id)
    if role is not None:
        user.role = parse_role(role).value
    if full_name is not None:
        user.full_name = full_name
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        if not is_active:
            user.token_version += 1
    user.updated_at = utcnow()
    session.add(user)
    await session.flush()
    return user


async def reset_password(session: AsyncSession, user_id: uuid.UUID, password: str) -> User:
    """Set a new password and bump token_version so every refresh token issued before dies."""
    check_password_policy(password)
    user = await get_user(session, user_id)
    user.password_hash = hash_password(password)
    user.token_version += 1
    user.updated_at = utcnow()
    session.add(user)
    await session.flush()
    return user


async def record_login(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Stamp last_login_at."""
    await session.execute(update(User).where(User.id == user_id).values(last_login_at=utcnow()))  # type: ignore[arg-type]


async def create_api_key(
    session: AsyncSession,
    user: User,
    name: str,
    role: Role | str | None = None,
    expires_at: datetime | None = None,
    max_role: Role | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `user`: (stored row, the key itself, shown once and never stored).

    The key's role defaults to the user's role and can never exceed it (nor `max_role`, the
    role of the credential creating it).
    """
    ceiling = Role(user.role)
    if max_role is not None and ROLE_RANK[max_role] < ROLE_RANK[ceiling]:
        ceiling = max_role
    key_role = parse_role(role) if role is not None else ceiling
    if ROLE_RANK[key_role] > ROLE_RANK[ceiling]:
        raise Forbidden(
            f"an API key's role cannot exceed {ceiling.value}",
            code="role_exceeds_user",
            errors=[{"field": "role", "message": f"at most {ceiling.value}"}],
        )
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed.on_field("expires_at", "must be in the future")
    key, prefix, key_hash = new_api_key()
    api_key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        role=key_role.value,
        expires_at=expires_at,
    )
    session.add(api_key)
    await session.flush()
    return api_key, key


async def list_api_keys(session: AsyncSession, user_id: uuid.UUID | None) -> Sequence[ApiKey]:
    """Keys of one user (or of everyone when user_id is None), newest first."""
    statement = select(ApiKey).order_by(ApiKey.created_at.desc())  # type: ignore[attr-defined]
    if user_id is not None:
        statement = statement.where(ApiKey.user_id == user_id)  # type: ignore[arg-type]
    return (await session.execute(statement)).scalars().all()


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID, owner_id: uuid.UUID | None) -> ApiKey:
    """Revoke a key (idempotent). With owner_id, only that user's keys are visible."""
    api_key = await session.get(ApiKey, key_id)
    if api_key is None or (owner_id is not None and api_key.user_id != owner_id):
        raise NotFound("API key not found", code="api_key_not_found")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.add(api_key)
        await session.flush()
    return api_key
