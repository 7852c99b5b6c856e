"""Errors a client can act on, each an RFC 9457 problem type.

Every class carries its HTTP status, a stable ``type`` URI that clients
branch on, and a short ``title``; the instance carries the ``detail`` text
written for the user, and optional ``errors`` (field -> messages) and extra
members. Nothing here imports from the rest of the project.
"""
from __future__ import annotations

from typing import Any

PROBLEM_BASE = "/problems/"
RESERVED = frozenset({"type", "title", "status", "detail", "instance", "errors"})


class GridsvcError(Exception):
    """Base of every error the API answers with a problem document."""

    status: int = 500
    type: str = "about:blank"
    title: str = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, errors: Any = None, **extra: Any) -> None:
        clash = RESERVED & extra.keys()
        if clash:  # a programming error: extension members must not shadow the standard ones
            raise ValueError(f"problem extension members {sorted(clash)} shadow RFC 9457 members")
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def _problem(slug: str) -> str:
    return PROBLEM_BASE + slug


class BadRequest(GridsvcError):
    status, type, title = 400, _problem("bad-request"), "Bad Request"


class MalformedJson(BadRequest):
    type, title = _problem("malformed-json"), "Malformed JSON"


class NotFound(GridsvcError):
    status, type, title = 404, _problem("not-found"), "Not Found"


class Conflict(GridsvcError):
    status, type, title = 409, _problem("conflict"), "Conflict"


class RequestInProgress(Conflict):
    """The first request with this Idempotency-Key is still being answered (gridsvc/idempotency.py)."""

    type, title = _problem("request-in-progress"), "The same request is being answered"
    retry_after = 1


class ZoneOverlap(Conflict):
    type, title = _problem("zone-overlap"), "Zone overlaps another zone"


class ConcurrentUpdate(Conflict):
    """PostgreSQL chose this request as the one to undo (a deadlock or a
    serialisation failure): nothing was saved, and sending it again works."""

    type, title = _problem("concurrent-update"), "Another change got in the way"


class LockHeldElsewhere(ConcurrentUpdate):
    """Another request holds a lock this one tried for a while (``db.try_advisory_xact_lock``): nothing was saved,
    and sending it again works."""

    retry_after = 1


class HasDependents(Conflict):
    type, title = _problem("has-dependents"), "Resource still has dependents"


class DuplicateCode(Conflict):
    type, title = _problem("duplicate-code"), "Code already in use"


class UnsupportedMediaType(GridsvcError):
    status, type, title = 415, _problem("unsupported-media-type"), "Unsupported Media Type"


class CodedBody(UnsupportedMediaType):
    """A compressed request body, which nothing here decodes (RFC 9110 15.5.16: 415, naming the codings taken)."""

    accept_encoding = "identity"


class ValidationFailed(GridsvcError):
    status, type, title = 422, _problem("validation"), "Validation Failed"


class OutsideCommunity(ValidationFailed):
    type, title = _problem("outside-community"), "Outside the community"


# The services' own refusals (each a type of its own: RFC 9457 ties a title to its type)


class ShiftConflict(Conflict):
    type, title = _problem("shift-conflict"), "Sign-up refused"


class ShiftChangeRefused(ShiftConflict):
    """New times refused for a confirmed volunteer's sake (``reason``, ``clashes``). A type of its own: nobody
    signed up, so "Sign-up refused" told the liaison the wrong story."""

    type, title = _problem("shift-change-refused"), "Shift change refused"


class CheckRefused(ValidationFailed):
    type, title = _problem("check-refused"), "Check-in or check-out refused"


class CheckStateConflict(Conflict):
    type, title = _problem("check-state"), "Not possible in the current check-in state"


class StateConflict(Conflict):
    type, title = _problem("request-state"), "Not allowed in the request's current state"


class ImportFailed(ValidationFailed):
    type, title = _problem("import-failed"), "Import failed: nothing was imported"


class ServiceUnavailable(GridsvcError):
    status, type, title = 503, _problem("service-unavailable"), "Service Unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    type, title = _problem("database-unavailable"), "Database Unavailable"


class Unauthorized(GridsvcError):
    """No usable token: missing, malformed, expired or revoked (``detail`` says which)."""

    status, type, title = 401, _problem("unauthorized"), "Unauthorized"
    # RFC 6750's error code for the WWW-Authenticate challenge, if any
    bearer_error: str | None = None


class TokenRefused(Unauthorized):
    bearer_error = "invalid_token"


class TokenMissing(Unauthorized):
    bearer_error = "invalid_request"


class InvalidCredentials(Unauthorized):
    type, title = _problem("invalid-credentials"), "Invalid username or password"


class Forbidden(GridsvcError):
    """A valid token without the right for this action (``detail`` says which)."""

    status, type, title = 403, _problem("forbidden"), "Forbidden"


class AccountDisabled(Forbidden):
    type, title = _problem("account-disabled"), "Account disabled"


class TooManyAttempts(GridsvcError):
    status, type, title = 429, _problem("too-many-attempts"), "Too Many Attempts"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
