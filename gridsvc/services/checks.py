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

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from geo import sql as gsql
from gridsvc.errors import Conflict, GridsvcError, NotFound, ValidationFailed
from gridsvc.models import CheckEvent, ServiceHours, Shift, Signup, Volunteer, Zone


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


def _geofence_distance(here):
    """SQL: metres from ``here`` to the shift's geofence (point radius, else zone polygon); 0 inside.

    The usual case, a phone inside its zone, is settled by a planar ST_Covers;
    the costlier distance on the spheroid is only computed outside.
    """
    zone_distance = select(case((func.ST_Covers(Zone.geom, here), 0.0), else_=gsql.distance_m(Zone.geom, here))
                           ).where(Zone.id == Shift.zone_id).scalar_subquery()
    return case((Shift.location.is_not(None), func.greatest(0.0, gsql.distance_m(Shift.location, here) - Shift.radius_m)),
                else_=zone_distance)


# One round trip for what judging a check event needs: the shift, whether
# the volunteer is confirmed on it, and the distance to its geofence.
# Built once; check-in is the mobile app's hottest write.
_JUDGE = select(
    Shift,
    select(Signup.id).where(Signup.shift_id == Shift.id, Signup.volunteer_id == bindparam("volunteer_id"),
                            Signup.status == "confirmed").exists(),
    _geofence_distance(gsql.point(bindparam("lon"), bindparam("lat"))),
).where(Shift.id == bindparam("shift_id"))


def _open_check_in(session: Session, volunteer_id: int, shift_id: int) -> CheckEvent | None:
    """The accepted check-in to this shift that has no hours yet (no check-out)."""
    return session.scalar(
        select(CheckEvent).where(CheckEvent.volunteer_id == volunteer_id, CheckEvent.shift_id == shift_id,
                                 CheckEvent.kind == "check_in", CheckEvent.accepted.is_(True),
                                 ~select(ServiceHours.id).where(ServiceHours.check_in_id == CheckEvent.id).exists())
        .order_by(CheckEvent.effective_at.desc()).limit(1))


def _hours_between(start: datetime, end: datetime) -> Decimal:
    seconds = max(0.0, (end - start).total_seconds())
    return (Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _record_hours(session: Session, volunteer_id: int, shift: Shift, check_in: CheckEvent, ended_at: datetime,
                  check_out: CheckEvent | None, flag_reason: str | None) -> ServiceHours:
    start = max(check_in.effective_at, shift.starts_at)
    end = max(start, min(ended_at, shift.ends_at))
    auto = check_out is not None and check_in.inside and check_out.inside and flag_reason is None
    entry = ServiceHours(volunteer_id=volunteer_id, shift_id=shift.id, check_in_id=check_in.id,
                         check_out_id=check_out.id if check_out else None, started_at=start, ended_at=end,
                         hours=_hours_between(start, end), status="approved" if auto else "pending",
                         auto_approved=auto, flagged=flag_reason is not None, flag_reason=flag_reason)
    session.add(entry)
    session.flush()
    return entry


def close_overdue(session: Session, *, now: datetime, policy: CheckPolicy, volunteer: Volunteer | None = None) -> int:
    """Close check-ins left open past the shift's end plus the grace period.

    Hours run to the shift's end and wait for review, flagged
    ``missing_check_out``. Called on the volunteer's next check event, on
    reads of hours, and by ``gridsvc tick``: no hidden cron.
    """
    query = (select(Volunteer, Shift).join(Shift, Shift.id == Volunteer.on_duty_shift_id)
             .where(Shift.ends_at + policy.checkout_grace < now))
    if volunteer is not None:
        query = query.where(Volunteer.id == volunteer.id)
    closed = 0
    for overdue, shift in session.execute(query.with_for_update(of=Volunteer, skip_locked=volunteer is None)).all():
        check_in = _open_check_in(session, overdue.id, shift.id)
        if check_in is not None:
            _record_hours(session, overdue.id, shift, check_in, shift.ends_at, None, "missing_check_out")
        overdue.on_duty_shift_id = None
        closed += 1
    session.flush()
    return closed


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"lon": round(lon, 8), "lat": round(lat, 8), "crs": "wgs84"}


def check(session: Session, volunteer: Volunteer, request: CheckRequest, *, now: datetime,
          policy: CheckPolicy) -> CheckOutcome:
    """Judge one check-in or check-out, record it, and return the answer to give.

    ``volunteer`` must be locked (``FOR UPDATE``) by the caller: that lock is
    what serialises a volunteer's check events.
    """
    if request.idempotency_key:
        previous = session.scalar(select(CheckEvent).where(CheckEvent.volunteer_id == volunteer.id,
                                                           CheckEvent.idempotency_key == request.idempotency_key))
        if previous is not None:
            if (previous.shift_id, previous.kind) != (request.shift_id, request.kind):
                raise ValidationFailed("This Idempotency-Key was already used for a different request.",
                                       errors={"Idempotency-Key": ["already used for another request"]})
            return CheckOutcome(status=previous.status_code, body={"event_id": previous.id, **previous.response},
                                replayed=True)
    if volunteer.on_duty_shift_id is not None:
        close_overdue(session, now=now, policy=policy, volunteer=volunteer)

    row = session.execute(_JUDGE, {"volunteer_id": volunteer.id, "shift_id": request.shift_id,
                                   "lon": request.lon, "lat": request.lat}).first()
    if row is None:
        raise NotFound(f"Shift {request.shift_id} does not exist.")
    shift, confirmed, distance = row
    if shift.status == "cancelled":
        raise CheckStateConflict(f"Shift {shift.id} is cancelled.")
    if not confirmed:
        raise CheckStateConflict(f"You are not a confirmed volunteer of shift {shift.id}; sign up first.",
                                 reason="not_signed_up")
    at = request.client_time if request.offline and request.client_time else now
    check_in = None
    if request.kind == "check_in":
        if volunteer.on_duty_shift_id is not None:
            raise CheckStateConflict(f"You are already checked in to shift {volunteer.on_duty_shift_id}; check out first.",
                                     reason="already_checked_in", on_duty_shift_id=volunteer.on_duty_shift_id)
        window = (shift.starts_at - policy.opens_before, shift.ends_at)
    else:
        check_in = _open_check_in(session, volunteer.id, shift.id) if volunteer.on_duty_shift_id == shift.id else None
        if check_in is None:
            raise CheckStateConflict(f"You have no open check-in to shift {shift.id} to check out from.",
                                     reason="not_checked_in")
        window = (check_in.effective_at, shift.ends_at + policy.checkout_grace)

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
    facts = {"shift_id": shift.id, "kind": request.kind, "at": at.isoformat(),
             "inside": inside, "distance_m": round(distance, 1), "allowed_m": round(allowed, 1),
             "point": _point(request.lon, request.lat),
             "input": {"lon": request.input_lon, "lat": request.input_lat, "crs": request.input_crs}}
    if accepted:
        status, body = 201, {"accepted": True, **facts}
    else:
        if reason == "outside_geofence":
            detail = (f"You are {distance:.0f} m outside the shift's area (allowed {allowed:.0f} m with your "
                      "reported accuracy); move closer and check in again.")
        else:
            detail = (f"A {request.kind.replace('_', '-')} is accepted from {window[0].isoformat()} "
                      f"to {window[1].isoformat()}; it was {at.isoformat()}.")
        status = 422
        body = CheckRefused(detail, accepted=False, reason=reason, **facts).to_problem()

    event = CheckEvent(shift_id=shift.id, volunteer_id=volunteer.id, kind=request.kind,
                       idempotency_key=request.idempotency_key, client_time=request.client_time, effective_at=at,
                       position=gsql.point(request.lon, request.lat), input_lon=request.input_lon,
                       input_lat=request.input_lat, input_crs=request.input_crs, accuracy_m=request.accuracy_m,
                       inside=inside, distance_m=round(distance, 1), accepted=accepted, flagged=not accepted,
                       reason=reason, offline=request.offline, status_code=status, response=body)
    session.add(event)
    if accepted:
        if request.kind == "check_in":
            volunteer.on_duty_shift_id = shift.id
        else:
            volunteer.on_duty_shift_id = None
        body["on_duty"] = volunteer.on_duty_shift_id is not None
        # A check event is a position fix: it becomes the last known position
        # (its own row keeps the history, so no volunteer_position row).
        if volunteer.last_position_at is None or at >= volunteer.last_position_at:
            volunteer.last_position = gsql.point(request.lon, request.lat)
            volunteer.last_position_at = at
            volunteer.last_accuracy_m = request.accuracy_m
    session.flush()
    if accepted and request.kind == "check_out":
        entry = _record_hours(session, volunteer.id, shift, check_in, at, event, None)
        body["hours"] = {"id": entry.id, "hours": float(entry.hours), "status": entry.status,
                         "started_at": entry.started_at.isoformat(), "ended_at": entry.ended_at.isoformat()}
        event.response = dict(body)
        session.flush()
    # The stored answer has no event_id (not known before the INSERT); a replay adds it back.
    return CheckOutcome(status=status, body={"event_id": event.id, **body}, replayed=False)


def check_batch(session: Session, volunteer: Volunteer, events: list[tuple[int, CheckRequest]], *, now: datetime,
                policy: CheckPolicy) -> list[dict[str, Any]]:
    """Offline events, judged in the order they happened, each on its own.

    Each event runs in a savepoint: one refused or impossible event neither
    blocks the others nor leaves anything half-written.
    """
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
                outcome = check(session, volunteer, request, now=now, policy=policy)
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
