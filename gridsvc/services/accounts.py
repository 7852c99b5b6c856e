"""Accounts: sign-in with throttling, and account administration."""
from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import secrets
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from gridsvc import clock
from gridsvc.passwords import check_password, hash_password, verify_password
from gridsvc.errors import (AccountDisabled, Conflict, InvalidCredentials, NotFound, TokenRefused, TooManyAttempts,
                            ValidationFailed)
from gridsvc.models import PASSWORD_LENGTH, ApiKey, Department, LoginFailure, RefreshTokenUse, User, Volunteer
from gridsvc.services import Page
from gridsvc.services.checks import CheckPolicy, end_duty
from gridsvc.services.requests import DispatchPolicy, give_back_tasks
from gridsvc.services.shifts import release_places, with_waitlists_run_again
from gridsvc.services.volunteers import account_may_volunteer

# Per username: five failures within a minute lock the name until the oldest of them is a minute old.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60
# Per client address (defaults of GRIDSVC_SIGNIN_ADDRESS_FAILURES / _WINDOW_MIN): generous, as a whole
# factory's Wi-Fi or a mobile carrier's NAT may sign in from one address.
ADDRESS_MAX_FAILURES = 30
ADDRESS_WINDOW_S = 600
FAILURE_RETENTION = "1 day"


def normalise_username(username: str) -> str:
    return username.strip().lower()


def client_key(address: str | None) -> str | None:
    """The key a client's failed sign-ins are counted under: its IPv4 address, or its IPv6 /64 (a client
    usually holds a whole /64, and could take a new address for every guess).

    None, counted under no address, when there is no address or it is loopback: that is a reverse proxy on
    this host whose hops are not configured (GRIDSVC_PROXY_HOPS), and every client would share one budget,
    a few typos by strangers locking everyone out.
    """
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])  # without an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Address(int(ip) >> 64 << 64))
    return str(ip)


def _retry_after(session: Session, counted: ColumnElement[bool], limit: int, window_s: int) -> int | None:
    """Seconds until the oldest of the last ``limit`` failures matching ``counted`` leaves the window of
    ``window_s``; None when fewer than ``limit`` are in it."""
    recent = session.scalars(
        select(LoginFailure.at)
        .where(counted, LoginFailure.at > func.clock_timestamp() - timedelta(seconds=window_s))
        .order_by(LoginFailure.at.desc()).limit(limit)
    ).all()
    if len(recent) < limit:
        return None
    now = session.scalar(select(func.clock_timestamp()))
    return max(1, math.ceil(window_s - (now - recent[-1]).total_seconds()))


def throttle_retry_after(session: Session, username: str) -> int | None:
    """Seconds until ``username`` may try again, or None when it may now."""
    return _retry_after(session, LoginFailure.username == username, MAX_FAILURES, FAILURE_WINDOW_S)


def authenticate(session: Session, username: str, password: str, *, address: str | None = None,
                 address_failures: int = ADDRESS_MAX_FAILURES, address_window_s: int = ADDRESS_WINDOW_S) -> User:
    """The account for these credentials, or an error that reveals nothing.

    A failure is recorded in the session before InvalidCredentials is
    raised: the caller must commit it (the failure is the point).
    Unknown names are throttled exactly like real ones. A client (``address``)
    over its own budget is refused before its guess is judged or counted, so
    it can neither go on guessing across accounts nor keep one locked.
    """
    name = normalise_username(username)
    client = client_key(address)
    if client is not None:
        # Serialise one client's attempts too (before the name's lock: always in this order, no deadlock).
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": "login-address:" + client})
        retry_after = _retry_after(session, LoginFailure.address == client, address_failures, address_window_s)
        if retry_after is not None:
            raise TooManyAttempts(f"Too many failed sign-ins from your address; try again in {retry_after} s.",
                                  retry_after=retry_after)
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
        session.add(LoginFailure(username=name, address=client))
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


# The first guesses of anyone: the most common passwords of 8 or more characters in published leaks
# (Chinese sites' among them). Not a breach list, only the head of one.
COMMON_PASSWORDS = frozenset({
    "12345678", "123456789", "1234567890", "0123456789", "87654321", "password", "password1", "password123",
    "passw0rd", "qwertyui", "qwertyuiop", "qwerty123", "1qaz2wsx", "1q2w3e4r", "1q2w3e4r5t", "abc12345",
    "abc123456", "a1234567", "a12345678", "a123456789", "qq123456", "woaini1314", "iloveyou", "5201314520",
    "admin123", "admin888", "administrator", "gridsvc", "gridsvc1", "gridsvc123",
})


def check_password_policy(username: str, password: str) -> None:
    """Refuse (422) a password of the wrong length (``PASSWORD_LENGTH``: one longer could never sign in), or that
    anyone knowing the account would try first: the username (in any case or width, perhaps followed by digits),
    a very common one, or one of one or two characters repeated."""
    typed = unicodedata.normalize("NFKC", password).casefold()
    name = unicodedata.normalize("NFKC", normalise_username(username)).casefold()
    shortest, longest = PASSWORD_LENGTH
    if not shortest <= len(password) <= longest:
        reason = f"must have {shortest} to {longest} characters"
    elif re.fullmatch(re.escape(name) + "[0-9]*", typed):
        reason = "must not be the username"
    elif typed in COMMON_PASSWORDS:
        reason = "is one of the most common passwords"
    elif len(set(typed)) < 3:
        reason = "needs at least three different characters"
    else:
        return
    raise ValidationFailed(f"The password {reason}.", errors={"password": [f"The password {reason}."]})


def get_user(session: Session, user_id: int, *, for_update: bool = False) -> User:
    # FOR NO KEY UPDATE: a volunteer's own write in flight (a check-in, a position) refers to the account (its
    # foreign key takes KEY SHARE) after locking the volunteer's row, which a change of the account locks next:
    # FOR UPDATE here made the two wait for each other (a deadlock, one of them undone)
    user = session.get(User, user_id, with_for_update={"key_share": True} if for_update else None,
                       populate_existing=for_update)
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


def _check_member_of_a_department(user: User) -> None:
    """The department role is membership of a department's pool: without a department, the account saw an empty
    pool and claimed nothing, and nothing told the admin who made it so."""
    if "department" in user.roles and not user.departments:
        raise ValidationFailed("The department role needs at least one department.",
                               errors={"departments": ["at least one, for the department role"]})


def create_user(session: Session, *, username: str, password: str, display_name: str, roles: list[str],
                phone: str | None = None, departments: list[str] | None = None, password_hash: str | None = None) -> User:
    """``password_hash`` lets the seed reuse one slow hash for many demo accounts."""
    if find_user(session, username) is not None:
        raise Conflict(f"The username {username} is taken.", username=username)
    if password_hash is None:
        check_password_policy(username, password)
    user = User(username=username, display_name=display_name, phone=phone,
                password_hash=password_hash or hash_password(password))
    user.set_roles(roles)
    user.departments = _departments(session, departments or [])
    _check_member_of_a_department(user)
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, user_id: int, changes: dict[str, Any], *, check_policy: CheckPolicy,
                dispatch_policy: DispatchPolicy) -> User:
    """The policies serve an account that may no longer volunteer: ``check_policy`` closes its stint on duty,
    ``dispatch_policy`` sends its requests to others."""
    # Locked: two changes of one account at once (one admin disabling it, another enabling it) are made one
    # after the other, each from what the other left; read unlocked, the second undid nothing and skipped the
    # places and duty that go with it.
    user = get_user(session, user_id, for_update=True)
    could_volunteer = account_may_volunteer(user)
    if "password" in changes:
        check_password_policy(user.username, changes["password"])
    if ("admin" in user.roles and not user.disabled
            and ("admin" not in changes.get("roles", ["admin"]) or changes.get("disabled"))):
        _keep_an_admin(session, user_id)
    if "roles" in changes or "departments" in changes:
        # (only then: an account stored before the rule can still be disabled or renamed)
        if "roles" in changes:
            user.set_roles(changes.pop("roles"))
        if "departments" in changes:
            user.departments = _departments(session, changes.pop("departments"))
        _check_member_of_a_department(user)
    if "password" in changes:
        user.password_hash = hash_password(changes.pop("password"))
        user.token_version += 1  # a new password signs out every device
    if changes.get("disabled") and not user.disabled:
        user.token_version += 1
    for key, value in changes.items():
        setattr(user, key, value)
    session.flush()
    if could_volunteer and not account_may_volunteer(user):
        _stop_volunteering(session, user_id, check_policy, dispatch_policy)
    elif not could_volunteer and account_may_volunteer(user):
        _volunteer_again(session, user_id)
    return user


def _volunteer_again(session: Session, user_id: int) -> None:
    """An account that may volunteer again (enabled, or given the volunteer role back) takes the free places
    it waits for, passed over while it could not: each such shift's waitlist runs again, in order."""
    volunteer_id = session.scalar(select(Volunteer.id).where(Volunteer.user_id == user_id))
    if volunteer_id is not None:
        # (a withdrawal in flight that passed them over is seen: the waitlists are read under their lock)
        with_waitlists_run_again(session, volunteer_id, now=clock.now())


def _stop_volunteering(session: Session, user_id: int, check_policy: CheckPolicy,
                       dispatch_policy: DispatchPolicy) -> None:
    """An account that may no longer volunteer gives up its places in shifts not started
    (``shifts.release_places``: the waitlists move up at once), goes off duty now if it was on duty (the stint's
    hours end here, flagged ``may_not_volunteer`` for the liaison: ``checks.end_duty``), and hands back the
    requests it held (``requests.give_back_tasks``)."""
    volunteer_id = session.scalar(select(Volunteer.id).where(Volunteer.user_id == user_id))
    if volunteer_id is not None:
        now = clock.now()
        release_places(session, volunteer_id, now=now)
        end_duty(session, volunteer_id, now=now, policy=check_policy, reason="may_not_volunteer")
        give_back_tasks(session, volunteer_id, now=now, policy=dispatch_policy,
                        note="the volunteer may no longer volunteer (account disabled or role removed)")


def new_api_key(session: Session, user_id: int, label: str) -> str:
    """Make an Open311 api_key for an account; only its hash is kept."""
    key = secrets.token_urlsafe(32)
    session.add(ApiKey(user_id=user_id, label=label, key_hash=_api_key_hash(key)))
    session.flush()
    return key


def account_of_api_key(session: Session, key: str) -> int | None:
    """The id of the enabled account whose api_key this is, unless the key was revoked."""
    row = session.execute(select(ApiKey.revoked, User.disabled, User.id).join(User, User.id == ApiKey.user_id)
                          .where(ApiKey.key_hash == _api_key_hash(key))).first()
    return None if row is None or row.revoked or row.disabled else row.id


def _api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def revoke_api_keys(session: Session, user_id: int, *, label: str | None = None) -> int:
    """Revoke the account's api_keys not yet revoked (only those labelled ``label``, when given); how many."""
    query = update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked.is_(False))
    if label is not None:
        query = query.where(ApiKey.label == label)
    return session.execute(query.values(revoked=True)).rowcount


def _keep_an_admin(session: Session, user_id: int) -> None:
    """Refuse (409) to demote or disable the last enabled admin: nobody could manage accounts through the
    API any more (only ``gridsvc user add --role admin`` on the server would bring one back)."""
    # two admins demoting each other at once must not both see the other one left
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('last-admin'))"))
    others = session.scalar(select(func.count()).select_from(User).where(
        User.id != user_id, User.disabled.is_(False), User.role_rows.any(role="admin")))
    if not others:
        raise Conflict("This is the last enabled admin account: make another account admin first.",
                       reason="last_admin")


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
