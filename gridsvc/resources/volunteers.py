"""Volunteers: registration, profiles and search, positions, hours and their exports."""
from __future__ import annotations

import functools
import hmac

from flask import Response, current_app, request, url_for
from flask.views import MethodView
from sqlalchemy import select

from gridsvc import auth, clock
from gridsvc.api import Blueprint
from gridsvc.csvexport import csv_response
from gridsvc.db import current_session
from gridsvc.errors import Forbidden, Unauthorized, ValidationFailed
from gridsvc.fields import as_shape
from gridsvc.ical import shifts_calendar
from gridsvc.models import Community, Shift, User, Volunteer
from gridsvc.schemas.shifts import VolunteerSignupPageOut, VolunteerSignupQuery
from gridsvc.schemas.common import PageQuery
from gridsvc.schemas.volunteers import (CalendarQuery, HoursQuery, HoursReportOut, LocationIn, LocationOut,
                                        PositionPageOut, SkillCreate, SkillOut, SkillQuery, SkillUpdate, VolunteerCreate,
                                        VolunteerOut, VolunteerPageOut, VolunteerQuery, VolunteerUpdate)
from gridsvc.services import checks, shifts as shift_service, volunteers as service
from gridsvc.services.communities import community_timezones

blp = Blueprint("volunteers", __name__, description="Volunteers (志愿者), skills, positions and service hours")

SEARCHER_ROLES = ("admin", "department", "liaison", "planner")
POSITION_SEARCHER_ROLES = ("admin", "liaison")
# The token is checked by the rule, the roles by _searchers_only: a search by position is for fewer roles than the
# others, and a volunteer asking for one is told who may (not the list of roles that may search otherwise).
SEARCHERS = auth.Rule("volunteer-searchers",
                      note="Roles: admin, department, liaison, planner; a search by position (near): admins, and "
                           "liaisons for the volunteers of their zones.")
POSITION_SEARCH_REFUSED = ("Only admins, and liaisons for the volunteers who work in their zones, may search "
                           "volunteers by position (near): the distances would locate them.")
NO_PROFILE_YET = "You have no volunteer profile yet: register with POST /api/v1/volunteers."
RECORD_REFUSED = ("Only the volunteer, an admin, the liaison of their home zone, or the liaison of a zone where they "
                  "signed up or served (that zone's entries) may see this.")


def _searchers_only(view):
    """The volunteer search's role check, before the query is parsed (as a rule's would be): any of
    ``SEARCHER_ROLES``, and for a search by position one of ``POSITION_SEARCHER_ROLES``."""

    @functools.wraps(view)
    def gated(*args, **kwargs):
        principal = auth.current_principal()
        if "near" in request.args:
            allowed, detail = POSITION_SEARCHER_ROLES, POSITION_SEARCH_REFUSED
        else:
            allowed = SEARCHER_ROLES
            detail = (f"Searching volunteers needs one of the roles {', '.join(SEARCHER_ROLES)}; "
                      f"you have {', '.join(sorted(principal.roles)) or 'none'}.")
        if not principal.has_any(allowed):
            raise Forbidden(detail, required_roles=sorted(allowed))
        return view(*args, **kwargs)

    return gated


def _shift_to_staff(session, shift_id: int, *, now) -> Shift:
    """The shift of a ``free_for`` search: one that takes sign-ups (else a 422 on the parameter)."""
    shift = session.get(Shift, shift_id)
    why = ("does not exist" if shift is None else "is cancelled" if shift.status == "cancelled"
           else "has started: it takes no sign-ups" if shift.phase(now) != "upcoming" else None)
    if why:
        raise ValidationFailed(f"Shift {shift_id} {why}.", errors={"free_for": [f"shift {shift_id} {why}"]})
    return shift


def _private(volunteer: Volunteer, zones: set[int] | None = None) -> bool:
    """Whether the caller sees the volunteer's personal data (phone, position, duty): ``auth.may_see_volunteer``,
    with the zones the volunteer works in now unless given."""
    principal = auth.current_principal()
    if zones is None and principal.user_id != volunteer.user_id and "admin" not in principal.roles:
        zones = service.zones_worked_in(current_session(), volunteer, now=clock.now())
    return auth.may_see_volunteer(principal, volunteer.user_id, zones or set())


def record_zones(volunteer: Volunteer) -> frozenset[int] | None:
    """The zones whose entries of the volunteer's record (sign-ups, hours, calendar) the caller reads; None: all.
    A liaison other than the home zone's reads their zones' entries once the volunteer has signed up or served
    there, even after they moved on (those entries are the zone's record too), and nothing of other zones'
    shifts; anyone else who is not the volunteer or an admin is refused (403)."""
    zones = auth.volunteer_record_zones(auth.current_principal(), volunteer.user_id, volunteer.home_zone_id)
    if zones is None:
        return None
    auth.require(bool(zones) and service.served_in(current_session(), volunteer.id, zones), RECORD_REFUSED)
    return zones


def _in_zones(items, zones: frozenset[int] | None, shift_of):
    """The items (sign-ups, hours entries) whose shift is in ``zones``; all of them when ``zones`` is None."""
    return list(items) if zones is None else [item for item in items if shift_of(item).zone_id in zones]


def volunteer_view(volunteer: Volunteer, *, private: bool, distance_m: float | None = None,
                   on_duty: bool | None = None) -> dict:
    session = current_session()
    position = None
    if private and volunteer.last_position is not None:
        point = as_shape(volunteer.last_position)
        position = {"lon": point.x, "lat": point.y, "crs": "wgs84", "accuracy_m": volunteer.last_accuracy_m,
                    "at": volunteer.last_position_at}
    principal = auth.current_principal()
    own = principal.user_id == volunteer.user_id
    # whether they are on duty is for whoever may search volunteers (for planning), themselves and those who see
    # their position: a worker or another volunteer reading a profile learnt when someone checked in and out
    sees_duty = private or own or principal.has_any(SEARCHER_ROLES)
    if on_duty is None and sees_duty:
        on_duty = service.is_on_duty(session, volunteer, clock.now())
    calendar = None
    if own:
        key = auth.calendar_key(volunteer.id, volunteer.user.token_version)
        calendar = url_for("volunteers.VolunteerCalendar", volunteer_id=volunteer.id, key=key, _external=True)
    return {
        "id": volunteer.id, "user_id": volunteer.user_id, "username": volunteer.user.username,
        "real_name": volunteer.real_name,
        "phone": volunteer.phone if private else auth.mask_phone(volunteer.phone),
        "national_volunteer_id": volunteer.national_volunteer_id if private else None,
        "team": volunteer.team, "home_zone_id": volunteer.home_zone_id, "skills": volunteer.skill_codes,
        "availability": volunteer.availability,
        "on_duty": on_duty if sees_duty else None,
        # a check-in left open past its shift's end is not duty (nor its shift's id); where someone is on
        # duty (the shift's place) is theirs, their zones' liaisons' and admins', like their position
        "on_duty_shift_id": volunteer.on_duty_shift_id if on_duty and private else None,
        "last_position": position, "distance_m": None if distance_m is None else round(distance_m, 1),
        "calendar_url": calendar, "created_at": volunteer.created_at,
    }


@blp.route("/skills")
class Skills(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(SkillQuery, location="query")
    @blp.response(200, SkillOut(many=True))
    def get(self, query):
        """The managed skill list (without the retired skills unless asked)"""
        return service.list_skills(current_session(), **query)

    @auth.access(auth.ADMIN)
    @blp.arguments(SkillCreate)
    @blp.response(201, SkillOut)
    def post(self, data):
        """Add a skill to the list"""
        session = current_session()
        skill = service.create_skill(session, **data)
        session.commit()
        return skill


@blp.route("/skills/<string:code>")
class SkillItem(MethodView):
    @auth.access(auth.ADMIN)
    @blp.arguments(SkillUpdate)
    @blp.response(200, SkillOut)
    def patch(self, data, code):
        """Correct a skill's names (its code stays), or retire it (`retired`) or bring it back

        A retired skill leaves the list; the volunteers and shifts holding it keep it (a profile or shift sent
        back whole with it is fine), and adding it anew is a 422.
        """
        session = current_session()
        skill = service.update_skill(session, code, data, now=clock.now())
        session.commit()
        return skill

    @auth.access(auth.ADMIN)
    @blp.response(204)
    def delete(self, code):
        """Remove a skill nobody uses (409 while a volunteer, shift or service type holds it)"""
        session = current_session()
        service.delete_skill(session, code)
        session.commit()


@blp.route("/volunteers")
class Volunteers(MethodView):
    @auth.access(SEARCHERS)
    @_searchers_only
    @blp.arguments(VolunteerQuery, location="query")
    @blp.response(200, VolunteerPageOut)
    def get(self, query):
        """Find volunteers by home zone, skill, team, on duty, or near a point (nearest first)

        A search by position (`near`) is for those who may see volunteers' positions: an admin finds anyone, a
        liaison the volunteers who work in their zones now (home zone, a place in a shift not over, hours waiting
        for review there); other roles are refused (403). Otherwise the distances, or the radius itself, would
        locate a volunteer whose position is private. Without `near`, a liaison lists the volunteers of their
        communities (home zone there) and those who work in their zones now.
        """
        session = current_session()
        principal = auth.current_principal()
        if "near" in query and "admin" not in principal.roles:  # a liaison (_searchers_only refused the others)
            query["visible_in_zones"] = principal.liaison_zone_ids
            query["or_user_id"] = principal.user_id
        elif not principal.has_any(("admin", "planner", "department")):
            # A liaison lists their communities' volunteers (home zone there) and those who work in their zones:
            # another park's people, their names, skills and hours of availability, are not theirs to browse
            # (PIPL: no more than the work needs).
            query["of_communities_of"] = principal.liaison_zone_ids
            query["or_user_id"] = principal.user_id
        now = clock.now()
        if "free_for" in query:
            query["free_for_shift"] = _shift_to_staff(session, query.pop("free_for"), now=now)
        page = service.search(session, now=now, **query)
        items = []
        for found in page.items:
            private = auth.may_see_volunteer(principal, found.volunteer.user_id, found.zones_worked)
            items.append(volunteer_view(found.volunteer, private=private, distance_m=found.distance_m,
                                        on_duty=found.on_duty))
        return {"total": page.total, "limit": page.limit, "offset": page.offset, "items": items}

    @auth.access(auth.SIGNED_IN)
    @blp.arguments(VolunteerCreate)
    @blp.response(201, VolunteerOut)
    def post(self, data):
        """Register as a volunteer (admins and liaisons may register someone else's account)"""
        session = current_session()
        principal = auth.current_principal()
        user_id = data.pop("user_id", principal.user_id)
        if user_id != principal.user_id:
            auth.require(principal.has_any(("admin", "liaison")), "Only admins and liaisons may register another account.")
            # a liaison registers people into their own zones: elsewhere it is another liaison's say, and with
            # no home zone nobody's, not even theirs (they could neither see the phone nor correct the profile)
            home = data.get("home_zone_id")
            auth.require("admin" in principal.roles or (home is not None and principal.is_liaison_of(home)),
                         "A liaison registers volunteers into a zone they manage: give its home_zone_id.")
        volunteer = service.register(session, user_id=user_id, **data)
        session.commit()
        return volunteer_view(volunteer, private=True), {
            "Location": url_for("volunteers.VolunteerItem", volunteer_id=volunteer.id)}


@blp.route("/volunteers/<int:volunteer_id>")
class VolunteerItem(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(200, VolunteerOut)
    def get(self, volunteer_id):
        """One volunteer (phone masked and positions hidden unless you may see them)"""
        volunteer = service.get_volunteer(current_session(), volunteer_id)
        return volunteer_view(volunteer, private=_private(volunteer))

    @auth.access(auth.SIGNED_IN)
    @blp.arguments(VolunteerUpdate)
    @blp.response(200, VolunteerOut)
    def patch(self, data, volunteer_id):
        """Change a volunteer's profile (the volunteer, the liaison of their home zone, or an admin)

        A liaison corrects the profiles of their zones' volunteers (those they register, say) and may move one
        only to another zone they manage. Lists (`skills`, `availability`) are replaced as sent.
        """
        session = current_session()
        volunteer = service.get_volunteer(session, volunteer_id)
        principal = auth.current_principal()
        if principal.user_id != volunteer.user_id and "admin" not in principal.roles:
            auth.require(volunteer.home_zone_id is not None and principal.is_liaison_of(volunteer.home_zone_id),
                         "Only the volunteer, the liaison of their home zone or an admin may change this profile.")
            if "home_zone_id" in data:
                auth.require(data["home_zone_id"] is not None and principal.is_liaison_of(data["home_zone_id"]),
                             "A liaison moves a volunteer only to another zone they manage.")
        if "skills" in data:  # a skill added may be what a shift they wait for requires: its place is theirs now
            volunteer = shift_service.with_waitlists_run_again(
                session, volunteer_id, lambda: service.update(session, volunteer_id, data), now=clock.now())
        else:
            volunteer = service.update(session, volunteer_id, data)
        session.commit()
        return volunteer_view(volunteer, private=True)


@blp.route("/me/volunteer")
class MyVolunteer(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.response(200, VolunteerOut)
    @blp.alt_response(404, description=NO_PROFILE_YET)
    def get(self):
        """Your volunteer profile, with your calendar URL"""
        volunteer = service.require_volunteer_of_user(current_session(), auth.current_principal().user_id)
        return volunteer_view(volunteer, private=True)


@blp.route("/me/location")
class MyLocation(MethodView):
    @auth.access(auth.roles("volunteer"))
    @blp.arguments(LocationIn)
    @blp.response(201, LocationOut)
    @blp.alt_response(404, description=NO_PROFILE_YET)
    def post(self, data):
        """Report your position (GCJ-02 and BD-09 are converted): what dispatch uses

        Send `client_time`, when the phone took the fix: one sent late (queued without signal) joins the history
        in its place and does not replace a newer last known position. A fix within 50 m of one the history
        holds from within a minute of it, and no more accurate (`GRIDSVC_POSITION_HISTORY_METRES`, `_SECONDS`),
        updates the last known position only (`in_history: false`).
        """
        session = current_session()
        volunteer = service.require_volunteer_of_user(session, auth.current_principal().user_id, for_update=True)
        point = data["point"]
        policy = checks.CheckPolicy.of_app(current_app)
        now = clock.now()
        at = service.fix_time(data.get("client_time"), now=now, max_age=policy.offline_max_age,
                              skew=policy.clock_skew,
                              default_tz=service.volunteer_clock(session, volunteer, now=now,
                                                                 default_tz=clock.default_timezone()))
        in_history = service.record_position(session, volunteer, lon=point.lon, lat=point.lat, crs=point.input_crs,
                                             accuracy_m=data.get("accuracy_m"), at=at,
                                             thinning=service.HistoryThinning.of_config(current_app.config))
        session.commit()
        return {"point": point.as_dict(), "input": point.input_dict(), "accuracy_m": data.get("accuracy_m"),
                "recorded_at": at, "in_history": in_history}


@blp.route("/me/locations")
class MyLocations(MethodView):
    # any signed-in account with a profile: one whose volunteer role was taken away still has its positions
    # kept (until purged), and still may see them
    @auth.access(auth.SIGNED_IN)
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, PositionPageOut)
    @blp.alt_response(404, description=NO_PROFILE_YET)
    def get(self, query):
        """The positions you reported (`POST /me/location`) that are kept, newest first, and for how long

        What the service holds of where you were, yours to see (PIPL art. 45); the check-ins' positions are in
        your check-in record."""
        session = current_session()
        volunteer = service.require_volunteer_of_user(session, auth.current_principal().user_id)
        page = service.position_history(session, volunteer.id, **query)
        return {"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset,
                "retention_days": float(current_app.config["GRIDSVC_POSITION_RETENTION_DAYS"])}


def _record_brought_up_to_date(volunteer_id: int) -> tuple[Volunteer, frozenset[int] | None]:
    """The volunteer whose shifts or hours the caller reads (if they may) and the zones whose entries they read
    (``record_zones``). It writes, and commits: a check-in left open past its shift is closed first (as
    ``gridsvc tick`` would close it), so that the record read is complete."""
    session = current_session()
    volunteer = service.get_volunteer(session, volunteer_id)
    zones = record_zones(volunteer)
    checks.close_overdue(session, now=clock.now(), policy=checks.CheckPolicy.of_app(current_app),
                         volunteer_id=volunteer.id)
    session.commit()
    return volunteer, zones


def _hours_context(volunteer_id: int, query: dict):
    """The volunteer, their entries started on the days asked (of the caller's zones' shifts, for a liaison
    other than the home zone's), and each entry's community's clock: an entry's day, month and times are those
    of the park where it was served (see ``checks.hours_of``)."""
    session = current_session()
    volunteer, zones = _record_brought_up_to_date(volunteer_id)
    entries = _in_zones(checks.hours_of(session, volunteer_id, first_day=query.get("start"), last_day=query.get("end")),
                        zones, lambda entry: entry.shift)
    return volunteer, entries, checks.entry_clocks(session, entries)


def hours_entry(entry) -> dict:
    return {"id": entry.id, "shift_id": entry.shift_id, "shift_title": entry.shift.title, "activity": entry.shift.activity,
            "started_at": entry.started_at, "ended_at": entry.ended_at, "hours": float(entry.hours),
            "status": entry.status, "auto_approved": entry.auto_approved, "flagged": entry.flagged,
            "flag_reason": entry.flag_reason, "review_note": entry.review_note, "reviewed_at": entry.reviewed_at,
            "reviewed_by_id": entry.reviewed_by_id}


@blp.route("/volunteers/<int:volunteer_id>/signups")
class VolunteerSignups(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.arguments(VolunteerSignupQuery, location="query")
    @blp.response(200, VolunteerSignupPageOut)
    def get(self, query, volunteer_id):
        """A volunteer's shifts ("my shifts"): confirmed or waitlisted with the place in line, and checked in or not
        (the volunteer, the liaison of their home zone, admins; another zone's liaison, its shifts only)"""
        volunteer, zones = _record_brought_up_to_date(volunteer_id)
        return shift_service.volunteer_signups(current_session(), volunteer.id, now=clock.now(), zone_ids=zones,
                                               checkout_grace=checks.CheckPolicy.of_app(current_app).checkout_grace,
                                               **query)


@blp.route("/volunteers/<int:volunteer_id>/hours")
class VolunteerHours(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.arguments(HoursQuery, location="query")
    @blp.response(200, HoursReportOut)
    def get(self, query, volunteer_id):
        """Service hours: entries and totals by month and activity (the volunteer, the liaison of their home zone,
        admins; another zone's liaison, the entries of its shifts, and their totals)"""
        volunteer, entries, clocks = _hours_context(volunteer_id, query)
        return {"volunteer_id": volunteer.id, "entries": [hours_entry(e) for e in entries],
                **checks.summarise(entries, clocks)}


CSV_COLUMNS = ["name", "volunteer_id", "activity", "date", "start", "end", "hours", "recording_organisation", "status"]


@blp.route("/volunteers/<int:volunteer_id>/hours.csv")
class VolunteerHoursCsv(MethodView):
    @auth.access(auth.SIGNED_IN)
    @blp.arguments(HoursQuery, location="query")
    @blp.response(200, content_type="text/csv")
    @blp.doc(responses={"200": {"content": {"text/csv": {"schema": {"type": "string"}}}}})
    def get(self, query, volunteer_id):
        """The volunteer's service record as CSV, with the national volunteer record's fields (whose entries: as
        for the hours; the national volunteer ID only for those who see it in the profile, else empty)"""
        volunteer, entries, clocks = _hours_context(volunteer_id, query)
        session = current_session()
        # the recording organisation of each entry: its shift's community (one query for them all)
        organisations = _community_names(session, {entry.shift.community_id for entry in entries})
        # the national volunteer ID is the person's, not the record's: written for whoever sees their personal data
        # (as GET /volunteers/{id} shows it), left empty for a liaison reading their zones' entries only
        national_id = (volunteer.national_volunteer_id or "") if _private(volunteer) else ""
        rows = []
        # the national record lists service: a stint that counts 0.00 hours (it missed the shift, checked out by
        # mistake before its start, or lasted under 18 s, a tap in and out) is in the JSON record, not here
        for entry in (entry for entry in entries if entry.hours > 0):
            # on the clock of the park where it was served: the times its shift was posted at
            tz = clocks[entry.shift.community_id]
            start, end = entry.started_at.astimezone(tz), entry.ended_at.astimezone(tz)
            # an overnight stint's end carries its own date: "01:00:00" beside the start's date read as that
            # morning; to the second, as the hours are counted: 13:00-15:44 read 2.73 h beside "2.74" for a stint
            # to 15:44:14
            end_text = end.strftime("%H:%M:%S") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M:%S")
            rows.append([volunteer.real_name, national_id, entry.shift.activity,
                         start.date().isoformat(), start.strftime("%H:%M:%S"), end_text,
                         f"{entry.hours:.2f}", organisations[entry.shift.community_id], entry.status])
        return csv_response(CSV_COLUMNS, rows, f"volunteer-{volunteer.id}-hours.csv", personal=True,
                            text_columns={"volunteer_id"})


@blp.route("/volunteers/<int:volunteer_id>/shifts.ics")
class VolunteerCalendar(MethodView):
    @auth.access(auth.CALENDAR)
    @blp.arguments(CalendarQuery, location="query", as_kwargs=True)  # (another parameter, or key twice: a 422)
    @blp.response(200, content_type="text/calendar")
    @blp.doc(responses={"200": {"content": {"text/calendar": {"schema": {"type": "string"}}}}})
    def get(self, volunteer_id, key=None):
        """Your shifts as an iCalendar feed (each on its park's clock, TZID Asia/Shanghai for the demo park): a bearer token, or the key from your calendar_url"""
        session = current_session()
        principal = auth.current_principal()
        zones = None  # the volunteer's own feed: all of it
        # Without a token, the same 401 for an id with no volunteer as for a wrong key: a 404 told anyone which
        # volunteer ids exist (how many there are, when one registers).
        if key is not None:
            volunteer = session.get(Volunteer, volunteer_id)
            expected = (None if volunteer is None else
                        auth.calendar_key(volunteer.id, session.get(User, volunteer.user_id).token_version))
            if expected is None or not _same(key, expected):
                raise Unauthorized("The calendar key is wrong or has been retired; copy calendar_url again.")
        elif principal.user_id is None:
            raise Unauthorized("This calendar needs a token or its key (see calendar_url in /me/volunteer).")
        else:
            volunteer = service.get_volunteer(session, volunteer_id)
            zones = record_zones(volunteer)
        events = []
        signups = _in_zones(shift_service.calendar_signups(session, volunteer.id, now=clock.now()), zones,
                            lambda signup: signup.shift)
        # each shift at its park's clock: one in a park on Xinjiang time is not written as Shanghai's
        clocks = community_timezones(session, (signup.shift.community_id for signup in signups))
        # where: the zone and its park (a volunteer may serve in two parks, each with a "G01")
        parks = _community_names(session, {signup.shift.community_id for signup in signups})
        for signup in signups:
            shift = signup.shift
            events.append({"uid": f"shift-{shift.id}-volunteer-{volunteer.id}@gridsvc", "title": shift.title,
                           "starts_at": shift.starts_at, "ends_at": shift.ends_at,
                           "tzid": clocks[shift.community_id].key,
                           # the shift cancelled, or the place given up
                           "status": "CANCELLED" if "cancelled" in (shift.status, signup.status) else
                           ("CONFIRMED" if signup.status == "confirmed" else "TENTATIVE"),
                           "location": ", ".join(filter(None, [shift.zone.name if shift.zone else None,
                                                               parks[shift.community_id]])),
                           "description": f"{shift.activity}; {signup.status}",
                           # a moved or cancelled shift, or a place confirmed from the waitlist: a newer SEQUENCE
                           "last_modified": max(shift.updated_at, signup.updated_at)})
        body = shifts_calendar(events, name=f"{volunteer.real_name} 志愿服务班次")
        return Response(body, mimetype="text/calendar", headers={"Cache-Control": "private, max-age=300"})


def _community_names(session, community_ids: set[int]) -> dict[int, str]:
    return dict(session.execute(select(Community.id, Community.name).where(Community.id.in_(community_ids))).all())


def _same(a: str, b: str) -> bool:

    return hmac.compare_digest(a.encode(), b.encode())

