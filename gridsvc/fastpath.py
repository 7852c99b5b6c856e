"""Check-in and check-out answered in front of Flask, in the common case.

Why: check-in is the mobile app's hottest write (a shift's volunteers all
arrive within minutes, on phones that retry). Its work is one database
statement (``gridsvc_check``, about 0.5 ms); around it, Flask's request
machinery (routing, request context, webargs and the marshmallow schema, the
session, the response wrappers) spent about 1 ms of CPU more per check-in
than per trivial request (``bench checkin``).

This WSGI layer answers a check-in with the view's own parts, and nothing
else:

- the token: ``auth.token_claims`` under the view's rule, whose account the
  statement checks (``auth.statement_account``);
- the body: the plain form of the ``CheckEventIn`` body (numbers in the
  schema's own ranges, a crs it knows), converted to WGS-84 as the schema
  does (``geopoint``); any other form is the schema's to load;
- the statement and the answer: ``checks.check_alone`` (the view's
  ``checks.check`` without a Session), ``check_request`` and
  ``check_answer`` of ``resources/shifts.py``.

Any request it cannot answer exactly as the view would goes to Flask as it
came: no token or a bad one, a body the schema would refuse or that has
more than the plain fields, an unusual Idempotency-Key or Content-Type, a
Content-Encoding or Transfer-Encoding, a query string, and
every event the database did not record (a refusal such as "not signed up",
the account's own refusal, the database unreachable). Those recorded
nothing of the event (the statement is its own transaction, and a refusal
returns before the event is written; only an overdue check-in closed on the
way stays closed, as the view would close it too), so the view runs them
again from the start and gives the answer the API documents. Events the database did record, accepted or
refused (422 with the distance), are answered here.
"""
from __future__ import annotations

import io
import re
from typing import Any, Callable, Iterable

from flask import Flask
from marshmallow import validate
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.http import HTTP_STATUS_CODES

from geo.crs import SUPPORTED_CRS
from gridsvc import auth, clock
from gridsvc.api import is_coded, is_json_number, strict_json_loads
from gridsvc.errors import GridsvcError
from gridsvc.resources.shifts import CHECKING_VOLUNTEER, check_answer, check_request, valid_key
from gridsvc.schemas.common import geopoint
from gridsvc.schemas.shifts import CheckEventIn
from gridsvc.services.checks import AccountCheck, CheckOutcome, CheckPolicy, check_alone

# the view's routes (shift ids as Flask's int converter takes them)
_ROUTE = re.compile(r"/api/v1/shifts/([1-9][0-9]{0,8})/check-(in|out)")
# A check-in body is about 100 bytes; a larger one is left to Flask's limits.
_MAX_BODY = 4096

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

# The fields of a plain check-in body (a client_time is rare online: the
# schema loads it).
_PLAIN_FIELDS = frozenset({"lon", "lat", "crs", "accuracy_m"})


class CheckInFastPath:
    """WSGI middleware: check-in and check-out, else Flask (see the module docstring)."""

    def __init__(self, app: Flask, flask_wsgi_app: WSGIApp) -> None:
        self.app = app
        self.flask_wsgi_app = flask_wsgi_app
        fields = CheckEventIn().fields
        self.crs_default = fields["crs"].load_default
        self.lon_range, self.lat_range, self.accuracy_range = (
            _inclusive_range(fields[name]) for name in ("lon", "lat", "accuracy_m"))

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        # A query string goes to Flask: the view takes none, but the app's
        # checks read it (a NUL in it is a 422).
        route = (_ROUTE.fullmatch(environ.get("PATH_INFO", ""))
                 if environ.get("REQUEST_METHOD") == "POST" and not environ.get("QUERY_STRING") else None)
        length = environ.get("CONTENT_LENGTH") if route else None
        # a body past MAX_CONTENT_LENGTH too (read per request, as Flask reads it) goes to Flask, which answers 413
        limit = min(_MAX_BODY, self.app.config.get("MAX_CONTENT_LENGTH") or _MAX_BODY)
        if (not length or not (length.isascii() and length.isdigit()) or int(length) > limit
                or "HTTP_TRANSFER_ENCODING" in environ
                or is_coded(environ.get("HTTP_CONTENT_ENCODING", ""))):
            return self.flask_wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        outcome = self._record(environ, int(route[1]), "check_" + route[2], body)
        if outcome is None:
            # Flask reads the body again (CONTENT_LENGTH as sent: a short body still looks short)
            environ["wsgi.input"] = io.BytesIO(body)
            return self.flask_wsgi_app(environ, start_response)
        status, headers, answer = check_answer(outcome)
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", headers)  # as Werkzeug writes it
        return [answer]

    def _record(self, environ: dict, shift_id: int, kind: str, body: bytes) -> CheckOutcome | None:
        """The recorded event, or None to leave the request to the view."""
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if not valid_key(key) or mimetype != "application/json":
            return None
        try:
            claims = auth.token_claims(environ.get("HTTP_AUTHORIZATION", ""), CHECKING_VOLUNTEER, self.app.config)
            data = self.load(strict_json_loads(body))
        except (GridsvcError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return None
        if data is None:
            return None
        user_id, token_version, role = auth.statement_account(claims, CHECKING_VOLUNTEER)
        try:
            with self.app.extensions["gridsvc.db"].autocommit_connection() as connection:
                return check_alone(connection, user_id, check_request(shift_id, kind, data, key), now=clock.now(),
                                   policy=CheckPolicy.of_app(self.app),
                                   account=AccountCheck(role=role, token_version=token_version), actor_id=user_id)
        except (GridsvcError, SQLAlchemyError):  # nothing was recorded
            return None

    def load(self, data: Any) -> dict[str, Any] | None:
        """``CheckEventIn().load(data)`` for a plain body, or None to leave the body
        to the schema (in Flask, which then also words any error).

        A strict subset of what the schema accepts, loaded to the same
        values: ``lon`` and ``lat`` as JSON numbers in the schema's ranges, a
        ``crs`` it knows (or none: WGS-84), ``accuracy_m`` a number in range,
        null or absent, and no other field. A number sent as a string, a
        ``client_time``, anything out of range goes to the schema. Why: the
        schema's fields cost a check-in about 40 µs, a tenth of its CPU.
        """
        if type(data) is not dict or not data.keys() <= _PLAIN_FIELDS:
            return None
        lon, lat, crs = data.get("lon"), data.get("lat"), data.get("crs", self.crs_default)
        accuracy = data.get("accuracy_m")
        if not (_number_within(lon, self.lon_range) and _number_within(lat, self.lat_range) and crs in SUPPORTED_CRS
                and (accuracy is None or _number_within(accuracy, self.accuracy_range))):
            return None
        loaded: dict[str, Any] = {"point": geopoint(float(lon), float(lat), crs)}
        if "accuracy_m" in data:
            loaded["accuracy_m"] = None if accuracy is None else float(accuracy)
        return loaded


def _inclusive_range(field: Any) -> tuple[float, float]:
    """The bounds of a field's one Range validator (both ends included)."""
    [rule] = [v for v in field.validators if isinstance(v, validate.Range)]
    assert rule.min_inclusive and rule.max_inclusive, "the fast path's bounds are inclusive, as the schema's"
    return rule.min, rule.max


def _number_within(value: Any, bounds: tuple[float, float]) -> bool:
    return is_json_number(value) and bounds[0] <= value <= bounds[1]
