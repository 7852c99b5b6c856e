"""Service requests: intake, dispatch to the nearest volunteer, liaison and department pool.

Dispatch policy (per community settings come from config for now):
1. candidates: volunteers on duty now (checked in to a shift that has not
   ended), whose account is enabled and still holds the ``volunteer`` role,
   other than the requester (a worker who volunteers raises needs too, and
   is always the nearest to them), with the service's required skill, under
   their open-task cap (assigned or in progress, plus pending offers whose
   deadline has not passed: one let lapse is no task, though nothing has
   moved it on yet), who have not declined this request nor let its offer
   lapse, nor hold its offer now (since it was last reopened: see
   ``_offered_before``), within ``max_distance_m`` of the request, nearest
   first by geodesic distance from their last known position. The PostGIS
   KNN operator (``<->`` on the GiST index) picks the nearest few, then the
   spheroid distance orders them;
2. an offer to the first, with an accept deadline; accept -> assigned;
   decline or deadline -> the next candidate (a refusal). A volunteer who
   checks out (ends their duty) before answering has the offer withdrawn ->
   the next candidate too (not a refusal: they may be asked again once back
   on duty), and may not accept it;
3. no candidate left, or ``max_refusals`` refusals -> the zone's liaison (an
   enabled account holding the ``liaison`` role; when the zone has none, the
   liaison of the zone nearest the request that has one, who then acts as
   the zone's liaison for it);
4. the liaison may escalate to the department pool, where the first member
   of a department allowed that service to claim it owns it.

Deadlines are enforced without a hidden cron: expired offers, and offers to
volunteers no longer on duty, are moved on whenever requests are read (and
before any action on one), and by ``gridsvc tick`` (``expire_offers``).
Check-out is answered by a database function (``gridsvc_check``) in front
of Flask, which knows nothing of offers: that sweep is where they end.

Races: an offer takes the volunteer's offer lock (an advisory lock, tried:
a volunteer another dispatch is offering to is skipped, not waited for) and
re-counts their open tasks under the lock, so a volunteer with cap 1 gets
exactly one offer however many requests are filed at once. A claim is a
conditional UPDATE: of two members claiming at once, one wins, one gets 409.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from shapely.geometry import Point
from sqlalchemy import and_, func, literal, literal_column, or_, select, update
from psycopg2.extras import Json
from sqlalchemy.orm import Session

from gridsvc import spatial as gsql
from gridsvc.clock import parse_date_time
from gridsvc.db import fetch_prepared, statement_text, try_advisory_xact_lock
from gridsvc.errors import Conflict, Forbidden, LockHeldElsewhere, NotFound, StateConflict, ValidationFailed
from gridsvc.models import (OPEN_STATUSES, DepartmentService, RequestEvent, RequestOffer, ServiceRequest, ServiceType,
                            Shift, User, UserRole, Volunteer, VolunteerSkill, Zone)
from gridsvc.services import Page
from gridsvc.services.volunteers import WORKS_IN_NOW, may_volunteer, volunteer_of_user, works_in, works_in_community


@dataclass(frozen=True)
class DispatchPolicy:
    max_distance_m: float = 3000.0
    accept_within: timedelta = timedelta(minutes=5)
    task_cap: int = 1
    max_refusals: int = 3
    zone_reach_m: float = 200.0
    duplicate_m: float = 50.0
    duplicate_window: timedelta = timedelta(hours=24)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DispatchPolicy:
        return cls(max_distance_m=float(config["GRIDSVC_DISPATCH_MAX_DISTANCE_M"]),
                   accept_within=timedelta(minutes=float(config["GRIDSVC_DISPATCH_ACCEPT_MIN"])),
                   task_cap=int(config["GRIDSVC_DISPATCH_TASK_CAP"]),
                   max_refusals=int(config["GRIDSVC_DISPATCH_MAX_REFUSALS"]))


@dataclass(frozen=True)
class Actor:
    """Who acts, in the terms the rules need (built from the request's principal)."""

    user_id: int | None
    roles: frozenset[str] = frozenset()
    liaison_zone_ids: frozenset[int] = frozenset()
    department_ids: frozenset[int] = frozenset()
    volunteer_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def actor_of(session: Session, principal: Any) -> Actor:
    """The signed-in account (an ``auth.Principal``) as an Actor, its volunteer profile looked up when it has the
    role: for the API and Open311 alike."""
    volunteer = volunteer_of_user(session, principal.user_id) if "volunteer" in principal.roles else None
    return Actor(user_id=principal.user_id, roles=principal.roles, liaison_zone_ids=principal.liaison_zone_ids,
                 department_ids=principal.department_ids, volunteer_id=volunteer.id if volunteer else None)


# ---------------------------------------------------------------- the service list


def get_service(session: Session, code: str) -> ServiceType:
    service = session.get(ServiceType, code)
    if service is None:
        raise NotFound(f"Service {code} is not on the service list.")
    return service


def list_services(session: Session) -> list[ServiceType]:
    return list(session.scalars(select(ServiceType).order_by(ServiceType.group, ServiceType.code)))


# An Open311 "string" attribute is a line, "text" a paragraph (as long as a description).
MAX_ATTRIBUTE_TEXT = {"string": 200, "text": 4000}


# Without bounds of its own, a number attribute is at most a quadrillion either way: 1e308 was stored, and
# came back as an integer of 309 digits (a double is exact to 2**53).
MAX_ATTRIBUTE_NUMBER = 1e15


def _out_of_range(value: float, spec: Mapping[str, Any]) -> str | None:
    """Why a number attribute's value does not fit its definition (``integer``, ``minimum``, ``maximum``), or
    None: "people in the household" of -5 or 1.5 was stored."""
    if spec.get("integer") and not float(value).is_integer():
        return "must be a whole number"
    low, high = spec.get("minimum", -MAX_ATTRIBUTE_NUMBER), spec.get("maximum", MAX_ATTRIBUTE_NUMBER)
    if not low <= value <= high:
        return f"must be between {low:g} and {high:g}"
    return None


def _is_iso_datetime(value: Any) -> bool:
    """In the forms the API's times take (``parse_date_time``)."""
    try:
        return isinstance(value, str) and bool(parse_date_time(value))
    except ValueError:
        return False


def validate_attributes(definitions: list[dict[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check values against a service's Open311 attribute definitions."""
    errors: dict[str, list[str]] = {}
    known = {a["code"]: a for a in definitions}
    for code in values:
        if code not in known:
            errors[code] = ["not an attribute of this service"]
    clean: dict[str, Any] = {}
    for code, spec in known.items():
        value = values.get(code)
        if value in (None, "", []):
            if spec.get("required"):
                errors[code] = ["required"]
            continue
        kind = spec.get("datatype", "string")
        allowed = {v["key"] for v in spec.get("values", [])}
        # (list keys are text: a JSON list or object is no key, and cannot be looked up in a set)
        if kind in ("string", "text") and not isinstance(value, str):
            errors[code] = ["must be text"]
        elif kind in ("string", "text") and len(value) > MAX_ATTRIBUTE_TEXT[kind]:
            errors[code] = [f"at most {MAX_ATTRIBUTE_TEXT[kind]} characters"]
        elif kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                   or not math.isfinite(value)):
            errors[code] = ["must be a number"]
        elif kind == "number" and (out_of_range := _out_of_range(value, spec)):
            errors[code] = [out_of_range]
        elif kind == "datetime" and not _is_iso_datetime(value):
            errors[code] = ["must be an ISO 8601 date-time"]
        elif kind == "singlevaluelist" and not (isinstance(value, str) and value in allowed):
            errors[code] = [f"must be one of {', '.join(sorted(allowed))}"]
        elif kind == "multivaluelist" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)
                                               and set(value) <= allowed):
            errors[code] = [f"must be a list drawn from {', '.join(sorted(allowed))}"]
        clean[code] = value
    if errors:
        raise ValidationFailed("Some attributes do not fit the service: "
                               + "; ".join(f"{k}: {v[0]}" for k, v in errors.items()), errors={"attributes": errors})
    return clean


# ---------------------------------------------------------------- intake


# (the degree box lets the zone's GiST index find the candidates: a server
# holding many parks has thousands of zones; the spheroid then decides)
_NEAREST_ZONE = """
    SELECT id, community_id, code, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) AS d
    FROM zone
    WHERE geom && ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326)
      AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(reach)s)
    ORDER BY d LIMIT 1"""


def _nearest_zone(session: Session, lon: float, lat: float, reach_m: float) -> tuple[int, int, str]:
    """(zone id, community id, a note) of the nearest zone within reach of a point in none."""
    minx, miny, maxx, maxy = gsql.degree_box(lon, lat, reach_m)
    row = fetch_prepared(session, _NEAREST_ZONE, {"lon": lon, "lat": lat, "reach": float(reach_m),
                                                  "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy})
    if row is None:
        raise ValidationFailed(f"The point is in no zone and more than {reach_m:.0f} m from every zone.",
                               errors={"lon": ["outside every zone"]})
    return row[0], row[1], f"The point is in no zone; it went to the nearest, {row[2]}, {row[3]:.0f} m away."


# Filing is the hottest write of requests: a few prepared statements, no ORM.
# First, in one read: the service, the zone holding the point, the possible
# duplicates, the new request's id (so that the insert can be sent with the
# first offer in one round trip), and the first candidates (see below).
# Duplicates: a degree box that surely holds the circle (``degree_box``, at
# any latitude) lets the GiST index answer first.
_INTAKE = """
SELECT st.required_skill, st.sla_minutes, st.attributes::text AS attributes, z.id AS zone_id, z.community_id,
       ARRAY(SELECT r.id FROM (SELECT id, service_code, created_at, location FROM service_request
                               WHERE location && ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326)
                               OFFSET 0) r
             WHERE r.service_code = st.code AND r.created_at > %(since)s
               AND ST_DWithin(r.location::geography, h.here::geography, %(metres)s)
             ORDER BY r.id) AS duplicates,
       nextval(pg_get_serial_sequence('service_request', 'id')) AS request_id
FROM service_type st
CROSS JOIN (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS here) h
LEFT JOIN LATERAL (SELECT id, community_id FROM zone WHERE ST_Covers(geom, h.here) ORDER BY id LIMIT 1) z ON true
WHERE st.code = %(code)s"""

# The request, as the liaison's until dispatch offers it, and its first event.
_INSERT_REQUEST = """
WITH request AS (
    INSERT INTO service_request (id, community_id, zone_id, zone_note, service_code, description, location, input_crs,
                                 attributes, media_urls, contact, requester_id, status, duplicate_of_ids, sla_due_at,
                                 created_at, updated_at, created_by_id, updated_by_id)
    VALUES (%(id)s, %(community_id)s, %(zone_id)s, %(zone_note)s, %(code)s, %(description)s,
            ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(input_crs)s, %(attributes)s, %(media_urls)s,
            %(contact)s, %(requester_id)s, 'with_liaison', %(duplicates)s, %(sla_due_at)s, %(now)s, %(now)s,
            %(actor_id)s, %(actor_id)s)
    RETURNING id)
INSERT INTO request_event (request_id, actor_id, action, from_status, to_status, note, position, system, at)
SELECT id, %(requester_id)s, 'file', NULL, 'new', %(zone_note)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326),
       false, clock_timestamp()
FROM request
RETURNING request_id"""


@dataclass(frozen=True)
class FiledRequest:
    """A request as filed and offered, with the fields of ServiceRequest that views read
    (an ORM instance costs more to build than the rest of filing in Python)."""

    id: int
    community_id: int
    zone_id: int
    zone_note: str | None
    service_code: str
    description: str
    location: Point
    input_crs: str
    attributes: dict[str, Any]
    media_urls: list[str]
    contact: dict[str, Any] | None
    requester_id: int | None
    duplicate_of_ids: list[int]
    sla_due_at: datetime
    created_at: datetime
    status: str = "offered"
    volunteer_id: int | None = None
    liaison_id: int | None = None
    department_id: int | None = None
    claimed_by_id: int | None = None
    refusals: int = 0
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    rating: int | None = None
    feedback: str | None = None


def file_request(session: Session, *, requester_id: int | None, service_code: str, description: str,
                 lon: float, lat: float, input_crs: str, attributes: Mapping[str, Any], media_urls: list[str],
                 now: datetime, policy: DispatchPolicy,
                 contact: Mapping[str, Any] | None = None) -> tuple[ServiceRequest | FiledRequest, Offer | None]:
    """File a request and dispatch it at once.

    Returns the request and the offer made, if any. With an offer the
    request is what was written (not read back); without one it is the
    persistent row, with the liaison.
    """
    minx, miny, maxx, maxy = gsql.degree_box(lon, lat, policy.duplicate_m)
    rows = fetch_prepared(session, _INTAKE_AND_CANDIDATES, {
        "code": service_code, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy,
        "since": now - policy.duplicate_window,
        "metres": float(policy.duplicate_m),
        **_candidate_params(lon, lat, now, policy, None, (), OFFER_BATCH, requester_id)}, many=True)
    if not rows:
        raise ValidationFailed(f"{service_code} is not on the service list; see /api/v1/services.",
                               errors={"service_code": [f"unknown service {service_code}"]})
    # (the service's attribute definitions come as text: each candidate row repeats them)
    skill, sla_minutes, definitions, zone_id, community_id, duplicates, request_id = rows[0][:7]
    clean = validate_attributes(json.loads(definitions), attributes)
    note = None
    if zone_id is None:
        zone_id, community_id, note = _nearest_zone(session, lon, lat, policy.zone_reach_m)
    actor_id = session.info.get("actor_id")
    values = {"id": request_id, "community_id": community_id, "zone_id": zone_id, "zone_note": note, "code": service_code,
              "description": description, "lon": lon, "lat": lat, "input_crs": input_crs, "attributes": Json(clean),
              "media_urls": Json(media_urls), "contact": Json(dict(contact)) if contact else None,
              "requester_id": requester_id, "duplicates": duplicates,
              "sla_due_at": now + timedelta(minutes=sla_minutes), "now": now, "actor_id": actor_id}
    first = candidates(session, lon=lon, lat=lat, skill=skill, now=now, policy=policy, exclude=(),
                       limit=OFFER_BATCH, requester_id=requester_id,
                       first_rows=[row[7:] for row in rows if row[7] is not None])
    offer = _offer_to_nearest(session, request_id, lon=lon, lat=lat, skill=skill, tried=set(), from_status="new",
                              now=now, policy=policy, requester_id=requester_id, first_batch=first, filing=values)
    if offer is None:
        request = session.get(ServiceRequest, request_id)
        _to_liaison(session, request, "new")
        return request, None
    request = FiledRequest(
        id=request_id, community_id=community_id, zone_id=zone_id, zone_note=note, service_code=service_code,
        description=description, location=Point(lon, lat), input_crs=input_crs, attributes=clean,
        media_urls=media_urls, contact=dict(contact) if contact else None, requester_id=requester_id,
        duplicate_of_ids=duplicates, sla_due_at=values["sla_due_at"], created_at=now)
    return request, offer


def _event(session: Session, request: ServiceRequest, actor_id: int | None, action: str, from_status: str | None,
           to_status: str | None, *, note: str | None = None, lon: float | None = None, lat: float | None = None,
           system: bool = False) -> RequestEvent:
    event = RequestEvent(request_id=request.id, actor_id=actor_id, action=action, from_status=from_status,
                         to_status=to_status, note=note, system=system,
                         position=gsql.point(lon, lat) if lon is not None else None)
    session.add(event)
    return event


# ---------------------------------------------------------------- dispatch


def _open_tasks(volunteer_id_column, now):
    """SQL: a volunteer's open tasks at ``now`` (a time or an SQL expression): requests they hold, plus pending
    offers not past their deadline (one past it stays pending until a read or `gridsvc tick` moves it on, and
    the volunteer who let it lapse is no busier for it)."""
    held = (select(func.count()).select_from(ServiceRequest)
            .where(ServiceRequest.volunteer_id == volunteer_id_column, ServiceRequest.status.in_(("assigned", "in_progress")))
            .scalar_subquery())
    offered = (select(func.count()).select_from(RequestOffer)
               .where(RequestOffer.volunteer_id == volunteer_id_column, RequestOffer.outcome == "pending",
                      RequestOffer.deadline >= now)
               .scalar_subquery())
    return held + offered


@dataclass(frozen=True)
class Candidate:
    volunteer_id: int
    distance_m: float


# The candidate query (see the module docstring), prepared once per connection.
# KNN on the partial on-duty index, in planar degrees; each row also carries
# its degree distance, for candidates() to know which rows are surely the
# nearest on the ground. The open-task count is _open_tasks itself, written out.
# The account may volunteer: a disabled account, or one whose volunteer role
# was taken away, keeps its profile and check-in but is asked nothing. One
# scalar subquery, probed per row the index gives (app_user and user_role by
# primary key): an EXISTS in WHERE would be planned as a semi-join driven
# from user_role, every volunteer's account (350 ms at 100k volunteers
# instead of 2), and the KNN index would no longer pick the nearest few.
_MAY_VOLUNTEER = """(SELECT NOT u.disabled AND EXISTS (SELECT FROM user_role ur WHERE ur.user_id = u.id
                                                        AND ur.role = 'volunteer')
           FROM app_user u WHERE u.id = v.user_id)"""
_CANDIDATES = """
    SELECT v.id, ST_Distance(v.last_position::geography,
                             ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) AS d,
           v.last_position <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS degrees
    FROM volunteer v JOIN shift s ON s.id = v.on_duty_shift_id
    WHERE s.ends_at > %(now)s AND v.last_position IS NOT NULL AND v.on_duty_shift_id IS NOT NULL
      AND v.user_id IS DISTINCT FROM %(requester_id)s
      AND {may_volunteer}
      AND {open_tasks} < %(cap)s
      {skill}
      AND v.id <> ALL(%(excluded)s::int[])
      {among}
    ORDER BY v.last_position <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)
    LIMIT %(few)s"""
# Two texts rather than "skill IS NULL OR EXISTS (...)": with the OR, PostgreSQL
# hashes every volunteer of the skill first (26k rows at 100k volunteers)
# instead of probing the index for the few nearest. Likewise the ranking
# limited to the volunteers a liaison may locate (``among``) has texts of its
# own: on a short list of ids the primary key finds them faster than a KNN
# walk past everyone else on duty.
# (its now is the statements' own %(now)s parameter, the service's clock; the
# compiler doubles the % of a literal column, as it would in plain text)
_OPEN_TASKS_OF_V = statement_text(_open_tasks(literal_column("v.id"), literal_column("%(now)s")),
                                  literal=True)[0].replace("%%(now)s", "%(now)s")
_WITH_SKILL = "AND EXISTS (SELECT 1 FROM volunteer_skill vs WHERE vs.volunteer_id = v.id AND vs.skill_code = %(skill)s)"
_AMONG = "AND v.id = ANY(%(among)s::int[])"
_CANDIDATE_STATEMENTS = {
    (with_skill, limited): _CANDIDATES.format(open_tasks=_OPEN_TASKS_OF_V, may_volunteer=_MAY_VOLUNTEER,
                                              skill=_WITH_SKILL if with_skill else "", among=_AMONG if limited else "")
    for with_skill in (True, False) for limited in (True, False)}
# Candidates read at a time when offering: the first usually takes it.
OFFER_BATCH = 3


def _first_read(limit: int) -> int:
    """Rows read first from the KNN index for ``limit`` candidates (see candidates())."""
    return 2 * limit + 4

# Filing's first read: the intake (above) and, in the same statement, the
# first candidates for the service's own skill. Here the skill is a column,
# not a parameter: a count under the OR is probed per candidate row (it
# cannot be hashed like an EXISTS), so the index still gives the nearest few.
# The LIMIT is written out: with it a parameter, PostgreSQL kept planning the
# statement anew on every filing (0.45 ms) rather than use its generic plan.
_INTAKE_AND_CANDIDATES = """
SELECT i.*, c.* FROM ({intake}) i
LEFT JOIN LATERAL ({candidates}) c ON true""".format(intake=_INTAKE, candidates=_CANDIDATES.format(
    open_tasks=_OPEN_TASKS_OF_V, may_volunteer=_MAY_VOLUNTEER, among="", skill=(
        "AND (i.required_skill IS NULL OR (SELECT count(*) FROM volunteer_skill vs "
        "WHERE vs.volunteer_id = v.id AND vs.skill_code = i.required_skill) > 0)")).replace(
    "LIMIT %(few)s", f"LIMIT {_first_read(OFFER_BATCH)}"))


def _metres_per_degree_floor(lat: float, reach_deg: float) -> float:
    """Ground metres of one planar degree, at least, within ``reach_deg`` of
    latitude ``lat``: the east-west scale where it is smallest (WGS-84's is
    111.3 km x cos(lat) or more; the north-south one never falls below 110.5 km)."""
    return 110_500.0 * math.cos(math.radians(min(89.0, abs(lat) + reach_deg)))


def _candidate_params(lon: float, lat: float, now: datetime, policy: DispatchPolicy, skill: str | None,
                      exclude: Iterable[int], limit: int, requester_id: int | None) -> dict[str, Any]:
    return {"lon": lon, "lat": lat, "now": now, "cap": policy.task_cap, "skill": skill, "excluded": list(exclude),
            "few": _first_read(limit), "requester_id": requester_id}


def candidates(session: Session, *, lon: float, lat: float, skill: str | None, now: datetime, policy: DispatchPolicy,
               exclude: Iterable[int] = (), limit: int = 10, requester_id: int | None = None,
               located_by: Actor | None = None, first_rows: list[tuple] | None = None) -> list[Candidate]:
    """The ``limit`` nearest eligible volunteers on the spheroid (see the
    module docstring), read from the KNN index in few rows; ``requester_id``:
    whose request it is (never offered back to them); ``located_by``: only
    the volunteers whose position this actor may see, since a ranking with
    distances from a point of one's choosing locates whoever is in it;
    ``first_rows``: the rows of the first read, already made (filing's
    intake reads them).

    The index orders by planar degrees, which is not the ground order (a
    degree east is shorter than a degree north). Rows come nearest degree
    first, so everyone not read yet is at least as many degrees away as the
    last row read, hence at least that many times the metres-per-degree
    floor on the ground: the rows read that are nearer than this are surely
    the nearest of all. Only when fewer than ``limit`` are sure is more read.
    (Reading 10 rows instead of 40 at 1M volunteers saves 2 ms a filing.)
    """
    among = None if located_by is None else _on_duty_located_by(session, located_by, now)
    if among is not None and not among:
        return []
    statement = _CANDIDATE_STATEMENTS[(bool(skill), among is not None)]
    params = _candidate_params(lon, lat, now, policy, skill, exclude, limit, requester_id)
    if among is not None:
        params["among"] = sorted(among)
    while True:
        few = params["few"]
        rows = first_rows if first_rows is not None else fetch_prepared(session, statement, params, many=True)
        first_rows = None
        exhausted = len(rows) < few
        sure_within = math.inf if exhausted else rows[-1][2] * _metres_per_degree_floor(lat, rows[-1][2])
        found = sorted((Candidate(volunteer_id=v, distance_m=float(d)) for v, d, _ in rows
                        if d <= min(sure_within, policy.max_distance_m)),
                       key=lambda c: (c.distance_m, c.volunteer_id))
        if len(found) >= limit or exhausted or sure_within >= policy.max_distance_m:
            return found[:limit]
        params["few"] = few * 4


def _locates(actor: Actor, now: datetime):
    """SQL: the volunteers whose position ``actor`` may see, as the volunteer
    search by position has it (README): the volunteer themself, the liaisons
    of the zones they work in now (``works_in``: one on duty in a zone holds
    a place in its shift); None: everyone (admins)."""
    if actor.is_admin:
        return None
    zones = actor.liaison_zone_ids if "liaison" in actor.roles else frozenset()
    return or_(Volunteer.user_id == actor.user_id, works_in(zones, now=now))


def volunteers_located_by(session: Session, actor: Actor, volunteer_ids: Iterable[int], *, now: datetime) -> set[int]:
    """Those of ``volunteer_ids`` whose position ``actor`` may see now: only
    they are told how far a volunteer is from a request (the requester
    chooses where it is, and a few filings would locate the volunteer)."""
    wanted = set(volunteer_ids)
    if actor.is_admin:
        return wanted
    own = {actor.volunteer_id} & wanted
    if "liaison" not in actor.roles or not actor.liaison_zone_ids or not wanted - own:
        return own  # nothing to ask the database (a worker filing: the hot path)
    return own | set(session.scalars(select(Volunteer.id).where(Volunteer.id.in_(wanted - own), _locates(actor, now))))


def _on_duty_located_by(session: Session, actor: Actor, now: datetime) -> set[int] | None:
    """The volunteers on duty whose position ``actor`` may see; None: all of them."""
    locates = _locates(actor, now)
    if locates is None:
        return None
    return set(session.scalars(select(Volunteer.id).where(Volunteer.on_duty_shift_id.is_not(None), locates)))


def _offered_before(session: Session, request_id: int) -> list[int]:
    """Volunteers who declined this request, let the offer lapse or handed it back (a withdrawn offer does not
    count), and the one it is offered to now; since it was last reopened (a volunteer busy then may be free now).

    A volunteer given the request by ``reassign`` holds it without an offer: one who handed it back is found by
    the trail's hand_back (its actor, the holder: a handing back by the service is for someone who may no longer
    volunteer). Without it, the request went straight back to them when they stood nearest."""
    round_starts_after = (select(func.coalesce(ServiceRequest.last_offer_before_reopen_id, 0))
                          .where(ServiceRequest.id == request_id).scalar_subquery())
    offered = select(RequestOffer.volunteer_id).where(
        RequestOffer.request_id == request_id, RequestOffer.id > round_starts_after,
        RequestOffer.outcome.in_(("declined", "expired", "returned", "pending")))
    last_reopen = (select(func.coalesce(func.max(RequestEvent.id), 0))
                   .where(RequestEvent.request_id == request_id, RequestEvent.action == "reopen").scalar_subquery())
    handed_back = (select(Volunteer.id).join(RequestEvent, RequestEvent.actor_id == Volunteer.user_id)
                   .where(RequestEvent.request_id == request_id, RequestEvent.action == "hand_back",
                          RequestEvent.id > last_reopen))
    return list(session.scalars(offered.union(handed_back)))


def dispatch(session: Session, request: ServiceRequest, *, now: datetime, policy: DispatchPolicy,
             from_status: str | None = None) -> None:
    """Offer the request to the next eligible volunteer, or hand it to the liaison."""
    from_status = from_status or request.status
    if request.refusals < policy.max_refusals:
        session.flush()  # the offer is written in SQL, after what the caller changed
        lon, lat = _lonlat(session, request)
        skill = session.scalar(select(ServiceType.required_skill).where(ServiceType.code == request.service_code))
        offer = _offer_to_nearest(session, request.id, lon=lon, lat=lat, skill=skill,
                                  tried=set(_offered_before(session, request.id)), from_status=from_status,
                                  now=now, policy=policy, requester_id=request.requester_id)
        if offer is not None:
            session.expire(request)  # changed in SQL: read again when next used
            return
        _to_liaison(session, request, from_status)
        return
    _to_liaison(session, request, from_status,
                why=f"refused {request.refusals} times, the most before a liaison takes it")




@dataclass(frozen=True)
class Offer:
    volunteer_id: int
    distance_m: float
    offered_at: datetime
    deadline: datetime


def _offer_to_nearest(session: Session, request_id: int, *, lon: float, lat: float, skill: str | None,
                      tried: set[int], from_status: str, now: datetime, policy: DispatchPolicy,
                      requester_id: int | None, first_batch: list[Candidate] | None = None,
                      filing: dict[str, Any] | None = None) -> Offer | None:
    """Offer the request to the nearest candidate who can still take it
    (``first_batch``: the candidates already read, if any; ``filing``: the
    values of a request still to be written, sent with the first offer)."""

    def nearest() -> list[Candidate]:
        return candidates(session, lon=lon, lat=lat, skill=skill, now=now, policy=policy, exclude=tried,
                          limit=OFFER_BATCH, requester_id=requester_id)

    batch = first_batch if first_batch is not None else nearest()
    # Candidates busy with a concurrent dispatch are skipped, so ask again
    # (without them) until someone takes the offer or nobody is left.
    while batch:
        for candidate in batch:
            tried.add(candidate.volunteer_id)
            offer = _offer(session, request_id, candidate, now=now, policy=policy, from_status=from_status,
                           filing=filing)
            filing = None
            if offer is not None:
                return offer
        batch = nearest()
    if filing is not None:  # nobody to offer it to: written alone
        fetch_prepared(session, _INSERT_REQUEST, filing)
    return None


# A volunteer another dispatch is offering to right now is skipped, not
# waited for. The lock is the offers' own (a transaction advisory lock on the
# volunteer's id), not the volunteer's row: the row is locked by everything a
# volunteer does (a position report, a sign-up, a check-in), and a dispatch
# meeting it then passed over the nearest volunteer. Whether the lock was had
# is noted in a transaction setting for _OFFER, which is sent in the same
# round trip.
OFFER_LOCKS = 0x4F46  # "OF": the advisory-lock space of offers
_LOCK_CANDIDATE = f"""
SELECT set_config('gridsvc.offer_lock',
                  CASE WHEN pg_try_advisory_xact_lock({OFFER_LOCKS}, %(volunteer_id)s) THEN %(volunteer_id)s::text
                       ELSE '' END, true)"""

# Only under that lock (this statement reads after it was granted, so it
# sees every offer committed before): the offer, if the volunteer may still
# volunteer (the account may have been disabled since the candidates were
# read) and is still under the cap; the request moves to it (held by nobody
# until accepted: a liaison it was with no longer holds it); the trail. The
# note says to whom, not how far: the requester reads it, and a volunteer's
# distance from a point the requester chose would locate them.
_OFFER = """
WITH free AS (
    SELECT FROM volunteer v
    WHERE v.id = %(volunteer_id)s AND current_setting('gridsvc.offer_lock') = v.id::text
      AND {may_volunteer}
      AND {open_tasks} < %(cap)s),
offer AS (
    INSERT INTO request_offer (request_id, volunteer_id, distance_m, offered_at, deadline)
    SELECT %(request_id)s, %(volunteer_id)s, %(distance_m)s, %(now)s, %(deadline)s FROM free
    RETURNING id),
moved AS (
    UPDATE service_request SET status = 'offered', volunteer_id = NULL, liaison_id = NULL, updated_at = now(),
                               updated_by_id = coalesce(%(actor_id)s, updated_by_id)
    WHERE id = %(request_id)s AND EXISTS (SELECT FROM offer)),
trail AS (
    INSERT INTO request_event (request_id, action, from_status, to_status, note, system, at)
    SELECT %(request_id)s, 'offer', %(from_status)s, 'offered', %(note)s, true, clock_timestamp() FROM offer)
SELECT count(*) FROM offer""".format(open_tasks=_OPEN_TASKS_OF_V, may_volunteer=_MAY_VOLUNTEER)


def _offer(session: Session, request_id: int, candidate: Candidate, *, now: datetime, policy: DispatchPolicy,
           from_status: str, filing: dict[str, Any] | None = None) -> Offer | None:
    """Offer to one candidate if they can still take it (not being offered
    something by another dispatch right now, still under the cap); None when
    they cannot. ``filing``: the request's values, written first in the same
    round trip."""
    offer = Offer(volunteer_id=candidate.volunteer_id, distance_m=round(candidate.distance_m, 1), offered_at=now,
                  deadline=now + policy.accept_within)
    made = fetch_prepared(session, _OFFER, {
        **(filing or {}),
        "request_id": request_id, "volunteer_id": offer.volunteer_id, "distance_m": offer.distance_m, "now": now,
        "deadline": offer.deadline, "cap": policy.task_cap, "from_status": from_status,
        "actor_id": session.info.get("actor_id"),
        "note": f"offered to volunteer {candidate.volunteer_id}"},
        run_first=(_INSERT_REQUEST, _LOCK_CANDIDATE) if filing else _LOCK_CANDIDATE)[0]
    return offer if made else None


def _may_act_as_liaison(user_id_column):
    """SQL: the account is enabled and holds the liaison role (a zone keeps its
    liaison_id when the account is disabled or the role taken away)."""
    return and_(select(User.id).where(User.id == user_id_column, User.disabled.is_(False)).exists(),
                select(UserRole.user_id).where(UserRole.user_id == user_id_column, UserRole.role == "liaison").exists())


def _to_liaison(session: Session, request: ServiceRequest, from_status: str,
                why: str = "no volunteer available") -> None:
    """Hand the request to its zone's liaison or, when the zone has none who
    may act, to the liaison of the zone nearest the request that has one.
    ``why``: the trail's reason (after the last refusal allowed, volunteers may
    still be free: "no volunteer available" was then untrue)."""
    zone = session.get(Zone, request.zone_id)
    liaison_id, note = None, None
    if zone.liaison_id is not None and session.scalar(select(_may_act_as_liaison(zone.liaison_id))):
        liaison_id = zone.liaison_id
    else:
        # from the request, not from the zone: every neighbour touches the
        # zone (0 m), and the lowest id would win the tie wherever the request is
        here = select(ServiceRequest.location).where(ServiceRequest.id == request.id).scalar_subquery()
        row = session.execute(select(Zone.liaison_id, Zone.code).where(
            Zone.community_id == zone.community_id, Zone.id != zone.id, Zone.liaison_id.is_not(None),
            _may_act_as_liaison(Zone.liaison_id))
            .order_by(gsql.distance_m(Zone.geom, here), Zone.id).limit(1)).first()
        if row is not None:
            liaison_id, note = row[0], (f"{why}; zone {zone.code} has no liaison; the liaison of {row[1]}, the nearest "
                                        "zone, has it")
    request.status = "with_liaison"
    request.volunteer_id = None
    request.liaison_id = liaison_id
    session.flush()
    _event(session, request, None, "to_liaison", from_status, "with_liaison", system=True,
           note=note or (why if liaison_id else f"{why}; no liaison in the community: admins, please act"))


def _lonlat(session: Session, request: ServiceRequest) -> tuple[float, float]:
    return tuple(session.execute(select(func.ST_X(ServiceRequest.location), func.ST_Y(ServiceRequest.location))
                                 .where(ServiceRequest.id == request.id)).one())


def _off_duty(volunteer_id: Any, now: datetime) -> Any:
    """Whether the volunteer is off duty, as a scalar subquery probed by primary key: no check-in open, or one left
    open past its shift's end. Why the end: the duty ends there at the latest (the check-out that never came is
    closed at the end), as the candidates, the volunteer search and the zone map count it; an offer made a
    minute before the end stayed theirs to accept after it."""
    return (select(func.coalesce(Shift.ends_at <= now, True)).select_from(Volunteer)
            .outerjoin(Shift, Shift.id == Volunteer.on_duty_shift_id).where(Volunteer.id == volunteer_id)
            .scalar_subquery())


def expire_offers(session: Session, *, now: datetime, policy: DispatchPolicy, request_ids: Iterable[int] | None = None,
                  volunteer_id: int | None = None) -> int:
    """Offers past their deadline become refusals, offers to volunteers no longer on duty are withdrawn, and
    the request moves on; returns how many offers ended."""
    # Check-out (the gridsvc_check function, before Flask) ends the duty but not the offers: they end here.
    # A scalar subquery, probed by primary key for each of the few pending offers: an EXISTS under the OR was
    # planned as a hash of every volunteer off duty (nearly all of them), on every read of requests.
    query = select(RequestOffer).where(RequestOffer.outcome == "pending",
                                       or_(RequestOffer.deadline < now, _off_duty(RequestOffer.volunteer_id, now)))
    if request_ids is not None:
        query = query.where(RequestOffer.request_id.in_(list(request_ids)))
    if volunteer_id is not None:
        query = query.where(RequestOffer.volunteer_id == volunteer_id)
    expired = 0
    for offer in session.scalars(query.with_for_update(skip_locked=True)).all():
        # The request's row is skipped too when locked, not waited for: an action on it took the row first and
        # answers the offer next (act()), so waiting here while holding the offer deadlocked the two. Whoever
        # acts sees the lapsed offer under the lock; the next read moves it on otherwise.
        request = session.scalar(select(ServiceRequest).where(ServiceRequest.id == offer.request_id)
                                 .with_for_update(skip_locked=True).execution_options(populate_existing=True))
        if request is None:
            continue
        if offer.deadline < now:
            offer.outcome, offer.answered_at = "expired", offer.deadline
            request.refusals += 1
            session.flush()
            _event(session, request, None, "expire", "offered", "offered", system=True,
                   note=f"volunteer {offer.volunteer_id} did not answer by {offer.deadline.isoformat()}")
        else:
            _withdraw_offer(session, request, offer, now=now,
                            # (not "went off duty": the requester reads the trail, and a volunteer's duty is
                            # for whoever may search volunteers)
                            note=f"the offer to volunteer {offer.volunteer_id} was withdrawn: they can no longer "
                                 "answer it")
        dispatch(session, request, now=now, policy=policy)
        expired += 1
    return expired


# ---------------------------------------------------------------- the lifecycle

ACTIONS = ("accept", "decline", "hand_back", "start", "resolve", "close", "reopen", "escalate", "claim", "reassign",
           "withdraw", "comment")
ALLOWED_FROM = {
    "accept": ("offered",),
    "decline": ("offered",),
    "hand_back": ("assigned", "in_progress"),
    "start": ("assigned", "claimed", "with_liaison"),
    "resolve": ("assigned", "claimed", "with_liaison", "in_progress"),
    "close": ("resolved",),
    "reopen": ("resolved", "closed"),
    "escalate": ("offered", "assigned", "with_liaison", "in_progress"),
    "claim": ("escalated",),
    "reassign": OPEN_STATUSES,
    "withdraw": OPEN_STATUSES,
    "comment": ("offered", "assigned", "with_liaison", "escalated", "claimed", "in_progress", "resolved", "closed"),
}


def get_request(session: Session, request_id: int, *, for_update: bool = False) -> ServiceRequest:
    request = session.get(ServiceRequest, request_id, with_for_update=for_update or None)
    if request is None:
        raise NotFound(f"Request {request_id} does not exist.")
    return request


def pending_offer(session: Session, request_id: int) -> RequestOffer | None:
    return pending_offers(session, [request_id]).get(request_id)


def pending_offers(session: Session, request_ids: list[int]) -> dict[int, RequestOffer]:
    """The pending offer of each request that has one, in one query (a page of requests)."""
    if not request_ids:
        return {}
    return {offer.request_id: offer for offer in session.scalars(
        select(RequestOffer).where(RequestOffer.request_id.in_(request_ids), RequestOffer.outcome == "pending"))}


def may_claim(session: Session, actor: Actor, service_code: str) -> bool:
    if not actor.department_ids:
        return False
    return bool(session.scalar(select(DepartmentService.department_id).where(
        DepartmentService.department_id.in_(list(actor.department_ids)), DepartmentService.service_code == service_code)
        .limit(1)))


def _is_owner(request: ServiceRequest, actor: Actor) -> bool:
    """Who holds the request now may work on it."""
    if request.status in ("assigned", "in_progress") and request.volunteer_id is not None:
        return actor.volunteer_id == request.volunteer_id
    if request.status in ("claimed", "in_progress") and request.claimed_by_id is not None:
        return actor.user_id == request.claimed_by_id
    return actor.user_id is not None and actor.user_id == request.liaison_id


def _holds_as_liaison(request: ServiceRequest, actor: Actor) -> bool:
    """The liaison the request was handed to: the zone's own, or, for a zone
    without one, the liaison of the nearest zone, who acts as its liaison."""
    return "liaison" in actor.roles and actor.user_id is not None and actor.user_id == request.liaison_id


def _is_zone_staff(request: ServiceRequest, actor: Actor) -> bool:
    return actor.is_admin or request.zone_id in actor.liaison_zone_ids or _holds_as_liaison(request, actor)


def act(session: Session, request_id: int, action: str, actor: Actor, *, now: datetime, policy: DispatchPolicy,
        note: str | None = None, volunteer_id: int | None = None, lon: float | None = None,
        lat: float | None = None) -> ServiceRequest:
    """Apply one lifecycle action, with its role rule; a wrong state is a 409 naming both."""
    expire_offers(session, now=now, policy=policy, request_ids=[request_id])
    request = get_request(session, request_id, for_update=True)
    if not may_see(session, request, actor):
        raise NotFound(f"Request {request_id} does not exist.")  # say nothing about others' requests
    if action in ("accept", "decline") and actor.volunteer_id is not None:
        _refuse_stale_own_offer(session, request, action, actor, now)
    before = request.status
    if before not in ALLOWED_FROM[action]:
        raise StateConflict(f"'{action}' is not possible while the request is '{before}'.",
                            action=action, state=before, allowed_from=list(ALLOWED_FROM[action]))
    staff = _is_zone_staff(request, actor)
    if action in ("accept", "decline"):
        offer = pending_offer(session, request.id)
        if offer is None or offer.volunteer_id != actor.volunteer_id:
            raise Forbidden("Only the volunteer it is offered to may accept or decline it.")
        if offer.deadline < now:  # a race with the deadline: too late
            raise StateConflict("The offer's deadline has passed.", action=action, state="expired")
        offer.answered_at = now
        if action == "accept":
            offer.outcome = "accepted"
            request.status, request.volunteer_id = "assigned", actor.volunteer_id
            request.first_response_at = request.first_response_at or now
        else:
            offer.outcome = "declined"
            request.refusals += 1
            session.flush()
            _event(session, request, actor.user_id, action, before, "offered", note=note, lon=lon, lat=lat)
            dispatch(session, request, now=now, policy=policy)
            return request
    elif action == "hand_back":
        if request.volunteer_id is None or actor.volunteer_id != request.volunteer_id:
            raise Forbidden("Only the volunteer who holds the request may hand it back.")
        _hand_back(session, request, actor.user_id, now=now, policy=policy, note=note, lon=lon, lat=lat)
        return request
    elif action in ("start", "resolve"):
        if not (_is_owner(request, actor) or staff):
            raise Forbidden("Only whoever holds the request, its zone's liaison or an admin may do this.")
        request.first_response_at = request.first_response_at or now
        if action == "start":
            request.status = "in_progress"
        else:
            request.status, request.resolved_at = "resolved", now
    elif action in ("close", "reopen"):
        if not (actor.user_id == request.requester_id or staff):
            raise Forbidden("Only the requester, the zone's liaison or an admin may do this.")
        if action == "close":
            request.status, request.closed_at = "closed", now
        else:
            _reopen(session, request, actor, before, now=now, policy=policy, note=note, lon=lon, lat=lat)
            return request
    elif action == "escalate":
        if not staff:
            raise Forbidden("Only the zone's liaison or an admin may escalate to the department pool.")
        _withdraw_offers(session, request.id, now)
        # back in the pool: a department that claimed it before no longer holds it (nor sees the requester's contact)
        request.status, request.volunteer_id = "escalated", None
        request.claimed_by_id = request.department_id = None
        request.first_response_at = request.first_response_at or now
    elif action == "claim":
        if not may_claim(session, actor, request.service_code):
            raise Forbidden("Only members of a department that handles this service may claim it.")
        _claim(session, request, actor)
    elif action == "reassign":
        if not staff:
            raise Forbidden("Only the zone's liaison or an admin may reassign.")
        note = _reassign(session, request, actor, volunteer_id, now=now, policy=policy, note=note)
    elif action == "withdraw":
        # no longer needed (the requester), or a duplicate (the zone): nobody is sent, whoever held it is free
        if not (actor.user_id == request.requester_id or staff):
            raise Forbidden("Only the requester, the zone's liaison or an admin may withdraw it.")
        _withdraw_offers(session, request.id, now)
        request.status, request.closed_at = "withdrawn", now
    elif action == "comment":
        # whoever held it (and resolved it) may still answer the requester
        held = ((request.volunteer_id is not None and actor.volunteer_id == request.volunteer_id)
                or (request.claimed_by_id is not None and actor.user_id == request.claimed_by_id))
        if not (_is_owner(request, actor) or held or staff or actor.user_id == request.requester_id):
            raise Forbidden("Only the people on this request may comment.")
        if not (note or "").strip():  # (an empty comment was an event on the trail that said nothing)
            raise ValidationFailed("A comment needs a note: the text to add to the trail.",
                                   errors={"note": ["required for a comment"]})
    session.flush()
    _event(session, request, actor.user_id, action, before, request.status, note=note, lon=lon, lat=lat)
    return request


def _refuse_stale_own_offer(session: Session, request: ServiceRequest, action: str, actor: Actor,
                            now: datetime) -> None:
    """A volunteer's accept or decline of their own offer that is no longer open: expired, declined already, or
    withdrawn as they went off duty (a 409 saying which)."""
    # read under the request's lock: a deadline passed by a concurrent `gridsvc tick` that moved the
    # request on while we waited is "your offer expired", not someone else's offer
    mine = session.scalar(select(RequestOffer).where(RequestOffer.request_id == request.id,
                                                     RequestOffer.volunteer_id == actor.volunteer_id)
                          .order_by(RequestOffer.offered_at.desc(), RequestOffer.id.desc()).limit(1))
    if mine is not None and (mine.outcome == "expired" or (mine.outcome == "pending" and mine.deadline < now)):
        raise StateConflict(f"Your offer expired at {mine.deadline.isoformat()}; the request has moved on, to "
                            "the next volunteer or the zone's liaison.",
                            action=action, state="expired")
    if mine is not None and mine.outcome == "declined":  # (a state, not a right: not the 403 of another's offer)
        raise StateConflict(f"You declined this offer at {mine.answered_at.isoformat()}; the request has moved "
                            "on.", action=action, state="declined")
    # Off duty, the offer was withdrawn above (or is, by the next read, when another action held the request
    # then): it is not theirs to take. Declining it is harmless.
    if (action == "accept" and mine is not None and mine.outcome in ("pending", "withdrawn")
            and session.scalar(select(_off_duty(actor.volunteer_id, now)))):
        raise StateConflict("You are off duty: an offer is withdrawn when you check out or your shift ends. "
                            "Check in to a shift to take requests.", action=action, state="withdrawn")
    if mine is not None and mine.outcome == "withdrawn" and request.volunteer_id != actor.volunteer_id:
        # planned again by a batch, given to someone by the liaison, or withdrawn by its requester: a state of
        # the request, not a right (it was a 403 "only the volunteer it is offered to"). Given to them by a
        # reassign, it is theirs: the state check below says it is assigned already.
        when = f" at {mine.answered_at.isoformat()}" if mine.answered_at else ""
        raise StateConflict(f"Your offer was withdrawn{when}; the request has moved on.", action=action,
                            state="withdrawn")


def _reopen(session: Session, request: ServiceRequest, actor: Actor, before: str, *, now: datetime,
            policy: DispatchPolicy, note: str | None, lon: float | None, lat: float | None) -> None:
    """A request resolved or closed, open again: a new round of dispatch, from a clean slate."""
    request.resolved_at = request.closed_at = None
    # the rating judged the resolution now undone (the trail keeps it); the requester rates the next one
    request.rating = request.feedback = None
    request.refusals = 0
    request.last_offer_before_reopen_id = session.scalar(
        select(func.max(RequestOffer.id)).where(RequestOffer.request_id == request.id))
    request.claimed_by_id = request.department_id = None
    session.flush()
    reopened = _event(session, request, actor.user_id, "reopen", before, None, note=note, lon=lon, lat=lat)
    _withdraw_offers(session, request.id, now)
    dispatch(session, request, now=now, policy=policy)
    # where dispatch took it (offered, or to a liaison) is known only now; the event is written before
    # dispatch's own, so that the trail reads reopen, then offer
    reopened.to_status = request.status


def _claim(session: Session, request: ServiceRequest, actor: Actor) -> None:
    """The department pool's request taken by a member: the first claim wins."""
    department = session.scalar(select(DepartmentService.department_id).where(
        DepartmentService.department_id.in_(list(actor.department_ids)),
        DepartmentService.service_code == request.service_code).order_by(DepartmentService.department_id).limit(1))
    # conditional update: the first claim wins, a concurrent second finds the state changed
    won = session.execute(update(ServiceRequest).where(ServiceRequest.id == request.id,
                                                       ServiceRequest.status == "escalated")
                          .values(status="claimed", claimed_by_id=actor.user_id, department_id=department)
                          .execution_options(synchronize_session=False)).rowcount
    if not won:
        raise StateConflict("Someone else claimed it first.", action="claim", state="claimed")
    session.refresh(request)


def _reassign(session: Session, request: ServiceRequest, actor: Actor, volunteer_id: int | None, *, now: datetime,
              policy: DispatchPolicy, note: str | None) -> str:
    """The request given to a volunteer the zone's staff chose, under dispatch's rules (community, skill, cap);
    the trail's note."""
    if volunteer_id is None:
        raise ValidationFailed("Name the volunteer to assign it to.", errors={"volunteer_id": ["required"]})
    chosen = session.get(Volunteer, volunteer_id)
    if chosen is None:
        raise ValidationFailed(f"Volunteer {volunteer_id} does not exist.", errors={"volunteer_id": ["unknown"]})
    if request.requester_id is not None and chosen.user_id == request.requester_id:
        # as dispatch: a worker who volunteers does not serve their own need
        raise ValidationFailed(f"Volunteer {volunteer_id} raised this request.",
                               errors={"volunteer_id": ["raised this request"]})
    if not actor.is_admin and not works_in_community(session, volunteer_id, request.community_id, now=now):
        # the holder sees the requester's contact: a liaison keeps it within the park (an admin may choose)
        raise ValidationFailed(f"Volunteer {volunteer_id} does not work in this request's community now (none of "
                               f"{WORKS_IN_NOW} there).",
                               errors={"volunteer_id": ["does not work in this request's community"]})
    # Their offer lock before reading whether they may volunteer: an account disabled meanwhile gives its tasks
    # back under the same lock (``give_back_tasks``), so one of the two sees the other. Read unlocked, both
    # answered 200 and the request stayed with the disabled account.
    _take_offer_lock(session, volunteer_id)
    session.refresh(chosen.user)
    if not may_volunteer(chosen):
        # as dispatch: someone who cannot sign in, or no longer volunteers, would leave it looking handled
        raise ValidationFailed(f"Volunteer {volunteer_id} may not take requests: the account is disabled or no "
                               "longer has the volunteer role.", errors={"volunteer_id": ["may not volunteer"]})
    _refuse_unskilled(session, request, chosen)
    _withdraw_offers(session, request.id, now)
    _refuse_at_cap(session, request, volunteer_id, now=now, policy=policy)
    # the volunteer holds it now: a department that claimed it no longer does
    request.status, request.volunteer_id = "assigned", volunteer_id
    request.claimed_by_id = request.department_id = None
    request.first_response_at = request.first_response_at or now  # someone acted on it: a response
    return f"reassigned to volunteer {volunteer_id}" + (f": {note}" if note else "")


def _refuse_unskilled(session: Session, request: ServiceRequest, chosen: Volunteer) -> None:
    """As dispatch: a request whose service needs a skill goes to a volunteer who has it (a 422 naming it)."""
    skill = session.scalar(select(ServiceType.required_skill).where(ServiceType.code == request.service_code))
    if skill is not None and not session.scalar(select(VolunteerSkill.volunteer_id).where(
            VolunteerSkill.volunteer_id == chosen.id, VolunteerSkill.skill_code == skill)):
        raise ValidationFailed(f"Volunteer {chosen.id} lacks the skill {skill} this service needs.",
                               errors={"volunteer_id": [f"lacks the skill {skill}"]})


# How long a reassign tries for a volunteer's offer lock before its 409
OFFER_LOCK_SECONDS = 2.0


def _take_offer_lock(session: Session, volunteer_id: int, *, being: str = "offered a request") -> None:
    """The volunteer's offer lock, tried (for 2 s), never waited for, else a 409 saying the volunteer is
    ``being`` something elsewhere. Why: a reassign or a disabling holds request rows, and may hold other
    volunteers' offer locks (a request re-dispatched on the way); waiting here deadlocked with whoever held this
    lock and waited for one of those rows."""
    if not try_advisory_xact_lock(session, OFFER_LOCKS, volunteer_id, seconds=OFFER_LOCK_SECONDS):
        raise LockHeldElsewhere(f"Volunteer {volunteer_id} is being {being} at this moment; nothing was saved. "
                                "Send it again.")


def _refuse_at_cap(session: Session, request: ServiceRequest, volunteer_id: int, *, now: datetime,
                   policy: DispatchPolicy) -> None:
    """As dispatch: a volunteer at their open-task cap is given nothing more (a 409). Counted under their offer
    lock, which the caller holds (``_reassign`` took it), as dispatch counts them, so that two reassigns, or a
    reassign and an offer, at once do not both give them a task: four concurrent reassigns gave one volunteer
    four requests."""
    busy = session.scalar(select(_open_tasks(literal(volunteer_id), now)))
    if request.volunteer_id == volunteer_id and request.status in ("assigned", "in_progress"):
        busy -= 1  # (this request, given to whoever holds it already)
    if busy >= policy.task_cap:
        raise Conflict(f"Volunteer {volunteer_id} already has {busy} open task(s), their cap "
                       f"({policy.task_cap}): free them first, or choose another volunteer.")


def _hand_back(session: Session, request: ServiceRequest, actor_id: int | None, *, now: datetime,
               policy: DispatchPolicy, note: str | None = None, lon: float | None = None,
               lat: float | None = None) -> None:
    """The holder gives the request back (locked, assigned or in progress with them): a refusal, dispatched again
    to the next volunteer (never them again this round) or the liaison. ``actor_id`` None: the service did it."""
    before = request.status
    session.execute(update(RequestOffer).where(RequestOffer.request_id == request.id,
                                               RequestOffer.volunteer_id == request.volunteer_id,
                                               RequestOffer.outcome == "accepted")
                    .values(outcome="returned", answered_at=now))
    request.volunteer_id = None
    request.refusals += 1
    session.flush()
    handed = _event(session, request, actor_id, "hand_back", before, None, note=note, lon=lon, lat=lat,
                    system=actor_id is None)
    dispatch(session, request, now=now, policy=policy, from_status=before)
    handed.to_status = request.status  # where dispatch took it (as reopen's event)


def _withdraw_offer(session: Session, request: ServiceRequest, offer: RequestOffer, *, now: datetime,
                    note: str) -> None:
    """A pending offer its volunteer can no longer answer (off duty, say): they did not refuse, so no refusal is
    counted, and a withdrawn offer does not keep them from being asked again once back (_offered_before). The
    caller moves the request on."""
    offer.outcome, offer.answered_at = "withdrawn", now
    session.flush()
    _event(session, request, None, "withdraw", "offered", "offered", system=True, note=note)


def give_back_tasks(session: Session, volunteer_id: int, *, now: datetime, policy: DispatchPolicy,
                    note: str) -> list[int]:
    """The requests offered to a volunteer, withdrawn, and those they hold, handed back for them (they may no
    longer volunteer): each goes to the next volunteer or the liaison at once, not left with someone who cannot
    act on it (an offer would wait for the next read of its request, or its deadline). Returns the held ones' ids.

    First the volunteer's offer lock, which dispatch, the batch and reassign hold while they give them
    something: one given before is committed, and so read below; none is given after (dispatch and the batch
    skip a volunteer whose lock is held, and reassign reads the account as disabled once it has it). Without
    it, a reassign or an offer crossing the disabling left the request with the disabled account. Tried for
    2 s, not waited for, as everyone tries offer locks (nothing waits on one while holding rows).

    Offers next: an offer accepted while this waits for its request's lock is held by the time the held
    requests are read, and handed back with them.
    """
    _take_offer_lock(session, volunteer_id, being="given a request")
    offered = list(session.scalars(select(RequestOffer.request_id).where(RequestOffer.volunteer_id == volunteer_id,
                                                                         RequestOffer.outcome == "pending")
                                   .order_by(RequestOffer.request_id)))
    for request_id in offered:
        request = get_request(session, request_id, for_update=True)
        offer = pending_offer(session, request_id)  # as read locked: answered meanwhile, it is not pending
        if offer is not None and offer.volunteer_id == volunteer_id:
            _withdraw_offer(session, request, offer, now=now, note=note)
            dispatch(session, request, now=now, policy=policy)
    held = list(session.scalars(select(ServiceRequest.id).where(ServiceRequest.volunteer_id == volunteer_id,
                                                                ServiceRequest.status.in_(ALLOWED_FROM["hand_back"]))
                                .order_by(ServiceRequest.id)))
    for request_id in held:
        request = get_request(session, request_id, for_update=True)
        if request.volunteer_id == volunteer_id and request.status in ALLOWED_FROM["hand_back"]:  # (as read locked)
            _hand_back(session, request, None, now=now, policy=policy, note=note)
    return held


def _withdraw_offers(session: Session, request_id: int, now: datetime) -> None:
    session.execute(update(RequestOffer).where(RequestOffer.request_id == request_id, RequestOffer.outcome == "pending")
                    .values(outcome="withdrawn", answered_at=now))


def rate(session: Session, request_id: int, actor: Actor, *, rating: int, comment: str | None = None) -> ServiceRequest:
    request = get_request(session, request_id, for_update=True)
    if not may_see(session, request, actor):
        raise NotFound(f"Request {request_id} does not exist.")
    if actor.user_id != request.requester_id:
        raise Forbidden("Only the requester may rate the request.")
    if request.status not in ("resolved", "closed"):
        raise StateConflict(f"A request can be rated once resolved; it is '{request.status}'.", action="rate",
                            state=request.status)
    request.rating, request.feedback = rating, comment
    session.flush()
    _event(session, request, actor.user_id, "rate", request.status, request.status, note=f"{rating}/5 {comment or ''}".strip())
    return request


# ---------------------------------------------------------------- reading


def visible(query, actor: Actor):
    """Workers see their own; volunteers what was offered or given to them; liaisons their zones and
    what was handed to them; department members their pool and claims; admins all."""
    if actor.is_admin:
        return query
    clauses = []
    if actor.user_id is not None:
        clauses.append(ServiceRequest.requester_id == actor.user_id)
    if actor.volunteer_id is not None:
        clauses.append(ServiceRequest.volunteer_id == actor.volunteer_id)
        clauses.append(select(RequestOffer.id).where(RequestOffer.request_id == ServiceRequest.id,
                                                     RequestOffer.volunteer_id == actor.volunteer_id).exists())
    if actor.liaison_zone_ids:
        clauses.append(ServiceRequest.zone_id.in_(list(actor.liaison_zone_ids)))
    if "liaison" in actor.roles and actor.user_id is not None:  # handed to them from a zone without a liaison
        clauses.append(ServiceRequest.liaison_id == actor.user_id)
    if actor.department_ids:
        pool = select(DepartmentService.service_code).where(
            DepartmentService.department_id.in_(list(actor.department_ids))).scalar_subquery()
        clauses.append(and_(ServiceRequest.status == "escalated", ServiceRequest.service_code.in_(pool)))
        clauses.append(ServiceRequest.department_id.in_(list(actor.department_ids)))
    return query.where(or_(*clauses)) if clauses else query.where(False)


def may_reach_requester(request: ServiceRequest, actor: Actor) -> bool:
    """Whether ``actor`` is shown the requester's contact details: those
    handling the request (the zone's liaison, or the liaison it was handed
    to, the volunteer it was given to, the department it was passed to,
    admins) and the requester; not a volunteer it was merely offered to, nor
    a department's pool before it is claimed."""
    return (actor.is_admin or (actor.user_id is not None and actor.user_id == request.requester_id)
            or request.zone_id in actor.liaison_zone_ids or _holds_as_liaison(request, actor)
            or (actor.volunteer_id is not None and actor.volunteer_id == request.volunteer_id)
            or request.department_id in actor.department_ids)


def may_see(session: Session, request: ServiceRequest, actor: Actor) -> bool:
    return session.scalar(visible(select(ServiceRequest.id).where(ServiceRequest.id == request.id), actor)) is not None


def list_requests(session: Session, actor: Actor, *, status: str | None = None, service_code: str | None = None,
                  zone_id: int | None = None, volunteer_id: int | None = None, community_id: int | None = None,
                  bbox: tuple[float, float, float, float] | None = None, start: datetime | None = None,
                  end: datetime | None = None, limit: int = 100, offset: int = 0) -> Page[ServiceRequest]:
    query = visible(select(ServiceRequest), actor)
    for column, value in ((ServiceRequest.status, status), (ServiceRequest.service_code, service_code),
                          (ServiceRequest.zone_id, zone_id), (ServiceRequest.volunteer_id, volunteer_id),
                          (ServiceRequest.community_id, community_id)):
        if value is not None:
            query = query.where(column == value)
    if bbox is not None:
        query = query.where(func.ST_Intersects(ServiceRequest.location, func.ST_MakeEnvelope(*bbox, gsql.SRID)))
    if start is not None:
        query = query.where(ServiceRequest.created_at >= start)
    if end is not None:
        query = query.where(ServiceRequest.created_at < end)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
                            .limit(limit).offset(offset)).all()
    return Page(items=items, total=total, limit=limit, offset=offset)


def offers_of(session: Session, volunteer_id: int) -> list[tuple[RequestOffer, ServiceRequest]]:
    return list(session.execute(select(RequestOffer, ServiceRequest)
                                .join(ServiceRequest, ServiceRequest.id == RequestOffer.request_id)
                                .where(RequestOffer.volunteer_id == volunteer_id, RequestOffer.outcome == "pending")
                                .order_by(RequestOffer.deadline)).all())


def events_of(session: Session, request_id: int) -> list[RequestEvent]:
    return list(session.scalars(select(RequestEvent).where(RequestEvent.request_id == request_id)
                                .order_by(RequestEvent.at, RequestEvent.id)))


# How offer notes said how far the volunteer was, before distances were kept
# out of them (batch dispatch still writes it): rows written so stay stored.
_DISTANCE_IN_NOTE = re.compile(r"(offered to volunteer (\d+)), \d+ m away")


def trail_seen_by(session: Session, request: ServiceRequest, actor: Actor, *,
                  now: datetime) -> list[tuple[RequestEvent, str | None, bool]]:
    """The request's events as ``actor`` may read them: (event, note, whether its position is shown).

    A volunteer's distance in a note is left out for whoever may not see
    their position (the requester chose where the request is). A position
    is someone's whereabouts: shown to whoever acted, the zone's liaison (or
    the one it was handed to) and admins; the filing's position is the
    request's own location, shown with it anyway.
    """
    events = events_of(session, request.id)
    named = {int(m.group(2)) for e in events if e.system and e.note for m in _DISTANCE_IN_NOTE.finditer(e.note)}
    located = volunteers_located_by(session, actor, named, now=now) if named else set()

    def note(event: RequestEvent) -> str | None:
        if not (event.system and event.note):
            return event.note
        return _DISTANCE_IN_NOTE.sub(lambda m: m.group(0) if int(m.group(2)) in located else m.group(1), event.note)

    staff = _is_zone_staff(request, actor)
    return [(e, note(e), e.action == "file" or staff or (actor.user_id is not None and e.actor_id == actor.user_id))
            for e in events]



# ---------------------------------------------------------------- figures


def stats(session: Session, *, community_id: int, start: datetime | None, end: datetime | None,
          now: datetime) -> dict[str, Any]:
    """Counts by status, service and zone; time to first response and to resolution; SLA; rating."""
    where = [ServiceRequest.community_id == community_id]
    if start is not None:
        where.append(ServiceRequest.created_at >= start)
    if end is not None:
        where.append(ServiceRequest.created_at < end)

    def grouped(column) -> dict[str, int]:
        return {str(k): n for k, n in session.execute(select(column, func.count()).where(*where).group_by(column))}

    minutes = lambda later: func.extract("epoch", later - ServiceRequest.created_at) / 60.0  # noqa: E731
    median = lambda expr: func.percentile_cont(0.5).within_group(expr)  # noqa: E731
    row = session.execute(select(
        func.count(),
        median(minutes(ServiceRequest.first_response_at)).filter(ServiceRequest.first_response_at.is_not(None)),
        median(minutes(ServiceRequest.resolved_at)).filter(ServiceRequest.resolved_at.is_not(None)),
        # within SLA: answered by the due time; unanswered and already overdue counts as missed
        func.count().filter(ServiceRequest.first_response_at <= ServiceRequest.sla_due_at),
        func.count().filter(or_(ServiceRequest.first_response_at > ServiceRequest.sla_due_at,
                                and_(ServiceRequest.first_response_at.is_(None),
                                     # (one withdrawn in time was never due)
                                     ServiceRequest.sla_due_at < func.coalesce(ServiceRequest.closed_at, now)))),
        func.avg(ServiceRequest.rating), func.count(ServiceRequest.rating),
    ).where(*where)).one()
    total, first, resolution, within, missed, rating, rated = row
    judged = within + missed
    zone_codes = dict(session.execute(select(Zone.id, Zone.code).where(Zone.community_id == community_id)).all())
    return {
        "community_id": community_id, "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
        "total": total, "by_status": grouped(ServiceRequest.status), "by_service": grouped(ServiceRequest.service_code),
        "by_zone": {zone_codes.get(int(k), k): n for k, n in grouped(ServiceRequest.zone_id).items()},
        "median_first_response_min": None if first is None else round(float(first), 1),
        "median_resolution_min": None if resolution is None else round(float(resolution), 1),
        "within_sla_share": None if judged == 0 else round(within / judged, 3),
        "mean_rating": None if rating is None else round(float(rating), 2), "ratings": rated,
    }
