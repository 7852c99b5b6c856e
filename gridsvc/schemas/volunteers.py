"""Volunteer, skill, position and hours shapes."""
from __future__ import annotations

import re
import unicodedata

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from gridsvc.models.shift import HOURS_FLAG_REASONS, HOURS_STATUSES
from gridsvc.schemas.accounts import PHONE, Phone
from geo.crs import SUPPORTED_CRS, to_wgs84
from gridsvc.schemas.common import (LONLAT_PATTERN, BoundedList, Choice, Date, Float, FromBeforeTo, Int, JsonBool, PageOut,
                                    NotBlank, PageQuery, PointOut, PositionIn, Trimmed, WholeText, _TakenTime)


SKILL_CODE = WholeText(r"^[a-z][a-z0-9_]{1,39}$",
                       error="2-40 lower-case letters, digits and _, beginning with a letter, e.g. first_aid")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class SkillOut(Schema):
    code = fields.Str()
    name_zh = fields.Str()
    name_en = fields.Str()
    retired_at = fields.DateTime(allow_none=True, metadata={
        "description": "when it was retired: off the list, taken up by nobody new, kept by whoever holds it"})


class SkillQuery(Schema):
    include_retired = fields.Bool(load_default=False, metadata={"description": "list the retired skills too"})


class SkillCreate(Schema):
    code = fields.Str(required=True, validate=SKILL_CODE, metadata={"example": "sign_language"})
    # trimmed as a change of names is: a name of blanks is no name
    name_zh = Trimmed(required=True, validate=NotBlank(100), metadata={"example": "手语"})
    name_en = Trimmed(required=True, validate=NotBlank(100), metadata={"example": "Sign language"})


class SkillUpdate(Schema):
    """A skill's names (the code stays: shifts, services, dispatch and searches go by it), or retire it."""

    name_zh = Trimmed(validate=NotBlank(100))
    name_en = Trimmed(validate=NotBlank(100))
    retired = JsonBool(metadata={"description": "true retires it (off the list; volunteers and shifts holding it "
                                                   "keep it, nobody takes it up anew), false brings it back"})


class AvailabilityWindow(Schema):
    """A weekly window in the community's local time; 1 = Monday ... 7 = Sunday."""

    weekday = Int(required=True, validate=validate.Range(1, 7))
    start = fields.Str(required=True, validate=WholeText(HHMM, error="HH:MM"), metadata={"example": "18:00"})
    end = fields.Str(required=True, validate=WholeText(HHMM, error="HH:MM"), metadata={"example": "21:00"})

    @validates_schema
    def _ordered(self, data, **_kwargs) -> None:
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start", "end")


class NationalVolunteerId(Trimmed):
    """A national volunteer ID as people type it, kept in ASCII: a Chinese IME in full-width mode types
    "ＺＪ－ＮＢ－９", which is the ID "ZJ-NB-9" (NFKC), as phone numbers are folded (``Phone``). Kept as typed, it
    registered a second holder of one ID and went on the record in a form the national system does not know."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        folded = unicodedata.normalize("NFKC", super()._deserialize(value, attr, data, **kwargs))
        # and without what prints as nothing (a zero-width space, a BOM, a direction mark: category Cf), with any
        # dash a hyphen (U+2010, U+2011, U+2013... as IMEs and word processors type them, and the signs that
        # print as one: a minus, or an IME's "ー"): one ID, one spelling
        return "".join("-" if unicodedata.category(c) == "Pd" or c in _DASH_SIGNS else c for c in folded
                       if unicodedata.category(c) != "Cf").strip()


# Not dashes to Unicode (category Sm or Lm), printed as one: the minus sign (also what NFKC makes of a superscript
# or subscript minus), the hyphen bullet, the heavy minus and the prolonged sound mark a Japanese or Chinese IME
# types for "-" (and, half-width, NFKC's too)
_DASH_SIGNS = frozenset("\u2212\u2043\u2796\u30fc")


def _windows_apart(windows: list[dict]) -> None:
    """Windows of one weekday that overlap (or repeat) are a 422: the client meant something else, and the
    profile would show one hour twice. Touching windows (08:00-10:00, 10:00-12:00) are fine."""
    ordered = sorted(windows, key=lambda w: (w["weekday"], w["start"]))
    for before, after in zip(ordered, ordered[1:]):
        if before["weekday"] == after["weekday"] and after["start"] < before["end"]:
            raise ValidationError(f"windows overlap on weekday {before['weekday']}: {before['start']}-{before['end']} "
                                  f"and {after['start']}-{after['end']}")


AVAILABILITY = [validate.Length(max=50), _windows_apart]
AVAILABILITY_RULES = ("weekly windows (at most 50); each ends after it starts, and windows of one weekday may touch "
                      "but not overlap (a 422 naming both)")


class VolunteerCreate(Schema):
    user_id = Int(metadata={"description": "the account to register; default: your own"})
    real_name = Trimmed(required=True, validate=NotBlank(100))
    phone = Phone(required=True, validate=PHONE)
    national_volunteer_id = NationalVolunteerId(allow_none=True, validate=validate.Length(1, 64),
                                    metadata={"description": "ID in the national volunteer service system, if any; "
                                                             "one volunteer's only (409 if another has it)"})
    team = Trimmed(allow_none=True, validate=NotBlank(100), metadata={"example": "灵动"})
    home_zone_id = Int(allow_none=True)
    skills = fields.List(fields.Str(validate=SKILL_CODE), load_default=list)
    availability = fields.List(fields.Nested(AvailabilityWindow), load_default=list, validate=AVAILABILITY,
                               metadata={"description": AVAILABILITY_RULES})


class VolunteerUpdate(Schema):
    real_name = Trimmed(validate=NotBlank(100))
    phone = Phone(validate=PHONE)
    national_volunteer_id = NationalVolunteerId(allow_none=True, validate=validate.Length(1, 64))
    team = Trimmed(allow_none=True, validate=NotBlank(100))
    home_zone_id = Int(allow_none=True)
    skills = fields.List(fields.Str(validate=SKILL_CODE))
    availability = fields.List(fields.Nested(AvailabilityWindow), validate=AVAILABILITY,
                               metadata={"description": AVAILABILITY_RULES})


class LastPositionOut(Schema):
    lon = Float()
    lat = Float()
    crs = Choice(SUPPORTED_CRS)
    accuracy_m = Float(allow_none=True)
    at = fields.DateTime()


class VolunteerOut(Schema):
    """A volunteer; personal fields are null for callers without the right to see them."""

    id = Int()
    user_id = Int()
    username = fields.Str()
    real_name = fields.Str()
    phone = fields.Str(metadata={"description": "masked (138****1234) unless you may see it"})
    national_volunteer_id = fields.Str(allow_none=True)
    team = fields.Str(allow_none=True)
    home_zone_id = Int(allow_none=True)
    skills = fields.List(fields.Str())
    availability = fields.List(fields.Nested(AvailabilityWindow))
    on_duty = fields.Bool(allow_none=True, metadata={
        "description": "null for a reader who may not know it (a worker, another volunteer)"})
    on_duty_shift_id = Int(allow_none=True)
    last_position = fields.Nested(LastPositionOut, allow_none=True)
    distance_m = Float(allow_none=True, metadata={"description": "with near=: metres from that point"})
    calendar_url = fields.Str(allow_none=True, metadata={"description": "your shifts as iCalendar (only to you)"})
    created_at = fields.DateTime()


def near_crs() -> fields.Str:
    """The ``crs`` of a search's ``near=``. Why: a map on AMap gives GCJ-02, hundreds of metres from WGS-84; it
    was ignored (an unknown parameter), so a search "here" looked hundreds of metres off."""
    return fields.Str(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                      metadata={"description": "what near= is measured in: wgs84, or gcj02 (AMap, Tencent) or bd09 "
                                               "(Baidu), converted"})


def near_lonlat(what: str) -> fields.Str:
    """A search's ``near=``: "lon,lat" in its ``crs``, with its form in the OpenAPI document (``parse_lonlat`` reads
    it by that form)."""
    return fields.Str(metadata={"description": f"lon,lat (in `crs`): {what}", "pattern": LONLAT_PATTERN,
                                "example": "121.78,29.87"})


def near_in_wgs84(data: dict) -> dict:
    """A search's loaded query with ``near`` as a WGS-84 (lon, lat), read in its ``crs`` (which is dropped)."""
    crs = data.pop("crs")
    if "near" in data:
        data["near"] = to_wgs84(*parse_lonlat(data["near"], "near"), crs)
    return data


class CalendarQuery(Schema):
    key = fields.Str(metadata={"description": "the feed's key, from calendar_url in /api/v1/me/volunteer (instead of "
                                              "a token, for a phone's calendar app)"})


class VolunteerQuery(PageQuery):
    zone_id = Int(metadata={"description": "home zone"})
    skill = fields.Str(validate=SKILL_CODE)
    team = Trimmed()
    on_duty = fields.Bool()
    free_for = Int(metadata={"description": (
        "a shift id: the volunteers who could take a place in that shift, to staff it: their weekly availability "
        "covers its time on its community's clock (a window ending 23:59 runs to midnight; someone who gave no "
        "windows is not listed), they have its required skills, hold no place in it and no confirmed place in a "
        "shift overlapping it, and may volunteer. A shift that does not exist, is cancelled or has started is a 422")})
    near = near_lonlat("only volunteers within radius_m, nearest first")
    crs = near_crs()
    radius_m = Float(validate=validate.Range(min=1, max=50_000), load_default=1000)

    @post_load
    def _near(self, data, **_kwargs) -> dict:
        return near_in_wgs84(data)


def parse_lonlat(text: str, field: str) -> tuple[float, float]:
    if not re.fullmatch(LONLAT_PATTERN, text):
        raise ValidationError("use lon,lat, e.g. 121.78,29.87", field)
    lon, lat = (float(part) for part in text.split(","))
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValidationError("lon must be within [-180, 180] and lat within [-90, 90]", field)
    return lon, lat


class VolunteerPageOut(PageOut):
    items = fields.List(fields.Nested(VolunteerOut))


class FixTime(_TakenTime, fields.DateTime):
    """An ISO 8601 date-time; one without an offset stays naive here (the view reads it on
    GRIDSVC_DEFAULT_TIMEZONE's clock)."""


class LocationIn(PositionIn):
    accuracy_m = Float(allow_nan=False, validate=validate.Range(min=0, max=100_000), allow_none=True,
                              metadata={"description": "the phone's reported accuracy radius in metres"})
    client_time = FixTime(allow_none=True, metadata={
        "description": "when the phone took the fix (default: now); without an offset, on the clock of the park the "
                       "volunteer is on duty in, else of their home zone's (else GRIDSVC_DEFAULT_TIMEZONE's). At most "
                       "24 h old and 5 minutes ahead."})


class LocationOut(Schema):
    point = fields.Nested(PointOut)
    input = fields.Nested(PointOut)
    accuracy_m = Float(allow_none=True)
    recorded_at = fields.DateTime()
    in_history = fields.Bool(metadata={"description": "whether the fix joined the position history; false when "
                                                      "the history holds one as near in place and time"})


class PositionOut(Schema):
    point = fields.Nested(PointOut, metadata={"description": "where the phone was, in WGS-84"})
    input_crs = Choice(SUPPORTED_CRS, metadata={"description": "the coordinate system the phone reported it in"})
    accuracy_m = Float(allow_none=True)
    recorded_at = fields.DateTime(metadata={"description": "when the phone took the fix"})


class PositionPageOut(PageOut):
    retention_days = Float(metadata={"description": "how long a position is kept (GRIDSVC_POSITION_RETENTION_DAYS): "
                                                           "`gridsvc purge` deletes older ones"})
    items = fields.List(fields.Nested(PositionOut), metadata={"description": "newest first"})


class HoursOut(Schema):
    id = Int()
    shift_id = Int()
    shift_title = fields.Str()
    activity = fields.Str()
    started_at = fields.DateTime()
    ended_at = fields.DateTime()
    hours = Float()
    status = Choice(HOURS_STATUSES, metadata={"description": "pending | approved | declined"})
    auto_approved = fields.Bool()
    flagged = fields.Bool()
    flag_reason = Choice(HOURS_FLAG_REASONS, allow_none=True, metadata={"description": "why it is flagged (null: not)"})
    review_note = fields.Str(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)
    reviewed_by_id = Int(allow_none=True, metadata={
        "description": "the account that approved or declined the entry (none for one approved automatically)"})


class HoursTotalOut(Schema):
    key = fields.Str(metadata={"description": "month (YYYY-MM, on the clock of each entry's shift's community) or "
                                              "activity"})
    approved = Float()
    pending = Float()
    declined = Float()


class HoursReportOut(Schema):
    volunteer_id = Int()
    entries = fields.List(fields.Nested(HoursOut))
    approved = Float()
    pending = Float()
    declined = Float()
    by_month = fields.List(fields.Nested(HoursTotalOut))
    by_activity = fields.List(fields.Nested(HoursTotalOut))


# An entry's day is the one on its shift's community's clock (its `timezone`): the date the CSV writes for it.
ON_ENTRY_CLOCK = "each entry's day on the clock of its shift's community (its `timezone`)"


class HoursQuery(FromBeforeTo):
    start = Date(data_key="from", metadata={"description": "first day, inclusive: " + ON_ENTRY_CLOCK})
    end = Date(data_key="to", metadata={"description": "last day, inclusive: " + ON_ENTRY_CLOCK})


class ReviewIn(Schema):
    note = fields.Str(validate=validate.Length(max=500), allow_none=True)


class ReviewQueueQuery(HoursQuery, PageQuery):
    status = fields.Str(load_default="pending", validate=validate.OneOf(HOURS_STATUSES),
                        metadata={"description": "default pending: what waits for a decision"})
    zone_id = Int()
    shift_id = Int()
    volunteer_id = Int()
    flagged = fields.Bool(metadata={"description": "true: only entries flagged for a closer look"})


class HoursTotalsQuery(HoursQuery, PageQuery):
    status = fields.Str(load_default="approved", validate=validate.OneOf(HOURS_STATUSES),
                        metadata={"description": "default approved: the hours that count"})
    community_id = Int()
    zone_id = Int()


class VolunteerTotalOut(Schema):
    volunteer_id = Int()
    volunteer_name = fields.Str()
    team = fields.Str(allow_none=True)
    hours = Float()
    entries = Int(metadata={"description": "hours entries (stints) counted; a stint that missed the shift "
                                           "(checked out before its start) is none"})
    last_served_at = fields.DateTime(metadata={"description": "the end of the latest stint counted"})


class HoursTotalsPageOut(PageOut):
    total_hours = Float(metadata={"description": "of every volunteer matched (total counts them), not only "
                                                        "this page's"})
    items = fields.List(fields.Nested(VolunteerTotalOut), metadata={"description": "most hours first"})


class CheckSeenOut(Schema):
    at = fields.DateTime(attribute="effective_at")
    inside = fields.Bool(metadata={"description": "inside the shift's geofence"})
    distance_m = Float(metadata={"description": "metres to the geofence (0 inside)"})
    offline = fields.Bool(metadata={"description": "recorded offline, sent later"})


class HoursUnderReviewOut(HoursOut):
    volunteer_id = Int()
    volunteer_name = fields.Str()
    zone_id = Int()
    check_in = fields.Nested(CheckSeenOut)
    check_out = fields.Nested(CheckSeenOut, allow_none=True,
                              metadata={"description": "null: no check-out (closed at the shift's end)"})


class ReviewQueuePageOut(PageOut):
    items = fields.List(fields.Nested(HoursUnderReviewOut))


MAX_REVIEW_IDS = 500


class BulkReviewIn(Schema):
    ids = BoundedList(Int(), required=True, validate=validate.Length(1, MAX_REVIEW_IDS), max_items=MAX_REVIEW_IDS,
                      what="ids", advice=" per request; send the rest in another")
    action = fields.Str(required=True, validate=validate.OneOf(("approve", "decline")))
    note = fields.Str(validate=validate.Length(max=500), allow_none=True)


class BulkReviewResultOut(Schema):
    id = Int()
    status = Int()
    hours_status = Choice(HOURS_STATUSES, allow_none=True, metadata={
        "description": "the entry's status after the call: the decision made, or the one it already had (409)"})
    detail = fields.Str(allow_none=True)


class BulkReviewOut(Schema):
    results = fields.List(fields.Nested(BulkReviewResultOut))
