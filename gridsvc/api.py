"""flask-smorest wiring: every error path answers RFC 9457 problem+json.

Clients branch on ``type``; ``detail`` is written for people; ``errors``
holds the field messages of a validation failure. An unexpected exception
is logged with its traceback and answered with a bare 500 that says nothing
about the internals.
"""
from __future__ import annotations

import http
import json
import logging
import re
import sys
import urllib.parse
from typing import Any, Iterable

import flask_smorest
from apispec import BasePlugin
from flask import Flask, Response, request
from flask_smorest.utils import prepare_response
from marshmallow import RAISE, ValidationError
from psycopg2.errors import TransactionRollbackError
from sqlalchemy.exc import IntegrityError, OperationalError
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from gridsvc import errors
from gridsvc.fields import GeoJSONGeometry
from gridsvc.schemas.common import INT_MAX, LOADING_JSON_BODY, Problem

log = logging.getLogger(__name__)

# SQLSTATEs of constraints a race can break (unique, foreign key, exclusion):
# a conflict with another request, not a bug. A CHECK or NOT NULL violation
# means validation let bad input through, and stays a 500.
RACE_VIOLATIONS = frozenset({"23505", "23503", "23P01"})

PROBLEM_JSON = "application/problem+json"

# Problem types for the HTTP errors raised by Flask, Werkzeug and webargs.
HTTP_PROBLEM_TYPES = {
    400: errors.BadRequest.type,
    404: errors.NotFound.type,
    405: errors.PROBLEM_BASE + "method-not-allowed",
    409: errors.Conflict.type,
    413: errors.PROBLEM_BASE + "payload-too-large",
    415: errors.UnsupportedMediaType.type,
    422: errors.ValidationFailed.type,
}

BODY_METHODS = {"POST", "PUT", "PATCH"}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return json_response(json.dumps(body, ensure_ascii=False), body["status"], headers, mimetype=PROBLEM_JSON)


def json_response(text: str, status: int, headers: dict[str, str] | None = None, *,
                  mimetype: str = "application/json") -> Response:
    """A response from JSON already written (by the database, say)."""
    response = Response(text, status=status, mimetype=mimetype)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class _NotJsonConstant(ValueError):
    """NaN or Infinity met by the parser, which does not say where (see ``strict_json_loads``)."""


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not.
    raise _NotJsonConstant(name)


# a JSON string (skipped), or one of the constants Python's json reads
_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(NaN|-?Infinity)')


def _constant_position(text: str, name: str) -> int:
    """Where the first ``name`` outside a string is: the error then points at it, not at the start."""
    for match in _STRING_OR_CONSTANT.finditer(text):
        if match.group(1) is not None and match.group(1).lstrip("-") == name.lstrip("-"):
            return match.start(1)
    return 0


def strict_json_loads(data: bytes | str):
    """json.loads that refuses NaN and Infinity (not JSON, though Python
    accepts them), arrays or objects nested past Python's recursion limit and
    integers longer than Python converts (each a ``JSONDecodeError``, as any
    malformed JSON, not a ``RecursionError`` or a bare ``ValueError``, which
    reached the client as a 500)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise
    except _NotJsonConstant as exc:
        name = str(exc)
        raise json.JSONDecodeError(f"{name} is not valid JSON", data, _constant_position(data, name)) from None
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", data, 0) from None
    except ValueError:  # int("1" * 4301): Python's guard against quadratic conversions
        raise json.JSONDecodeError(f"a number of more than {sys.get_int_max_str_digits()} digits", data, 0) from None


NUL_MESSAGE = "Text may not contain the NUL character (U+0000)."
SURROGATE_MESSAGE = ("Text must be valid Unicode: an unpaired UTF-16 surrogate such as \\ud83d (half of an emoji, "
                     "say) cannot be stored.")


def refuse_unstorable_text(data: Any) -> None:
    """422 naming where a JSON document holds text PostgreSQL cannot store:
    a NUL character, or an unpaired UTF-16 surrogate.

    Why: JSON may carry either (``\\u0000``; ``\\ud83d`` without its pair,
    from a JavaScript string cut in the middle of an emoji), Python reads
    both into a str, and then the driver refuses the statement, or the
    answer naming the field cannot be encoded: a 500. Checked once, where
    bodies are read, rather than by every string field.
    """
    found: dict[str, str] = {}
    pending: list[tuple[Any, str]] = [(data, "")]  # a stack, not recursion: JSON may nest deeply
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            _judge_text(value, path or "(body)", found)
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                _judge_text(key, where, found)
                pending.append((item, where))
        elif isinstance(value, list):
            pending.extend((item, f"{path}.{index}" if path else str(index)) for index, item in enumerate(value))
    if found:
        places = sorted(found)
        messages = sorted(set(found.values()))
        raise errors.ValidationFailed(f"{' '.join(messages)} Found in: {', '.join(places[:5])}.",
                                      errors={where: [found[where]] for where in places[:20]})


def _judge_text(text: str, where: str, found: dict[str, str]) -> None:
    if "\x00" in text:
        found[_printable(where)] = NUL_MESSAGE
    elif not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            found[_printable(where)] = SURROGATE_MESSAGE


def _printable(where: str) -> str:
    """A place in the document as the answer can name it (a key may hold the surrogate itself)."""
    return where.encode("utf-8", "backslashreplace").decode("utf-8")


def parameters_with_nul(*sources: Any) -> list[str]:
    """The names of the parameters (of multidicts such as ``request.args``)
    whose name or value holds a NUL character, sorted."""
    return sorted({name for source in sources for name, value in source.items(multi=True)
                   if "\x00" in name or "\x00" in value})


def repeated_parameters(args: Any, multiple: Iterable[str] = ()) -> list[str]:
    """The names given more than once in a multidict such as ``request.args``
    (but those in ``multiple``, which take a list), sorted.

    Why: each reader takes the first value, so ``?zone_id=1&zone_id=2`` was
    answered for zone 1 alone, with nothing to say the second was dropped."""
    return sorted(name for name in args if name not in multiple and len(args.getlist(name)) > 1)


GIVEN_MORE_THAN_ONCE = "given more than once; give it once (a list is comma-separated where one is taken)"


def _nul_problem(problem: type[errors.GridsvcError], places: list[str]) -> errors.GridsvcError:
    return problem(f"{NUL_MESSAGE} Found in: {', '.join(places[:5])}.", errors={where: [NUL_MESSAGE] for where in places[:20]})


def undecodable_url_parts() -> list[str]:
    """The parts of the request's URL whose bytes are not UTF-8 ("path", "query string"). Why: Werkzeug reads
    them with errors replaced, so ``?team=%FF`` searched for a team named "\ufffd" (200, nobody) and
    ``/shifts/series/%FF`` said "Series \ufffd does not exist", where a body with such bytes is a 400."""
    raw_path = request.environ.get("PATH_INFO", "").encode("latin-1", "replace")  # (WSGI: bytes as latin-1)
    raw_query = urllib.parse.unquote_to_bytes(request.query_string.replace(b"+", b" "))
    return [part for part, raw in (("path", raw_path), ("query string", raw_query)) if not _is_utf8(raw)]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def refuse_undecodable_url() -> None:
    """400 for a URL whose path or query string is not UTF-8 once percent-decoded (``undecodable_url_parts``;
    Open311 says it in its own error shape)."""
    if request.blueprint == "open311":
        return
    parts = undecodable_url_parts()
    if parts:
        raise errors.BadRequest(f"The URL's {' and '.join(parts)} must be UTF-8 (percent-encoded): "
                                "nothing was read or changed.")


def refuse_nul_in_url() -> None:
    """The same for the query string and the path (before any view reads
    them). Open311 says it in its own error shape (``open311._refuse_unreadable_parameters``)."""
    if request.blueprint == "open311":
        return
    if "\x00" in request.path:
        raise errors.BadRequest(f"The URL path {NUL_MESSAGE[0].lower()}{NUL_MESSAGE[1:]}")
    bad = parameters_with_nul(request.args)
    if bad:
        # a 422 as webargs words a bad parameter; the OGC API and the tiles answer those 400
        raise _nul_problem(errors.ValidationFailed if request.path.startswith("/api/") else errors.BadRequest, bad)


def is_json_number(value: Any) -> bool:
    """A number as JSON parses to one: an int or a float, not a bool (which
    Python counts as an int)."""
    return type(value) in (int, float)


class IdConverter(IntegerConverter):
    """``<int:...>`` in a route, up to PostgreSQL's largest integer: every id
    is one, so a larger number is an unknown id (404), not an overflow in
    the database (500). Installed as the app's ``int`` converter."""

    # ASCII digits: Python's \d also matches full-width and Arabic-Indic digits, which int() reads, so
    # /shifts/２０１ was shift 201 under another name; and no leading zero, so /shifts/007 is not shift 7's
    # second address (the check-in fast path reads ids so too)
    regex = r"0|[1-9][0-9]*"

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 (werkzeug's name)
        kwargs.setdefault("max", INT_MAX)
        super().__init__(map, *args, **kwargs)


class StrictJsonParser(FlaskParser):
    """webargs parser that refuses NaN/Infinity, says where JSON broke, and refuses a query parameter the
    operation does not take (422 naming it).

    Why the last: webargs ignores them by default, so a typo was answered as if it had not been sent:
    ``radius=200`` for ``radius_m`` searched the default 1,000 m, ``community=2`` listed every community's
    volunteers, with nothing to tell the planner why."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = strict_json_loads(req.get_data(cache=True))
        refuse_unstorable_text(data)
        return data

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(400, exc=error, messages={"json": [f"Malformed JSON: {error}"]})

    def _process_location_data(self, location_data, schema, req, location, *args, **kwargs):
        if isinstance(location_data, MultiDictProxy) and hasattr(location_data.data, "getlist"):
            # a parameter of the operation given twice (an unknown one is refused as unknown)
            known = {field.data_key or name for name, field in schema.fields.items()}
            repeated = [name for name in repeated_parameters(location_data.data, location_data.multiple_keys)
                        if name in known]
            if repeated:
                raise ValidationError({name: [GIVEN_MORE_THAN_ONCE] for name in repeated})
        # a JSON body's numbers are JSON numbers (schemas.common.Int, Float); a query's are text
        token = LOADING_JSON_BODY.set(location == "json")
        try:
            return super()._process_location_data(location_data, schema, req, location, *args, **kwargs)
        finally:
            LOADING_JSON_BODY.reset(token)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictJsonParser()

    def arguments(self, schema, *args: Any, **kwargs: Any):
        # webargs instantiates a schema class on every request, which costs
        # more than loading the body (~0.1 ms); one instance serves them all
        # (loading keeps no state on the schema).
        instance = schema() if isinstance(schema, type) else schema
        # A body whose fields are all optional may be left out (webargs loads
        # it as {}): the document says so, as it says a required one must be sent.
        if kwargs.get("location", "json") == "json" and "required" not in kwargs \
                and not any(field.required for field in instance.fields.values()):
            kwargs["required"] = False
        return super().arguments(instance, *args, **kwargs)

    def alt_response(self, status_code: Any, response: Any = None, **kwargs: Any):
        # An error a view names is documented as every error is sent (see
        # Api._register_responses): problem details in application/problem+json.
        if isinstance(status_code, int) and status_code >= 400 and response is None and kwargs.get("schema") is None:
            kwargs.update(schema=Problem, content_type=kwargs.get("content_type") or PROBLEM_JSON)
        return super().alt_response(status_code, response, **kwargs)


_UNKNOWN_PARAMETER = "not a query parameter of this operation"


def _flatten_messages(messages: Any) -> tuple[Any, list[str]]:
    """webargs nests messages by location; clients want field -> messages."""
    if not isinstance(messages, dict):
        return messages, []
    fields: dict[str, Any] = {}
    general: list[str] = []
    for location, value in messages.items():
        if isinstance(value, dict) and location == "query":
            # marshmallow's "Unknown field." says little about a URL
            fields.update({name: [_UNKNOWN_PARAMETER if text == "Unknown field." else text for text in texts]
                           if isinstance(texts, list) else texts for name, texts in value.items()})
        elif isinstance(value, dict):
            fields.update(value)
        elif isinstance(value, list):
            general.extend(str(v) for v in value)
    return fields, general


def _summary(fields: dict[str, Any], limit: int = 3) -> str:
    parts = []
    for name, value in list(fields.items())[:limit]:
        text = value[0] if isinstance(value, list) and value and isinstance(value[0], str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{name}: {text}")
    more = len(fields) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class ProblemResponses(BasePlugin):
    """Documents the problems an operation may answer besides its own, so a
    client generated from the document has a type for each (problem+json):

    - 401 and 403 where a token is read (``security``): a missing, bad or
      revoked token; an account without the right for this action;
    - 404 where the path names a resource (an unknown id);
    - 409 on every write: a conflict with the resource's state, or with a
      change made at the same moment (``concurrent-update``: send it again);
    - 400, 413 and 415 where a body is read: it must be JSON, well-formed, and no larger than
      MAX_CONTENT_LENGTH (Werkzeug refuses a larger one before the view runs);
    - 422 everywhere: bad input, and a NUL in any query parameter (refused
      before the view runs).

    A view's own declaration of the same status is kept. A public operation
    documents 401 as well: it reads a token when one is sent, and refuses a
    bad one (expired, revoked) rather than ignoring it, so a client that
    sends its token everywhere meets that 401 on public routes too.

    Responses a view writes by hand with string codes (``"201"``) are merged
    into the generated ones (``201``) rather than replacing them whole, as
    the document would otherwise do. A write that takes an Idempotency-Key
    documents ``Idempotent-Replayed`` on its successes (the header of a
    replayed answer).
    """

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            _merge_status_codes(responses)
            documented = {str(code) for code in responses}

            def add(status: http.HTTPStatus) -> None:
                if str(status.value) not in documented:
                    responses[status.value] = status.name

            add(http.HTTPStatus.UNAUTHORIZED)  # a bad token is refused wherever it is sent
            if operation.get("security"):
                add(http.HTTPStatus.FORBIDDEN)
            if "{" in (path or ""):
                add(http.HTTPStatus.NOT_FOUND)
            if method in ("post", "put", "patch", "delete"):
                add(http.HTTPStatus.CONFLICT)
            if "requestBody" in operation:
                add(http.HTTPStatus.BAD_REQUEST)
                add(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                add(http.HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            add(http.HTTPStatus.UNPROCESSABLE_ENTITY)
            keyed = any(p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key"
                        for p in operation.get("parameters", []) if isinstance(p, dict))
            for code, response in list(responses.items()):
                status = int(code) if str(code).isdigit() else None
                if status is None or not isinstance(response, dict):
                    continue  # a component (the 409, 429 and 503 ones carry Retry-After already)
                if status in RETRY_AFTER_STATUSES:
                    response.setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER_HEADER)
                if keyed and 200 <= status < 300:
                    response.setdefault("headers", {}).setdefault("Idempotent-Replayed", REPLAYED_HEADER)


# operationIds are camelCase verb + noun (listShifts, createShift, checkIn): the style of the OpenAPI
# Specification's own examples and of the mobile clients' languages (Kotlin, Swift, TypeScript); generators for
# snake_case languages (Python) re-case it. Without them, generators name methods from the path and method
# (apiV1ShiftsShiftIdCheckInPost), names that also change whenever a path does.
OPERATION_VERBS = {"get": "get", "post": "create", "put": "set", "patch": "update", "delete": "delete"}

# The operations whose view's name (plus the rule in operation_id) does not say what they do: an action on a
# resource (check-in, approve), a DELETE that cancels and keeps the record, a POST that computes. Keyed by the
# Flask endpoint (blueprint.View) and method; tests/test_review_s8_contract.py fails on an entry no route uses.
OPERATION_NAMES = {
    ("health.Live", "get"): "getLiveness",
    ("accounts.Token", "post"): "signIn",
    ("accounts.Refresh", "post"): "refreshToken",
    ("accounts.Logout", "post"): "signOut",
    ("zones.CommunitySplit", "post"): "splitCommunity",
    ("zones.ZoneLocate", "get"): "locateZone",
    ("volunteers.MyLocation", "post"): "reportMyLocation",
    ("volunteers.VolunteerHours", "get"): "getVolunteerHours",
    ("shifts.ShiftSeries", "post"): "createShiftSeries",
    ("shifts.ShiftSeriesItem", "delete"): "cancelShiftSeries",
    ("shifts.ShiftItem", "delete"): "cancelShift",
    ("shifts.ShiftSignups", "post"): "signUp",
    ("shifts.ShiftSignupItem", "delete"): "cancelSignup",
    ("shifts.ShiftCheckIn", "post"): "checkIn",
    ("shifts.ShiftCheckOut", "post"): "checkOut",
    ("shifts.MyCheckEvents", "post"): "uploadCheckEvents",
    ("shifts.HoursQueue", "get"): "listHoursToReview",
    ("shifts.HoursApprove", "post"): "approveHours",
    ("shifts.HoursDecline", "post"): "declineHours",
    ("shifts.HoursBulkReview", "post"): "reviewHours",
    ("parking.SpacesStatus", "post"): "setSpaceStatuses",
    ("parking.Import", "post"): "importParking",
    ("parking.Capacity", "post"): "getCapacityOfArea",
    ("requests.RequestStats", "get"): "getRequestStats",
    ("requests.RequestRate", "post"): "rateRequest",
    ("requests.DispatchBatch", "post"): "dispatchOpenRequests",
}


def operation_id(endpoint: str, method: str) -> str:
    """The operationId of ``method`` on a Flask endpoint ("shifts.ShiftItem"), read from the view's name.

    Why from the view: it is named once, in code, and changes only with the code, so a client's method
    names stay put. The rule, for the views the API's resources are made of:

    - ``<Thing>Item``: one thing by id: getShift, updateShift, deleteZone, setSpaceStatus (PUT);
    - a plural name, a collection: GET lists it (listShifts), POST adds one to it (createShift);
    - ``<Resource>Action_<action>``, the generated request actions: acceptRequest, handBackRequest;
    - anything else: the method's verb and the view's name (getZoneMap, createLotOccupancy);

    and ``OPERATION_NAMES`` for the views those would misname.
    """
    named = OPERATION_NAMES.get((endpoint, method))
    if named:
        return named
    view = endpoint.rpartition(".")[2]
    resource, _, action = view.partition("Action_")
    if action:
        first, *rest = action.split("_")
        return first + "".join(word.capitalize() for word in rest) + resource
    if view.endswith("Item"):
        return OPERATION_VERBS[method] + view.removesuffix("Item")
    if view.endswith("s") and method in ("get", "post"):
        return "list" + view if method == "get" else "create" + _singular(view)
    return OPERATION_VERBS[method] + view


def _singular(plural: str) -> str:
    return plural[:-3] + "y" if plural.endswith("ies") else plural.removesuffix("s")  # Communities, Shifts


class OperationIds(BasePlugin):
    """Gives every operation its ``operationId`` (``operation_id``), unless a view names its own, and refuses
    (at start-up, as a route without an access rule is refused) a document where two operations share one: a
    generated client cannot have two methods of one name, and generators rename the second silently."""

    def init_spec(self, spec: Any) -> None:
        super().init_spec(spec)
        self._taken: dict[str, str] = {}  # operationId -> "METHOD path", per document

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        rule = kwargs.get("rule")
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict):
                continue
            if rule is not None:
                operation.setdefault("operationId", operation_id(rule.endpoint, method))
            name, where = operation.get("operationId"), f"{method.upper()} {path}"
            if name is None:
                continue
            if self._taken.setdefault(name, where) != where:
                raise RuntimeError(f"operationId {name!r} names both {self._taken[name]} and {where}: rename a "
                                   "view, or add it to gridsvc.api.OPERATION_NAMES")


# Answers that carry Retry-After (seconds): 409 (a request in progress, a concurrent update), 429 (sign-in
# throttled), 503 (the database unreachable).
RETRY_AFTER_STATUSES = frozenset({409, 429, 503})
RETRY_AFTER_HEADER = {"description": "Seconds to wait before sending the request again (sent with "
                                     "/problems/request-in-progress, /problems/concurrent-update, 429 and 503)",
                      "schema": {"type": "integer", "minimum": 0}}
REPLAYED_HEADER = {"description": "`true` when this is the first answer to this Idempotency-Key given again to a "
                                  "retry (nothing was done a second time)",
                   "schema": {"type": "string", "enum": ["true"]}}


def _merge_status_codes(responses: dict) -> None:
    """Fold a response written under a string code ("201", a view's own ``@blp.doc``) into the one generated
    under the int code (201): both would be written as "201", and the later would replace the other whole
    (check-in's 201 lost its schema, the CSV export's 200 its description)."""
    for code in [c for c in responses if isinstance(c, str) and c.isdigit() and int(c) in responses]:
        manual, generated = responses.pop(code), responses[int(code)]
        if isinstance(generated, dict) and isinstance(manual, dict):
            merged = dict(generated)
            for key, value in manual.items():
                merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) \
                    else value
            responses[int(code)] = merged
        elif isinstance(manual, dict) and isinstance(generated, str):
            # the generated one is a component: written out here, with what the manual one adds (headers, say)
            written: dict[str, Any] = {"description": http.HTTPStatus(int(code)).phrase}
            if int(code) >= 400:
                written["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            responses[int(code)] = {**written, **manual}
        else:
            responses[int(code)] = manual


class Api(flask_smorest.Api):
    ERROR_SCHEMA = Problem

    def __init__(self, app: Flask | None = None, **kwargs: Any) -> None:
        plugins = kwargs.setdefault("spec_kwargs", {}).setdefault("extra_plugins", [])
        plugins.extend((ProblemResponses(), OperationIds()))
        super().__init__(app, **kwargs)

    def _register_responses(self) -> None:
        """The error responses the OpenAPI document refers to, as the API sends
        them: problem details in ``application/problem+json``. (flask-smorest's
        own are its error shape in ``application/json``.)"""
        descriptions = {http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE: self._too_large_description()}
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": descriptions.get(status, status.phrase)}
            if status >= 400:
                response["schema"] = Problem
            if status in RETRY_AFTER_STATUSES:
                response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
            prepare_response(response, self.spec, PROBLEM_JSON if status >= 400 else self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": Problem}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _too_large_description(self) -> str:
        """413's description, with the limit the app was started with: a client can check a body before it sends it."""
        limit = self._app.config.get("MAX_CONTENT_LENGTH") if self._app is not None else None
        said = f"{limit:,} bytes" if isinstance(limit, int) and limit > 0 else "the server's limit"
        return f"The request body is larger than {said} (MAX_CONTENT_LENGTH): nothing was read or changed."

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        self.register_field(GeoJSONGeometry, "object", None)
        app.register_error_handler(errors.GridsvcError, self.handle_gridsvc_error)
        app.register_error_handler(OperationalError, self.handle_database_down)
        app.register_error_handler(Exception, self.handle_unexpected)
        app.before_request(refuse_undecodable_url)
        app.before_request(refuse_nul_in_url)
        app.before_request(require_json_body)

    def handle_http_exception(self, error: HTTPException):
        status = error.code or 500
        if status >= 500:
            return self.handle_unexpected(getattr(error, "original_exception", None) or error)
        data = getattr(error, "data", None) or {}
        body: dict[str, Any] = {
            "type": HTTP_PROBLEM_TYPES.get(status, "about:blank"),
            "title": errors.ValidationFailed.title if status == 422 else error.name,
            "status": status,
        }
        messages = data.get("errors") or data.get("messages")
        fields, general = _flatten_messages(messages)
        exc = getattr(error, "exc", None)
        if status == 400 and isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
            body["type"], body["title"] = errors.MalformedJson.type, errors.MalformedJson.title
        if fields:
            body["detail"] = "Invalid input: " + _summary(fields)
            body["errors"] = fields
        elif general:
            body["detail"] = " ".join(general)
        elif data.get("message"):
            body["detail"] = data["message"]
        else:
            body["detail"] = error.description
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        headers.update(data.get("headers") or {})
        return problem_response(body, headers)

    def handle_gridsvc_error(self, error: errors.GridsvcError):
        if error.status >= 500:
            log.warning("answered %s: %s", error.status, error)
        headers = {}
        if isinstance(error, errors.Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="gridsvc"' + (
                f', error="{error.bearer_error}"' if error.bearer_error else "")
        if getattr(error, "retry_after", None) is not None:  # too many attempts, a request in progress
            headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, errors.CodedBody):
            headers["Accept-Encoding"] = error.accept_encoding
        return problem_response(error.to_problem(), headers)

    def handle_database_down(self, error: OperationalError):
        if isinstance(error.orig, TransactionRollbackError):  # a deadlock or serialisation victim, not an outage
            log.warning("rolled back by the database: %s", error.orig)
            return problem_response(errors.ConcurrentUpdate(
                "Another request changed the same records at the same moment; nothing was saved. "
                "Send the request again.").to_problem(), {"Retry-After": "1"})
        log.error("database unavailable: %s", error.orig)
        return problem_response(errors.DatabaseUnavailable("The database cannot be reached; try again shortly.").to_problem(),
                                {"Retry-After": "5"})

    def handle_lost_race(self, error: IntegrityError):
        """A unique, foreign-key or exclusion constraint refused a write that
        the service had checked: another request changed the same records in
        between (two admins adding the same skill at once). The services lock
        what they can; this is the net under the rest."""
        log.warning("refused by a constraint: %s", error.orig)
        return problem_response(errors.Conflict(
            "Another request changed the same records at the same moment, and this one now conflicts with them; "
            "nothing was saved. Read them again before retrying.").to_problem())

    def handle_unexpected(self, error: BaseException):
        if isinstance(error, HTTPException) and (error.code or 500) < 500:
            return self.handle_http_exception(error)
        if isinstance(error, errors.GridsvcError):
            return self.handle_gridsvc_error(error)
        if isinstance(error, OperationalError):
            return self.handle_database_down(error)
        if isinstance(error, IntegrityError) and getattr(error.orig, "pgcode", None) in RACE_VIOLATIONS:
            return self.handle_lost_race(error)
        # Log everything, tell the client nothing about the internals.
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
        return problem_response({"type": "about:blank", "title": "Internal Server Error", "status": 500,
                                 "detail": "An unexpected error occurred; it has been logged."})


def reject_unknown_parameters(allowed: Iterable[str]) -> None:
    """400 naming any query parameter the resource does not declare (OGC's
    /req/core/query-param-unknown; the tiles follow the same rule), or one
    given more than once."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise errors.BadRequest(f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
                                errors={name: ["not a parameter of this resource"] for name in unknown})
    repeated = repeated_parameters(request.args)
    if repeated:
        raise errors.BadRequest(f"The parameter{'s' if len(repeated) > 1 else ''} {', '.join(repeated)} "
                                f"{'are' if len(repeated) > 1 else 'is'} given more than once.",
                                errors={name: [GIVEN_MORE_THAN_ONCE] for name in repeated})


def request_has_body() -> bool:
    """Whether the request sends a body: a length above 0, or chunked."""
    # a coding list ending in chunked, in any case (RFC 9112 6.1; gunicorn takes "Chunked" and "gzip, chunked")
    codings = [coding.strip().lower() for coding in request.headers.get("Transfer-Encoding", "").split(",")]
    return (request.content_length or 0) > 0 or "chunked" in codings


def require_json_body() -> None:
    """415 for a request body that is not JSON, before any view parses it."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return
    has_body = request_has_body()
    if has_body and not is_json_request(request):
        raise errors.UnsupportedMediaType(
            f"Send the request body as application/json (got {request.mimetype or 'no Content-Type'})."
        )
    # A compressed body is not decoded here (nor by gunicorn): a gzipped one read as "malformed JSON", and a
    # plain one labelled gzip was taken as sent.
    coding = request.headers.get("Content-Encoding", "")
    if has_body and is_coded(coding):
        raise errors.CodedBody(f"Send the request body uncompressed (Content-Encoding {coding.strip()} is not "
                               "supported).")


def is_coded(content_encoding: str) -> bool:
    """Whether a Content-Encoding header names a coding (none, or identity: the body as sent)."""
    return content_encoding.strip().lower() not in ("", "identity")
