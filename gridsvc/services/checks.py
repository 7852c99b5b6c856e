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

import json
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, contains_eager, selectinload

from gridsvc.clock import is_naive, outside_window
from gridsvc.db import execute_prepared, fetch_prepared, single_statement
from gridsvc.errors import (CheckRefused, CheckStateConflict, Conflict, Forbidden, GridsvcError, NotFound, TokenRefused,
                            ValidationFailed)
from gridsvc.models import CheckEvent, Community, ServiceHours, Shift, Volunteer
from gridsvc.services import Page
from gridsvc.services.communities import community_timezones
from gridsvc.services.volunteers import no_profile


@dataclass(frozen=True)
class CheckPolicy:
    opens_before: timedelta = timedelta(minutes=30)
    geofence_cap_m: float = 100.0
    checkout_grace: timedelta = timedelta(minutes=120)
    offline_max_age: timedelta = timedelta(hours=24)
    clock_skew: timedelta = timedelta(minutes=5)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CheckPolicy:
        return cls(opens_before=timedelta(minutes=float(config["GRIDSVC_CHECKIN_OPENS_MIN"])),
                   geofence_cap_m=float(config["GRIDSVC_GEOFENCE_CAP_M"]),
                   checkout_grace=timedelta(minutes=float(config["GRIDSVC_CHECKOUT_GRACE_MIN"])),
                   offline_max_age=timedelta(hours=float(config["GRIDSVC_OFFLINE_MAX_AGE_H"])),
                   clock_skew=timedelta(minutes=float(config["GRIDSVC_CLOCK_SKEW_MIN"])))

    @classmethod
    def of_app(cls, app) -> CheckPolicy:
        """The app's policy, read from its config once (check-in asks on every request)."""
        policy = app.extensions.get("gridsvc.check_policy")
        if policy is None:
            policy = app.extensions["gridsvc.check_policy"] = cls.from_config(app.config)
        return policy


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


def on_shift_clock(session: Session, requests: list[CheckRequest], *, default_tz: ZoneInfo) -> list[CheckRequest]:
    """The requests, each ``client_time`` sent without an offset read as a wall-clock time on the clock of its
    shift's community (the phone shows the park's time). One for a shift that does not exist is read on
    ``default_tz``'s: its event is answered 404 all the same.

    Why here, before ``check``: the database function takes aware times only, and an upload's events are
    ordered and bounded by their client times before any is judged."""
    naive = [request for request in requests if is_naive(request.client_time)]
    if not naive:  # (no lookup: phones mostly send offsets, and check-in's fast path sends no client time)
        return requests
    community_of = dict(session.execute(select(Shift.id, Shift.community_id)
                                        .where(Shift.id.in_({request.shift_id for request in naive}))).all())
    clocks = community_timezones(session, community_of.values())
    return [replace(request, client_time=request.client_time.replace(
                tzinfo=clocks.get(community_of.get(request.shift_id), default_tz)))
            if is_naive(request.client_time) else request for request in requests]


@dataclass(frozen=True)
class CheckOutcome:
    status: int
    body_json: str  # the answer as JSON text, as the database wrote it
    replayed: bool

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.body_json)


@dataclass(frozen=True)
class AccountCheck:
    """The token's claims, for ``check`` to check the account in its own
    statement (see ``auth.Rule.account_in_statement``)."""

    role: str
    token_version: int


# All of a volunteer's check events are serialised by this lock on their row.
_LOCK_VOLUNTEER = "SELECT FROM volunteer WHERE user_id = %(user_id)s FOR NO KEY UPDATE"


def lock_volunteer_of_user(session: Session, user_id: int) -> None:
    """Lock the volunteer's row for this transaction (several events judged in a row)."""
    fetch_prepared(session, _LOCK_VOLUNTEER, {"user_id": user_id})


# Check-in is the mobile app's hottest write: the database function (see
# migrations 0014 and 0015) judges and records it in one statement, one
# round trip. Its arguments travel as one JSON document: psycopg2 spent
# more CPU quoting twenty-odd parameters (floats, times, intervals) than
# json.dumps does on the lot. OFFSET 0 keeps the planner from pulling the
# document's subquery up into each of the 22 references to it, which parsed
# the JSON 22 times, 40% of the statement's CPU. A refusal's problem
# document is completed by the database (detail, reason, facts).
_CHECK = """
SELECT checked.* FROM (SELECT %(event)s::jsonb AS e OFFSET 0) event, gridsvc_check(
    (e->>'user_id')::integer, e->>'role', (e->>'token_version')::integer, (e->>'shift_id')::integer,
    e->>'kind', (e->>'lon')::float8, (e->>'lat')::float8, (e->>'input_lon')::float8, (e->>'input_lat')::float8,
    e->>'input_crs', (e->>'accuracy_m')::float8, (e->>'allowed_m')::float8, e->>'key',
    (e->>'client_time')::timestamptz, (e->'facts'->>'at')::timestamptz, (e->>'offline')::boolean,
    (e->>'now')::timestamptz, make_interval(secs => (e->>'opens_before_s')::float8),
    make_interval(secs => (e->>'grace_s')::float8), e->'facts', '{refused}'::jsonb,
    (e->>'actor_id')::integer) checked""".format(refused=json.dumps(CheckRefused().to_problem()).replace("'", "''"))

_CLOSE_OVERDUE = "SELECT gridsvc_close_overdue(%(volunteer_id)s, %(now)s, %(grace)s, %(actor_id)s)"


def close_overdue(session: Session, *, now: datetime, policy: CheckPolicy, volunteer_id: int | None = None) -> int:
    """Close check-ins left open past the shift's end plus the grace period.

    Hours run to the shift's end and wait for review, flagged
    ``missing_check_out``. Called on the volunteer's next check event (by
    the database function), on reads of hours, and by ``gridsvc tick``: no
    hidden cron.
    """
    if volunteer_id is None:
        query = (select(Volunteer.id).join(Shift, Shift.id == Volunteer.on_duty_shift_id)
                 .where(Shift.ends_at + policy.checkout_grace < now)
                 .with_for_update(of=Volunteer, skip_locked=True, key_share=True))
        candidates = sorted(session.scalars(query))
    else:
        # One volunteer: locked by primary key alone (joined to the shift, the
        # planner may walk the partial index of everyone on duty), and the
        # function says whether their check-in was overdue.
        candidates = list(session.scalars(select(Volunteer.id).where(Volunteer.id == volunteer_id)
                                          .with_for_update(key_share=True)))
    overdue = set()
    for candidate in candidates:
        [closed] = fetch_prepared(session, _CLOSE_OVERDUE, {"volunteer_id": candidate, "now": now,
                                                            "grace": policy.checkout_grace,
                                                            "actor_id": session.info.get("actor_id")})
        if closed:
            overdue.add(candidate)
    for loaded in list(session.identity_map.values()):  # written in SQL: a loaded copy is stale
        if isinstance(loaded, Volunteer) and loaded.id in overdue:
            session.expire(loaded)
    return len(overdue)


# A stint ended by the service, not by a check-out: its hours run to now (within the shift) and wait for review.
_END_DUTY = """
SELECT gridsvc_record_hours(open_check_in.id, NULL, %(now)s, NULL, %(reason)s)
FROM volunteer v, LATERAL gridsvc_open_check_in(v.id, v.on_duty_shift_id) open_check_in
WHERE v.id = %(volunteer_id)s AND open_check_in.id IS NOT NULL"""


def end_duty(session: Session, volunteer_id: int, *, now: datetime, policy: CheckPolicy, reason: str) -> bool:
    """Take a volunteer off duty now, as no check-out of theirs will: their stint is closed at this moment (at the
    shift's end, flagged ``missing_check_out``, if that is long past), its hours pending the liaison's review and
    flagged ``reason``. Whether they were on duty."""
    volunteer = session.scalar(select(Volunteer).where(Volunteer.id == volunteer_id).with_for_update(key_share=True))
    if volunteer is None or volunteer.on_duty_shift_id is None:
        return False
    if not close_overdue(session, now=now, policy=policy, volunteer_id=volunteer_id):
        fetch_prepared(session, _END_DUTY, {"volunteer_id": volunteer_id, "now": now, "reason": reason})
        volunteer.on_duty_shift_id = None
        session.flush()
    return True


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"lon": round(lon, 8), "lat": round(lat, 8), "crs": "wgs84"}


def check(session: Session, user_id: int, request: CheckRequest, *, now: datetime, policy: CheckPolicy,
          account: AccountCheck | None = None, own_transaction: bool = False) -> CheckOutcome:
    """Judge one check-in or check-out of the account's volunteer, record it,
    and return the answer to give; an event that cannot be judged raises
    its problem and records nothing.

    One statement. With ``own_transaction`` it is sent alone, in
    autocommit, and is its own transaction (``db.single_statement``);
    otherwise it runs in the session's transaction. With ``account``, the
    statement first checks the token's account as ``auth.authenticate``
    would; when that fails, ``auth.access`` answers with authenticate's
    own problem.
    """
    params = _check_params(user_id, request, now, policy, account, session.info.get("actor_id"))
    if own_transaction:
        with single_statement(session) as connection:
            row = execute_prepared(connection, _CHECK, params)
    else:
        row = fetch_prepared(session, _CHECK, params)
    return _outcome(row, request)


def check_alone(connection: Any, user_id: int, request: CheckRequest, *, now: datetime, policy: CheckPolicy,
                account: AccountCheck, actor_id: int | None) -> CheckOutcome:
    """``check`` as its own transaction on a connection in autocommit
    (``Database.autocommit_connection``), without a Session: check-in's
    fast path (``gridsvc/fastpath.py``)."""
    return _outcome(execute_prepared(connection, _CHECK, _check_params(user_id, request, now, policy, account, actor_id)),
                    request)


def _check_params(user_id: int, request: CheckRequest, now: datetime, policy: CheckPolicy,
                  account: AccountCheck | None, actor_id: int | None) -> dict[str, str]:
    # An offline event counts at its client time; one up to the clock skew ahead of ours happened now (the
    # phone's clock is fast): counted in the future, it opened no window for an online check-out made at
    # once, and pinned the last known position ahead of every fix until then.
    # In UTC, as every GET writes an instant (and the database writes the window in a refusal's detail, which
    # quotes this): the phone's own offset ("+08:00") in the answer was the same instant written another way.
    at = (min(request.client_time, now) if request.offline and request.client_time else now).astimezone(timezone.utc)
    # to a tenth of a metre, as the answer gives it and the database judges it (with the distance so rounded)
    allowed = round(min(max(request.accuracy_m or 0.0, 0.0), policy.geofence_cap_m), 1)
    # What the answer says about the request itself, written as Python writes it.
    facts = {"kind": request.kind, "at": at.isoformat(), "allowed_m": allowed,
             "point": _point(request.lon, request.lat),
             "input": {"lon": request.input_lon, "lat": request.input_lat, "crs": request.input_crs}}
    return {"event": json.dumps({
        "user_id": user_id, "role": account and account.role, "token_version": account and account.token_version,
        "shift_id": request.shift_id, "kind": request.kind, "lon": request.lon, "lat": request.lat,
        "input_lon": request.input_lon, "input_lat": request.input_lat, "input_crs": request.input_crs,
        "accuracy_m": request.accuracy_m, "allowed_m": allowed, "key": request.idempotency_key,
        "client_time": request.client_time and request.client_time.isoformat(), "offline": request.offline,
        "now": now.isoformat(), "opens_before_s": policy.opens_before.total_seconds(),
        "grace_s": policy.checkout_grace.total_seconds(), "facts": facts, "actor_id": actor_id})}


def _outcome(row: tuple[str, int | None, str | None], request: CheckRequest) -> CheckOutcome:
    outcome, status, body = row
    if outcome in ("recorded", "replayed"):
        return CheckOutcome(status=status, body_json=body, replayed=outcome == "replayed")
    raise _refusal(outcome, body, request)


def _refusal(outcome: str, body: str | None, request: CheckRequest) -> GridsvcError:
    """The problem for an event the database would not judge (nothing was recorded)."""
    shift_id = request.shift_id
    if outcome in ("no_account", "account_disabled", "token_revoked", "forbidden"):
        return TokenRefused(f"The token's account may not do this ({outcome.replace('_', ' ')}).")
    if outcome == "no_profile":
        return no_profile()
    if outcome == "key_reused":
        # online the key is a header; offline, each event's idempotency_key field
        field = "idempotency_key" if request.offline else "Idempotency-Key"
        return ValidationFailed(f"This {field} was already used for a different request.",
                                errors={field: ["already used for another request"]}, reason="key_reused")
    if outcome == "no_shift":
        return NotFound(f"Shift {shift_id} does not exist.", reason="no_shift")
    if outcome == "shift_cancelled":
        return CheckStateConflict(f"Shift {shift_id} is cancelled.", reason="cancelled")
    if outcome == "not_signed_up":
        return CheckStateConflict(f"You are not a confirmed volunteer of shift {shift_id}; sign up first.",
                                  reason="not_signed_up")
    if outcome == "already_checked_in":
        on_duty_shift_id = int(body)
        return CheckStateConflict(f"You are already checked in to shift {on_duty_shift_id}; check out first.",
                                  reason="already_checked_in", on_duty_shift_id=on_duty_shift_id)
    if outcome == "inside_a_stint":  # offline, timed inside a stint on record: as a second tap, but that stint is
        # over or at another shift than a duty now, so there is nothing to check out from (the detail says which)
        return CheckStateConflict(body, reason="already_checked_in")
    if outcome == "not_checked_in":
        return CheckStateConflict(f"You have no open check-in to shift {shift_id} to check out from.",
                                  reason="not_checked_in")
    if outcome == "hours_reviewed":
        return CheckStateConflict(f"The stint this check-out ends was closed without one, and the liaison has "
                                  f"{body} its hours since; the decision stands.", reason="hours_reviewed",
                                  hours_status=body)
    raise AssertionError(f"unknown check outcome {outcome!r}")


def check_batch(session: Session, user_id: int, events: list[tuple[int, CheckRequest]], *, now: datetime,
                policy: CheckPolicy) -> list[dict[str, Any]]:
    """Offline events, judged in the order they happened, each on its own.

    Each event runs in a savepoint: one refused or impossible event neither
    blocks the others nor leaves anything half-written.
    """
    lock_volunteer_of_user(session, user_id)  # once, outside the events' savepoints
    results: dict[int, dict[str, Any]] = {}
    # A retry replays its first answer whenever it comes: an event accepted
    # at 23 h 50 min whose answer was lost is not refused as too old later.
    seen = _keys_seen(session, user_id, [request.idempotency_key for _, request in events])
    for index, request in sorted(events, key=_as_it_happened):
        base = {"index": index, "idempotency_key": request.idempotency_key}
        refused = None if request.idempotency_key in seen else outside_window(  # (its time in UTC, as the range)
            request.client_time.astimezone(timezone.utc), now=now, max_age=policy.offline_max_age,
            skew=policy.clock_skew)
        if refused:
            results[index] = {**base, "status": 422, "replayed": False,
                              "result": ValidationFailed(refused, reason="client_time_out_of_range",
                                                         errors={"client_time": [refused]}).to_problem()}
            continue
        try:
            with session.begin_nested():
                outcome = check(session, user_id, request, now=now, policy=policy)
            results[index] = {**base, "status": outcome.status, "replayed": outcome.replayed, "result": outcome.body}
        except GridsvcError as exc:  # recorded nothing: not a replay of anything
            results[index] = {**base, "status": exc.status, "replayed": False, "result": exc.to_problem()}
    return [results[i] for i in sorted(results)]


def _as_it_happened(item: tuple[int, CheckRequest]) -> tuple[datetime, int, int]:
    """The order an upload's events are judged in: their client times; at the same instant a check-out before a
    check-in (leaving one shift as the next begins: its check-in, judged first, was "already checked in" to the
    one being left, whatever order the phone listed them in); then as listed."""
    index, request = item
    return request.client_time, 0 if request.kind == "check_out" else 1, index


def _keys_seen(session: Session, user_id: int, keys: list[str]) -> set[str]:
    """The Idempotency-Keys among ``keys`` the account's volunteer has sent before."""
    return set(session.scalars(select(CheckEvent.idempotency_key).join(Volunteer, Volunteer.id == CheckEvent.volunteer_id)
                               .where(Volunteer.user_id == user_id, CheckEvent.idempotency_key.in_(keys))))


# ---------------------------------------------------------------- hours

# An hours entry's days are those of its shift's community (its ``timezone``; DESIGN.md: the community's local
# zone is used for day boundaries and hours): the date the CSV writes for it and the month it is totalled in.
# Why each entry's own, not one clock per request (the volunteer's home zone's, the server's default): a volunteer
# may serve in parks on other clocks, and "March" must pick the entries the March CSV dates in March.
_ENTRY_SHIFT = aliased(Shift)
_ENTRY_CLOCK = (select(Community.timezone).join(_ENTRY_SHIFT, _ENTRY_SHIFT.community_id == Community.id)
                .where(_ENTRY_SHIFT.id == ServiceHours.shift_id).correlate(ServiceHours).scalar_subquery())
# Local midnights lie within these of the same wall-clock time read as UTC (offsets in use run -12:00 .. +14:00).
_OFFSET_SLACK = timedelta(hours=14)


def _shared_clock(session: Session) -> ZoneInfo | None:
    """The time zone of every community, when they all keep one (a server of parks in China: Asia/Shanghai);
    None when they differ."""
    zones = session.scalars(select(Community.timezone).distinct().limit(2)).all()
    return ZoneInfo(zones[0]) if len(zones) == 1 else None


def _started_on_days(session: Session, first_day: date | None, last_day: date | None) -> list[Any]:
    """The conditions for entries started on ``first_day`` .. ``last_day`` (inclusive; None: no bound), each on its
    own community's clock.

    When every community keeps one clock, the days are the instants of their local midnights, which the indexes
    on ``started_at`` answer exactly. Otherwise each bound comes as an instant widened by the largest offset,
    which the indexes can answer, and the exact day is then read row by row (the shift's community's clock, looked
    up per entry: a month of a zone's approved entries took 500 ms after a year of a park's shifts)."""
    if first_day is None and last_day is None:
        return []
    clock = _shared_clock(session)
    if clock is not None:
        def midnight(day: date) -> datetime:
            return datetime.combine(day, time.min, clock).astimezone(timezone.utc)  # (a DST gap: its next instant)
        return ([ServiceHours.started_at >= midnight(first_day)] if first_day is not None else []) + \
               ([ServiceHours.started_at < midnight(last_day + timedelta(days=1))] if last_day is not None else [])
    conditions: list[Any] = []
    local_start = func.timezone(_ENTRY_CLOCK, ServiceHours.started_at)  # (the wall-clock time there, no offset)
    if first_day is not None:
        midnight = datetime.combine(first_day, time.min)
        conditions += [ServiceHours.started_at >= midnight.replace(tzinfo=timezone.utc) - _OFFSET_SLACK,
                       local_start >= midnight]
    if last_day is not None:
        midnight = datetime.combine(last_day + timedelta(days=1), time.min)
        conditions += [ServiceHours.started_at < midnight.replace(tzinfo=timezone.utc) + _OFFSET_SLACK,
                       local_start < midnight]
    return conditions


def entry_clocks(session: Session, entries: Iterable[ServiceHours]) -> dict[int, ZoneInfo]:
    """The time zone of each community the entries' shifts are in, by community id (usually one)."""
    return community_timezones(session, (entry.shift.community_id for entry in entries))


def hours_of(session: Session, volunteer_id: int, *, first_day: date | None = None,
             last_day: date | None = None) -> list[ServiceHours]:
    """The volunteer's entries started on these days (inclusive), each day on its shift's community's clock."""
    query = select(ServiceHours).where(ServiceHours.volunteer_id == volunteer_id,
                                       *_started_on_days(session, first_day, last_day))
    # the entries' shifts (title, activity) in one query, not one per shift
    return list(session.scalars(query.options(selectinload(ServiceHours.shift))
                                .order_by(ServiceHours.started_at, ServiceHours.id)))


def _hours_conditions(session: Session, status: str, zone_ids: frozenset[int] | None, first_day: date | None,
                      last_day: date | None, equal: tuple[tuple[Any, Any], ...]) -> list[Any]:
    """The WHERE of the reviewers' reads of hours (the queue and the totals):
    the status, the caller's zones (None: every zone), entries started on
    ``first_day`` .. ``last_day`` (each on its community's clock), and each
    (column, value) of ``equal`` whose value is given. Conditions on
    ``Shift`` need the entries joined to their shifts."""
    conditions = [ServiceHours.status == status]
    if zone_ids is not None:
        conditions.append(Shift.zone_id.in_(list(zone_ids)))
    conditions.extend(column == value for column, value in equal if value is not None)
    conditions.extend(_started_on_days(session, first_day, last_day))
    return conditions


@dataclass(frozen=True)
class HoursUnderReview:
    """An hours entry with what its reviewer weighs: where the check-in and the check-out were."""
    entry: ServiceHours
    check_in: CheckEvent
    check_out: CheckEvent | None


def hours_for_review(session: Session, *, zone_ids: frozenset[int] | None, status: str = "pending",
                     zone_id: int | None = None, shift_id: int | None = None, volunteer_id: int | None = None,
                     flagged: bool | None = None, first_day: date | None = None, last_day: date | None = None,
                     limit: int = 100, offset: int = 0) -> Page[HoursUnderReview]:
    """Hours entries of shifts in ``zone_ids`` (None: every zone), oldest
    first: the liaison's review queue (``status`` pending) and its record."""
    conditions = _hours_conditions(session, status, zone_ids, first_day, last_day,
                                   ((Shift.zone_id, zone_id), (ServiceHours.shift_id, shift_id),
                                    (ServiceHours.volunteer_id, volunteer_id), (ServiceHours.flagged, flagged)))
    # counted without the joins only the page needs (every entry has its volunteer and check-in)
    total = session.scalar(select(func.count()).select_from(ServiceHours).join(ServiceHours.shift)
                           .where(*conditions)) or 0
    check_in, check_out = aliased(CheckEvent), aliased(CheckEvent)
    rows = session.execute(
        select(ServiceHours, check_in, check_out)
        .join(ServiceHours.shift).join(ServiceHours.volunteer)
        .join(check_in, check_in.id == ServiceHours.check_in_id)
        .outerjoin(check_out, check_out.id == ServiceHours.check_out_id)
        .where(*conditions)
        .options(contains_eager(ServiceHours.shift), contains_eager(ServiceHours.volunteer))
        .order_by(ServiceHours.started_at, ServiceHours.id).limit(limit).offset(offset)).all()
    return Page(items=[HoursUnderReview(entry, cin, cout) for entry, cin, cout in rows], total=total, limit=limit,
                offset=offset)


@dataclass(frozen=True)
class VolunteerTotal:
    """One volunteer's hours in a period and place: what recognition is based on."""
    volunteer_id: int
    volunteer_name: str
    team: str | None
    hours: Decimal
    entries: int
    last_served_at: datetime


@dataclass(frozen=True)
class HoursTotals:
    page: Page[VolunteerTotal]
    total_hours: Decimal  # of every volunteer matched, not only the page's


def hours_totals(session: Session, *, zone_ids: frozenset[int] | None, status: str = "approved",
                 community_id: int | None = None, zone_id: int | None = None, first_day: date | None = None,
                 last_day: date | None = None, limit: int = 100, offset: int = 0) -> HoursTotals:
    """Hours per volunteer, most first, over the entries of shifts in
    ``zone_ids`` (None: every zone) that started on ``first_day`` ..
    ``last_day`` (inclusive, each on its community's clock)."""
    conditions = _hours_conditions(session, status, zone_ids, first_day, last_day,
                                   ((Shift.community_id, community_id), (Shift.zone_id, zone_id)))
    per_volunteer = select(ServiceHours.volunteer_id, func.sum(ServiceHours.hours).label("hours"),
                           func.count().label("entries"), func.max(ServiceHours.ended_at).label("last_served_at"))
    if zone_ids is not None or community_id is not None or zone_id is not None:  # (an admin's whole record needs no join)
        per_volunteer = per_volunteer.join(ServiceHours.shift)
    # A stint that missed its shift (checked out by mistake before the start: 0 hours, ending at the start) is
    # no service: not a stint counted, not the last served (it would read the coming start), nobody's total.
    per_volunteer = (per_volunteer.where(*conditions, ServiceHours.hours > 0).group_by(ServiceHours.volunteer_id)
                     .subquery())
    # the page, and the count and sum over everyone, from one aggregation
    rows = session.execute(
        select(per_volunteer.c.volunteer_id, Volunteer.real_name, Volunteer.team, per_volunteer.c.hours,
               per_volunteer.c.entries, per_volunteer.c.last_served_at,
               func.count().over(), func.sum(per_volunteer.c.hours).over())
        .join(Volunteer, Volunteer.id == per_volunteer.c.volunteer_id)
        .order_by(per_volunteer.c.hours.desc(), per_volunteer.c.volunteer_id).limit(limit).offset(offset)).all()
    if rows:
        volunteers, total_hours = rows[0][-2:]
    else:  # past the last page (or nobody): the totals alone
        volunteers, total_hours = session.execute(
            select(func.count(), func.coalesce(func.sum(per_volunteer.c.hours), 0))).one()
    return HoursTotals(page=Page(items=[VolunteerTotal(*row[:-2]) for row in rows], total=volunteers, limit=limit,
                                 offset=offset), total_hours=total_hours)


@dataclass  # (not frozen: the view marks what its reader may locate)
class SeenEvent:
    """A check event of a shift, for its liaison: who, and the WGS-84 point judged (``located``: whether the
    reader may see where the volunteer was; without it, the event's time, distance and outcome, not its point)."""
    event: CheckEvent
    volunteer_name: str
    lon: float
    lat: float
    located: bool = True


def events_of_shift(session: Session, shift_id: int, *, volunteer_id: int | None = None, flagged: bool | None = None,
                    limit: int = 100, offset: int = 0) -> Page[SeenEvent]:
    """A shift's check-ins and check-outs, accepted and refused, in the order they happened."""
    query = (select(CheckEvent, Volunteer.real_name, func.ST_X(CheckEvent.position), func.ST_Y(CheckEvent.position))
             .join(Volunteer, Volunteer.id == CheckEvent.volunteer_id).where(CheckEvent.shift_id == shift_id))
    if volunteer_id is not None:
        query = query.where(CheckEvent.volunteer_id == volunteer_id)
    if flagged is not None:
        query = query.where(CheckEvent.flagged == flagged)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(CheckEvent.effective_at, CheckEvent.id).limit(limit).offset(offset)).all()
    return Page(items=[SeenEvent(*row) for row in rows], total=total, limit=limit, offset=offset)


def get_hours(session: Session, hours_id: int, *, for_update: bool = False) -> ServiceHours:
    entry = session.get(ServiceHours, hours_id, with_for_update=for_update or None)
    if entry is None:
        raise _no_hours(hours_id)
    return entry


def _no_hours(hours_id: int) -> NotFound:
    return NotFound(f"Hours entry {hours_id} does not exist.")


def review(session: Session, hours_id: int, *, approve: bool, note: str | None, reviewer_id: int | None,
           now: datetime) -> ServiceHours:
    """Approve or decline pending hours; a decision is final (declined entries stay, marked).

    Nobody reviews their own hours, admins included: "verified" means by
    someone else (a liaison may volunteer too)."""
    entry = get_hours(session, hours_id, for_update=True)
    _decide(entry, approve=approve, note=note, reviewer_id=reviewer_id, now=now,
            owner_user_id=session.get(Volunteer, entry.volunteer_id).user_id)
    session.flush()
    return entry


def review_many(session: Session, hours_ids: Iterable[int], *, approve: bool, note: str | None,
                reviewer_id: int | None, now: datetime,
                may_review: Callable[[ServiceHours], None]) -> dict[int, ServiceHours | GridsvcError]:
    """``review`` of many entries, each decided on its own (a result per id: the entry, or the problem that
    refused it and left it as it was), with the reviewer's right to each checked by ``may_review`` (raises).

    Read, locked and written in a few statements for all of them, not several per entry: a liaison's 500 took
    2.3 s. The entries are locked in id order, whatever the order asked (one statement: its rows are locked as
    sorted), so two reviewers sending overlapping lists in opposite orders do not deadlock, and read afresh once
    locked: a decision made meanwhile is seen."""
    ids = sorted(set(hours_ids))
    found = {entry.id: entry for entry in session.scalars(
        select(ServiceHours).where(ServiceHours.id.in_(ids)).options(selectinload(ServiceHours.shift)))}
    results: dict[int, ServiceHours | GridsvcError] = {}
    allowed = []
    for hours_id in ids:
        try:
            if hours_id not in found:
                raise _no_hours(hours_id)
            may_review(found[hours_id])
            allowed.append(hours_id)
        except GridsvcError as refused:
            results[hours_id] = refused
    locked = session.scalars(select(ServiceHours).where(ServiceHours.id.in_(allowed)).order_by(ServiceHours.id)
                             .with_for_update(of=ServiceHours).execution_options(populate_existing=True)).all()
    for gone in set(allowed) - {entry.id for entry in locked}:  # deleted since it was read
        results[gone] = _no_hours(gone)
    owners = dict(session.execute(select(Volunteer.id, Volunteer.user_id)
                                  .where(Volunteer.id.in_({entry.volunteer_id for entry in locked}))).all())
    for entry in locked:
        try:
            _decide(entry, approve=approve, note=note, reviewer_id=reviewer_id, now=now,
                    owner_user_id=owners[entry.volunteer_id])
            results[entry.id] = entry
        except GridsvcError as refused:
            results[entry.id] = refused
    session.flush()  # the decisions, as one batch
    return results


def _decide(entry: ServiceHours, *, approve: bool, note: str | None, reviewer_id: int | None, now: datetime,
            owner_user_id: int) -> None:
    """The decision on a locked entry, or the problem that refuses it (nothing changed)."""
    if reviewer_id is not None and owner_user_id == reviewer_id:
        raise Forbidden("You may not review your own hours; another liaison of the zone or an admin decides.")
    if entry.status != "pending":
        raise Conflict(f"Hours entry {entry.id} is already {entry.status}.", status_now=entry.status)
    entry.status = "approved" if approve else "declined"
    entry.review_note = note
    entry.reviewed_by_id = reviewer_id
    entry.reviewed_at = now


def summarise(entries: list[ServiceHours], clocks: Mapping[int, ZoneInfo]) -> dict[str, Any]:
    """Totals by status, by month (each entry's month on its shift's community's clock, ``clocks`` by community id:
    ``entry_clocks``) and by activity."""

    def bucket() -> dict[str, float]:
        return {"approved": 0.0, "pending": 0.0, "declined": 0.0}

    totals = bucket()
    months: dict[str, dict[str, float]] = {}
    activities: dict[str, dict[str, float]] = {}
    for entry in entries:
        hours = float(entry.hours)
        month = entry.started_at.astimezone(clocks[entry.shift.community_id]).strftime("%Y-%m")
        for target in (totals, months.setdefault(month, bucket()), activities.setdefault(entry.shift.activity, bucket())):
            target[entry.status] = round(target[entry.status] + hours, 2)
    return {**totals,
            "by_month": [{"key": k, **v} for k, v in sorted(months.items())],
            "by_activity": [{"key": k, **v} for k, v in sorted(activities.items())]}
