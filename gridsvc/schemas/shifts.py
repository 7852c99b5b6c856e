"""Shift, sign-up and check-in shapes."""
from __future__ import annotations

from flask import current_app
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from gridsvc import clock
from gridsvc.clock import is_naive
from gridsvc.config import numeric_setting
from gridsvc.fields import as_shape
from gridsvc.models import MAX_SHIFT_RADIUS_M
from gridsvc.models.shift import (CHECK_KINDS, HOURS_FLAG_REASONS, HOURS_STATUSES, LIVE_SIGNUP_STATUSES, SHIFT_PHASES,
                                  SHIFT_STATUSES, SIGNUP_STATUSES)
from gridsvc.schemas.common import (BoundedList, Choice, Date, Float, FromBeforeTo, Int, PageOut, PageQuery,
                                    PointIn, PointOut, PositionIn, NotBlank, Problem, Trimmed, WholeText, _TakenTime)
from gridsvc.schemas.volunteers import SKILL_CODE, near_crs, near_in_wgs84, near_lonlat

ACTIVITY = WholeText(r"^[a-z][a-z0-9_]{1,59}$",
                     error="2-60 lower-case letters, digits and _, beginning with a letter, e.g. traffic_guidance")
ON_COMMUNITY_CLOCK = "without an offset: a wall-clock time in the community's time zone (its `timezone`)"
# A search may keep to one community or span several: naive times are read on the one's clock, else on a default.
ON_SEARCH_CLOCK = ("without an offset: a wall-clock time on the community's clock (its `timezone`) when the search "
                   "keeps to one community (`zone_id`, `community_id` or `series_id`), else on "
                   "GRIDSVC_DEFAULT_TIMEZONE's (Asia/Shanghai unless configured)")
ON_EACH_SHIFTS_CLOCK = "without an offset: a wall-clock time on the clock of each shift's community (its `timezone`)"
ON_THE_SHIFTS_CLOCK = "without an offset: a wall-clock time on the clock of the shift's community (its `timezone`)"

# Why a check-in or check-out was refused and recorded (CheckEvent.reason, the 422 /problems/check-refused): the
# only values the database's gridsvc_check writes (migration 0014 on; tests/test_review_s8_contract.py reads them
# there). Every other refusal records nothing and is a problem with a reason of its own (common.PROBLEM_REASONS).
CHECK_REFUSALS = ("outside_geofence", "outside_window")


class ShiftTime(_TakenTime, fields.DateTime):
    """An ISO 8601 date-time; one without an offset stays naive here.

    Why: it is a wall-clock time on a community's clock (a shift's, a
    search's), and which community that is is known only once the service
    has found the shift or the search's place (``services.shifts`` and
    ``services.checks`` read it there). The description says whose clock;
    by default the shift's community's."""

    def __init__(self, **kwargs) -> None:
        metadata = kwargs.pop("metadata", {})
        super().__init__(metadata={"description": ON_COMMUNITY_CLOCK, **metadata}, **kwargs)


class ShiftPlace(Schema):
    zone_id = Int(metadata={"description": "the zone polygon is the geofence"})
    location = fields.Nested(PointIn, metadata={"description": "a point geofence (with radius_m), e.g. a gate"})
    radius_m = Float(allow_nan=False, validate=validate.Range(min=5, max=MAX_SHIFT_RADIUS_M))

    @validates_schema
    def _place(self, data, partial=False, **_kwargs) -> None:
        if not partial and "zone_id" not in data and "location" not in data:
            raise ValidationError("give zone_id, or location with radius_m", "zone_id")
        if ("location" in data) != ("radius_m" in data):
            raise ValidationError("location and radius_m go together", "radius_m")


class ShiftCreate(ShiftPlace):
    title = Trimmed(required=True, validate=NotBlank(200), metadata={"example": "北门早高峰交通疏导"})
    activity = fields.Str(required=True, validate=ACTIVITY, metadata={"example": "traffic_guidance"})
    starts_at = ShiftTime(required=True)
    ends_at = ShiftTime(required=True)
    capacity = Int(required=True, validate=validate.Range(1, 10_000))
    required_skills = fields.List(fields.Str(validate=SKILL_CODE), load_default=list)
    notes = fields.Str(allow_none=True, validate=validate.Length(max=2000))

    @validates_schema
    def _ordered(self, data, **_kwargs) -> None:
        # One time with an offset and one without cannot be compared before the naive one is placed on the
        # community's clock: the service checks those (and every pair again, once placed).
        start, end = data.get("starts_at"), data.get("ends_at")
        if start is not None and end is not None and is_naive(start) == is_naive(end) and end <= start:
            raise ValidationError("must be after starts_at", "ends_at")


class ShiftSeriesCreate(ShiftPlace):
    """A recurring template: every chosen weekday between two dates, at the same local times."""

    title = Trimmed(required=True, validate=NotBlank(200))
    activity = fields.Str(required=True, validate=ACTIVITY)
    weekdays = fields.List(Int(validate=validate.Range(1, 7)), required=True, validate=validate.Length(1, 7),
                           metadata={"description": "ISO weekdays, 1 = Monday", "example": [1, 2, 3, 4, 5]})
    start_time = fields.Time(required=True, metadata={"example": "07:30"})
    end_time = fields.Time(required=True, metadata={"example": "09:00"})
    from_date = Date(required=True)
    until_date = Date(required=True)
    capacity = Int(required=True, validate=validate.Range(1, 10_000))
    required_skills = fields.List(fields.Str(validate=SKILL_CODE), load_default=list)
    notes = fields.Str(allow_none=True, validate=validate.Length(max=2000))

    @validates_schema
    def _wall_clock_times(self, data, **_kwargs) -> None:
        # The times are read on the community's clock, day by day; an offset
        # ("07:30Z") would either be dropped silently (shifts eight hours off)
        # or, on one time only, be incomparable with the other.
        for name in ("start_time", "end_time"):
            if name in data and data[name].tzinfo is not None:
                raise ValidationError("a wall-clock time in the community's time zone, without an offset "
                                      "(e.g. 07:30)", name)
        # An end_time before start_time ends the next morning (a night shift); the same time would be a shift of
        # 24 hours, where a single shift with equal times is refused ("must be after starts_at").
        if data.get("start_time") is not None and data.get("start_time") == data.get("end_time"):
            raise ValidationError("must differ from start_time (an end_time before start_time ends the next day)",
                                  "end_time")


class ShiftUpdate(Schema):
    title = Trimmed(validate=NotBlank(200))
    activity = fields.Str(validate=ACTIVITY)
    starts_at = ShiftTime()
    ends_at = ShiftTime()
    capacity = Int(validate=validate.Range(1, 10_000))
    required_skills = fields.List(fields.Str(validate=SKILL_CODE))
    notes = fields.Str(allow_none=True, validate=validate.Length(max=2000))


class ShiftOut(Schema):
    id = Int(attribute="shift.id")
    community_id = Int(attribute="shift.community_id")
    zone_id = Int(attribute="shift.zone_id")
    title = fields.Str(attribute="shift.title")
    activity = fields.Str(attribute="shift.activity")
    starts_at = fields.DateTime(attribute="shift.starts_at")
    ends_at = fields.DateTime(attribute="shift.ends_at")
    capacity = Int(attribute="shift.capacity")
    confirmed = Int()
    waitlisted = Int()
    places_left = Int(metadata={"description": "capacity minus the confirmed volunteers (the staffing gap); a sign-up "
                                               "is taken only while the shift is upcoming"})
    required_skills = fields.List(fields.Str(), attribute="shift.required_skill_codes")
    location = fields.Method("_location", allow_none=True, metadata={
        "description": "a point shift's point (WGS-84), with radius_m; null for a shift at a zone",
        "allOf": [{"$ref": "#/components/schemas/PointOut"}]})
    radius_m = Float(attribute="shift.radius_m", allow_none=True)
    status = Choice(SHIFT_STATUSES, attribute="shift.status",
                    metadata={"description": "a cancelled shift stays on record, with its sign-ups"})
    phase = fields.Method("_phase", metadata={
        "type": "string", "enum": list(SHIFT_PHASES),
        "description": "where the shift stands now: upcoming (not started: sign-ups taken), in_progress, ended; "
                       "a cancelled shift keeps its phase, its status says cancelled"})
    series_id = fields.Str(attribute="shift.series_id", allow_none=True)
    notes = fields.Str(attribute="shift.notes", allow_none=True)
    distance_m = Float(allow_none=True, metadata={"description": "with near=: metres to the shift's area"})

    def _phase(self, view) -> str:
        return view.shift.phase(clock.now())

    def _location(self, view) -> dict | None:
        if view.shift.location is None:
            return None
        point = as_shape(view.shift.location)
        return {"lon": point.x, "lat": point.y, "crs": "wgs84"}


class ShiftPageOut(PageOut):
    items = fields.List(fields.Nested(ShiftOut))


class ShiftSeriesOut(Schema):
    series_id = fields.Str()
    count = Int()
    items = fields.List(fields.Nested(ShiftOut))


class SeriesCancelQuery(Schema):
    start = ShiftTime(data_key="from", metadata={"description": "only the shifts starting at or after this time "
                                                               "(default: every shift of the series not yet begun); "
                                                               + ON_COMMUNITY_CLOCK})


class SeriesCancelOut(Schema):
    series_id = fields.Str()
    cancelled = fields.List(fields.Nested(ShiftOut), metadata={"description": "cancelled now"})
    kept = fields.List(fields.Nested(ShiftOut), metadata={
        "description": "begun (started, or volunteers checked in) and not over: left as they are"})


class ShiftQuery(FromBeforeTo, PageQuery):
    series_id = fields.Str(validate=validate.Length(1, 64), metadata={"description": "the shifts of one recurring series"})
    zone_id = Int()
    community_id = Int()
    start = ShiftTime(data_key="from", metadata={"description": "shifts still running at or after this time; "
                                                                + ON_SEARCH_CLOCK})
    end = ShiftTime(data_key="to", metadata={"description": "shifts starting before this time; " + ON_SEARCH_CLOCK})
    activity = fields.Str(validate=ACTIVITY)
    skill = fields.Str(validate=SKILL_CODE)
    has_space = fields.Bool(metadata={"description": "true: shifts a sign-up made now would be confirmed for (a free "
                                                     "place, not started); false: full or started"})
    include_cancelled = fields.Bool(load_default=False)
    near = near_lonlat("shifts within radius_m, nearest first")
    crs = near_crs()  # a volunteer's phone gives GCJ-02 (AMap) or BD-09 (Baidu)
    radius_m = Float(validate=validate.Range(min=1, max=50_000), load_default=3000)

    @post_load
    def _near(self, data, **_kwargs) -> dict:
        return near_in_wgs84(data)


class SignupIn(Schema):
    volunteer_id = Int(metadata={"description": "default: your own volunteer profile"})


class SignupOut(Schema):
    id = Int()
    shift_id = Int()
    volunteer_id = Int()
    status = Choice(SIGNUP_STATUSES, metadata={"description": "confirmed | waitlisted; cancelled in the answer to a "
                                                               "withdrawal"})
    waitlist_position = Int(allow_none=True)
    created_at = fields.DateTime()


class SignupListOut(PageOut):
    items = fields.List(fields.Nested(SignupOut))


class VolunteerSignupQuery(FromBeforeTo, PageQuery):
    start = ShiftTime(data_key="from", metadata={"description": "shifts still running at or after this time "
                                                                "(without from and to: the shifts not yet over); "
                                                                + ON_EACH_SHIFTS_CLOCK})
    end = ShiftTime(data_key="to", metadata={"description": "shifts starting before this time; " + ON_EACH_SHIFTS_CLOCK})
    status = fields.Str(validate=validate.OneOf(LIVE_SIGNUP_STATUSES))


class VolunteerSignupOut(Schema):
    id = Int(attribute="signup.id")
    status = Choice(LIVE_SIGNUP_STATUSES, attribute="signup.status", metadata={"description": "confirmed | waitlisted"})
    waitlist_position = Int(allow_none=True, metadata={"description": "1 = next to move up"})
    signed_up_at = fields.DateTime(attribute="signup.created_at")
    shift = fields.Nested(ShiftOut)
    on_duty = fields.Bool(metadata={"description": "checked in to this shift now"})
    checked_in_at = fields.DateTime(allow_none=True, metadata={
        "description": "the last accepted check-in (by when it happened): it began the last stint"})
    checked_out_at = fields.DateTime(allow_none=True, metadata={
        "description": "the accepted check-out that ended that stint (null while it is open, or when it was closed "
                       "without one)"})
    check_out_by = fields.DateTime(allow_none=True, metadata={
        "description": "while that stint is open: the last moment its check-out is accepted (the shift's end plus "
                       "the grace period, 2 h by default); after the shift's end on_duty is false, and the shift "
                       "stays in the default list until then. Null otherwise"})
    hours = fields.Nested("StintHoursOut", allow_none=True, metadata={
        "description": "that stint's hours entry (null while it is open): a check-out forgotten shows none above, "
                       "and this says the stint was closed at the shift's end (flag_reason missing_check_out)"})


class VolunteerSignupPageOut(PageOut):
    items = fields.List(fields.Nested(VolunteerSignupOut))


class ShiftEventQuery(PageQuery):
    volunteer_id = Int()
    flagged = fields.Bool(metadata={"description": "true: refused events and others flagged for a look"})


class ShiftEventOut(Schema):
    id = Int(attribute="event.id")
    volunteer_id = Int(attribute="event.volunteer_id")
    volunteer_name = fields.Str()
    kind = Choice(CHECK_KINDS, attribute="event.kind", metadata={"description": "check_in | check_out"})
    at = fields.DateTime(attribute="event.effective_at", metadata={"description": "the moment judged"})
    received_at = fields.DateTime(attribute="event.received_at")
    offline = fields.Bool(attribute="event.offline")
    accepted = fields.Bool(attribute="event.accepted")
    reason = Choice(CHECK_REFUSALS, attribute="event.reason", allow_none=True,
                    metadata={"description": "why it was refused (null: accepted)"})
    flagged = fields.Bool(attribute="event.flagged")
    inside = fields.Bool(attribute="event.inside")
    distance_m = Float(attribute="event.distance_m", metadata={"description": "metres to the geofence"})
    accuracy_m = Float(attribute="event.accuracy_m", allow_none=True)
    point = fields.Method("_point", metadata={"description": "the position judged (WGS-84); null for a volunteer "
                                                             "who no longer works in the reader's zones",
                                              "nullable": True,
                                              "allOf": [{"$ref": "#/components/schemas/PointOut"}]})
    input = fields.Method("_input", metadata={"description": "the position as the phone sent it; null as point",
                                              "nullable": True,
                                              "allOf": [{"$ref": "#/components/schemas/PointOut"}]})

    def _point(self, seen) -> dict | None:
        return {"lon": seen.lon, "lat": seen.lat, "crs": "wgs84"} if seen.located else None

    def _input(self, seen) -> dict | None:
        if not seen.located:
            return None
        return {"lon": seen.event.input_lon, "lat": seen.event.input_lat, "crs": seen.event.input_crs}


class ShiftEventPageOut(PageOut):
    items = fields.List(fields.Nested(ShiftEventOut))


class CancelOut(Schema):
    cancelled = fields.Nested(SignupOut)
    promoted = fields.List(fields.Nested(SignupOut), metadata={
        "description": "every waitlisted sign-up the withdrawal confirmed, each with its shift_id: in this shift, and "
                       "in overlapping shifts where the withdrawing volunteer waited (a place skipped for them while "
                       "they served this one); each to who reads that volunteer's record (a volunteer withdrawing "
                       "sees their own)"})


class CheckEventIn(PositionIn):
    accuracy_m = Float(allow_nan=False, allow_none=True, validate=validate.Range(min=0, max=100_000))
    client_time = ShiftTime(allow_none=True, metadata={"description": "the phone's clock when the event happened; "
                                                                      + ON_THE_SHIFTS_CLOCK})


class CheckFacts(Schema):
    """What a check-in or check-out answer says of its event, accepted or refused."""

    accepted = fields.Bool()
    event_id = Int(metadata={"description": "the event as recorded (a refused one too: the liaison sees it)"})
    shift_id = Int()
    kind = Choice(CHECK_KINDS)
    at = fields.DateTime(metadata={"description": "when the event counts: the server's time, or an offline event's "
                                                  "client time"})
    inside = fields.Bool()
    distance_m = Float(metadata={"description": "metres to the geofence (0 inside), judged against allowed_m as "
                                                "shown"})
    allowed_m = Float(metadata={"description": "the slack granted for the reported accuracy"})
    point = fields.Nested(PointOut, metadata={"description": "the WGS-84 point used"})
    input = fields.Nested(PointOut)


class CheckHoursOut(Schema):
    """The hours a check-out recorded: the stint's overlap with the shift, and its review status."""

    id = Int(metadata={"description": "the hours entry (to approve or decline)"})
    hours = Float()
    status = Choice(HOURS_STATUSES, metadata={"description": "approved (both ends inside the geofence) or pending"})
    started_at = fields.DateTime()
    ended_at = fields.DateTime()


class StintHoursOut(CheckHoursOut):
    """A stint's hours entry as "my shifts" shows it: with why it waits for review."""

    flag_reason = Choice(HOURS_FLAG_REASONS, allow_none=True, metadata={"description": "why it is flagged (null: not)"})


class CheckEventOut(CheckFacts):
    on_duty = fields.Bool(metadata={"description": "checked in to this shift after this event (an earlier stint's "
                                                   "offline events leave a duty in progress as it is)"})
    hours = fields.Nested(CheckHoursOut, allow_none=True, metadata={"description": "a check-out's hours"})


class CheckRefusedProblem(Problem, CheckFacts):
    """A check event refused and recorded (``/problems/check-refused``, 422): the problem, with the answer's
    figures, so the app can say how far out the volunteer was or when the window opens."""

    reason = fields.Str(validate=validate.OneOf(CHECK_REFUSALS), metadata={
        "description": "outside the shift's area (check-in) or outside the time window"})
    opens_at = fields.DateTime(metadata={"description": "outside_window: when the window for this event opens"})
    closes_at = fields.DateTime(metadata={"description": "outside_window: when it closes (a check-in: until then, "
                                                         "not at it)"})


class OfflineEvent(CheckEventIn):
    shift_id = Int(required=True)
    kind = fields.Str(required=True, validate=validate.OneOf(CHECK_KINDS))
    client_time = ShiftTime(required=True, metadata={"description": "the phone's clock when the event happened; "
                                                                    + ON_THE_SHIFTS_CLOCK})
    idempotency_key = fields.Str(required=True, validate=validate.Length(1, 100))


def _offline_max_events() -> int:
    """GRIDSVC_OFFLINE_MAX_EVENTS (the upload's view reads the list this schema loaded)."""
    return int(numeric_setting(current_app.config, "GRIDSVC_OFFLINE_MAX_EVENTS"))


class OfflineBatchIn(Schema):
    events = BoundedList(fields.Nested(OfflineEvent), required=True, validate=validate.Length(min=1),
                         max_items=_offline_max_events, what="events",
                         advice=" per upload; send the rest in another upload (nothing was recorded)")


class OfflineResultOut(Schema):
    index = Int()
    idempotency_key = fields.Str()
    status = Int()
    replayed = fields.Bool(required=True, metadata={
        "description": "true when the event was recorded before (its key seen) and this is its first answer "
                       "again; false otherwise, refusals that recorded nothing included"})
    result = fields.Dict(metadata={
        "description": "the event's answer, as check-in or check-out gives it (201, or 422 with the problem of "
                       "/problems/check-refused), or the problem of a refusal that recorded nothing (4xx, with "
                       "`reason`: client_time_out_of_range (with `errors` naming client_time), no_shift, "
                       "key_reused, not_signed_up, already_checked_in, not_checked_in, hours_reviewed, cancelled, "
                       "...; see Problem)"})


class OfflineBatchOut(Schema):
    results = fields.List(fields.Nested(OfflineResultOut))
