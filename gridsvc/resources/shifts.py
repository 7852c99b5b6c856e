"""Shifts, sign-ups, GPS check-in/out (online and offline) and the review of hours."""
from __future__ import annotations


from flask import Response, current_app, request, url_for
from flask.views import MethodView
from shapely.geometry import Point

from gridsvc import auth, clock, idempotency
from gridsvc.api import PROBLEM_JSON, Blueprint
from gridsvc.db import current_session
from gridsvc.errors import GridsvcError, ValidationFailed
from gridsvc.resources.actors import actor
from gridsvc.resources.volunteers import hours_entry
from gridsvc.schemas.common import PageQuery, Problem
from gridsvc.schemas.shifts import (CancelOut, CheckEventIn, CheckEventOut, CheckRefusedProblem, OfflineBatchIn,
                                    OfflineBatchOut, SeriesCancelOut, SeriesCancelQuery, ShiftCreate, ShiftEventPageOut,
                                    ShiftEventQuery, ShiftOut, ShiftPageOut, ShiftQuery, ShiftSeriesCreate, ShiftSeriesOut,
                                    ShiftUpdate, SignupIn, SignupListOut, SignupOut)
from gridsvc.schemas.volunteers import (BulkReviewIn, BulkReviewOut, HoursOut, HoursTotalsPageOut, HoursTotalsQuery,
                                        ReviewIn, ReviewQueuePageOut, ReviewQueueQuery)
from gridsvc.services import checks, requests as request_service, shifts as service, volunteers as volunteer_service

blp = Blueprint("shifts", __name__, description="Shifts (班次), sign-ups, check-in/out and service hours")

SHIFT_MANAGERS = auth.roles("admin", "liaison", name="shift-managers")


def check_policy() -> checks.CheckPolicy:
    return checks.CheckPolicy.of_app(current_app)


def _point_fields(data: dict) -> dict:
    if "location" in data:
        data = dict(data, location=Point(data["location"].lon, data["location"].lat))
    return data


def _require_zone_manager(zone_id: int, *, which: str = "the shift's zone") -> None:
    auth.require(auth.may_manage_zone(auth.current_principal(), zone_id),
                 f"Only admins and the liaison of {which} may do this.")


def signup_view(signup, position) -> dict:
    return {"id": signup.id, "shift_id": signup.shift_id, "volunteer_id": signup.volunteer_id, "status": signup.status,
            "waitlist_position": position, "created_at": signup.created_at}


@blp.route("/shifts")
class Shifts(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.arguments(ShiftQuery, location="query")
    @blp.response(200, ShiftPageOut)
    def get(self, query):
        """Find shifts: by zone, time, activity, skill, free places, or near a point (nearest first)

        `from` and `to` without an offset are wall-clock times on the community's clock (its `timezone`) when the
        search keeps to one community (`zone_id`, `community_id` or `series_id`); a search that may span several
        communities reads them on GRIDSVC_DEFAULT_TIMEZONE's (Asia/Shanghai unless configured). With an offset,
        they are that instant.
        """
        query["starts_from"], query["starts_to"] = query.pop("start", None), query.pop("end", None)
        return service.list_shifts(current_session(), **query, now=clock.now(), default_tz=clock.default_timezone())

    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ShiftCreate)
    @blp.response(201, ShiftOut)
    def post(self, data):
        """Create a shift at a zone or at a point with a radius (admins, the zone's liaison)

        Times without an offset are on the community's clock (its `timezone`). A shift that has already ended
        is refused (422): nobody could work it.
        """
        session = current_session()
        data = _point_fields(data)
        _, zone_id = service.place(session, data.get("zone_id"), data.get("location"))
        _require_zone_manager(zone_id)
        shift = service.create_shift(session, **data, now=clock.now())
        session.commit()
        return service.view(session, shift), {"Location": url_for("shifts.ShiftItem", shift_id=shift.id)}


@blp.route("/shifts/series")
class ShiftSeries(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ShiftSeriesCreate)
    @blp.response(201, ShiftSeriesOut)
    def post(self, data):
        """Create a recurring series in one call ("weekdays 07:30-09:00 at the north gate for four weeks")

        The occurrences already over (today's, sent after it) are left out; none left is a 422.
        """
        session = current_session()
        data = _point_fields(data)
        _, zone_id = service.place(session, data.get("zone_id"), data.get("location"))
        _require_zone_manager(zone_id)
        shifts = service.create_series(session, **data, now=clock.now())
        session.commit()
        return {"series_id": shifts[0].series_id, "count": len(shifts),
                "items": [service.ShiftView(shift=s, confirmed=0, waitlisted=0) for s in shifts]}


@blp.route("/shifts/series/<series_id>")
class ShiftSeriesItem(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(SeriesCancelQuery, location="query")
    @blp.response(200, SeriesCancelOut)
    def delete(self, query, series_id):
        """Cancel the rest of a recurring series

        Each of its shifts not yet begun (from a time, if given) is cancelled; the begun ones are kept. Shifts
        already over are left out. The series' shifts are listed by GET /shifts?series_id=.
        """
        session = current_session()
        for zone_id in service.series_zones(session, series_id):
            _require_zone_manager(zone_id)
        outcome = service.cancel_series(session, series_id, now=clock.now(), starting_from=query.get("start"))
        session.commit()
        return {"series_id": series_id, "cancelled": service.views(session, [(s, None) for s in outcome.cancelled]),
                "kept": service.views(session, [(s, None) for s in outcome.kept])}


@blp.route("/shifts/<int:shift_id>")
class ShiftItem(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(200, ShiftOut)
    def get(self, shift_id):
        """One shift with its places left"""
        session = current_session()
        return service.view(session, service.get_shift(session, shift_id))

    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ShiftUpdate)
    @blp.response(200, ShiftOut)
    def patch(self, data, shift_id):
        """Change a shift: raising the capacity promotes the waitlist; new times are refused once it has begun or where a confirmed volunteer would overlap

        New times without an offset are on the community's clock; a new start or end already past is a 422.
        """
        session = current_session()
        _require_zone_manager(service.get_shift(session, shift_id).zone_id)
        try:
            shift = service.update_shift(session, shift_id, data, now=clock.now())
        except service.ShiftChangeRefused as refused:
            if "clashes" not in refused.extra:
                raise
            # whom the new times would double-book is the liaison's to know (they hold a place here); which other
            # shift, only if that entry of their record is the caller's to read
            clashes = [{**clash, "overlapping_shift_id": clash["overlapping_shift_id"]
                        if _reads_entry(clash["volunteer_id"], clash["overlapping_shift_id"]) else None}
                       for clash in refused.extra["clashes"]]
            raise service.ShiftChangeRefused(refused.detail, errors=refused.errors,
                                             **{**refused.extra, "clashes": clashes}) from None
        session.commit()
        return service.view(session, shift)

    @auth.access(SHIFT_MANAGERS)
    @blp.response(200, ShiftOut)
    def delete(self, shift_id):
        """Cancel a shift that has not begun (not started, nobody checked in); nothing is deleted, its sign-ups stay on record"""
        session = current_session()
        _require_zone_manager(service.get_shift(session, shift_id).zone_id)
        shift = service.cancel_shift(session, shift_id, now=clock.now())
        session.commit()
        return service.view(session, shift)


@blp.route("/shifts/<int:shift_id>/signups")
class ShiftSignups(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, SignupListOut)
    def get(self, query, shift_id):
        """Who is confirmed and who waits, in order (admins, the zone's liaison)"""
        session = current_session()
        _require_zone_manager(service.get_shift(session, shift_id).zone_id)
        page = service.signups_of_shift(session, shift_id, limit=query["limit"], offset=query["offset"])
        return {"total": page.total, "limit": page.limit, "offset": page.offset,
                "items": [signup_view(signup, position) for signup, position in page.items]}

    @auth.access(auth.SIGNED_IN)
    @blp.arguments(SignupIn)
    @blp.response(201, SignupOut)
    def post(self, data, shift_id):
        """Sign up: confirmed while places remain, else waitlisted with a position"""
        session = current_session()
        volunteer_id = _acting_volunteer(data.get("volunteer_id"), shift_id, signing_up=True)
        try:
            result = service.sign_up(session, shift_id, volunteer_id, now=clock.now())
        except service.ShiftConflict as refused:
            clash = refused.extra.get("overlapping_shift_id")
            if clash is not None and not _reads_entry(volunteer_id, clash):
                raise service.ShiftConflict("The volunteer is already confirmed for another shift at that time, "
                                            "which overlaps.", reason="overlap") from None
            raise
        session.commit()
        return signup_view(result.signup, result.waitlist_position)


@blp.route("/shifts/<int:shift_id>/check-events")
class ShiftCheckEvents(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ShiftEventQuery, location="query")
    @blp.response(200, ShiftEventPageOut)
    def get(self, query, shift_id):
        """Who checked in and out, when and where, refused attempts included (admins, the zone's liaison)"""
        session = current_session()
        _require_zone_manager(service.get_shift(session, shift_id).zone_id)
        page = checks.events_of_shift(session, shift_id, **query)
        # Where a volunteer was is for who may locate them now (README, who sees what): once their service in
        # the zone is over and decided, its liaison keeps each event's time, distance and outcome, not its point.
        located = request_service.volunteers_located_by(session, actor(), {seen.event.volunteer_id
                                                                           for seen in page.items}, now=clock.now())
        for seen in page.items:
            seen.located = seen.event.volunteer_id in located
        return page


@blp.route("/shifts/<int:shift_id>/signups/<int:volunteer_id>")
class ShiftSignupItem(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(200, CancelOut)
    def delete(self, shift_id, volunteer_id):
        """Cancel a sign-up; the first on the waitlist moves up (a confirmed place stays once the shift has started)

        `promoted` lists the sign-ups the withdrawal confirmed, each with its `shift_id`: those waiting for this
        shift, and those waiting for an overlapping shift where a place was skipped for the volunteer while they
        served this one (their own waitlisted sign-up there among them). Each is listed to who reads that entry of
        its volunteer's record: a volunteer withdrawing sees their own, not who took their place.
        """
        session = current_session()
        _acting_volunteer(volunteer_id, shift_id)
        cancelled, promoted = service.cancel_signup(session, shift_id, volunteer_id, now=clock.now())
        session.commit()
        return {"cancelled": signup_view(cancelled, None),
                "promoted": [signup_view(p, None) for p in promoted if _reads_entry(p.volunteer_id, p.shift_id)]}


def _reads_entry(volunteer_id: int, shift_id: int) -> bool:
    """Whether the caller reads the volunteer's entry (sign-up) in that shift: the volunteer, admins and their home
    zone's liaison read all their record, another zone's liaison their zones' shifts only
    (``auth.volunteer_record_zones``). A refusal for an overlap names the other shift to them only: to anyone else
    it is another zone's entry of the volunteer's record (and where they will be)."""
    session = current_session()
    volunteer = volunteer_service.get_volunteer(session, volunteer_id)
    zones = auth.volunteer_record_zones(auth.current_principal(), volunteer.user_id, volunteer.home_zone_id)
    return zones is None or service.get_shift(session, shift_id).zone_id in zones


def _acting_volunteer(volunteer_id: int | None, shift_id: int, *, signing_up: bool = False) -> int:
    """The volunteer a sign-up is for: yourself, or (admins, zone liaisons) someone else. A liaison signs up only
    volunteers who work in the shift's community: the sign-up makes the volunteer one of the zone's, whose phone,
    positions and check-ins its liaison sees (an admin sees them anyway)."""
    session = current_session()
    principal = auth.current_principal()
    own = volunteer_service.volunteer_of_user(session, principal.user_id)
    if volunteer_id is None:
        auth.require(own is not None, "Register as a volunteer first (POST /api/v1/volunteers).")
        return own.id
    if own is not None and own.id == volunteer_id:
        return volunteer_id
    # before any lookup: a volunteer told "Volunteer 999999 does not exist" (404), and 403 for an id that does,
    # could tell which volunteer ids exist
    auth.require("admin" in principal.roles or bool(principal.liaison_zone_ids),
                 "Only admins and zone liaisons may sign up or withdraw another volunteer.")
    volunteer_service.get_volunteer(session, volunteer_id)
    shift = service.get_shift(session, shift_id)
    _require_zone_manager(shift.zone_id)
    if (signing_up and "admin" not in principal.roles
            and not volunteer_service.works_in_community(session, volunteer_id, shift.community_id, now=clock.now())):
        raise ValidationFailed(f"Volunteer {volunteer_id} does not work in this shift's community now (none of "
                               f"{volunteer_service.WORKS_IN_NOW} there); they may sign up themselves, or an admin "
                               "may sign them up.",
                               errors={"volunteer_id": ["does not work in this shift's community"]})
    return volunteer_id


def valid_key(key: str | None) -> bool:
    return key is None or idempotency.valid_key(key)


def _check(shift_id: int, kind: str, data: dict):
    key = request.headers.get(idempotency.HEADER)
    if key is not None:
        idempotency.refuse_invalid_key(key)
    user_id, token_version, role = auth.account_claims()
    session = current_session()
    # (a client time is rare online, and never on check-in's fast path: only such a body pays for the lookup)
    [event] = checks.on_shift_clock(session, [check_request(shift_id, kind, data, key)], default_tz=clock.default_timezone())
    outcome = checks.check(session, user_id, event, now=clock.now(),
                           policy=check_policy(), account=checks.AccountCheck(role=role, token_version=token_version),
                           own_transaction=True)
    status, headers, body = check_answer(outcome)
    return Response(body, status=status, headers=headers)


def check_request(shift_id: int, kind: str, data: dict, key: str | None) -> checks.CheckRequest:
    """An online check event: ``data`` as the CheckEventIn schema loads it (also
    used by ``gridsvc.fastpath``, which sends the same statement)."""
    point = data["point"]
    return checks.CheckRequest(
        shift_id=shift_id, kind=kind, lon=point.lon, lat=point.lat, input_lon=point.input_lon,
        input_lat=point.input_lat, input_crs=point.input_crs, accuracy_m=data.get("accuracy_m"),
        client_time=data.get("client_time"), idempotency_key=key)


def check_answer(outcome: checks.CheckOutcome) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, headers and body of the answer to a recorded check event.
    The database wrote the body: no need to parse and dump it again."""
    body = outcome.body_json.encode()
    headers = [("Content-Type", PROBLEM_JSON if outcome.status >= 400 else "application/json"),
               ("Content-Length", str(len(body)))]
    if outcome.replayed:
        headers.append(("Idempotent-Replayed", "true"))
    return outcome.status, headers, body


# The account is checked by check-in's one statement (auth.account_claims).
CHECKING_VOLUNTEER = auth.roles("volunteer", account_in_statement=True)

# What makes a check-in or check-out safe to send again, in the OpenAPI document (read by hand in _check).
_REPLAYED = {"Idempotent-Replayed": {"description": "true when this is the first answer given again to a retry",
                                     "schema": {"type": "string", "enum": ["true"]}}}
IDEMPOTENT_CHECK = {
    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY},
                    "description": "One key per event (a UUID, say): a retry with the same key gets the first answer "
                                   "and records nothing new."}],
    "responses": {"201": {"headers": _REPLAYED}, "422": {"headers": _REPLAYED}},
}


# A check event's 422 is its recorded refusal (/problems/check-refused), or a request not judged at all
# (/problems/validation: a body out of range, an Idempotency-Key used for another request, reason key_reused), which
# records nothing. Documented as the refusal alone, its reason enum broke a client reading key_reused.
_NOT_JUDGED = ("Or the request was not judged and nothing was recorded (/problems/validation, with `errors`): a body "
               "the schema refuses, or an Idempotency-Key already used for another request (reason `key_reused`).")
_CHECK_422 = {"anyOf": [CheckRefusedProblem, Problem]}


@blp.route("/shifts/<int:shift_id>/check-in")
class ShiftCheckIn(MethodView):
    @auth.access(CHECKING_VOLUNTEER)
    @blp.arguments(CheckEventIn)
    @blp.response(201, CheckEventOut)
    @blp.alt_response(422, description="Refused (outside the area or the time window): recorded, with the distance. "
                      + _NOT_JUDGED, schema=_CHECK_422, content_type=PROBLEM_JSON)
    @blp.doc(**IDEMPOTENT_CHECK)
    def post(self, data, shift_id):
        """Check in with the phone's position (Idempotency-Key header makes retries safe)"""
        return _check(shift_id, "check_in", data)


@blp.route("/shifts/<int:shift_id>/check-out")
class ShiftCheckOut(MethodView):
    @auth.access(CHECKING_VOLUNTEER)
    @blp.arguments(CheckEventIn)
    @blp.response(201, CheckEventOut)
    @blp.alt_response(422, description="Refused (outside the time window): recorded. " + _NOT_JUDGED,
                      schema=_CHECK_422, content_type=PROBLEM_JSON)
    @blp.doc(**IDEMPOTENT_CHECK)
    def post(self, data, shift_id):
        """Check out; your hours are recorded (approved at once when both ends were inside the area)"""
        return _check(shift_id, "check_out", data)


@blp.route("/me/check-events")
class MyCheckEvents(MethodView):
    @auth.access(auth.roles("volunteer"))
    @blp.arguments(OfflineBatchIn)
    @blp.response(200, OfflineBatchOut)
    @blp.alt_response(404, description="You have no volunteer profile yet: register with POST /api/v1/volunteers.")
    def post(self, data):
        """Upload check-ins/outs recorded offline; each is judged on its own, with a result per event

        At most GRIDSVC_OFFLINE_MAX_EVENTS events per upload (200 unless configured); a longer list is refused
        whole (422) and nothing is recorded: send the rest in another upload. Each event is judged in the order
        of the client times (at the same instant, a check-out before a check-in); a client time over
        GRIDSVC_OFFLINE_MAX_AGE_H old (24) or more than GRIDSVC_CLOCK_SKEW_MIN ahead (5) is refused for that event
        only. An event whose idempotency_key was recorded before replays its first answer (`replayed: true`).
        """
        session = current_session()
        user_id = auth.current_principal().user_id
        # Without a profile every event would be judged "not found" one by one, in a 200: the whole upload is
        # the 404 this view documents.
        volunteer_service.require_volunteer_of_user(session, user_id)
        events = checks.on_shift_clock(session, [checks.CheckRequest(
            shift_id=e["shift_id"], kind=e["kind"], lon=e["point"].lon, lat=e["point"].lat, input_lon=e["point"].input_lon,
            input_lat=e["point"].input_lat, input_crs=e["point"].input_crs, accuracy_m=e.get("accuracy_m"),
            client_time=e["client_time"], idempotency_key=e["idempotency_key"], offline=True)
            for e in data["events"]], default_tz=clock.default_timezone())
        requests = list(enumerate(events))
        results = checks.check_batch(session, user_id, requests, now=clock.now(), policy=check_policy())
        session.commit()
        return {"results": results}


def _review(hours_id: int, approve: bool, note: str | None):
    session = current_session()
    entry = checks.get_hours(session, hours_id)
    _require_zone_manager(entry.shift.zone_id)
    return checks.review(session, hours_id, approve=approve, note=note,
                         reviewer_id=auth.current_principal().user_id, now=clock.now())


@blp.route("/hours")
class HoursQueue(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ReviewQueueQuery, location="query")
    @blp.response(200, ReviewQueuePageOut)
    def get(self, query):
        """Hours to review, oldest first, with where the check-in and check-out were

        Pending by default. A liaison sees their zones' shifts, an admin all; they then approve or decline,
        singly or in bulk.
        """
        zone_ids = _reviewers_zones(query)
        filters = {k: query.get(k) for k in ("status", "zone_id", "shift_id", "volunteer_id", "flagged")}
        page = checks.hours_for_review(current_session(), zone_ids=zone_ids, first_day=query.get("start"),
                                       last_day=query.get("end"), limit=query["limit"], offset=query["offset"], **filters)
        return {"total": page.total, "limit": page.limit, "offset": page.offset,
                "items": [_under_review(item) for item in page.items]}


@blp.route("/hours/totals")
class HoursTotals(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(HoursTotalsQuery, location="query")
    @blp.response(200, HoursTotalsPageOut)
    def get(self, query):
        """Hours per volunteer in a period, most first (recognition)

        Approved hours by default. A liaison counts their zones' shifts, an admin any community or zone.
        """
        zone_ids = _reviewers_zones(query)
        totals = checks.hours_totals(current_session(), zone_ids=zone_ids, status=query["status"],
                                     community_id=query.get("community_id"), zone_id=query.get("zone_id"),
                                     first_day=query.get("start"), last_day=query.get("end"), limit=query["limit"],
                                     offset=query["offset"])
        page = totals.page
        return {"total": page.total, "limit": page.limit, "offset": page.offset, "total_hours": totals.total_hours,
                "items": page.items}


def _reviewers_zones(query: dict) -> frozenset[int] | None:
    """The zones whose hours the caller reviews (None: every zone, for an admin). (The days asked, ``from`` and
    ``to``, are each entry's own community's: ``checks.hours_for_review``.)

    A ``zone_id`` asked must be one the caller manages. Check-ins left open
    past their shift are closed first: they become hours to review (flagged
    missing_check_out), so what the caller reads is complete.
    """
    session = current_session()
    principal = auth.current_principal()
    if query.get("zone_id") is not None:
        _require_zone_manager(query["zone_id"], which=f"zone {query['zone_id']}")
    checks.close_overdue(session, now=clock.now(), policy=check_policy())
    session.commit()
    return None if "admin" in principal.roles else principal.liaison_zone_ids


def _under_review(item: checks.HoursUnderReview) -> dict:
    """An hours entry as its reviewer sees it: whose, in which zone, and where the check-in and check-out were."""
    return {**hours_entry(item.entry), "volunteer_id": item.entry.volunteer_id,
            "volunteer_name": item.entry.volunteer.real_name, "zone_id": item.entry.shift.zone_id,
            "check_in": item.check_in, "check_out": item.check_out}


@blp.route("/hours/<int:hours_id>/approve")
class HoursApprove(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ReviewIn)
    @blp.response(200, HoursOut)
    def post(self, data, hours_id):
        """Approve pending hours (the liaison of the shift's zone, admins)"""
        entry = _review(hours_id, True, data.get("note"))
        current_session().commit()
        return hours_entry(entry)


@blp.route("/hours/<int:hours_id>/decline")
class HoursDecline(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(ReviewIn)
    @blp.response(200, HoursOut)
    def post(self, data, hours_id):
        """Decline pending hours; the entry stays, marked declined"""
        entry = _review(hours_id, False, data.get("note"))
        current_session().commit()
        return hours_entry(entry)


@blp.route("/hours/review")
class HoursBulkReview(MethodView):
    @auth.access(SHIFT_MANAGERS)
    @blp.arguments(BulkReviewIn)
    @blp.response(200, BulkReviewOut)
    def post(self, data):
        """Approve or decline many entries at once; a result per entry"""
        session = current_session()
        decided = checks.review_many(session, data["ids"], approve=data["action"] == "approve", note=data.get("note"),
                                     reviewer_id=auth.current_principal().user_id, now=clock.now(),
                                     may_review=lambda entry: _require_zone_manager(entry.shift.zone_id))
        session.commit()
        results = {}
        for hours_id, outcome in decided.items():
            if isinstance(outcome, GridsvcError):
                results[hours_id] = {"id": hours_id, "status": outcome.status, "detail": outcome.detail}
                if "status_now" in outcome.extra:  # an entry already decided: its decision, as the single review's 409
                    results[hours_id]["hours_status"] = outcome.extra["status_now"]
            else:
                results[hours_id] = {"id": hours_id, "status": 200, "hours_status": outcome.status}
        return {"results": [results[hours_id] for hours_id in dict.fromkeys(data["ids"])]}
