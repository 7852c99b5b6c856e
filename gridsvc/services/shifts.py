"""Shifts and sign-ups: capacity, waitlist, overlap and skill rules, safe under races.

Races: every change here locks volunteers' rows first, in id order, then
the shifts' rows, in id order, as a volunteer's own check-ins and sign-ups
do (``_lock_volunteers_then_shifts``). One order means two requests wait for
each other instead of deadlocking: two withdrawals from one shift, whose
promotions lock the volunteers waiting for it; a shift cancelled while a
volunteer withdraws. The shift lock makes "count the confirmed, then confirm
or waitlist" atomic, so 50 volunteers racing for 10 places get exactly 10
confirmations; the volunteer lock makes the overlap check atomic across two
shifts. Rows are locked FOR NO KEY UPDATE: a check-in or sign-up inserting a
row that refers to a locked shift or volunteer (its foreign-key check takes a
KEY SHARE lock) need not wait for the change.

The volunteers a change locks first are read before any lock is held; a
promotion may then find someone on a waitlist who was not among them (they
signed up meanwhile). Waiting for their row then, after the shift's, could
deadlock with a request that holds it and waits for the shift; so a change
asks for it without waiting, and when another request holds it, starts
again from a savepoint with them locked first, in order
(``_in_lock_order``). So does a change of one volunteer's places that finds,
once it holds them, a shift their request in flight brought in.
"""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from shapely.geometry import Point
from sqlalchemy import DateTime, and_, case, func, literal, not_, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased, contains_eager, selectinload

from gridsvc import spatial as gsql
from gridsvc.clock import is_naive
from gridsvc.errors import Conflict, NotFound, ShiftChangeRefused, ShiftConflict, ValidationFailed
from gridsvc.models import (MAX_SHIFT_RADIUS_M, CheckEvent, Community, ServiceHours, Shift, Signup, Skill, Volunteer,
                            Zone)
from gridsvc.services import Page
from gridsvc.services.communities import CONTAINMENT_TOLERANCE_M, community_timezone
from gridsvc.services.volunteers import get_volunteer, may_volunteer, skills_by_code

MAX_SERIES = 366  # occurrences one recurring template may create


@dataclass(frozen=True)
class ShiftView:
    shift: Shift
    confirmed: int
    waitlisted: int
    distance_m: float | None = None

    @property
    def places_left(self) -> int:
        if self.shift.status == "cancelled":
            return 0
        return max(0, self.shift.capacity - self.confirmed)


def get_shift(session: Session, shift_id: int, *, for_update: bool = False) -> Shift:
    shift = session.get(Shift, shift_id, with_for_update={"key_share": True} if for_update else None)
    if shift is None:
        raise NotFound(f"Shift {shift_id} does not exist.")
    return shift


# session.info: while a change of this module runs (``_in_lock_order``), the volunteers it locks first besides
# its own (found on a waitlist, held by another request, on an earlier try)
_LOCK_FIRST = "gridsvc.shifts.lock_first"
_TRIES_BEFORE_WAITING = 3
_LOCK_NOT_AVAILABLE = "55P03"


class _LateLock(Exception):
    """A volunteer to lock after the shifts, not locked first, is held by another request (``_lock_after_shifts``),
    or the rows to lock changed while the change waited for its volunteer (``_locked_with_volunteer``)."""

    def __init__(self, volunteer_id: int) -> None:
        super().__init__(volunteer_id)
        self.volunteer_id = volunteer_id


def _in_lock_order(change: Callable[..., Any]) -> Callable[..., Any]:
    """Run a change that locks in the module's order (see the module's docstring) in a savepoint; when it must
    lock a volunteer after the shifts and another request holds them, roll back to it and run the change again
    with that volunteer locked first. After a few tries it waits for the row, as it did before (a deadlock is
    then still answered 409). A change called by another runs in its caller's tries."""

    @functools.wraps(change)
    def run(session: Session, *args: Any, **kwargs: Any) -> Any:
        if _LOCK_FIRST in session.info:
            return change(session, *args, **kwargs)
        session.info[_LOCK_FIRST] = set()
        try:
            for _ in range(_TRIES_BEFORE_WAITING):
                savepoint = session.begin_nested()
                try:
                    result = change(session, *args, **kwargs)
                except _LateLock as late:
                    savepoint.rollback()  # (the locks taken in it go too)
                    session.info[_LOCK_FIRST].add(late.volunteer_id)
                    continue
                except BaseException:
                    if savepoint.is_active:
                        savepoint.rollback()
                    raise
                savepoint.commit()
                return result
            session.info[_LOCK_FIRST] = frozenset(session.info[_LOCK_FIRST])  # the last try waits
            return change(session, *args, **kwargs)
        finally:
            del session.info[_LOCK_FIRST]

    return run


def _lock_after_shifts(session: Session, volunteer_id: int) -> Volunteer:
    """A volunteer's row locked after the shifts' (one to promote, or confirmed since the rows to lock were
    read): at once (it is ours already, or free), or ``_LateLock`` when another request holds it and the
    change can start again (``_in_lock_order``); waited for otherwise."""
    if not isinstance(session.info.get(_LOCK_FIRST), set):
        return get_volunteer(session, volunteer_id, for_update=True)
    try:
        volunteer = session.get(Volunteer, volunteer_id, with_for_update={"key_share": True, "nowait": True})
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) == _LOCK_NOT_AVAILABLE:
            raise _LateLock(volunteer_id) from None
        raise
    if volunteer is None:
        raise NotFound(f"Volunteer {volunteer_id} does not exist.")
    return volunteer


def _lock_volunteers_then_shifts(session: Session, volunteer_ids: Iterable[int],
                                 shift_ids: Iterable[int]) -> dict[int, Shift]:
    """The module's one lock order (see its docstring): volunteers by id, then shifts by id. Returns the shifts,
    locked and read afresh (the locked volunteers are in the session too: ``get_volunteer`` finds them there)."""
    for volunteer_id in sorted({*volunteer_ids, *(session.info.get(_LOCK_FIRST) or ())}):
        get_volunteer(session, volunteer_id, for_update=True)
    return {shift_id: get_shift(session, shift_id, for_update=True) for shift_id in sorted(set(shift_ids))}


def _volunteers_of(session: Session, shift_ids: Iterable[int], status: str) -> list[int]:
    """Who is ``status`` (confirmed, waitlisted) for these shifts, read without a lock: the rows to lock first."""
    return list(session.scalars(select(Signup.volunteer_id).where(Signup.shift_id.in_(list(shift_ids)),
                                                                  Signup.status == status).distinct()))


def _first_to_lock(session: Session, shift_ids: Iterable[int], *, now: datetime) -> tuple[list[int], list[int]]:
    """What a change freeing these shifts' confirmed volunteers (a cancellation, a move) locks first, read
    without a lock: (volunteers, other shifts). Those volunteers; the shifts not started where they wait at
    those times (a place skipped for them may be theirs now); and everyone waiting there, whom the promotion
    locks. Locked only later, after these shifts, such a row could be held by a sign-up waiting for one of
    these shifts: a deadlock, and one of the two answered 409 for nothing."""
    confirmed: dict[tuple[int, datetime, datetime], list[int]] = {}
    for shift_id, starts_at, ends_at, volunteer_id in session.execute(
            select(Shift.id, Shift.starts_at, Shift.ends_at, Signup.volunteer_id)
            .join(Signup, Signup.shift_id == Shift.id)
            .where(Shift.id.in_(list(shift_ids)), Signup.status == "confirmed")):
        confirmed.setdefault((shift_id, starts_at, ends_at), []).append(volunteer_id)
    volunteers, elsewhere = [], []
    for (_, starts_at, ends_at), volunteer_ids in confirmed.items():
        volunteers += volunteer_ids
        elsewhere += [s.id for s in _waiting_where_freed(session, volunteer_ids, starts_at, ends_at, now=now)]
    return volunteers + _volunteers_of(session, elsewhere, "waitlisted"), elsewhere


def _counts(session: Session, shift_ids: list[int]) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(Signup.shift_id,
               func.count().filter(Signup.status == "confirmed"),
               func.count().filter(Signup.status == "waitlisted"))
        .where(Signup.shift_id.in_(shift_ids)).group_by(Signup.shift_id))
    return {sid: (c, w) for sid, c, w in rows}


def view(session: Session, shift: Shift, distance_m: float | None = None) -> ShiftView:
    return views(session, [(shift, distance_m)])[0]


def views(session: Session, shifts: list[tuple[Shift, float | None]]) -> list[ShiftView]:
    """Shifts with their places taken, counted in one query (and each one's distance, if any)."""
    counts = _counts(session, [s.id for s, _ in shifts])
    # distances to a tenth of a metre, as the volunteer search and check-in give them
    return [ShiftView(shift=s, confirmed=counts.get(s.id, (0, 0))[0], waitlisted=counts.get(s.id, (0, 0))[1],
                      distance_m=None if d is None else round(d, 1)) for s, d in shifts]


# ---------------------------------------------------------------- create / update


def place(session: Session, zone_id: int | None, location: Point | None) -> tuple[int, int]:
    """(community_id, zone_id) for a shift at a zone, or at a point (the zone holding it)."""
    if zone_id is not None:
        zone = session.get(Zone, zone_id)
        if zone is None:
            raise ValidationFailed(f"Zone {zone_id} does not exist.", errors={"zone_id": [f"unknown zone {zone_id}"]})
        # (the zone named: a point on its edge, a tolerance off after a phone's datum was converted, is in it)
        if location is not None and not session.scalar(
                select(func.ST_Covers(gsql.buffered_m(Zone.geom, CONTAINMENT_TOLERANCE_M), gsql.literal_geometry(location)))
                .where(Zone.id == zone_id)):
            raise ValidationFailed(f"The shift's point lies outside zone {zone.code}.",
                                   errors={"location": [f"outside zone {zone.code}"]})
        return zone.community_id, zone.id
    if location is None:
        raise ValidationFailed("A shift needs a zone_id or a location with radius_m.",
                               errors={"zone_id": ["give zone_id or location + radius_m"]})
    row = session.execute(select(Zone.community_id, Zone.id)
                          .where(func.ST_Covers(Zone.geom, gsql.literal_geometry(location))).order_by(Zone.id).limit(1)).first()
    if row is None:
        raise ValidationFailed("The shift's point is in no zone.", errors={"location": ["in no zone"]})
    return row[0], row[1]


def on_community_clock(session: Session, community_id: int, *moments: datetime | None) -> list[datetime | None]:
    """The times as sent, those without an offset read as wall-clock times in the community's time zone
    (its ``timezone``): a liaison typing 08:00 means the park's 08:00, wherever the park is."""
    if not any(is_naive(moment) for moment in moments):
        return list(moments)  # (no lookup: a series' occurrences, and most clients, send offsets)
    return on_clock(community_timezone(session, community_id), *moments)


def on_clock(tz: ZoneInfo, *moments: datetime | None) -> list[datetime | None]:
    """The times as sent, those without an offset read as wall-clock times in ``tz``."""
    return [moment.replace(tzinfo=tz) if is_naive(moment) else moment for moment in moments]


def shift_times_on_clock(session: Session, community_id: int, times: dict[str, datetime]) -> dict[str, datetime]:
    """A shift's times (by field) on its community's clock, as ``on_community_clock`` reads them; a wall-clock
    time the spring change skips (02:30 on a night Berlin's clocks go from 02:00 to 03:00) is a 422 naming the
    field. Read as RFC 5545 reads it (03:30), a 02:30-03:30 shift was told it "must end after it starts"; a
    single shift's times are the caller's to choose (a series keeps its nights, ``occurrences``)."""
    if not any(is_naive(moment) for moment in times.values()):
        return dict(times)
    tz = community_timezone(session, community_id)
    for field, moment in times.items():
        if is_naive(moment) and moment.replace(tzinfo=tz).astimezone(timezone.utc).astimezone(tz).replace(
                tzinfo=None) != moment:
            raise ValidationFailed(f"{moment.isoformat()} does not exist on the community's clock ({tz.key}): the "
                                   "clocks go forward then; give a time that does, or one with its UTC offset.",
                                   errors={field: ["skipped by the clock change"]})
    return dict(zip(times, on_clock(tz, *times.values())))


def _in_utc(times: dict[str, datetime]) -> dict[str, datetime]:
    """Times (placed on a clock) as the instants in UTC the database gives back. Why: the shift keeps the object
    it was given, and the answer to the POST or PATCH wrote it with the offset sent ("08:00+08:00") where every
    GET of the shift writes "00:00+00:00"."""
    return {field: moment.astimezone(timezone.utc) for field, moment in times.items()}


def _on_each_shifts_clock(moment: datetime) -> Any:
    """A time to compare with a shift's own, in SQL: one without an offset read on the clock of that shift's
    community, shift by shift (``Shift`` must be in the query's FROM)."""
    if not is_naive(moment):
        return moment
    shifts_clock = select(Community.timezone).where(Community.id == Shift.community_id).scalar_subquery()
    return func.timezone(shifts_clock, literal(moment, DateTime()))  # (a timestamp read in that zone: an instant)


def _out_of_order(where: str) -> ValidationFailed:
    """``to`` before ``from``, found once a time without an offset is on its clock (the query's schema answers a
    pair it can compare alone, ``FromBeforeTo``): a 422, as the list would be empty, as if there were nothing."""
    return ValidationFailed(f"'to' is before 'from'{where}: nothing could be listed.",
                            errors={"to": [f"before 'from'{where}"]})


def _check_times(starts_at: datetime, ends_at: datetime) -> None:
    # in UTC: Python compares and subtracts two times of one tzinfo on the wall clock, and across a clock
    # change (a community on Europe/Berlin's, say) 00:00 to 00:00 the next day can be 25 hours
    starts_at, ends_at = starts_at.astimezone(timezone.utc), ends_at.astimezone(timezone.utc)
    if ends_at <= starts_at:
        raise ValidationFailed("A shift must end after it starts.", errors={"ends_at": ["must be after starts_at"]})
    if ends_at - starts_at > timedelta(hours=24):
        raise ValidationFailed("A shift lasts at most 24 hours.", errors={"ends_at": ["at most 24 h after starts_at"]})


def _check_not_over(ends_at: datetime, now: datetime, *, moved: bool) -> None:
    """Why: a shift whose end has passed can never be worked, and, having begun, cannot be cancelled either:
    it would sit in the lists for good."""
    if ends_at <= now:
        what = "The new end" if moved else "This shift's end"
        raise ValidationFailed(f"{what}, {ends_at.isoformat()}, has already passed: nobody could work the shift. "
                               "Give times still to come.", errors={"ends_at": ["must be later than now"]})


def create_shift(session: Session, *, title: str, activity: str, starts_at: datetime, ends_at: datetime,
                 capacity: int, zone_id: int | None = None, location: Point | None = None, radius_m: float | None = None,
                 required_skills: Iterable[str] = (), notes: str | None = None, series_id: str | None = None,
                 skills: list[Skill] | None = None, now: datetime | None = None) -> Shift:
    """A shift at a zone, or at a point (in the zone holding it). Times without an offset are read on the
    community's clock. Given ``now`` (the API's clock), a shift that has already ended is refused; history
    (fixtures, imports) is created without it."""
    if (location is None) != (radius_m is None):
        raise ValidationFailed("A point shift needs both location and radius_m.",
                               errors={"radius_m": ["give location and radius_m together"]})
    community_id, zone_id = place(session, zone_id, location)
    times = _in_utc(shift_times_on_clock(session, community_id, {"starts_at": starts_at, "ends_at": ends_at}))
    starts_at, ends_at = times["starts_at"], times["ends_at"]
    _check_times(starts_at, ends_at)
    if now is not None:
        _check_not_over(ends_at, now, moved=False)
    shift = Shift(community_id=community_id, zone_id=zone_id, title=title, activity=activity, starts_at=starts_at,
                  ends_at=ends_at, capacity=capacity, radius_m=radius_m, notes=notes, series_id=series_id,
                  location=gsql.literal_geometry(location) if location is not None else None,
                  required_skills=skills if skills is not None else skills_by_code(session, required_skills, field="required_skills"))
    session.add(shift)
    session.flush()
    return shift


def occurrences(*, weekdays: Iterable[int], start_time: time, end_time: time, from_date: date, until_date: date,
                tz: ZoneInfo, ending_after: datetime | None = None,
                at_most: int | None = None) -> list[tuple[datetime, datetime]]:
    """The (start, end) of each occurrence, in the community's time zone.

    ``weekdays`` are ISO numbers (1 = Monday). An end time at or before the
    start time means the shift runs past midnight. On a clock with daylight
    saving, a wall time the spring change skips is read as RFC 5545 reads it
    (with the offset before the change: 02:30 is 03:30); should that leave
    the night's occurrence empty (02:30-03:30), it keeps its length on the
    wall clock (03:30-04:30) rather than fail the whole series. Given ``ending_after``,
    only the occurrences that end after it; given ``at_most``, no more than
    that many: the days before and after are not walked (a range of three
    centuries cost a second of CPU before it was refused).
    """
    days = set(weekdays)
    result: list[tuple[datetime, datetime]] = []
    day = from_date
    if ending_after is not None:  # an occurrence ending after it starts the day before at the earliest
        day = max(day, ending_after.astimezone(tz).date() - timedelta(days=1))
    while day <= until_date and (at_most is None or len(result) < at_most):
        if day.isoweekday() in days:
            end_day = day if end_time > start_time else day + timedelta(days=1)
            # compared in UTC: two times of one tzinfo compare on the wall clock
            start, end = (datetime.combine(d, t, tz).astimezone(timezone.utc)
                          for d, t in ((day, start_time), (end_day, end_time)))
            if end <= start:  # both ends in (or across) the skipped hour
                end = start + (datetime.combine(end_day, end_time) - datetime.combine(day, start_time))
            start, end = start.astimezone(tz), end.astimezone(tz)
            if ending_after is None or end > ending_after:
                result.append((start, end))
        day += timedelta(days=1)
    return result


def create_series(session: Session, *, weekdays: list[int], start_time: time, end_time: time, from_date: date,
                  until_date: date, now: datetime | None = None, **shift_fields: Any) -> list[Shift]:
    """A recurring template ("weekdays 07:30-09:00 at the north gate for four weeks") in one call.

    Given ``now``, the occurrences already over are left out: a template
    starting today, sent after today's shift, is still meant for the
    other days (the answer lists what was made); with none left it is a 422.
    """
    if until_date < from_date:
        raise ValidationFailed("until_date is before from_date.", errors={"until_date": ["before from_date"]})
    first_week = [from_date + timedelta(days=n) for n in range(min(7, (until_date - from_date).days + 1))]
    if not any(day.isoweekday() in set(weekdays) for day in first_week):
        raise ValidationFailed("The template creates no shift: no chosen weekday falls in the date range.",
                               errors={"weekdays": ["no occurrence in the range"]})
    community_id, _ = place(session, shift_fields.get("zone_id"), shift_fields.get("location"))
    tz = community_timezone(session, community_id)
    times = occurrences(weekdays=weekdays, start_time=start_time, end_time=end_time, from_date=from_date,
                        until_date=until_date, tz=tz, ending_after=now, at_most=MAX_SERIES + 1)
    if not times:
        raise ValidationFailed("The template creates no shift: every occurrence has already ended.",
                               errors={"until_date": ["every occurrence has already ended"]})
    if len(times) > MAX_SERIES:
        raise ValidationFailed(f"The template would create more than {MAX_SERIES} shifts; at most {MAX_SERIES}.",
                               errors={"until_date": [f"at most {MAX_SERIES} occurrences"]})
    skills = skills_by_code(session, shift_fields.pop("required_skills", ()), field="required_skills")
    series_id = str(uuid.uuid4())
    return [create_shift(session, starts_at=s, ends_at=e, series_id=series_id, skills=skills, **shift_fields)
            for s, e in times]


# the changes to a shift after which someone on its waitlist may take a free place
PROMOTING_CHANGES = frozenset({"capacity", "starts_at", "ends_at", "required_skills"})


@_in_lock_order
def update_shift(session: Session, shift_id: int, changes: dict[str, Any], *, now: datetime) -> Shift:
    # a move locks the confirmed volunteers (and those waiting where they are freed); a change that may let
    # someone waiting take a free place locks the waitlist
    first, elsewhere = (_first_to_lock(session, [shift_id], now=now) if {"starts_at", "ends_at"} & changes.keys()
                        else ([], []))
    may_promote = bool(PROMOTING_CHANGES & changes.keys())
    if may_promote:
        first += _volunteers_of(session, [shift_id], "waitlisted")
    shift = _lock_volunteers_then_shifts(session, first, [shift_id, *elsewhere])[shift_id]
    if shift.status == "cancelled":
        raise Conflict(f"Shift {shift_id} is cancelled; it can no longer be edited.", reason="cancelled")
    changes = dict(changes)  # (the caller's own is left as sent)
    times = {key: changes[key] for key in ("starts_at", "ends_at") if key in changes}
    changes.update(_in_utc(shift_times_on_clock(session, shift.community_id, times)))
    moves = {key: changes[key] for key in ("starts_at", "ends_at") if key in changes and changes[key] != getattr(shift, key)}
    old_times, old_capacity = (shift.starts_at, shift.ends_at), shift.capacity
    moved_volunteers = []
    # Only a new end: a shift already over still takes a new title or notes, its times sent back unchanged or not.
    if "ends_at" in moves:
        _check_not_over(moves["ends_at"], now, moved=True)
    if moves:
        moved_volunteers = _check_reschedule(session, shift, moves.get("starts_at", shift.starts_at),
                                             moves.get("ends_at", shift.ends_at), now=now)
    if changes.get("activity", shift.activity) != shift.activity:
        # the activity is a field of each volunteer's service record (the national record's "activity"): begun,
        # the hours are of the activity it had (a title or notes may still be corrected)
        _check_not_begun(session, shift, now, "its activity is fixed, as the service records of it say")
    if "required_skills" in changes:
        shift.required_skills = skills_by_code(session, changes.pop("required_skills"), field="required_skills",
                                               held=shift.required_skill_codes)
    if "capacity" in changes:
        confirmed = view(session, shift).confirmed
        if changes["capacity"] < confirmed:
            raise Conflict(f"{confirmed} volunteers are confirmed; the capacity cannot go below that.",
                           confirmed=confirmed)
    for key, value in changes.items():
        setattr(shift, key, value)
    _check_times(shift.starts_at, shift.ends_at)
    session.flush()
    # More places, new times clear of a waiting volunteer's other shift, or a skill no longer required: the
    # waitlist is run again. Once the shift has started, sign-ups are closed, and only more places (the
    # liaison's deliberate call for the next in line) promote anyone; an edit sending the rest back unchanged
    # does not. Never for a shift that is over: its sign-ups are history (nobody can serve it now).
    # New times also free its volunteers at the old ones, where they may wait; all the waitlists run as one line.
    runs_own = may_promote and shift.ends_at > now and (shift.starts_at > now or shift.capacity > old_capacity)
    to_run = [shift] if runs_own else []
    if moves:
        to_run += _waiting_where_freed(session, moved_volunteers, *old_times, now=now, lock=True)
    _promote_in(session, to_run)
    return shift


def _check_reschedule(session: Session, shift: Shift, starts_at: datetime, ends_at: datetime, *,
                      now: datetime) -> list[int]:
    """New times for a shift: refused (409) once it has begun, or when a
    confirmed volunteer is confirmed elsewhere at the new time (a volunteer
    is never confirmed twice at once); a new start already past is a 422.
    Returns the confirmed volunteers, locked."""
    _check_times(starts_at, ends_at)
    confirmed = _lock_confirmed_volunteers(session, shift)
    _check_not_begun(session, shift, now, "its times are fixed")
    if starts_at != shift.starts_at and starts_at < now:
        # Begun at once, its volunteers late before they heard of it; and, begun, it could be neither moved back
        # nor cancelled (a mistyped date would stick).
        raise ValidationFailed(f"The new start, {starts_at.isoformat()}, has already passed; give a start still to "
                               "come.", errors={"starts_at": ["must be later than now"]})
    clashes = []
    for volunteer_id in confirmed:
        clash = _overlapping_confirmed(session, volunteer_id, shift, starts_at=starts_at, ends_at=ends_at)
        if clash is not None:
            clashes.append({"volunteer_id": volunteer_id, "overlapping_shift_id": clash.id})
    if clashes:
        raise ShiftChangeRefused(f"{len(clashes)} confirmed volunteer(s) are confirmed for another shift at the new "
                                 "time; cancel those sign-ups first, or choose other times.", reason="overlap",
                                 clashes=clashes)
    return confirmed


def _lock_confirmed_volunteers(session: Session, shift: Shift) -> list[int]:
    """The shift's confirmed volunteers, their rows locked (in id order).

    Why: a volunteer's sign-ups and check-ins lock their row first, and
    neither locks this shift before judging it (a check-in's event only
    takes the shift's key lock when it is written). Holding them, a change
    to the shift sees every sign-up and check-in of theirs that got there
    first, and the later ones wait and are judged against the change: a
    check-in sent while the shift is cancelled finds it cancelled, not on
    duty for a shift that no longer runs.
    """
    volunteer_ids = session.scalars(select(Signup.volunteer_id).where(Signup.shift_id == shift.id,
                                                                      Signup.status == "confirmed")
                                    .order_by(Signup.volunteer_id)).all()
    for volunteer_id in volunteer_ids:  # (those confirmed since the rows to lock were read come late)
        _lock_after_shifts(session, volunteer_id)
    return volunteer_ids


def _check_not_begun(session: Session, shift: Shift, now: datetime, consequence: str) -> None:
    if _has_begun(session, shift, now):
        raise Conflict(f"Shift {shift.id} has begun (started, or volunteers checked in); {consequence}.",
                       reason="started")


def _has_begun(session: Session, shift: Shift, now: datetime) -> bool:
    """Started, or anyone checked in (from 30 minutes before the start):
    check-ins and hours are measured against its times from then on, so it
    can be neither moved nor cancelled."""
    return shift.starts_at <= now or bool(session.scalar(
        select(func.count()).where(CheckEvent.shift_id == shift.id, CheckEvent.accepted)))


@_in_lock_order
def cancel_shift(session: Session, shift_id: int, *, now: datetime) -> Shift:
    first, elsewhere = _first_to_lock(session, [shift_id], now=now)
    shift = _lock_volunteers_then_shifts(session, first, [shift_id, *elsewhere])[shift_id]
    if shift.status == "cancelled":
        return shift
    confirmed = _lock_confirmed_volunteers(session, shift)
    _check_not_begun(session, shift, now, "it cannot be cancelled")
    _cancel(session, shift)
    _promote_in(session, _waiting_where_freed(session, confirmed, shift.starts_at, shift.ends_at, now=now, lock=True))
    return shift


def _cancel(session: Session, shift: Shift) -> None:
    """The shift marked cancelled. Its sign-ups stay as they were: who was
    confirmed and who waited is history, and each volunteer's "my shifts"
    and calendar show the shift as cancelled. (A sign-up marked cancelled
    is one its volunteer withdrew.) Nothing counts a cancelled shift's
    sign-ups: overlaps and dispatch look at scheduled shifts only."""
    shift.status = "cancelled"
    session.flush()


def series_zones(session: Session, series_id: str) -> list[int]:
    """The zones of a recurring series' shifts (404 for an unknown series)."""
    zones = session.scalars(select(Shift.zone_id).where(Shift.series_id == series_id).distinct()).all()
    if not zones:
        raise NotFound(f"Series {series_id} does not exist.")
    return list(zones)


@dataclass(frozen=True)
class SeriesCancellation:
    cancelled: list[Shift]  # cancelled now
    kept: list[Shift]  # begun (started or checked in) and not over: left as they are


@_in_lock_order
def cancel_series(session: Session, series_id: str, *, now: datetime,
                  starting_from: datetime | None = None) -> SeriesCancellation:
    """Cancel the shifts of a recurring series that have not begun (those
    starting at or after ``starting_from``, if given): "the north gate
    closes; cancel the rest of the four weeks". Shifts already cancelled or
    over are history, left out of both lists. A ``starting_from`` without
    an offset is read on the series' community's clock."""
    if is_naive(starting_from):
        community_id = search_community(session, series_id=series_id)
        if community_id is not None:  # (an unknown series matches nothing at any time)
            starting_from, = on_community_clock(session, community_id, starting_from)
    query = select(Shift).where(Shift.series_id == series_id, Shift.status == "scheduled", Shift.ends_at > now)
    if starting_from is not None:
        query = query.where(Shift.starts_at >= starting_from)
    shift_ids = session.scalars(query.with_only_columns(Shift.id)).all()
    first, elsewhere = _first_to_lock(session, shift_ids, now=now)
    _lock_volunteers_then_shifts(session, first, [*shift_ids, *elsewhere])
    cancelled, kept, freed = [], [], []
    for shift in session.scalars(query.order_by(Shift.id).with_for_update(key_share=True)).all():
        confirmed = _lock_confirmed_volunteers(session, shift)
        if _has_begun(session, shift, now):
            kept.append(shift)
        else:
            _cancel(session, shift)
            freed += _waiting_where_freed(session, confirmed, shift.starts_at, shift.ends_at, now=now, lock=True)
            cancelled.append(shift)
    _promote_in(session, freed)  # where the volunteers freed wait, as one line
    return SeriesCancellation(cancelled=cancelled, kept=kept)


def search_community(session: Session, *, zone_id: int | None = None, community_id: int | None = None,
                     series_id: str | None = None) -> int | None:
    """The one community a shift search keeps to (its zone's, the one named, its series'), or None: the search
    may span several communities (an unknown zone, community or series matches nothing anyway)."""
    if zone_id is not None:
        return session.scalar(select(Zone.community_id).where(Zone.id == zone_id))
    if community_id is not None:
        return session.scalar(select(Community.id).where(Community.id == community_id))
    if series_id is not None:  # (a series is made at one place)
        return session.scalar(select(Shift.community_id).where(Shift.series_id == series_id).limit(1))
    return None


def list_shifts(session: Session, *, now: datetime, default_tz: ZoneInfo, zone_id: int | None = None,
                community_id: int | None = None, starts_from: datetime | None = None,
                starts_to: datetime | None = None, activity: str | None = None, skill: str | None = None,
                has_space: bool | None = None, near: tuple[float, float] | None = None, radius_m: float | None = None,
                include_cancelled: bool = False, series_id: str | None = None, limit: int = 100,
                offset: int = 0) -> Page[ShiftView]:
    """Shifts by the filters given. ``has_space``: whether a sign-up made
    ``now`` would be confirmed (a free place, and not started: ``sign_up``
    refuses a started shift).

    ``starts_from``/``starts_to`` without an offset are wall-clock times on
    the clock of the one community the search keeps to (``search_community``),
    else on ``default_tz``'s. Why not each shift's own clock, as a volunteer's
    list reads them: a search over a server's parks compares thousands of
    shifts' times, which the index on ``starts_at`` answers only for one
    instant; and a search over several parks has no one clock a client could
    mean."""
    if is_naive(starts_from) or is_naive(starts_to):
        pinned = search_community(session, zone_id=zone_id, community_id=community_id, series_id=series_id)
        starts_from, starts_to = (on_clock(default_tz, starts_from, starts_to) if pinned is None
                                  else on_community_clock(session, pinned, starts_from, starts_to))
        if starts_from is not None and starts_to is not None and starts_to < starts_from:
            raise _out_of_order("")
    query = select(Shift)
    if series_id is not None:
        query = query.where(Shift.series_id == series_id)
    if not include_cancelled:
        query = query.where(Shift.status == "scheduled")
    if zone_id is not None:
        query = query.where(Shift.zone_id == zone_id)
    if community_id is not None:
        query = query.where(Shift.community_id == community_id)
    if starts_from is not None:
        query = query.where(Shift.ends_at > starts_from)
    if starts_to is not None:
        query = query.where(Shift.starts_at < starts_to)
    if activity:
        query = query.where(Shift.activity == activity)
    if skill:
        query = query.where(Shift.required_skills.any(Skill.code == skill))
    if has_space is not None:
        confirmed = (select(func.count()).where(Signup.shift_id == Shift.id, Signup.status == "confirmed")
                     .scalar_subquery())
        # the count last: PostgreSQL tests in the order written, and counted first it ran for every shift of
        # every year (640 ms for has_space=false after a year of a park's shifts; 130 ms with the count last and
        # the partial index of confirmed places)
        takes_signups = and_(Shift.status == "scheduled", Shift.starts_at > now, confirmed < Shift.capacity)
        query = query.where(takes_signups if has_space else not_(takes_signups))
    distance = None
    if near is not None:
        # Distance to the geofence: the point circle, else the zone polygon.
        here = gsql.point(*near)
        # Each zone is measured once, not once per shift: a park has ten
        # zones and, with a year of recurring shifts, thousands of shifts (a
        # polygon on the spheroid costs ~50 µs; 20,000 shifts took 1.3 s).
        # Only the zones within the radius are measured (the GiST index finds
        # them): a server holding many parks has thousands of zones, and
        # measuring all 1,010 of the bench's took 10 ms per search. A zone
        # shift whose zone is farther has no row here, so its distance is
        # NULL and the filter drops it; a point shift keeps its own distance.
        # (MATERIALIZED: a plain subquery is folded into the join, and the
        # distance is back in its filter, once per shift)
        zone_distance = (select(Zone.id, gsql.distance_m(Zone.geom, here).label("metres"))
                         .where(gsql.within_m(Zone.geom, *near, radius_m))
                         .cte("zone_distance").prefix_with("MATERIALIZED"))
        query = query.outerjoin(zone_distance, zone_distance.c.id == Shift.zone_id)
        # A point shift farther than the radius plus the largest geofence is
        # left out by its bounding box before its distance is measured (a
        # year of shifts on a server of many parks: 41,600 shifts took 40 ms
        # per statement when each point was measured on the spheroid).
        point_box = func.ST_MakeEnvelope(*gsql.degree_box(*near, radius_m + MAX_SHIFT_RADIUS_M), gsql.SRID)
        query = query.where(or_(Shift.location.is_(None), Shift.location.op("&&")(point_box)))
        # (a CASE, not COALESCE: GREATEST skips NULLs, so greatest(0, NULL) is 0 for a zone shift)
        distance = case((Shift.location.is_not(None),
                         func.greatest(0, gsql.distance_m(Shift.location, here) - Shift.radius_m)),
                        else_=zone_distance.c.metres)
        query = query.where(distance <= radius_m)
    # the page's skills in one query, not one per shift
    paged = query.options(selectinload(Shift.required_skills))
    if distance is None:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = [(s, None) for s in session.scalars(paged.order_by(Shift.starts_at, Shift.id).limit(limit).offset(offset))]
        return Page(items=views(session, rows), total=total, limit=limit, offset=offset)
    # Near a point every match is measured to be ordered anyway, so the page
    # also counts them (a window count) rather than a second statement
    # measuring them all again. (Without a point, the count and an index
    # scan for the page are cheaper: the window would sort every match.)
    rows = session.execute(paged.add_columns(distance, func.count().over())
                           .order_by(distance, Shift.starts_at, Shift.id).limit(limit).offset(offset)).all()
    if rows:
        total = rows[0][2]
    else:  # nothing matched, or a page past the last one
        total = (session.scalar(select(func.count()).select_from(query.subquery())) or 0) if offset else 0
    return Page(items=views(session, [(shift, d) for shift, d, _ in rows]), total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------- sign-ups


@dataclass(frozen=True)
class SignupResult:
    signup: Signup
    waitlist_position: int | None


def _waitlisted_ahead(shift_id: Any, created_at: Any, signup_id: Any):
    """How many wait ahead of a sign-up (values, or the columns of a sign-up in an outer query): first come,
    first served."""
    ahead = aliased(Signup)
    return select(func.count()).where(
        ahead.shift_id == shift_id, ahead.status == "waitlisted",
        or_(ahead.created_at < created_at, and_(ahead.created_at == created_at, ahead.id < signup_id)))


def waitlist_position(session: Session, signup: Signup) -> int | None:
    if signup.status != "waitlisted":
        return None
    return (session.scalar(_waitlisted_ahead(signup.shift_id, signup.created_at, signup.id)) or 0) + 1


def _overlapping_confirmed(session: Session, volunteer_id: int, shift: Shift, *, starts_at: datetime | None = None,
                           ends_at: datetime | None = None) -> Shift | None:
    """Another shift the volunteer is confirmed for that overlaps ``shift``
    (at its times, or at ``starts_at``/``ends_at`` if it were moved)."""
    starts_at, ends_at = starts_at or shift.starts_at, ends_at or shift.ends_at
    return session.scalar(
        select(Shift).join(Signup, Signup.shift_id == Shift.id)
        .where(Signup.volunteer_id == volunteer_id, Signup.status == "confirmed", Shift.id != shift.id,
               Shift.status == "scheduled", Shift.starts_at < ends_at, Shift.ends_at > starts_at)
        .limit(1))


@_in_lock_order
def sign_up(session: Session, shift_id: int, volunteer_id: int, *, now: datetime) -> SignupResult:
    # those waiting may be promoted first (a place left free for someone skipped): locked before the shift
    shift = _lock_volunteers_then_shifts(session, [volunteer_id, *_waiting_for_a_free_place(session, shift_id)],
                                         [shift_id])[shift_id]
    volunteer = get_volunteer(session, volunteer_id)  # locked above
    if not may_volunteer(volunteer):
        raise ShiftConflict(f"Volunteer {volunteer_id} may not sign up: the account is disabled or no longer has the "
                            "volunteer role.", reason="may_not_volunteer")
    if shift.status == "cancelled":
        raise ShiftConflict(f"Shift {shift_id} is cancelled.", reason="cancelled")
    # A sign-up sent again (a second tap, a retry without a key) hears that it stands, before any rule that only
    # a new one must meet: a skill required since would read as "you are not on this shift".
    existing = session.scalar(select(Signup).where(Signup.shift_id == shift_id, Signup.volunteer_id == volunteer_id,
                                                   Signup.status != "cancelled"))
    if existing is not None:
        raise ShiftConflict(f"The volunteer is already {existing.status} for shift {shift_id}.", reason="already_signed_up",
                            signup_status=existing.status)
    if shift.starts_at <= now:
        raise ShiftConflict(f"Shift {shift_id} started at {shift.starts_at.isoformat()}; sign-ups are closed.",
                            reason="started")
    missing = sorted(set(shift.required_skill_codes) - set(volunteer.skill_codes))
    if missing:
        raise ShiftConflict(f"This shift needs the skill(s) {', '.join(missing)}, which the volunteer does not have.",
                            reason="missing_skill", missing_skills=missing)
    clash = _overlapping_confirmed(session, volunteer_id, shift)
    if clash is not None:
        raise ShiftConflict(f"The volunteer is already confirmed for shift {clash.id} ({clash.title}), which overlaps.",
                            reason="overlap", overlapping_shift_id=clash.id)
    # Anyone waiting who can take a free place now (skipped earlier while
    # confirmed elsewhere at the same time) keeps their place in line.
    _promote(session, shift)
    confirmed = view(session, shift).confirmed
    signup = Signup(shift_id=shift_id, volunteer_id=volunteer_id,
                    status="confirmed" if confirmed < shift.capacity else "waitlisted")
    session.add(signup)
    session.flush()
    return SignupResult(signup=signup, waitlist_position=waitlist_position(session, signup))


@_in_lock_order
def with_waitlists_run_again(session: Session, volunteer_id: int, change: Callable[[], Any] | None = None, *,
                             now: datetime) -> Any:
    """``change()``, one that may let a volunteer take places skipped for them (a skill added to their profile), or
    none (their account was enabled again), then the waitlists they wait in, with a free place, run again in
    order. The volunteer and everyone waiting there are locked first, in the module's order; returns what
    ``change`` returned (it may run again, from the savepoint, when a promotion meets a volunteer held
    elsewhere)."""
    waiting = _lock_where_waiting(session, volunteer_id, now=now)
    result = change() if change is not None else None
    _promote_in(session, waiting)
    return result


def _lock_where_waiting(session: Session, volunteer_id: int, *, now: datetime) -> list[Shift]:
    """The shifts not started, with a free place, where the volunteer waits, locked in the module's order with
    everyone waiting there."""
    confirmed = aliased(Signup)
    taken = (select(func.count()).where(confirmed.shift_id == Shift.id, confirmed.status == "confirmed")
             .scalar_subquery())
    _, shifts = _locked_with_volunteer(session, volunteer_id, lambda: list(session.scalars(
        select(Signup.shift_id).join(Shift, Shift.id == Signup.shift_id)
        .where(Signup.volunteer_id == volunteer_id, Signup.status == "waitlisted", Shift.status == "scheduled",
               Shift.starts_at > now, taken < Shift.capacity))))
    return [shifts[shift_id] for shift_id in sorted(shifts)]


def _locked_with_volunteer(session: Session, volunteer_id: int,
                           shift_ids_of: Callable[[], list[int]]) -> tuple[list[int], dict[int, Shift]]:
    """The shifts a change of this volunteer's places touches (``shift_ids_of()``), locked in the module's order
    with the volunteer and everyone waiting there, and read again once the volunteer is locked: a sign-up,
    promotion, withdrawal or check-in of theirs that was in flight (it held that lock) has committed. When it
    brought in a shift, the change starts again (``_in_lock_order``), now reading it before the first lock:
    locking it and those waiting there after the shifts held deadlocked with a request of theirs. On the last
    try they are locked after, as before. Returns (the ids as read under the lock, every shift locked)."""
    shift_ids = shift_ids_of()  # read without a lock: the rows to lock
    shifts = _lock_volunteers_then_shifts(session, [volunteer_id, *_volunteers_of(session, shift_ids, "waitlisted")],
                                          shift_ids)
    again = shift_ids_of()
    late = [shift_id for shift_id in again if shift_id not in shifts]
    if late and isinstance(session.info.get(_LOCK_FIRST), set):
        raise _LateLock(volunteer_id)  # (locked first already: the try after reads the new shifts first)
    if late:
        shifts |= _lock_volunteers_then_shifts(session, _volunteers_of(session, late, "waitlisted"), late)
    return again, shifts


def _waiting_for_a_free_place(session: Session, shift_id: int) -> list[int]:
    """The waitlist of a shift that has a free place (read without a lock; usually nobody)."""
    confirmed = (select(func.count()).where(Signup.shift_id == shift_id, Signup.status == "confirmed")
                 .scalar_subquery())
    return list(session.scalars(select(Signup.volunteer_id).join(Shift, Shift.id == Signup.shift_id)
                                .where(Signup.shift_id == shift_id, Signup.status == "waitlisted",
                                       confirmed < Shift.capacity)))


def _promote(session: Session, shift: Shift) -> list[Signup]:
    """Fill the shift's free places from its waitlist (``_promote_in``)."""
    return _promote_in(session, [shift])


def _promote_in(session: Session, shifts: Iterable[Shift]) -> list[Signup]:
    """Fill the shifts' free places from their waitlists, first come first
    served, skipping anyone who could not sign up now: confirmed elsewhere
    at the same time, without a skill the shift has come to require, or
    whose account may no longer volunteer (``may_volunteer``). The skipped
    keep their place in line. Returns the sign-ups confirmed, in that order.

    The waitlists are run as one line, in the order the sign-ups were made:
    each shift keeps its own order, and a volunteer waiting for overlapping
    shifts that free up together moves up where they signed up first (the
    others then skip them for the overlap). Run shift by shift, they moved
    up into the lowest shift id, and the place they would rather have had
    stayed empty."""
    # (a cancelled shift's sign-ups are its record: a series' shift cancelled after it was found waiting)
    by_id = {shift.id: shift for shift in shifts if shift.status == "scheduled"}
    counts = _counts(session, list(by_id))
    free = {shift_id: shift.capacity - counts.get(shift_id, (0, 0))[0] for shift_id, shift in by_id.items()}
    free = {shift_id: places for shift_id, places in free.items() if places > 0}
    if not free:
        return []
    waiting = session.scalars(select(Signup).where(Signup.shift_id.in_(list(free)), Signup.status == "waitlisted")
                              .order_by(Signup.created_at, Signup.id)).all()
    promoted = []
    for signup in waiting:
        if not any(places > 0 for places in free.values()):
            break
        shift = by_id[signup.shift_id]
        if free[shift.id] <= 0:
            continue
        # Lock the volunteer as their own sign-ups do: otherwise a sign-up
        # of theirs for an overlapping shift, not yet committed, is not seen
        # here, and both commit (confirmed twice at the same time).
        volunteer = _lock_after_shifts(session, signup.volunteer_id)
        if (may_volunteer(volunteer) and set(shift.required_skill_codes) <= set(volunteer.skill_codes)
                and _overlapping_confirmed(session, signup.volunteer_id, shift) is None):
            signup.status = "confirmed"
            session.flush()  # seen by the overlap check of their later sign-ups in this line
            promoted.append(signup)
            free[shift.id] -= 1
    return promoted


@_in_lock_order
def cancel_signup(session: Session, shift_id: int, volunteer_id: int, *, now: datetime) -> tuple[Signup, list[Signup]]:
    """Cancel a sign-up; returns it and every waitlisted sign-up the withdrawal promoted: in its place, and in the
    overlapping shifts where the volunteer waits (a place skipped for them, for the overlap, may be theirs now)."""
    # A confirmed place freed: those who may be promoted, here and where the volunteer waits at the same
    # time, are locked before the shifts. Locked whether the place reads confirmed now or waitlisted: one
    # promoted meanwhile (by a withdrawal or a capacity raise in flight, which this waits for) is confirmed
    # once locked, and its promotion then locked those waiting after the shift, while one of them, withdrawing
    # too, held their own row and waited for the shift: a deadlock, one of the two answered 409 for nothing.
    volunteers, shifts = [volunteer_id], [shift_id]
    freed = session.get(Shift, shift_id)
    if freed is not None:  # (else a 404, once the lock is asked for)
        shifts += [s.id for s in _waiting_where_freed(session, [volunteer_id], freed.starts_at, freed.ends_at, now=now)]
        volunteers += _volunteers_of(session, shifts, "waitlisted")
    shift = _lock_volunteers_then_shifts(session, volunteers, shifts)[shift_id]
    signup = session.scalar(select(Signup).where(Signup.shift_id == shift_id, Signup.volunteer_id == volunteer_id,
                                                 Signup.status != "cancelled"))
    if signup is None:
        raise NotFound(f"Volunteer {volunteer_id} has no sign-up for shift {shift_id}.")
    if shift.ends_at <= now:
        raise Conflict(f"Shift {shift_id} is over; its sign-ups are history now.", reason="over")
    if shift.status == "cancelled":
        # who was confirmed and who waited is the cancelled shift's record (``_cancel``); a withdrawal now
        # would rewrite it as the volunteer's own choice, and frees no place anyone could take
        raise Conflict(f"Shift {shift_id} is cancelled; its sign-ups are history now.", reason="cancelled")
    if session.get(Volunteer, volunteer_id).on_duty_shift_id == shift_id:
        raise Conflict("The volunteer is checked in to this shift; check out first.", reason="checked_in")
    if session.scalar(select(func.count()).where(CheckEvent.shift_id == shift_id, CheckEvent.volunteer_id == volunteer_id,
                                                 CheckEvent.accepted)):
        # Their hours of this shift stand (and may wait for the liaison's review):
        # the sign-up they served under is part of that record.
        raise Conflict("The volunteer has checked in to this shift; the sign-up is part of their service record now.",
                       reason="checked_in")
    if shift.starts_at <= now and signup.status == "confirmed":
        # A confirmed place is the shift's record from its start, as sign-ups close then. A no-show is one
        # without a check-in; removed as one, a volunteer who was there with no signal lost the stint their
        # phone uploaded later (not signed up). And the place freed would go to the first in line for a shift
        # already running, unawares (the liaison who wants them raises the capacity). Leaving the waitlist
        # stays open.
        raise Conflict(f"Shift {shift_id} started at {shift.starts_at.isoformat()}; its confirmed places are its "
                       "record now (one without a check-in is a no-show).", reason="started")
    was_confirmed = signup.status == "confirmed"
    signup.status = "cancelled"
    session.flush()
    if not was_confirmed:
        return signup, []
    # this shift's waitlist and those where the volunteer is now free, as one line (``_promote_in``)
    return signup, _promote_in(session, [shift, *_waiting_where_freed(session, [volunteer_id], shift.starts_at,
                                                                      shift.ends_at, now=now, lock=True)])


@_in_lock_order
def release_places(session: Session, volunteer_id: int, *, now: datetime) -> list[Signup]:
    """The confirmed places of a volunteer who may no longer volunteer (the account disabled, or the
    volunteer role taken away) in shifts not started yet, given to the first on each waitlist who can take
    one, not left empty until someone notices. The volunteer goes back to the waitlist at their sign-up's
    time, passed over as anyone who may not volunteer is (``_promote``): an account enabled again takes
    the free places it waits for (``accounts._volunteer_again``). A place already checked in to (check-in opens before the start) stays: it
    is part of their record. Returns the sign-ups moved to the waitlist."""
    # as read under the volunteer's lock: a place a sign-up in flight confirmed is released too, one a check-in
    # in flight took stays
    releasable, shifts = _locked_with_volunteer(session, volunteer_id,
                                                lambda: _releasable(session, volunteer_id, now=now))
    released = list(session.scalars(select(Signup).where(Signup.volunteer_id == volunteer_id,
                                                         Signup.shift_id.in_(releasable),
                                                         Signup.status == "confirmed")))
    for signup in released:
        signup.status = "waitlisted"
    session.flush()
    _promote_in(session, [shifts[shift_id] for shift_id in sorted(shifts)])  # (locked, in id order)
    return released


def _releasable(session: Session, volunteer_id: int, *, now: datetime) -> list[int]:
    """The shifts not started where the volunteer holds a confirmed place not checked in to."""
    return list(session.scalars(
        select(Signup.shift_id).join(Shift, Shift.id == Signup.shift_id)
        .where(Signup.volunteer_id == volunteer_id, Signup.status == "confirmed", Shift.status == "scheduled",
               Shift.starts_at > now, ~select(CheckEvent.id).where(CheckEvent.shift_id == Signup.shift_id,
                                            CheckEvent.volunteer_id == volunteer_id, CheckEvent.accepted).exists())))


def _waiting_where_freed(session: Session, volunteer_ids: list[int], starts_at: datetime, ends_at: datetime, *,
                         now: datetime, lock: bool = False) -> list[Shift]:
    """The scheduled shifts, not started, overlapping [starts_at, ends_at), for which these volunteers wait.

    Why: volunteers no longer confirmed for [starts_at, ends_at) may now take a
    place skipped for them there (the overlap). Each such shift's waitlist is
    run again in order (``_promote_in``), so nobody ahead of them loses their turn."""
    if not volunteer_ids:
        return []
    waiting = (select(Signup.shift_id).where(Signup.volunteer_id.in_(volunteer_ids), Signup.status == "waitlisted")
               .scalar_subquery())
    query = (select(Shift).where(Shift.id.in_(waiting), Shift.status == "scheduled", Shift.starts_at > now,
                                 Shift.starts_at < ends_at, Shift.ends_at > starts_at).order_by(Shift.id))
    return list(session.scalars(query.with_for_update(key_share=True) if lock else query))  # locked in id order


def signups_of_shift(session: Session, shift_id: int, *, limit: int = 100,
                     offset: int = 0) -> Page[tuple[Signup, int | None]]:
    """The shift's roster: the confirmed, then the waitlist in order, each waitlisted sign-up with its place."""
    get_shift(session, shift_id)
    live = select(Signup).where(Signup.shift_id == shift_id, Signup.status != "cancelled")
    total = session.scalar(select(func.count()).select_from(live.subquery())) or 0
    place = case((Signup.status == "waitlisted",
                  func.row_number().over(partition_by=Signup.status, order_by=(Signup.created_at, Signup.id))))
    rows = session.execute(live.add_columns(place).order_by(Signup.status, Signup.created_at, Signup.id)
                           .limit(limit).offset(offset)).all()
    return Page(items=[(signup, position) for signup, position in rows], total=total, limit=limit, offset=offset)


def signups_of_volunteer(session: Session, volunteer_id: int) -> list[Signup]:
    """A volunteer's live sign-ups (confirmed or waitlisted), past ones included."""
    query = select(Signup).join(Shift, Shift.id == Signup.shift_id).where(Signup.volunteer_id == volunteer_id,
                                                                          Signup.status != "cancelled")
    # the shifts and their zones with the sign-ups, not one query per sign-up (a calendar lists them all)
    return list(session.scalars(query.options(contains_eager(Signup.shift).selectinload(Shift.zone))
                                .order_by(Shift.starts_at)))


def calendar_signups(session: Session, volunteer_id: int, *, now: datetime) -> list[Signup]:
    """What a volunteer's calendar lists: their live sign-ups, and each place they no longer hold (withdrawn, or
    removed by the liaison) in a shift not yet over, its last sign-up, earliest shift first.

    Why the places given up: a calendar app that imported the feed never notices an event gone from it, and
    keeps showing a shift the volunteer will not work; the same UID with STATUS:CANCELLED tells it. Once the
    shift is over, it no longer matters (and years of them would only grow the feed)."""
    live = signups_of_volunteer(session, volunteer_id)
    given_up = session.scalars(
        select(Signup).join(Shift, Shift.id == Signup.shift_id)
        .where(Signup.volunteer_id == volunteer_id, Signup.status == "cancelled", Shift.ends_at > now,
               Signup.shift_id.not_in({signup.shift_id for signup in live}))
        .options(contains_eager(Signup.shift).selectinload(Shift.zone))
        .order_by(Signup.shift_id, Signup.updated_at.desc(), Signup.id.desc()))
    last_given_up: dict[int, Signup] = {}
    for signup in given_up:
        last_given_up.setdefault(signup.shift_id, signup)
    return sorted([*live, *last_given_up.values()], key=lambda signup: (signup.shift.starts_at, signup.shift_id))


@dataclass(frozen=True)
class VolunteerSignup:
    """One of a volunteer's sign-ups as their app lists it ("my shifts")."""
    signup: Signup
    shift: ShiftView
    waitlist_position: int | None
    on_duty: bool
    checked_in_at: datetime | None
    checked_out_at: datetime | None
    hours: ServiceHours | None = None  # the last stint's hours entry, once it has one
    check_out_by: datetime | None = None  # the stint open: the last moment its check-out is accepted


def _stints(session: Session, check_in_ids: list[int]) -> dict[int, tuple[datetime, datetime | None,
                                                                         ServiceHours | None]]:
    """For each check-in: when it happened, when its stint's check-out happened, and the stint's hours entry
    (None while the stint is open; an entry without a check-out was closed at the shift's end, flagged
    missing_check_out)."""
    if not check_in_ids:
        return {}
    check_out = aliased(CheckEvent)
    rows = session.execute(
        select(CheckEvent.id, CheckEvent.effective_at, check_out.effective_at, ServiceHours)
        .outerjoin(ServiceHours, ServiceHours.check_in_id == CheckEvent.id)
        .outerjoin(check_out, check_out.id == ServiceHours.check_out_id)
        .where(CheckEvent.id.in_(check_in_ids))).all()
    return {check_in_id: (checked_in_at, checked_out_at, entry)
            for check_in_id, checked_in_at, checked_out_at, entry in rows}


def volunteer_signups(session: Session, volunteer_id: int, *, now: datetime, checkout_grace: timedelta,
                      start: datetime | None = None, end: datetime | None = None, status: str | None = None,
                      zone_ids: frozenset[int] | None = None, limit: int = 100,
                      offset: int = 0) -> Page[VolunteerSignup]:
    """A volunteer's live sign-ups (confirmed or waitlisted), earliest shift
    first, with their place on the waitlist and where they are with checking
    in. Without ``start`` and ``end``: the shifts not yet over, and the one the volunteer is still checked in to
    (its check-out is taken for ``checkout_grace`` after its end; one left open longer is closed before this
    is read, by the caller, as a missing check-out). A cancelled
    shift stays listed (its status says so); a withdrawn sign-up does not.

    ``start``/``end`` without an offset are wall-clock times on each shift's
    own community's clock. Why each shift's, not one clock for the volunteer
    (their home zone's): a home zone is optional, and a volunteer may serve
    in parks on other clocks; "from 07:00" then means 07:00 where each shift
    is, the time its liaison posted it at. (A volunteer's sign-ups are few:
    reading the clock row by row costs little, unlike a search's.)

    ``zone_ids``: only the shifts of these zones (another zone's liaison reads
    those entries of the record, counted and paged as such); None: all."""
    volunteer = get_volunteer(session, volunteer_id)
    if is_naive(start) != is_naive(end) and start is not None and end is not None:
        # one time on each shift's clock, the other an instant: out of order on every park's clock, nothing listed
        clocks = [ZoneInfo(key) for key in session.scalars(select(Community.timezone).distinct())]
        if all(later < earlier for earlier, later in (on_clock(tz, start, end) for tz in clocks)):
            raise _out_of_order(" on every park's clock")
    query = (select(Signup).join(Shift, Shift.id == Signup.shift_id)
             .where(Signup.volunteer_id == volunteer_id, Signup.status != "cancelled"))
    if start is None and end is None:
        # over, but still checked in to: the app's last chance to check out (on_duty says false after the end)
        query = query.where(or_(Shift.ends_at > now, Shift.id == volunteer.on_duty_shift_id))
    elif start is not None:
        query = query.where(Shift.ends_at > _on_each_shifts_clock(start))
    if end is not None:
        query = query.where(Shift.starts_at < _on_each_shifts_clock(end))
    if status is not None:
        query = query.where(Signup.status == status)
    if zone_ids is not None:
        query = query.where(Shift.zone_id.in_(list(zone_ids)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    position = case((Signup.status == "waitlisted",
                     1 + _waitlisted_ahead(Signup.shift_id, Signup.created_at, Signup.id).scalar_subquery()))

    # The last stint is the last accepted check-in's (by when it happened, as recorded offline); its check-out
    # and hours are those of its own entry, linked to that check-in. Why not the last check-out: an earlier
    # stint's check-out or entry showed beside a stint just begun, even one checked out at the same instant.
    last_check_in = (select(CheckEvent.id)
                     .where(CheckEvent.shift_id == Signup.shift_id, CheckEvent.volunteer_id == Signup.volunteer_id,
                            CheckEvent.kind == "check_in", CheckEvent.accepted)
                     .order_by(CheckEvent.effective_at.desc(), CheckEvent.id.desc()).limit(1).scalar_subquery())
    rows = session.execute(query.add_columns(position, last_check_in)
                           .options(contains_eager(Signup.shift).selectinload(Shift.required_skills))
                           .order_by(Shift.starts_at, Shift.id).limit(limit).offset(offset)).all()
    shift_views = views(session, [(signup.shift, None) for signup, *_ in rows])
    stints = _stints(session, [check_in_id for *_, check_in_id in rows if check_in_id is not None])
    items = []
    for (signup, waitlist_place, check_in_id), shift_view in zip(rows, shift_views):
        checked_in_at, checked_out_at, entry = stints.get(check_in_id, (None, None, None))
        items.append(VolunteerSignup(
            signup=signup, shift=shift_view,
            # checked in to a shift that has not ended, as on_duty_among and the search say (a check-in left
            # open past the end is no duty, while the grace for its check-out runs)
            waitlist_position=waitlist_place,
            on_duty=volunteer.on_duty_shift_id == signup.shift_id and signup.shift.ends_at > now,
            checked_in_at=checked_in_at, checked_out_at=checked_out_at, hours=entry,
            check_out_by=(signup.shift.ends_at + checkout_grace if checked_in_at is not None and entry is None
                          and volunteer.on_duty_shift_id == signup.shift_id else None)))
    return Page(items=items, total=total, limit=limit, offset=offset)
