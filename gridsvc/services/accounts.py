"""Accounts: sign-in with throttling, and account administration."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from gridsvc.auth import check_password, hash_password, verify_password
from gridsvc.errors import (AccountDisabled, Conflict, InvalidCredentials, NotFound, TokenRefused, TooManyAttempts,
                            ValidationFailed)
from gridsvc.models import Department, LoginFailure, RefreshTokenUse, User
from gridsvc.services import Page

MAX_FAILURES = 5
FAILURE_WINDOW_S = 60
FAILURE_RETENTION = "1 day"


def normalise_username(username: str) -> str:
    return username.strip().lower()


def throttle_retry_after(session: Session, username: str) -> int | None:
    """Seconds until ``username`` may try again, or None when it may now.

    Five failures within a minute lock the name until the oldest of those
    five is a minute old.
    """
    recent = session.scalars(
        select(LoginFailure.at)
        .where(LoginFailure.username == username,
               LoginFailure.at > func.clock_timestamp() - text(f"interval '{FAILURE_WINDOW_S} seconds'"))
        .order_by(LoginFailure.at.desc()).limit(MAX_FAILURES)
    ).all()
    if len(recent) < MAX_FAILURES:
        return None
    now = session.scalar(select(func.clock_timestamp()))
    return max(1, math.ceil(FAILURE_WINDOW_S - (now - recent[-1]).total_seconds()))


def authenticate(session: Session, username: str, password: str) -> User:
    """The account for these credentials, or an error that reveals nothing.

    A failure is recorded in the session before InvalidCredentials is
    raised: the caller must commit it (the failure is the point).
    Unknown names are throttled exactly like real ones.
    """
    name = normalise_username(username)
    if len(name) > LoginFailure.username.type.length:
        # Lowercased, some letters grow ('İ' is two characters): no account has such a name, and the
        # throttle could not record it. Refused as any wrong name, after the same work.
        verify_password(None, password)
        raise InvalidCredentials("The username or password is wrong.")
    # Serialise attempts on one name so a burst cannot slip past the count.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": "login:" + name})
    retry_after = throttle_retry_after(session, name)
    if retry_after is not None:
        raise TooManyAttempts(f"Too many failed sign-ins for this username; try again in {retry_after} s.",
                              retry_after=retry_after)
    user = session.scalar(select(User).where(func.lower(User.username) == name))
    matches, rehash = check_password(user.password_hash if user else None, password)
    if not matches:
        session.add(LoginFailure(username=name))
        session.execute(delete(LoginFailure).where(LoginFailure.at < func.clock_timestamp() - text(f"interval '{FAILURE_RETENTION}'")))
        session.flush()
        raise InvalidCredentials("The username or password is wrong.")
    if user.disabled:
        raise AccountDisabled("This account is disabled; ask an administrator.")
    if rehash:  # made before passwords were normalised, or with older hashing parameters
        user.password_hash = hash_password(password)
    user.last_login_at = datetime.now(timezone.utc)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == normalise_username(username)))


def list_users(session: Session, *, role: str | None = None, limit: int = 100, offset: int = 0) -> Page[User]:
    query = select(User)
    if role:
        query = query.where(User.role_rows.any(role=role))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    # each page's departments in one query, not one per account
    items = session.scalars(query.options(selectinload(User.departments))
                            .order_by(User.username).limit(limit).offset(offset)).all()
    return Page(items=items, total=total, limit=limit, offset=offset)


def _departments(session: Session, codes: Iterable[str]) -> list[Department]:
    codes = list(dict.fromkeys(codes))
    found = {d.code: d for d in session.scalars(select(Department).where(Department.code.in_(codes)))}
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise ValidationFailed(f"Unknown department(s): {', '.join(unknown)}.", errors={"departments": [f"unknown: {', '.join(unknown)}"]})
    return [found[c] for c in codes]


def create_user(session: Session, *, username: str, password: str, display_name: str, roles: list[str],
                phone: str | None = None, departments: list[str] | None = None, password_hash: str | None = None) -> User:
    """``password_hash`` lets the seed reuse one slow hash for many demo accounts."""
    if find_user(session, username) is not None:
        raise Conflict(f"The username {username} is taken.", username=username)
    user = User(username=username, display_name=display_name, phone=phone,
                password_hash=password_hash or hash_password(password))
    user.set_roles(roles)
    user.departments = _departments(session, departments or [])
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, user_id: int, changes: dict[str, Any]) -> User:
    user = get_user(session, user_id)
    if "roles" in changes:
        user.set_roles(changes.pop("roles"))
    if "departments" in changes:
        user.departments = _departments(session, changes.pop("departments"))
    if "password" in changes:
        user.password_hash = hash_password(changes.pop("password"))
        user.token_version += 1  # a new password signs out every device
    if changes.get("disabled") and not user.disabled:
        user.token_version += 1
    for key, value in changes.items():
        setattr(user, key, value)
    session.flush()
    return user


# A phone that lost the answer to its refresh sends the same token again at once: that is a retry, not theft.
REFRESH_RETRY_GRACE = timedelta(seconds=30)


class RefreshTokenReused(TokenRefused):
    """A refresh token exchanged a second time: the account's tokens were revoked (the caller commits that)."""


def exchange_refresh_token(session: Session, user_id: int, claims: dict[str, Any]) -> User:
    """The account a refresh token may renew, the token now spent (rotation: each is exchanged once).

    A second exchange, later than a retry would come, means two holders have the token, one of them a
    thief: every token of the account is revoked (``RefreshTokenReused``) and its owner signs in again.
    """
    user = get_user(session, user_id)
    session.execute(delete(RefreshTokenUse).where(RefreshTokenUse.expires_at < func.now()))  # spent and expired
    jti = str(claims.get("jti") or "")
    if not jti:
        raise TokenRefused("The refresh token has no id; sign in again.")
    first = session.scalar(insert(RefreshTokenUse).values(
        jti=jti, user_id=user_id, expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc))
        .on_conflict_do_nothing().returning(RefreshTokenUse.jti))
    if first is None:
        used_at = session.scalar(select(RefreshTokenUse.used_at).where(RefreshTokenUse.jti == jti))
        if session.scalar(select(func.clock_timestamp())) - used_at > REFRESH_RETRY_GRACE:
            sign_out_everywhere(session, user_id)
            raise RefreshTokenReused("This refresh token was already used: every token of this account is now "
                                     "revoked; sign in again.")
    return user


def sign_out_everywhere(session: Session, user_id: int) -> None:
    get_user(session, user_id).token_version += 1
    session.flush()
