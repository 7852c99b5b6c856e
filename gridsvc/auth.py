"""Tokens, roles and zone scope: who may do what, enforced in one place.

Every API view declares its rule with ``@access(RULE)`` (the outermost
decorator, so the check runs before the body is even parsed). The app refuses
to start if a view under /api/ declares none, and a matrix test walks the
OpenAPI document to check each route against several callers.

Tokens are JWTs (flask-jwt-extended). Authorisation never trusts the roles
written into a token: each request checks the account as stored, so
disabling it, changing its roles or signing out (which bumps
``token_version``) takes effect at once. Usually the account is loaded here;
a view whose rule has ``account_in_statement`` (check-in, the hottest write)
checks it inside its own single statement instead, and any problem the view
raises is preceded by the account's own refusal, if there is one.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping

import jwt
from flask import Flask, current_app, g, request
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token
from flask_smorest.utils import load_info_from_docstring
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from gridsvc import idempotency
from gridsvc.api import BODY_METHODS, is_json_number, request_has_body, strict_json_loads
from gridsvc.db import current_session, fetch_prepared
from gridsvc.errors import Forbidden, GridsvcError, MalformedJson, TokenMissing, TokenRefused, ValidationFailed
from gridsvc.models import User

def mask_phone(phone: str | None) -> str | None:
    """``13812341234`` -> ``138****1234``: enough to recognise, not to call."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


# ---------------------------------------------------------------- principal


@dataclass(frozen=True)
class Principal:
    """The caller of this request; anonymous has no user id and no roles."""

    user_id: int | None = None
    username: str | None = None
    roles: frozenset[str] = frozenset()
    liaison_zone_ids: frozenset[int] = frozenset()
    department_ids: frozenset[int] = field(default_factory=frozenset)

    def has_any(self, roles: Iterable[str]) -> bool:
        return bool(self.roles & set(roles))

    def is_liaison_of(self, zone_id: int) -> bool:
        return "liaison" in self.roles and zone_id in self.liaison_zone_ids


ANONYMOUS = Principal()


def current_principal() -> Principal:
    return g.get("principal", ANONYMOUS)


# Every authenticated request reads its account afresh (see the module
# docstring), so this is one prepared statement: the account, its roles, and
# the zones and departments only for the roles that have them.
_ACCOUNT = """
SELECT u.username, u.disabled, u.token_version, r.roles,
       CASE WHEN 'liaison' = ANY (r.roles)
            THEN ARRAY(SELECT z.id FROM zone z WHERE z.liaison_id = u.id ORDER BY z.id) END,
       CASE WHEN 'department' = ANY (r.roles)
            THEN ARRAY(SELECT d.department_id FROM department_member d WHERE d.user_id = u.id
                       ORDER BY d.department_id) END
FROM app_user u,
     LATERAL (SELECT ARRAY(SELECT ur.role::text FROM user_role ur WHERE ur.user_id = u.id ORDER BY ur.role) AS roles) r
WHERE u.id = %(id)s"""


@dataclass(frozen=True)
class Account:
    """What authorisation needs of an account, as stored right now."""

    principal: Principal
    disabled: bool
    token_version: int


def load_account(session: Session, user_id: int) -> Account | None:
    row = fetch_prepared(session, _ACCOUNT, {"id": user_id})
    if row is None:
        return None
    username, disabled, token_version, role_names, zone_ids, department_ids = row
    principal = Principal(user_id=user_id, username=username, roles=frozenset(role_names),
                          liaison_zone_ids=frozenset(zone_ids or ()), department_ids=frozenset(department_ids or ()))
    return Account(principal=principal, disabled=disabled, token_version=token_version)


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """Who may call a view. ``roles=None`` means any signed-in account."""

    name: str
    public: bool = False
    roles: frozenset[str] | None = None
    refresh: bool = False  # needs a refresh token instead of an access token
    note: str | None = None  # overrides the generated description
    # The view's own statement checks the account (see account_claims), so
    # the request spends no round trip on it. Only for roles rules.
    account_in_statement: bool = False

    def describe(self) -> str:
        if self.note:
            return self.note
        if self.public:
            return "Anyone, no token needed."
        if self.refresh:
            return "A refresh token."
        if self.roles is None:
            return "Any signed-in account."
        return "Roles: " + ", ".join(sorted(self.roles)) + "."


def roles(*names: str, name: str | None = None, account_in_statement: bool = False) -> Rule:
    if account_in_statement and len(names) != 1:  # the statement checks one role (account_claims)
        raise ValueError("a rule whose statement checks the account names exactly one role")
    return Rule(name=name or "+".join(names), roles=frozenset(names), account_in_statement=account_in_statement)


PUBLIC = Rule("public", public=True)
SIGNED_IN = Rule("signed-in")
REFRESH = Rule("refresh", refresh=True)
ADMIN = roles("admin")
ADMIN_OR_PLANNER = roles("admin", "planner")
# A calendar feed: a bearer token, or the feed's own key (checked by the view).
CALENDAR = Rule("calendar", public=True,
                note="A bearer token of the volunteer, their home zone's liaison (another zone's liaison: its shifts) "
                     "or an admin; or the feed's ?key=.")
# Anyone; a token adds what its holder may see (the zone map's volunteer positions and open requests). Its note gives the operation a security of "bearer, or none", so an SDK sends the
# token it has.
PUBLIC_MORE_WITH_TOKEN = Rule("public-more-with-token", public=True,
                              note="Anyone; a token adds what its holder may see (volunteers' positions for the "
                                   "zone's liaison and admins, the open requests they may see).")
# Zone liaisons pass this gate; the view then narrows them to their own zones.
ZONE_EDITORS = roles("admin", "planner", "liaison", name="zone-editors")
# who may raise a service request, in the API and through Open311
FILERS = roles("worker", "liaison", "admin", name="filers")


def _takes_no_query(view: Callable) -> bool:
    """Whether the view is an operation of the API's document (flask-smorest's) that declares no query parameter
    (one that declares some refuses any other through its schema; the OGC API, the tiles and Open311 read their
    own, by their own rules)."""
    apidoc = getattr(view, "_apidoc", None)
    if apidoc is None:
        return False
    return not any(parameter.get("in") == "query" for parameter in apidoc.get("arguments", {}).get("parameters", []))


def _takes_no_body(view: Callable) -> bool:
    """Whether the view is a POST, PUT or PATCH of the API's document that declares no request body (neither
    arguments from the body nor a body it reads by hand, as the parking import does)."""
    apidoc = getattr(view, "_apidoc", None)
    if apidoc is None or view.__name__.upper() not in BODY_METHODS:
        return False
    in_body = any(parameter.get("in") in ("json", "form", "files")
                  for parameter in apidoc.get("arguments", {}).get("parameters", []))
    return not in_body and "requestBody" not in apidoc.get("manual_doc", {})


def _refuse_body() -> None:
    """A body sent to an operation that takes none: malformed JSON is a 400, and fields a 422 naming them, as
    for every operation that takes a body; an empty object (or null) is no arguments. Why: ``POST /dispatch/batch`` ran
    its batch with ``{"zone_id": 3}`` or a half-written body, as if nothing had been sent."""
    try:
        data = strict_json_loads(request.get_data(cache=True))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedJson(f"Malformed JSON: {exc}") from exc
    if data == {} or data is None:  # (null: what some clients send for "nothing")
        return
    if type(data) is dict:
        names = sorted(data)
        raise ValidationFailed(f"This operation takes no request body: {', '.join(names)}.",
                               errors={name: ["Unknown field."] for name in names})
    raise ValidationFailed("This operation takes no request body: send none, or {}.")


def ignores_query(view: Callable) -> Callable:
    """Mark a probe that answers whatever its query string says. Why: monitoring adds cache-busters
    (``/health/live?_=1700000000``), and a probe answered 422 read as the service being down."""
    view.ignores_query = True  # type: ignore[attr-defined]
    return view


def _refuse_query(args: Any) -> None:
    """A 422 naming the query parameters of an operation that takes none. Why: ``/zones/1/map?foo=1`` and
    ``DELETE /zones/1?cascade=true`` were answered as if the parameter were not there, where an operation with
    parameters refuses one it does not take."""
    names = sorted(set(args))
    raise ValidationFailed(f"This operation takes no query parameters: {', '.join(names)}.",
                           errors={name: ["Unknown field."] for name in names})


def access(rule: Rule) -> Callable:
    """Declare and enforce a view's rule; put it above the other decorators."""

    def decorate(view: Callable) -> Callable:
        # Writes by signed-in callers answer a retried Idempotency-Key once (gridsvc/idempotency.py);
        # not sign-in or refresh (their answers are tokens) nor check-in (its key is kept with the event).
        keyed = (view.__name__.upper() in idempotency.KEYED_METHODS
                 and not (rule.public or rule.refresh or rule.account_in_statement))
        takes_no_query = _takes_no_query(view) and not getattr(view, "ignores_query", False)
        takes_no_body = _takes_no_body(view)

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate(rule)
            if takes_no_query and request.args:
                _refuse_query(request.args)
            if takes_no_body and request_has_body():
                _refuse_body()
            if keyed and idempotency.applies(principal.user_id):
                return idempotency.answer_once(principal.user_id, lambda: view(*args, **kwargs))
            if not rule.account_in_statement:
                return view(*args, **kwargs)
            try:
                return view(*args, **kwargs)
            except (GridsvcError, HTTPException):
                # The account was not checked yet, or its check failed: a
                # caller who may not call this view learns that, and nothing
                # else (not even what was wrong with the body).
                _admit(rule, g.account_claims)
                raise

        guarded.access_rule = rule  # type: ignore[attr-defined]
        apidoc = getattr(guarded, "_apidoc", {})
        manual = apidoc.setdefault("manual_doc", {})
        if keyed:
            # Among the view's own parameters: a "parameters" list in manual_doc would replace them (flask-smorest
            # merges lists by replacing), and the document would lose the view's query parameters (?dry_run=).
            arguments = apidoc.setdefault("arguments", {})
            arguments.setdefault("parameters", []).append(idempotency.openapi_parameter())
            arguments.setdefault("responses", {})[422] = "UNPROCESSABLE_ENTITY"  # a bad key, or one used for another request
        if not rule.public:
            manual["security"] = [{"bearerAuth": []}]
        elif rule.note:  # a token is one of the ways in
            manual["security"] = [{"bearerAuth": []}, {}]
        # (this manual description replaces the docstring's own, so it starts with it)
        written = manual.get("description") or load_info_from_docstring(view.__doc__ or "").get("description") or ""
        manual["description"] = (written + "\n\nAccess: " + rule.describe()).strip()
        guarded._apidoc = apidoc  # type: ignore[attr-defined]
        return guarded

    return decorate


def authenticate(rule: Rule) -> Principal:
    """Check the request's token against ``rule``; remember the principal."""
    # A public view still reads a token when one is sent (answers can
    # depend on who asks), and refuses a bad one rather than ignoring it.
    claims = _bearer_claims(rule)
    g.token_claims = claims  # the refresh exchange reads its token's id and expiry
    if rule.account_in_statement:
        # Only the token is checked here; the view's statement checks the
        # account with account_claims(), and access() falls back to _admit.
        g.account_claims, g.account_rule = claims, rule
        # the session, opened by the view, takes the actor from this principal
        g.principal = Principal(user_id=claims["sub"], username=claims.get("username"))
        return g.principal
    return _admit(rule, claims)


def _admit(rule: Rule, claims: dict[str, Any] | None) -> Principal:
    """Load the token's account and check it against ``rule``."""
    principal = ANONYMOUS
    if claims is not None:
        account = load_account(current_session(), claims["sub"])
        if account is None:
            raise TokenRefused("The token's account no longer exists.")
        if account.disabled:
            raise TokenRefused("The token was revoked: the account is disabled.")
        if claims.get("tv") != account.token_version:
            raise TokenRefused("The token was revoked (signed out, or the password changed); sign in again.")
        principal = account.principal
        current_session().info["actor_id"] = principal.user_id
    g.principal = principal
    if rule.roles is not None and not rule.public and not principal.has_any(rule.roles):
        raise Forbidden(f"This action needs one of the roles {', '.join(sorted(rule.roles))}; "
                        f"you have {', '.join(sorted(principal.roles)) or 'none'}.",
                        required_roles=sorted(rule.roles))
    return principal


def account_claims() -> tuple[int, int, str]:
    """For a view whose rule has ``account_in_statement``: the token's user
    id and token version, and the rule's role, for its statement to check
    the account with (it must refuse a missing or disabled account, another
    token version, and an account without the role)."""
    return statement_account(g.account_claims, g.account_rule)


def statement_account(claims: dict[str, Any], rule: Rule) -> tuple[int, int, str]:
    """``account_claims`` of verified claims under ``rule`` (see ``token_claims``)."""
    version = claims.get("tv")
    [role] = rule.roles
    return claims["sub"], version if isinstance(version, int) else -1, role


def _bearer_claims(rule: Rule) -> dict[str, Any] | None:
    return token_claims(request.headers.get("Authorization", ""), rule, current_app.config)


def token_claims(header: str, rule: Rule, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The verified claims of an Authorization header's bearer token (``sub``
    as an int); None when a public view gets no token.

    Our own tokens, valid now, are checked by ``_plain_hs256_claims``;
    anything else gets one PyJWT decode, which refuses it with its reason
    (flask-jwt-extended's own check decodes every token three times, a
    fifth of a check-in's time). Tokens are still made by
    flask-jwt-extended (``issue_tokens``), with its settings.
    """
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:  # the scheme is case-insensitive (RFC 9110 11.1)
        if rule.public:
            return None
        reason = "no Authorization header" if not header else "the header is not 'Bearer <token>'"
        missing = TokenMissing(f"This action needs a token: send 'Authorization: Bearer <token>' ({reason}).")
        if not header:  # a request that sent no credentials gets a challenge without an error code (RFC 6750 3.1)
            missing.bearer_error = None
        raise missing
    try:
        claims = _plain_hs256_claims(token, config["JWT_SECRET_KEY"]) if config["JWT_ALGORITHM"] == "HS256" else None
        if claims is None:
            claims = jwt.decode(token, config["JWT_SECRET_KEY"], algorithms=[config["JWT_ALGORITHM"]],
                                options={"require": ["exp", "sub"]})
        claims["sub"] = int(claims["sub"])
    except jwt.ExpiredSignatureError:
        # the signature was good: the claims are ours, only too old
        kind = jwt.decode(token, options={"verify_signature": False}).get("type", "access")
        hint = "sign in again" if kind == "refresh" else "renew it at /api/v1/auth/refresh"
        raise TokenRefused(f"The {kind} token has expired; {hint}.") from None
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise TokenRefused(f"The token is malformed or invalid: {exc}.") from None
    wanted = "refresh" if rule.refresh else "access"
    if claims.get("type", "access") != wanted:
        raise TokenRefused(f"The token is malformed or invalid: only {wanted} tokens are accepted here.")
    return claims


# The first segment of every token we issue: PyJWT writes this header for HS256.
_OUR_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


def _plain_hs256_claims(token: str, key: str) -> dict[str, Any] | None:
    """The claims of a token exactly as we issue them, valid now; None for
    any other token, which PyJWT then judges (and explains).

    Why: PyJWT's decode costs about 60 µs of Python per request (a sixth of
    a check-in's CPU), most of it checking forms our own tokens never take.
    This accepts a strict subset of what PyJWT accepts: our header segment
    as written, the signature as HMAC-SHA256 over the first two segments in
    unpadded base64url (compared in constant time), a JSON object whose
    ``exp`` is in the future, whose ``nbf`` and ``iat`` (if any) are not,
    whose ``sub`` (and ``jti``) are strings, and no ``aud``.
    """
    header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    if header != _OUR_HEADER or not payload or "." in signature:
        return None
    mac = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.urlsafe_b64encode(mac).rstrip(b"="), signature.encode()):
        return None
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # signed by us: well formed
    now = time.time()
    if not (isinstance(claims, dict) and is_json_number(claims.get("exp")) and claims["exp"] > now
            and all(is_json_number(claims[name]) and claims[name] <= now for name in ("nbf", "iat") if name in claims)
            and isinstance(claims.get("sub"), str) and isinstance(claims.get("jti", ""), str)
            and "aud" not in claims):
        return None
    return claims


def require(allowed: bool, detail: str) -> None:
    """A data-dependent check after the role gate (zone scope, own record ...)."""
    if not allowed:
        raise Forbidden(detail)


def views_without_rules(app: Flask) -> list[str]:
    """API endpoints whose methods declare no access rule (should be none)."""
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            target = getattr(view_class, method.lower(), None) if view_class else view
            if target is None or not hasattr(target, "access_rule"):
                missing.append(f"{method} {rule.rule}")
    return missing


# ---------------------------------------------------------------- tokens


def request_token_claims() -> dict[str, Any] | None:
    """The verified claims of this request's token (None without one)."""
    return g.get("token_claims")


def issue_tokens(user: User) -> dict[str, Any]:
    claims = {"tv": user.token_version, "username": user.username, "roles": user.roles}
    access_token = create_access_token(identity=str(user.id), additional_claims=claims)
    refresh_token = create_refresh_token(identity=str(user.id), additional_claims={"tv": user.token_version})
    expires_in = int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
    return {"access_token": access_token, "refresh_token": refresh_token, "token_type": "Bearer", "expires_in": expires_in}


def init_auth(app: Flask) -> None:
    from gridsvc.config import secret_key

    app.config["JWT_SECRET_KEY"] = app.config.get("GRIDSVC_SECRET_KEY") or secret_key()
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=float(app.config["GRIDSVC_ACCESS_TOKEN_MINUTES"]))
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=float(app.config["GRIDSVC_REFRESH_TOKEN_DAYS"]))
    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    JWTManager(app)  # makes the tokens (issue_tokens); _bearer_claims checks them


# ---------------------------------------------------------------- policies


def may_see_volunteer(principal: Principal, volunteer_user_id: int, zones_worked: set[int]) -> bool:
    """A volunteer's personal data (phone, positions, duty): the volunteer, admins, and the liaison of a zone
    they work in now (``zones_worked``: services.volunteers.zones_worked_in, home zone, a place held in a shift
    not over, hours waiting for review there). Their record is ``volunteer_record_zones``'."""
    if principal.user_id is None:
        return False
    if principal.user_id == volunteer_user_id or "admin" in principal.roles:
        return True
    return "liaison" in principal.roles and bool(principal.liaison_zone_ids & zones_worked)


def volunteer_record_zones(principal: Principal, volunteer_user_id: int,
                           home_zone_id: int | None) -> frozenset[int] | None:
    """Whose entries of a volunteer's record (sign-ups, hours, calendar) the caller reads: None, all of them (the
    volunteer, admins, the liaison of their home zone); else those of shifts in the returned zones (another
    zone's liaison: their zones' shifts are theirs to keep a record of, another park's are not); empty: none."""
    if principal.user_id is None:
        return frozenset()
    if principal.user_id == volunteer_user_id or "admin" in principal.roles:
        return None
    if "liaison" not in principal.roles:
        return frozenset()
    if home_zone_id is not None and principal.is_liaison_of(home_zone_id):
        return None
    return principal.liaison_zone_ids


def may_manage_zone(principal: Principal, zone_id: int) -> bool:
    """Shifts of a zone (and their sign-ups and hours): admins and the zone's liaison."""
    return "admin" in principal.roles or principal.is_liaison_of(zone_id)


def calendar_key(volunteer_id: int, token_version: int) -> str:
    """A secret for a subscribable calendar URL (phones cannot send bearer tokens).

    Derived from the signing secret and the account's token version, so
    signing out everywhere also retires the old calendar URL.
    """
    secret = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.new(secret, f"calendar:{volunteer_id}:{token_version}".encode(), hashlib.sha256).hexdigest()[:32]
