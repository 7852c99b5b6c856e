"""GPS check-in and check-out, offline uploads, and verified service hours.

The rules, in one place:
- a check-in is accepted from ``opens_before`` (30 min) before the shift
  starts until it ends, and only inside the geofence: the zone polygon, or
  the point's radius, widened by the phone's reported accuracy up to
  ``geofence_cap_m`` (100 m);
- a check-out is accepted from the check-in until ``checkout_grace`` after
  the shift ends, wherever the phone is; being outside only means its hours
  wait for the liaison instead of being approved automatically;
- a refused event is still recorded (flagged) and answered with a 422
  problem that gives the distance;
- hours are the overlap of [check-in, check-out] with [start, end]: travel
  is not service time;
- a check-out that never comes is closed at the shift's end once the grace
  period is over, and flagged for review;
- a retry with the same Idempotency-Key returns the first answer and
  records nothing new. All of a volunteer's check events are serialised by
  a lock on the volunteer's row, so five copies of one check-in sent at once
  record one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Mapping

from psycopg2.extras import Json
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.db import fetch_prepared
from gridsvc.errors import Conflict, GridsvcError, NotFound, ValidationFailed
from gridsvc.models import ServiceHours, Shift, Volunteer
from gridsvc.services.volunteers import no_profile


@dataclass(frozen=True)
class CheckPolicy:
    opens_before: timedelta = timedelta(minutes=30)
    geofence_cap_m: float = 100.0
    checkout_grace: timedelta = timedelta(minutes=120)
    offline_max_age: timedelta = timedelta(hours=24)
    clock_skew: timedelta = timedelta(minutes=5)
    offline_max_events: int = 200

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CheckPolicy:
        return cls(opens_before=timedelta(minutes=float(config["GRIDSVC_CHECKIN_OPENS_MIN"])),
                   geofence_cap_m=float(config["GRIDSVC_GEOFENCE_CAP_M"]),
                   checkout_grace=timedelta(minutes=float(config["GRIDSVC_CHECKOUT_GRACE_MIN"])),
                   offline_max_age=timedelta(hours=float(config["GRIDSVC_OFFLINE_MAX_AGE_H"])),
                   clock_skew=timedelta(minutes=float(config["GRIDSVC_CLOCK_SKEW_MIN"])),
                   offline_max_events=int(config["GRIDSVC_OFFLINE_MAX_EVENTS"]))


class CheckRefused(ValidationFailed):
    type, title = "/problems/check-refused", "Check-in refused"


class CheckStateConflict(Conflict):
    type, title = "/problems/check-state", "Not possible in the current check-in state"


@dataclass(frozen=True)
class CheckRequest:
    shift_id: int
    kind: str  # check_in | check_out
    lon: float  # WGS-84
    lat: float
    input_lon: float
    input_lat: float
    input_crs: str
    accuracy_m: float | None
    client_time: datetime | None
    idempotency_key: str | None
    offline: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    status: int
    body: dict[str, Any]
    replayed: bool


# All of a volunteer's check events are serialised by this lock on their row.
_LOCK_VOLUNTEER = "SELECT FROM volunteer WHERE user_id = %(user_id)s FOR UPDATE"


def lock_volunteer_of_user(session: Session, user_id: int) -> None:
    """Lock the volunteer's row for this transaction (several events judged in a row)."""
    fetch_prepared(session, _LOCK_VOLUNTEER, {"user_id": user_id})


def _open_check_in_sql(volunteer: str, shift: str, only_if: str = "TRUE") -> str:
    """SQL: the volunteer's open check-in to the shift, the latest accepted
    one with no hours yet (no check-out); ``only_if`` spares the lookup."""
    return f"""
    SELECT e.id, e.effective_at, e.inside FROM check_event e
    WHERE {only_if} AND e.volunteer_id = {volunteer} AND e.shift_id = {shift} AND e.kind = 'check_in' AND e.accepted
      AND NOT EXISTS (SELECT FROM service_hours sh WHERE sh.check_in_id = e.id)
    ORDER BY e.effective_at DESC LIMIT 1"""


_OPEN_CHECK_IN = _open_check_in_sql("%(volunteer_id)s", "%(shift_id)s")


# Check-in is the mobile app's hottest write, so it is two prepared
# statements rather than ORM round trips. This one reads what judging an
# event needs, in one go, right after the volunteer's lock (so it sees every
# earlier event of theirs):
# - the volunteer and the shift they are on duty at;
# - an earlier event with the same Idempotency-Key (a retry gets its answer);
# - the shift, and whether the volunteer is confirmed on it;
# - the distance to its geofence: the point's radius, else the zone. A phone
#   inside its zone (the usual case) is settled by a planar ST_Covers; the
#   costlier distance on the spheroid is only computed outside;
# - for a check-out, the open check-in (accepted, with no hours yet).
_JUDGE = """
SELECT v.id, v.on_duty_shift_id,
       prev.id, prev.shift_id, prev.kind, prev.status_code, prev.response,
       s.id, s.status, s.starts_at, s.ends_at,
       EXISTS (SELECT FROM signup sg WHERE sg.shift_id = s.id AND sg.volunteer_id = v.id
                                       AND sg.status = 'confirmed'),
       CASE WHEN s.location IS NOT NULL
            THEN greatest(0.0, ST_Distance(s.location::geography, h.here::geography) - s.radius_m)
            ELSE (SELECT CASE WHEN ST_Covers(z.geom, h.here) THEN 0.0
                              ELSE ST_Distance(z.geom::geography, h.here::geography) END
                  FROM zone z WHERE z.id = s.zone_id)
       END,
       open.id, open.effective_at, open.inside
FROM volunteer v
CROSS JOIN (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS here) h
LEFT JOIN check_event prev ON prev.volunteer_id = v.id AND prev.idempotency_key = %(key)s
LEFT JOIN shift s ON s.id = %(shift_id)s
LEFT JOIN LATERAL ({open_check_in}) open ON true
WHERE v.user_id = %(user_id)s""".format(
    open_check_in=_open_check_in_sql("v.id", "s.id", only_if="%(kind)s = 'check_out' AND v.on_duty_shift_id = s.id"))

# The event, and for an accepted one the volunteer's duty and last known
# position (a check event is a position fix; its own row is the history).
# ``updated_by_id`` as the ORM's audit stamp would set it.
_RECORD = """
WITH event AS (
    INSERT INTO check_event (shift_id, volunteer_id, kind, idempotency_key, client_time, effective_at, position,
                             input_lon, input_lat, input_crs, accuracy_m, inside, distance_m, accepted, flagged,
                             reason, offline, status_code, response)
    VALUES (%(shift_id)s, %(volunteer_id)s, %(kind)s, %(key)s, %(client_time)s, %(at)s,
            ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(input_lon)s, %(input_lat)s, %(input_crs)s,
            %(accuracy_m)s, %(inside)s, %(distance_m)s, %(accepted)s, NOT %(accepted)s, %(reason)s, %(offline)s,
            %(status)s, %(response)s)
    RETURNING id),
duty AS (
    UPDATE volunteer SET
        on_duty_shift_id = %(on_duty_shift_id)s,
        last_position = CASE WHEN last_position_at IS NULL OR last_position_at <= %(at)s
                             THEN ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) ELSE last_position END,
        last_accuracy_m = CASE WHEN last_position_at IS NULL OR last_position_at <= %(at)s
                               THEN %(accuracy_m)s ELSE last_accuracy_m END,
        last_position_at = greatest(last_position_at, %(at)s),
        updated_at = now(), updated_by_id = coalesce(%(actor_id)s, updated_by_id)
    WHERE id = %(volunteer_id)s AND %(accepted)s)
SELECT id FROM event"""

# Hours of a closed check-in; a check-out's stored answer gets the entry's id.
_RECORD_HOURS = """
WITH entry AS (
    INSERT INTO service_hours (volunteer_id, shift_id, check_in_id, check_out_id, started_at, ended_at, hours,
                               status, auto_approved, flagged, flag_reason)
    VALUES (%(volunteer_id)s, %(shift_id)s, %(check_in_id)s, %(check_out_id)s, %(started_at)s, %(ended_at)s,
            %(hours)s, %(status)s, %(auto)s, %(flag_reason)s::text IS NOT NULL, %(flag_reason)s)
    RETURNING id),
answer AS (
    UPDATE check_event SET response = jsonb_set(response, '{hours,id}', to_jsonb(entry.id))
    FROM entry WHERE check_event.id = %(check_out_id)s)
SELECT id FROM entry"""


def _hours_between(start: datetime, end: datetime) -> Decimal:
    seconds = max(0.0, (end - start).total_seconds())
    return (Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class _OpenCheckIn:
    id: int
    effective_at: datetime
    inside: bool


def _hours_entry(shift_starts_at: datetime, shift_ends_at: datetime, check_in: _OpenCheckIn, ended_at: datetime,
                 check_out_inside: bool | None, flag_reason: str | None) -> dict[str, Any]:
    """The hours of one check-in: its overlap with the shift (travel is not
    service time), approved at once only when both ends were inside."""
    start = max(check_in.effective_at, shift_starts_at)
    end = max(start, min(ended_at, shift_ends_at))
    auto = bool(check_out_inside) and check_in.inside and flag_reason is None
    return {"started_at": start, "ended_at": end, "hours": _hours_between(start, end),
            "status": "approved" if auto else "pending", "auto": auto, "flag_reason": flag_reason}


def _record_hours(session: Session, *, volunteer_id: int, shift_id: int, check_in_id: int,
                  check_out_id: int | None, entry: dict[str, Any]) -> int:
    return fetch_prepared(session, _RECORD_HOURS, {
        "volunteer_id": volunteer_id, "shift_id": shift_id, "check_in_id": check_in_id,
        "check_out_id": check_out_id, **entry})[0]


def close_overdue(session: Session, *, now: datetime, policy: CheckPolicy, volunteer_id: int | None = None) -> int:
    """Close check-ins left open past the shift's end plus the grace period.

    Hours run to the shift's end and wait for review, flagged
    ``missing_check_out``. Called on the volunteer's next check event, on
    reads of hours, and by ``gridsvc tick``: no hidden cron.
    """
    query = (select(Volunteer, Shift).join(Shift, Shift.id == Volunteer.on_duty_shift_id)
             .where(Shift.ends_at + policy.checkout_grace < now)
             # check events write volunteer rows in SQL: never trust a loaded copy
             .execution_options(populate_existing=True))
    if volunteer_id is not None:
        query = query.where(Volunteer.id == volunteer_id)
    closed = 0
    for overdue, shift in session.execute(query.with_for_update(of=Volunteer, skip_locked=volunteer_id is None)).all():
        open_row = fetch_prepared(session, _OPEN_CHECK_IN, {"volunteer_id": overdue.id, "shift_id": shift.id})
        if open_row is not None:
            entry = _hours_entry(shift.starts_at, shift.ends_at, _OpenCheckIn(*open_row), shift.ends_at, None,
                                 "missing_check_out")
            _record_hours(session, volunteer_id=overdue.id, shift_id=shift.id, check_in_id=open_row[0],
                          check_out_id=None, entry=entry)
        overdue.on_duty_shift_id = None
        closed += 1
    session.flush()
    return closed


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"lon": round(lon, 8), "lat": round(lat, 8), "crs": "wgs84"}


def check(session: Session, user_id: int, request: CheckRequest, *, now: datetime, policy: CheckPolicy,
          locked: bool = False) -> CheckOutcome:
    """Judge one check-in or check-out of the account's volunteer, record it,
    and return the answer to give.

    Takes the volunteer's lock first, in the same round trip, unless the
    caller holds it already (``locked``).
    """
    judge_params = {"user_id": user_id, "shift_id": request.shift_id, "lon": request.lon, "lat": request.lat,
                    "key": request.idempotency_key, "kind": request.kind}
    row = fetch_prepared(session, _JUDGE, judge_params, run_first=None if locked else _LOCK_VOLUNTEER)
    if row is None:
        raise no_profile()
    volunteer_id, on_duty_shift_id = row[:2]
    previous_id, previous_shift, previous_kind, previous_status, previous_response = row[2:7]
    if previous_id is not None:
        if (previous_shift, previous_kind) != (request.shift_id, request.kind):
            raise ValidationFailed("This Idempotency-Key was already used for a different request.",
                                   errors={"Idempotency-Key": ["already used for another request"]})
        return CheckOutcome(status=previous_status, body={"event_id": previous_id, **previous_response},
                            replayed=True)
    if on_duty_shift_id is not None and close_overdue(session, now=now, policy=policy, volunteer_id=volunteer_id):
        # an overdue check-in was just closed: judge again against what is left
        row = fetch_prepared(session, _JUDGE, judge_params)
        on_duty_shift_id = row[1]

    shift_id, shift_status, starts_at, ends_at, confirmed, distance = row[7:13]
    if shift_id is None:
        raise NotFound(f"Shift {request.shift_id} does not exist.")
    if shift_status == "cancelled":
        raise CheckStateConflict(f"Shift {shift_id} is cancelled.")
    if not confirmed:
        raise CheckStateConflict(f"You are not a confirmed volunteer of shift {shift_id}; sign up first.",
                                 reason="not_signed_up")
    at = request.client_time if request.offline and request.client_time else now
    check_in = None
    if request.kind == "check_in":
        if on_duty_shift_id is not None:
            raise CheckStateConflict(f"You are already checked in to shift {on_duty_shift_id}; check out first.",
                                     reason="already_checked_in", on_duty_shift_id=on_duty_shift_id)
        window = (starts_at - policy.opens_before, ends_at)
    else:
        check_in = _OpenCheckIn(*row[13:16]) if row[13] is not None else None
        if check_in is None:
            raise CheckStateConflict(f"You have no open check-in to shift {shift_id} to check out from.",
                                     reason="not_checked_in")
        window = (check_in.effective_at, ends_at + policy.checkout_grace)

    distance = float(distance)
    allowed = min(max(request.accuracy_m or 0.0, 0.0), policy.geofence_cap_m)
    inside = distance <= allowed
    if not window[0] <= at <= window[1]:
        reason = "outside_window"
    elif request.kind == "check_in" and not inside:
        reason = "outside_geofence"
    else:
        reason = None
    accepted = reason is None
    facts = {"shift_id": shift_id, "kind": request.kind, "at": at.isoformat(),
             "inside": inside, "distance_m": round(distance, 1), "allowed_m": round(allowed, 1),
             "point": _point(request.lon, request.lat),
             "input": {"lon": request.input_lon, "lat": request.input_lat, "crs": request.input_crs}}
    hours = None
    if accepted:
        status, body = 201, {"accepted": True, **facts}
        on_duty_shift_id = shift_id if request.kind == "check_in" else None
        body["on_duty"] = on_duty_shift_id is not None
        if request.kind == "check_out":
            hours = _hours_entry(starts_at, ends_at, check_in, at, inside, None)
            # the entry's id is added by _RECORD_HOURS, in the stored answer too
            body["hours"] = {"id": None, "hours": float(hours["hours"]), "status": hours["status"],
                             "started_at": hours["started_at"].isoformat(),
                             "ended_at": hours["ended_at"].isoformat()}
    else:
        if reason == "outside_geofence":
            detail = (f"You are {distance:.0f} m outside the shift's area (allowed {allowed:.0f} m with your "
                      "reported accuracy); move closer and check in again.")
        else:
            detail = (f"A {request.kind.replace('_', '-')} is accepted from {window[0].isoformat()} "
                      f"to {window[1].isoformat()}; it was {at.isoformat()}.")
        status = 422
        body = CheckRefused(detail, accepted=False, reason=reason, **facts).to_problem()

    event_id = fetch_prepared(session, _RECORD, {
        "shift_id": shift_id, "volunteer_id": volunteer_id, "kind": request.kind, "key": request.idempotency_key,
        "client_time": request.client_time, "at": at, "lon": request.lon, "lat": request.lat,
        "input_lon": request.input_lon, "input_lat": request.input_lat, "input_crs": request.input_crs,
        "accuracy_m": request.accuracy_m, "inside": inside, "distance_m": round(distance, 1), "accepted": accepted,
        "reason": reason, "offline": request.offline, "status": status, "response": Json(body),
        "on_duty_shift_id": on_duty_shift_id, "actor_id": session.info.get("actor_id")})[0]
    if hours is not None:
        body["hours"]["id"] = _record_hours(session, volunteer_id=volunteer_id, shift_id=shift_id,
                                            check_in_id=check_in.id, check_out_id=event_id, entry=hours)
    # The stored answer has no event_id (not known before the INSERT); a replay adds it back.
    return CheckOutcome(status=status, body={"event_id": event_id, **body}, replayed=False)


def check_batch(session: Session, user_id: int, events: list[tuple[int, CheckRequest]], *, now: datetime,
                policy: CheckPolicy) -> list[dict[str, Any]]:
    """Offline events, judged in the order they happened, each on its own.

    Each event runs in a savepoint: one refused or impossible event neither
    blocks the others nor leaves anything half-written.
    """
    lock_volunteer_of_user(session, user_id)  # once, outside the events' savepoints
    results: dict[int, dict[str, Any]] = {}
    oldest, newest = now - policy.offline_max_age, now + policy.clock_skew
    for index, request in sorted(events, key=lambda item: (item[1].client_time, item[0])):
        base = {"index": index, "idempotency_key": request.idempotency_key}
        if not oldest <= request.client_time <= newest:
            problem = ValidationFailed(
                f"client_time {request.client_time.isoformat()} is outside the accepted range "
                f"({oldest.isoformat()} .. {newest.isoformat()}): at most {policy.offline_max_age} old "
                f"and {policy.clock_skew} ahead.", reason="client_time_out_of_range").to_problem()
            results[index] = {**base, "status": 422, "result": problem}
            continue
        try:
            with session.begin_nested():
                outcome = check(session, user_id, request, now=now, policy=policy, locked=True)
            results[index] = {**base, "status": outcome.status, "replayed": outcome.replayed, "result": outcome.body}
        except GridsvcError as exc:
            results[index] = {**base, "status": exc.status, "result": exc.to_problem()}
    return [results[i] for i in sorted(results)]


# ---------------------------------------------------------------- hours


def hours_of(session: Session, volunteer_id: int, *, start: datetime | None = None,
             end: datetime | None = None) -> list[ServiceHours]:
    query = select(ServiceHours).where(ServiceHours.volunteer_id == volunteer_id)
    if start is not None:
        query = query.where(ServiceHours.started_at >= start)
    if end is not None:
        query = query.where(ServiceHours.started_at < end)
    return list(session.scalars(query.order_by(ServiceHours.started_at, ServiceHours.id)))


def get_hours(session: Session, hours_id: int, *, for_update: bool = False) -> ServiceHours:
    entry = session.get(ServiceHours, hours_id, with_for_update=for_update or None)
    if entry is None:
        raise NotFound(f"Hours entry {hours_id} does not exist.")
    return entry


def review(session: Session, hours_id: int, *, approve: bool, note: str | None, reviewer_id: int | None,
           now: datetime) -> ServiceHours:
    """Approve or decline pending hours; a decision is final (declined entries stay, marked)."""
    entry = get_hours(session, hours_id, for_update=True)
    if entry.status != "pending":
        raise Conflict(f"Hours entry {hours_id} is already {entry.status}.", status_now=entry.status)
    entry.status = "approved" if approve else "declined"
    entry.review_note = note
    entry.reviewed_by_id = reviewer_id
    entry.reviewed_at = now
    session.flush()
    return entry


def summarise(entries: list[ServiceHours], tz) -> dict[str, Any]:
    """Totals by status, by month (community time) and by activity."""

    def bucket() -> dict[str, float]:
        return {"approved": 0.0, "pending": 0.0, "declined": 0.0}

    totals = bucket()
    months: dict[str, dict[str, float]] = {}
    activities: dict[str, dict[str, float]] = {}
    for entry in entries:
        hours = float(entry.hours)
        month = entry.started_at.astimezone(tz).strftime("%Y-%m")
        for target in (totals, months.setdefault(month, bucket()), activities.setdefault(entry.shift.activity, bucket())):
            target[entry.status] = round(target[entry.status] + hours, 2)
    return {**totals,
            "by_month": [{"key": k, **v} for k, v in sorted(months.items())],
            "by_activity": [{"key": k, **v} for k, v in sorted(activities.items())]}
