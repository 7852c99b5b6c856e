"""Idempotency-Key on every signed-in write: a retry gets the first answer.

The mobile app works on flaky networks, where an answer is often lost after
the server acted: the retry of a sign-up came back 409 "already
confirmed", of a withdrawal 404, of a comment as a second comment. A write
(POST, PUT, PATCH, DELETE) sent by a signed-in caller with an
``Idempotency-Key`` header (1 to 100 characters, a UUID say) is answered
once; its successful answer (2xx) is stored, and a retry with the same key
gets it again with ``Idempotent-Replayed: true``, doing nothing. As in the
IETF draft "The Idempotency-Key HTTP Header Field":

- the same key with another method, path or body is a 422 (a client bug:
  one key per intended operation);
- the same key while the first request is still being answered is a 409
  with ``Retry-After`` (the retry comes back once the first is done);
- a request that failed (4xx: it changed nothing, or 5xx) is not stored:
  sending it again runs it again;
- keys belong to the account (two accounts may use the same key) and are
  kept GRIDSVC_IDEMPOTENCY_HOURS (24) hours; then ``gridsvc purge`` deletes
  them, and the key is free again.

The key is claimed in a transaction of its own before the view runs, so two
copies sent at once cannot both run; the answer is stored after the view
committed. While it runs, the request holds the key's advisory lock (a
session lock on the connection that claimed it, which PostgreSQL releases
when that connection ends). A worker dying in between leaves the claim
unanswered and its lock free: after ``ABANDONED_AFTER`` a retry takes it
over and runs the write again, whose own rules then apply (a second sign-up
is refused as before). A request still running, however long it waits (on a
lock, under a gthread worker that no timeout ends), holds the lock: its
copies are told to wait, and it is never run twice.

Check-in and check-out keep their keys with the check event itself (one
statement: ``gridsvc_check``); sign-in and token refresh are never stored
(their answers are tokens).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta
from typing import Any, Callable

from flask import Response, current_app, make_response, request
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError

from gridsvc import clock
from gridsvc.config import numeric_setting
from gridsvc.db import close_session, execute_prepared, get_database
from gridsvc.errors import RequestInProgress, ValidationFailed
from gridsvc.models import IdempotentRequest

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY = 100
KEYED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A first request unanswered this long, whose lock no one holds, is taken as
# lost (its worker died). Why wait at all once the lock is free: the lock also
# goes when only the claiming connection is lost (a database restart) while
# the view goes on and commits on its own; a minute lets it store its answer.
ABANDONED_AFTER = timedelta(seconds=60)
# The advisory-lock space of Idempotency-Keys (two-int form; the second int
# hashes the account and the key: two keys in flight that hash alike only make
# the second wait, 409 with Retry-After).
KEY_LOCKS = 0x494B  # "IK"
# Written afresh for every answer (by Werkzeug, gunicorn or the app's hooks).
_NOT_STORED = frozenset({"content-length", "date", "server", "set-cookie"})

_CLAIM = """
INSERT INTO idempotent_request AS r (user_id, key, fingerprint, method, path, created_at)
VALUES (%(user_id)s, %(key)s, %(fingerprint)s, %(method)s, %(path)s, %(now)s)
ON CONFLICT (user_id, key) DO UPDATE
    SET fingerprint = excluded.fingerprint, method = excluded.method, path = excluded.path,
        status_code = NULL, headers = NULL, body = NULL, created_at = excluded.created_at
    WHERE r.created_at < %(expired_before)s
       OR (r.status_code IS NULL AND r.created_at < %(abandoned_before)s AND r.fingerprint = excluded.fingerprint)
RETURNING r.created_at"""

_HOLD = "SELECT pg_try_advisory_lock(%(lock_space)s, %(lock)s)"

_LET_GO = "SELECT pg_advisory_unlock(%(lock_space)s, %(lock)s)"

_FIRST = """
SELECT fingerprint, method, path, status_code, headers, body FROM idempotent_request
WHERE user_id = %(user_id)s AND key = %(key)s"""

_STORE = """
UPDATE idempotent_request SET status_code = %(status)s, headers = %(headers)s::jsonb, body = %(body)s
WHERE user_id = %(user_id)s AND key = %(key)s AND created_at = %(claimed_at)s AND status_code IS NULL
RETURNING 1"""

_RELEASE = """
DELETE FROM idempotent_request
WHERE user_id = %(user_id)s AND key = %(key)s AND created_at = %(claimed_at)s AND status_code IS NULL
RETURNING 1"""


def applies(user_id: int | None) -> bool:
    """Whether this request to a keyed view is answered once: sent with the header, by a signed-in caller."""
    return user_id is not None and HEADER in request.headers


def valid_key(key: str) -> bool:
    # NUL: PostgreSQL text cannot hold it (a server that passes it through would make it a 500)
    return 1 <= len(key) <= MAX_KEY and "\x00" not in key


def refuse_invalid_key(key: str) -> None:
    """A 422 naming the header for a key no write takes (check-in's and check-out's included)."""
    if not valid_key(key):
        raise ValidationFailed(f"{HEADER} must be 1 to {MAX_KEY} characters, without NUL.",
                               errors={HEADER: [f"1 to {MAX_KEY} characters, without NUL"]})


def answer_once(user_id: int, view: Callable[[], Any]) -> Response:
    """``view()``'s answer, or the stored first answer to this key (see the module docstring)."""
    key = request.headers[HEADER]
    refuse_invalid_key(key)
    path = request.path + ("?" + request.query_string.decode("latin-1") if request.query_string else "")
    body = request.get_data(cache=True)  # cached: the view reads it again
    # keyed with the app's secret: a body may hold a password, and a bare hash of it could be guessed offline
    fingerprint = hmac.new(current_app.config["JWT_SECRET_KEY"].encode(), b"\n".join(
        [request.method.encode(), path.encode("utf-8", "surrogateescape"), body]), hashlib.sha256)
    params = {"user_id": user_id, "key": key, "fingerprint": fingerprint.hexdigest(), "method": request.method,
              "path": path, "now": clock.now()}
    params["expired_before"] = params["now"] - timedelta(hours=kept_hours(current_app.config))
    params["abandoned_before"] = params["now"] - ABANDONED_AFTER
    params["lock_space"], params["lock"] = KEY_LOCKS, _lock_of(user_id, key)
    if not _run(_HOLD, params)[0]:  # a request with this key is being answered right now
        return _first_answer(params)
    try:
        return _answer_holding_the_lock(params, view)
    finally:
        _settle(_LET_GO, params)


def _answer_holding_the_lock(params: dict[str, Any], view: Callable[[], Any]) -> Response:
    claimed = _run(_CLAIM, params)
    if claimed is None:
        return _first_answer(params)
    params["claimed_at"] = claimed[0]
    # The view's session is closed before the answer is stored or the claim released: the store must not
    # sit inside a transaction the view left open (a read after its commit), which its end would undo.
    try:
        response = make_response(view())
    except BaseException:
        close_session()
        _settle(_RELEASE, params)
        raise
    close_session()
    if 200 <= response.status_code < 300 and not response.is_streamed:
        headers = [[name, value] for name, value in response.headers if name.lower() not in _NOT_STORED]
        _settle(_STORE, {**params, "status": response.status_code, "headers": json.dumps(headers),
                         "body": response.get_data()})
    else:
        _settle(_RELEASE, params)  # nothing was done: a retry runs again
    return response


def _lock_of(user_id: int, key: str) -> int:
    """The key's lock in KEY_LOCKS: a signed 32-bit hash of the account and the key."""
    digest = hashlib.blake2b(f"{user_id}\n{key}".encode("utf-8", "surrogateescape"), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _settle(sql: str, params: dict[str, Any]) -> None:
    """Store the answer, release the claim or let go of its lock; the view's own answer stands if the database is
    lost meanwhile (and with the connection, its lock).

    Why: the view has committed (or failed) already. A 503 instead of its 201 would tell the client that
    nothing was done, and the retry it then sends, once the claim counts as abandoned, would do it again.
    The claim stays unanswered: a copy is told to wait (409) until ABANDONED_AFTER."""
    try:
        _run(sql, params)
    except OperationalError as exc:
        log.warning("could not store the answer to %s %s (%s): %s", params["method"], params["path"], HEADER, exc.orig)


def _first_answer(params: dict[str, Any]) -> Response:
    first = _run(_FIRST, params)
    if first is None:  # not claimed yet (a copy sent at once), or released a moment ago (the first failed)
        raise RequestInProgress(f"A request with this {HEADER} is being answered; send it again in a moment.")
    fingerprint, method, path, status, headers, body = first
    if fingerprint != params["fingerprint"]:
        raise ValidationFailed(f"This {HEADER} was already used for a different request ({method} {path}); "
                               "use a new key for each operation.", errors={HEADER: ["already used for another request"]})
    if status is None:
        raise RequestInProgress(f"A request with this {HEADER} is still being answered; send it again in a moment.")
    response = Response(bytes(body), status=status, headers=[tuple(header) for header in headers])
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _run(sql: str, params: dict[str, Any]) -> tuple | None:
    """One statement in a transaction of its own (the claim must be seen by a copy sent at once)."""
    with get_database().autocommit_connection() as connection:
        return execute_prepared(connection, sql, params)


def kept_hours(config: Any) -> float:
    """GRIDSVC_IDEMPOTENCY_HOURS as a number of hours within its bounds (checked when the app starts)."""
    return numeric_setting(config, "GRIDSVC_IDEMPOTENCY_HOURS")


def openapi_parameter() -> dict[str, Any]:
    return {"name": HEADER, "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
            "description": "One key per operation (a UUID, say): a retry with the same key, method, path and body gets "
                           "the first successful answer again, with the response header Idempotent-Replayed: true, "
                           "and does nothing. The same key for another request is a 422; a retry while the first is "
                           "still being answered is a 409 (/problems/request-in-progress) with a Retry-After header "
                           "(seconds). Only a success (2xx) is kept: a request that failed runs again when sent again. "
                           "Keys and answers are kept GRIDSVC_IDEMPOTENCY_HOURS (default 24) hours, then "
                           "`gridsvc purge` deletes them and the key is free again."}


def purge(session: Any, *, now: Any, hours: float) -> int:
    """Delete the stored answers older than ``hours`` (they may hold personal data)."""
    result = session.execute(delete(IdempotentRequest).where(IdempotentRequest.created_at < now - timedelta(hours=hours)))
    return result.rowcount
