"""Fields and schemas shared by several resources: bounded integers and
times, paging and point input."""
from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from geo.crs import SUPPORTED_CRS, to_wgs84
from gridsvc.clock import DATE_FORM, DATE_TIME_FORM
from gridsvc.models.shift import HOURS_STATUSES, LIVE_SIGNUP_STATUSES

MAX_PAGE = 1000

# Every id, count and capacity is stored as a PostgreSQL integer: a larger
# number is the client's error (422), not an overflow in the database (500).
INT_MIN, INT_MAX = -2**31, 2**31 - 1

# The dates and times the API takes. Why bounded: PostgreSQL refuses UTC
# offsets of 16 h and more, and date arithmetic near year 1 or 9999 overflows
# in Python. Wide enough for an old parking lot's opening date.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199
MAX_UTC_OFFSET = timedelta(hours=14)  # the offsets in use run from -12:00 to +14:00


class WholeText(validate.Regexp):
    """A pattern the whole text must match. Why: Python's ``$`` also matches
    before a final newline, so "first_aid\\n" passed (to be refused by the
    database's check as a 500, or stored: an activity or time nothing finds);
    ``$`` stays in the pattern, which the OpenAPI document gives clients (in
    its ECMA-262 regexes ``$`` is the end)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class BoundedList(fields.List):
    """A list refused by its length before its items are loaded. Why: marshmallow loads every item before a
    Length validator runs, so 45,000 offline events (7 MB) kept a worker busy for 4 s to be told "at most
    200", and a few such requests stalled the server. ``max_items``: a number, or a function giving the
    configured one; ``what``: the items' name in the problem ("at most 200 events ...")."""

    def __init__(self, cls_or_instance, *, max_items: int | Callable[[], int], what: str = "items",
                 advice: str = "", **kwargs) -> None:
        super().__init__(cls_or_instance, **kwargs)
        self.max_items, self.what, self.advice = max_items, what, advice

    def _deserialize(self, value, attr, data, **kwargs):
        limit = self.max_items() if callable(self.max_items) else self.max_items
        if isinstance(value, list) and len(value) > limit:
            raise ValidationError(f"at most {limit} {self.what}{self.advice}")
        return super()._deserialize(value, attr, data, **kwargs)


class Trimmed(fields.Str):
    """Text without the whitespace around it, so blank text fails its Length. Why: a phone keyboard's trailing
    space made "灵动 " a team of its own, missing from ?team=灵动, and a name of spaces went on the national
    service record."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()



class NotBlank(validate.Length):
    """Text of 1 to ``most`` characters, said as a person would. Why: a name of spaces, trimmed by ``Trimmed``, was
    told "Length must be between 1 and 200", which reads as if it were too long."""

    def __init__(self, most: int) -> None:
        super().__init__(1, most)

    def __call__(self, value: str) -> str:
        if not value:
            raise ValidationError("Must not be blank.")
        if len(value) > self.max:
            raise ValidationError(f"At most {self.max} characters.")
        return value


class Choice(fields.Str):
    """Text an answer carries from a closed set, which the OpenAPI document lists (``enum``) so that a generated
    client gets a type for it (a Kotlin or TypeScript enum) rather than a bare string.

    For answers only: the set is documentation (metadata), nothing is checked on the way out, so an answer is
    never refused for it. A field a request sets takes ``validate.OneOf``, which the document shows the same way.
    """

    def __init__(self, choices: Iterable[str], **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata", {})
        # null listed too where the field may be null: OpenAPI 3.0's `nullable` does not widen an `enum` (apispec
        # writes a nullable OneOf's set the same way)
        enum = [*choices, *([None] if kwargs.get("allow_none") else [])]
        super().__init__(metadata={**metadata, "enum": enum}, **kwargs)


class JsonBool(fields.Boolean):
    """A body's boolean: JSON ``true`` or ``false`` only. marshmallow's Boolean also takes 0, 1, "yes", "off"...,
    which the OpenAPI document's ``boolean`` does not allow (a query parameter, which is text, keeps those)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:  # 0 and 1 would pass a set of {True, False}: 1 == True
            raise self.make_error("invalid")
        return value


# The forms of a position and a box in a query string, for the OpenAPI document (generated clients and their
# users read them there). The server reads them by the same patterns, and checks the ranges, which a pattern
# cannot. (Spaces around a number are taken; Python's float() also took "1_21.5" and "infinity".)
_DECIMAL = r" *[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)? *"
LONLAT_PATTERN = rf"^{_DECIMAL},{_DECIMAL}$"
BBOX_PATTERN = rf"^{_DECIMAL},{_DECIMAL},{_DECIMAL},{_DECIMAL}$"


# True while a JSON body is loaded (set by the API's argument parser): a number there is a JSON number. A query
# string or a form is text, whose numbers a schema reads from their digits.
LOADING_JSON_BODY: ContextVar[bool] = ContextVar("LOADING_JSON_BODY", default=False)


_WHOLE = r" *[-+]?[0-9]+ *"


def _text_for_a_number(value: Any, *, whole: bool = False) -> bool:
    """Text that is not a number where one is asked. In a JSON body, any text: refused as the document's
    ``integer``/``number`` refuses it (marshmallow read "5", and full-width "１２３", as numbers: a capacity of
    "１２３" made a 123-place shift). In a query string or a form, text not written as a decimal number
    (``_DECIMAL``; ``whole``: digits alone): Python's float() read ``lon=1_2`` as 12 and full-width "１２１" as
    121."""
    if not isinstance(value, str):
        return False
    return LOADING_JSON_BODY.get() or re.fullmatch(_WHOLE if whole else _DECIMAL, value) is None


def parse_decimal(text: str) -> float:
    """A number in a query string or a form, written as ``_DECIMAL`` has it (ValueError otherwise)."""
    if re.fullmatch(_DECIMAL, text) is None:
        raise ValueError(text)
    return float(text)


def parse_whole(text: str) -> int:
    """A whole number in a query string, written as ``_WHOLE`` has it (ValueError otherwise: int() also reads
    "1_0" and "１０")."""
    if re.fullmatch(_WHOLE, text) is None:
        raise ValueError(text)
    return int(text)


class Int(fields.Integer):
    """An integer that fits PostgreSQL's ``integer`` (-2,147,483,648 .. 2,147,483,647).

    A JSON number with a fraction is refused: marshmallow's Integer would
    truncate it (an id of 2.5 became 2, a capacity of 10.7 became 10).
    2.0 is an integer, as JSON Schema counts it. In a JSON body, text is not
    a number."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (not beside a narrower range of the field's own: 2**31 for a count of 1..1000 was told the range of
        # PostgreSQL's integer, not the field's)
        if not any(isinstance(v, validate.Range) and v.min is not None and v.max is not None
                   and INT_MIN <= v.min and v.max <= INT_MAX for v in self.validators):
            self.validators.insert(0, validate.Range(INT_MIN, INT_MAX))

    def _validated(self, value: Any) -> int:
        if (isinstance(value, float) and not value.is_integer()) or _text_for_a_number(value, whole=True):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Float(fields.Float):
    """A number; in a JSON body, text is not one (``"lon": "121.77"`` is a 422, as the document says)."""

    def _validated(self, value: Any) -> float:
        if _text_for_a_number(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def time_problem(value: datetime | date) -> str | None:
    """Why the API does not take this date or time (None: it does)."""
    offset = value.utcoffset() if isinstance(value, datetime) else None
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return "The UTC offset must be between -14:00 and +14:00."
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        return f"Must be in the years {EARLIEST_YEAR} to {LATEST_YEAR}."
    return None


class _TakenTime:
    """Loads as the marshmallow field it precedes, in the forms the API takes (``DATE_TIME_FORM``,
    ``DATE_FORM``), then refuses what ``time_problem`` names."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        form = DATE_FORM if isinstance(self, fields.Date) else DATE_TIME_FORM
        if isinstance(value, str):
            if form.fullmatch(value) is None:
                raise self.make_error("invalid", input=value, obj_type="date" if form is DATE_FORM else "datetime")
            value = value.upper()  # RFC 3339's "z", which fromisoformat does not read
        loaded = super()._deserialize(value, attr, data, **kwargs)  # type: ignore[misc]
        problem = time_problem(loaded)
        if problem:
            raise ValidationError(problem)
        return loaded


class AwareDateTime(_TakenTime, fields.AwareDateTime):
    """An ISO 8601 date-time with a real UTC offset, in the years the API takes."""


class Date(_TakenTime, fields.Date):
    """An ISO 8601 date in the years the API takes."""


# Every ``reason`` a problem of this API carries (tests/api/test_review_contract_reasons.py keeps it whole).
PROBLEM_REASONS = (
    "already_checked_in", "already_signed_up", "cancelled", "checked_in", "client_time_out_of_range",
    "hours_reviewed", "key_reused", "last_admin", "may_not_volunteer", "missing_skill", "no_shift", "not_checked_in",
    "not_signed_up", "outside_geofence", "outside_window", "over", "overlap", "started")


class Problem(Schema):
    """An error: RFC 9457 problem details, sent as ``application/problem+json``.
    Some problems add members of their own (``distance_m``, ``overlaps`` ...)."""

    class Meta:
        unknown = INCLUDE  # the extension members

    type = fields.Str(required=True, metadata={
        "description": "names the problem, e.g. /problems/validation; clients branch on it"})
    title = fields.Str(required=True, metadata={"description": "a short summary of the problem type"})
    status = fields.Int(required=True, metadata={"description": "the HTTP status code"})
    detail = fields.Str(metadata={"description": "what went wrong this time, written for people"})
    errors = fields.Raw(metadata={
        "description": "the messages per field of a validation failure (per item of a list where one is sent)"})
    reason = fields.Str(metadata={
        "description": "what the conflict or refusal is, where one problem type has several; clients branch on "
                       "it. One of: " + ", ".join(f"`{r}`" for r in PROBLEM_REASONS) + " (more may be added)"})
    # Members some problems add, for the client to act on (named here so a generated model has a field for each).
    missing_skills = fields.List(fields.Str(), metadata={
        "description": "a sign-up refused for missing_skill: the skills to add to the profile"})
    overlapping_shift_id = Int(metadata={"description": "a sign-up refused for overlap: the shift it clashes with "
                                                        "(left out for a liaison who does not read that shift's zone's "
                                                        "entries of the volunteer's record)"})
    signup_status = Choice(LIVE_SIGNUP_STATUSES, metadata={
        "description": "a sign-up sent again (already_signed_up): the place held, confirmed or waitlisted"})
    on_duty_shift_id = Int(metadata={"description": "a check-in refused as already_checked_in: where to check out"})
    hours_status = Choice(HOURS_STATUSES, metadata={
        "description": "a check-out refused as hours_reviewed: the liaison's decision on the stint"})
    status_now = Choice(HOURS_STATUSES, metadata={"description": "a review of hours already decided: their decision"})
    confirmed = Int(metadata={"description": "a capacity below the confirmed places: how many are confirmed"})
    clashes = fields.List(fields.Dict(), metadata={
        "description": "a shift's new times refused: [{volunteer_id, overlapping_shift_id}] of the volunteers "
                       "they would double-book (overlapping_shift_id null where the caller does not read that "
                       "shift's zone's entries of the volunteer's record)"})
    overlaps = fields.List(fields.Dict(), metadata={
        "description": "a zone refused for overlapping others: [{zone_id, code, area_m2}]"})
    shifts = Int(metadata={"description": "a zone or community that keeps its records (has-dependents): its shifts"})
    service_requests = Int(metadata={"description": "a zone that keeps its records (has-dependents): its requests"})
    volunteers = Int(metadata={"description": "a zone some volunteers call home (has-dependents): how many"})
    user_id = Int(metadata={"description": "a second volunteer profile for an account: the account"})
    username = fields.Str(metadata={"description": "a username taken: the name"})
    code = fields.Str(metadata={"description": "a skill code taken: the code"})
    state = fields.Str(metadata={"description": "a request action refused in its state: the request's state"})
    action = fields.Str(metadata={"description": "a request action refused: the action"})


class FromBeforeTo(Schema):
    """A query whose ``to`` (``end``) is before its ``from`` (``start``) is a 422: it would list nothing, as if
    there were nothing. Two dates, two times on a clock each (without offsets) or two instants are compared; a
    time and an instant are left to the search, which reads the former on the right community's clock."""

    @validates_schema
    def _ordered(self, data, **_kwargs) -> None:
        start, end = data.get("start"), data.get("end")
        if (start is not None and end is not None
                and (getattr(start, "tzinfo", None) is None) == (getattr(end, "tzinfo", None) is None) and end < start):
            raise ValidationError("'to' is before 'from'", "to")


class PageQuery(Schema):
    limit = Int(load_default=100, validate=validate.Range(1, MAX_PAGE),
                metadata={"description": f"page size, 1..{MAX_PAGE}"})
    offset = Int(load_default=0, validate=validate.Range(min=0))


class PageOut(Schema):
    total = Int(metadata={"description": "how many matched in all"})
    limit = Int()
    offset = Int()


@dataclass(frozen=True)
class GeoPoint:
    """A point converted to WGS-84, remembering what the client sent."""

    lon: float
    lat: float
    input_lon: float
    input_lat: float
    input_crs: str

    def as_dict(self) -> dict:
        return {"lon": round(self.lon, 8), "lat": round(self.lat, 8), "crs": "wgs84"}

    def input_dict(self) -> dict:
        return {"lon": self.input_lon, "lat": self.input_lat, "crs": self.input_crs}


class PointIn(Schema):
    """``{lon, lat, crs}``: GCJ-02 (AMap, Tencent, WeChat) and BD-09 (Baidu) are converted to WGS-84."""

    lon = Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    crs = fields.Str(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                     metadata={"description": "coordinate system the point was measured in"})

    @post_load
    def to_wgs84(self, data: dict, **_kwargs) -> GeoPoint:
        return geopoint(data["lon"], data["lat"], data["crs"])


def geopoint(lon: float, lat: float, crs: str) -> GeoPoint:
    wgs_lon, wgs_lat = to_wgs84(lon, lat, crs)
    return GeoPoint(lon=wgs_lon, lat=wgs_lat, input_lon=lon, input_lat=lat, input_crs=crs)


class PositionIn(PointIn):
    """A point plus more fields: loads to a dict whose ``point`` is the GeoPoint."""

    @post_load
    def to_wgs84(self, data: dict, **_kwargs) -> dict:
        point = geopoint(data.pop("lon"), data.pop("lat"), data.pop("crs"))
        return {**data, "point": point}


class PointOut(Schema):
    lon = Float()
    lat = Float()
    crs = Choice(SUPPORTED_CRS)
