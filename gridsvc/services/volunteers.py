"""Volunteers: registration, profiles, search (by zone, skill, team, duty, distance) and positions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, true, union
from sqlalchemy import update as update_rows
from sqlalchemy.orm import Session, aliased, selectinload

from gridsvc import spatial as gsql
from gridsvc.clock import is_naive, outside_window
from gridsvc.errors import Conflict, HasDependents, NotFound, ValidationFailed
from gridsvc.models import (ServiceHours, ServiceRequest, ServiceType, Shift, ShiftSkill, Signup, Skill, User,
                            UserRole, Volunteer, VolunteerPosition, VolunteerSkill, Zone)
from gridsvc.models.request import HELD_BY_A_VOLUNTEER
from gridsvc.models.shift import LIVE_SIGNUP_STATUSES
from gridsvc.services import Page
from gridsvc.services.communities import community_timezone

MINUTES_A_DAY = 24 * 60

# Registered volunteers hold this role: it is what the access rules check.
VOLUNTEER_ROLE = "volunteer"


# ---------------------------------------------------------------- skills


def list_skills(session: Session, *, include_retired: bool = False) -> list[Skill]:
    query = select(Skill).order_by(Skill.code)
    return list(session.scalars(query if include_retired else query.where(Skill.retired_at.is_(None))))


def create_skill(session: Session, *, code: str, name_zh: str, name_en: str) -> Skill:
    if session.get(Skill, code) is not None:
        raise Conflict(f"The skill {code} already exists.", code=code)
    skill = Skill(code=code, name_zh=name_zh, name_en=name_en)
    session.add(skill)
    session.flush()
    return skill


def update_skill(session: Session, code: str, changes: dict[str, Any], *, now: datetime) -> Skill:
    """New names for a skill (its code stays: shifts, services, dispatch and searches go by it), or retired
    (``retired``: off the list, taken up by nobody new, kept by whoever holds it) or brought back."""
    skill = session.get(Skill, code, with_for_update=True)
    if skill is None:
        raise NotFound(f"The skill {code} does not exist.")
    if "retired" in changes:
        retired = changes.pop("retired")
        if retired != (skill.retired_at is not None):
            skill.retired_at = now if retired else None
    for key, value in changes.items():
        setattr(skill, key, value)
    session.flush()
    return skill


def delete_skill(session: Session, code: str) -> None:
    """Remove a skill added by mistake; one in use is a 409 saying what uses it (the volunteers, shifts and
    services holding it would lose it silently)."""
    skill = session.get(Skill, code, with_for_update=True)  # locked: nobody takes it up while we count
    if skill is None:
        raise NotFound(f"The skill {code} does not exist.")
    uses = {name: session.scalar(select(func.count()).where(column == code)) or 0
            for name, column in (("volunteers", VolunteerSkill.skill_code), ("shifts", ShiftSkill.skill_code),
                                 ("service_types", ServiceType.required_skill))}
    if any(uses.values()):
        held = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in uses.items() if n)
        raise HasDependents(f"The skill {code} is held by {held}; it stays on the list.", code=code, **uses)
    session.delete(skill)
    session.flush()


def skills_by_code(session: Session, codes: Iterable[str], *, field: str = "skills",
                   held: Iterable[str] = ()) -> list[Skill]:
    """The Skill rows for ``codes``; an unknown code is a 422 naming it, and so is a retired one not already
    ``held`` (a profile or shift sent back whole keeps its retired skills; nobody takes one up anew)."""
    codes = list(dict.fromkeys(codes))
    # FOR SHARE, in code order: a retirement (or removal) in flight is waited for and then seen, and one that
    # comes later waits for this change (a holder keeps a retired skill; nobody takes one up anew)
    found = {s.code: s for s in session.scalars(select(Skill).where(Skill.code.in_(codes)).order_by(Skill.code)
                                                .with_for_update(read=True)
                                                .execution_options(populate_existing=True))}
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise ValidationFailed(f"Unknown skill(s): {', '.join(unknown)}; see /api/v1/skills.",
                               errors={field: [f"unknown skill: {c}" for c in unknown]})
    kept = set(held)
    retired = [c for c in codes if found[c].retired_at is not None and c not in kept]
    if retired:
        raise ValidationFailed(f"Retired skill(s): {', '.join(retired)}; nobody takes them up any more "
                               "(see /api/v1/skills).", errors={field: [f"retired skill: {c}" for c in retired]})
    return [found[c] for c in codes]


# ---------------------------------------------------------------- volunteers


def get_volunteer(session: Session, volunteer_id: int, *, for_update: bool = False) -> Volunteer:
    # FOR NO KEY UPDATE: inserts that refer to the volunteer (a check event, a sign-up) need not wait
    volunteer = session.get(Volunteer, volunteer_id, with_for_update={"key_share": True} if for_update else None)
    if volunteer is None:
        raise NotFound(f"Volunteer {volunteer_id} does not exist.")
    return volunteer


def volunteer_of_user(session: Session, user_id: int) -> Volunteer | None:
    return session.scalar(select(Volunteer).where(Volunteer.user_id == user_id))


def no_profile() -> NotFound:
    """The answer to an account acting as a volunteer without a profile."""
    return NotFound("Your account has no volunteer profile yet; register at POST /api/v1/volunteers.")


def require_volunteer_of_user(session: Session, user_id: int, *, for_update: bool = False) -> Volunteer:
    query = select(Volunteer).where(Volunteer.user_id == user_id)
    if for_update:
        query = query.with_for_update(key_share=True)
    volunteer = session.scalar(query)
    if volunteer is None:
        raise no_profile()
    return volunteer


def _check_zone(session: Session, zone_id: int | None) -> None:
    if zone_id is not None and session.get(Zone, zone_id) is None:
        raise ValidationFailed(f"Zone {zone_id} does not exist.", errors={"home_zone_id": [f"unknown zone {zone_id}"]})


def _check_national_id(session: Session, national_id: str | None, *, volunteer_id: int | None = None) -> None:
    """A national volunteer ID names one person: a second holder would have their hours credited to the first
    on the national record. Compared without case (people type "zj-nb-9" for "ZJ-NB-9")."""
    if national_id is None:
        return
    # Two registrations with one ID at the same moment: the second waits here, then finds the first.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": "national-volunteer-id:" + national_id.upper()})
    holder = session.scalar(select(Volunteer.id).where(func.upper(Volunteer.national_volunteer_id) == national_id.upper(),
                                                       Volunteer.id != (volunteer_id or 0)).limit(1))
    if holder is not None:
        raise Conflict(f"The national_volunteer_id {national_id} is already another volunteer's.",
                       national_volunteer_id=national_id)


def register(session: Session, *, user_id: int, real_name: str, phone: str, skills: list[str],
             home_zone_id: int | None = None, team: str | None = None, national_volunteer_id: str | None = None,
             availability: list[dict[str, Any]] | None = None) -> Volunteer:
    # The account locked first: a registration sent twice at once (a phone
    # retrying) waits here for the first, then finds it and is refused.
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise ValidationFailed(f"User {user_id} does not exist.", errors={"user_id": [f"unknown user {user_id}"]})
    if volunteer_of_user(session, user_id) is not None:
        raise Conflict(f"User {user.username} is already registered as a volunteer.", user_id=user_id)
    _check_zone(session, home_zone_id)
    _check_national_id(session, national_volunteer_id)
    volunteer = Volunteer(user_id=user_id, real_name=real_name, phone=phone, team=team, home_zone_id=home_zone_id,
                          national_volunteer_id=national_volunteer_id, availability=availability or [],
                          skills=skills_by_code(session, skills))
    if VOLUNTEER_ROLE not in user.roles:
        user.set_roles([*user.roles, VOLUNTEER_ROLE])
    session.add(volunteer)
    session.flush()
    return volunteer


def update(session: Session, volunteer_id: int, changes: dict[str, Any]) -> Volunteer:
    volunteer = get_volunteer(session, volunteer_id)
    if "skills" in changes:
        volunteer.skills = skills_by_code(session, changes.pop("skills"), held=volunteer.skill_codes)
    if "home_zone_id" in changes:
        _check_zone(session, changes["home_zone_id"])
    if "national_volunteer_id" in changes:
        _check_national_id(session, changes["national_volunteer_id"], volunteer_id=volunteer_id)
    for key, value in changes.items():
        setattr(volunteer, key, value)
    session.flush()
    return volunteer


# ---------------------------------------------------------------- who works where now
#
# A volunteer works in a zone NOW when it is their home zone, when they hold a place (confirmed or waitlisted) in a
# shift of the zone that is neither cancelled nor over, or when hours of theirs there still wait for review (its
# liaison must be able to reach them about those). The liaisons of those zones see the volunteer's personal data:
# phone, positions, duty (auth.may_see_volunteer). Service past and decided grants nothing: the liaison of a zone
# served in once, years ago, would otherwise keep the phone and the live position for good (PIPL art. 6, no more
# than the work needs). ``_current_work`` is the one definition; ``zones_worked_by`` reads it for given
# volunteers in Python, ``works_in`` asks it in SQL.

# ``_current_work``'s reasons as a refusal names them
WORKS_IN_NOW = ("a home zone, a place in a shift not over, a stint left open, a request held, or hours waiting for "
                "review")


def _current_work(now: datetime):
    """(volunteer_id, zone_id) selects, one per reason besides the home zone that a volunteer works in a zone now:
    a place held in a shift there neither cancelled nor over, a stint there still open, a request of the zone
    they hold (assigned to them, or in progress), and hours there waiting for review."""
    holds_a_place = (select(Signup.volunteer_id, Shift.zone_id).join(Shift, Shift.id == Signup.shift_id)
                     .where(Signup.status.in_(LIVE_SIGNUP_STATUSES), Shift.status != "cancelled", Shift.ends_at > now))
    # a check-out forgotten: from the shift's end until the stint is closed (pending review, below) there is no
    # place and no hours yet, and the zone's liaison, who must reach them about it, would lose them meanwhile
    # (an alias: each reason stands alone, not correlated with the volunteer a query asks about)
    on_duty = aliased(Volunteer)
    still_on_duty = (select(on_duty.id.label("volunteer_id"), Shift.zone_id)
                     .join(Shift, Shift.id == on_duty.on_duty_shift_id))
    # the zone's liaison, who hands requests on and answers for them, must be able to reach whoever holds one
    holds_a_request = (select(ServiceRequest.volunteer_id, ServiceRequest.zone_id)
                       .where(ServiceRequest.status.in_(HELD_BY_A_VOLUNTEER)))
    # hours wait in the zone's review queue whatever became of the shift or the sign-up
    under_review = (select(ServiceHours.volunteer_id, Shift.zone_id).join(Shift, Shift.id == ServiceHours.shift_id)
                    .where(ServiceHours.status == "pending"))
    return holds_a_place, still_on_duty, holds_a_request, under_review


def zones_worked_in(session: Session, volunteer: Volunteer, *, now: datetime) -> set[int]:
    """The zones the volunteer works in now (see ``_current_work``): their liaisons may see the volunteer's
    personal data."""
    return zones_worked_by(session, [volunteer], now=now)[volunteer.id]


def zones_worked_by(session: Session, volunteers: list[Volunteer], *, now: datetime) -> dict[int, set[int]]:
    """``zones_worked_in`` of several volunteers, in one query."""
    zones: dict[int, set[int]] = {v.id: {v.home_zone_id} if v.home_zone_id is not None else set() for v in volunteers}
    if volunteers:
        ids = list(zones)
        work = union(*(reason.where(reason.selected_columns.volunteer_id.in_(ids)) for reason in _current_work(now)))
        for volunteer_id, zone_id in session.execute(work):
            zones[volunteer_id].add(zone_id)
    return zones


def works_in(zone_ids: frozenset[int], *, now: datetime):
    """SQL: the volunteer (``Volunteer``) works in one of ``zone_ids`` now (``zones_worked_in`` meets them). Each
    reason is the set of volunteers it gives in those zones, read once (the zones' shifts not over, their requests
    held, their hours pending: what is current there), not a test per volunteer: that read each volunteer's
    sign-ups of every year, and a liaison's search near a point took 280 ms after a year of a park's shifts."""
    zones = list(zone_ids)
    return or_(Volunteer.home_zone_id.in_(zones),
               *(Volunteer.id.in_(reason.where(reason.selected_columns.zone_id.in_(zones))
                                  .with_only_columns(reason.selected_columns.volunteer_id).correlate(None))
                 for reason in _current_work(now)))


def served_in(session: Session, volunteer_id: int, zone_ids: frozenset[int]) -> bool:
    """Whether the volunteer holds or held a place (not withdrawn) or has hours, at any time, in a shift of these
    zones: the entries of a volunteer's record that the zones' liaison keeps (they posted the shift, reviewed the
    hours), long after the volunteer moved on. It grants the record of those zones' shifts only, never the
    person's data (``works_in``)."""
    zones = list(zone_ids)
    placed = (select(Signup.id).join(Shift, Shift.id == Signup.shift_id)
              .where(Signup.volunteer_id == volunteer_id, Signup.status != "cancelled", Shift.zone_id.in_(zones)))
    worked = (select(ServiceHours.id).join(Shift, Shift.id == ServiceHours.shift_id)
              .where(ServiceHours.volunteer_id == volunteer_id, Shift.zone_id.in_(zones)))
    return bool(session.scalar(select(or_(placed.exists(), worked.exists()))))


def works_in_community(session: Session, volunteer_id: int, community_id: int, *, now: datetime) -> bool:
    """Whether the volunteer works in one of the community's zones now (``works_in``): a liaison hands work, and
    with it people's contacts, only to such volunteers, and signs up only such volunteers (a sign-up would make
    them the zone's, their phone its liaison's). Someone who served there once, long ago, is no longer the
    park's to hand work to: they sign up themselves, or an admin does."""
    zone_ids = frozenset(session.scalars(select(Zone.id).where(Zone.community_id == community_id)))
    return session.scalar(select(Volunteer.id).where(Volunteer.id == volunteer_id,
                                                     works_in(zone_ids, now=now))) is not None


def may_volunteer(volunteer: Volunteer) -> bool:
    """Whether the volunteer's account may serve (``account_may_volunteer``)."""
    return account_may_volunteer(volunteer.user)


def volunteer_may_serve() -> ColumnElement[bool]:
    """SQL, correlated to ``Volunteer``: ``account_may_volunteer`` of its account."""
    return (select(User.id).join(UserRole, UserRole.user_id == User.id)
            .where(User.id == Volunteer.user_id, User.disabled.is_(False), UserRole.role == VOLUNTEER_ROLE).exists())


def account_may_volunteer(user: User) -> bool:
    """Enabled, with the volunteer role. Why: someone who cannot sign in, or cannot check in (it needs the role),
    would hold a place or a task nobody fills (dispatch's SQL asks the same of its candidates:
    ``requests._MAY_VOLUNTEER``)."""
    return not user.disabled and VOLUNTEER_ROLE in user.roles


@dataclass(frozen=True)
class Found:
    volunteer: Volunteer
    distance_m: float | None
    on_duty: bool
    zones_worked: set[int]


def shift_days(shift: Shift, tz: tzinfo) -> list[tuple[int, int, int]]:
    """The shift's time on its community's clock, day by day: (ISO weekday, first minute, end minute) with the end
    minute 1440 where it runs on past midnight (a seconds' part widens it to the whole minute).

    Walked in instants, read on the clock: two times of one zone compare as clock times in Python, and a shift
    from 01:30 EDT to 01:15 EST (the night clocks go back) had no time at all. A day whose clock changes within
    the shift asks for every clock time the shift passes through, from the earliest to the latest."""
    days = []
    moment = shift.starts_at
    while moment < shift.ends_at:
        local = moment.astimezone(tz)
        midnight = datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=tz).astimezone(timezone.utc)
        piece_end = min(shift.ends_at, midnight)
        local_end = piece_end.astimezone(tz)
        if local.utcoffset() == local_end.utcoffset():  # the clock runs straight through the piece
            first, last = local.hour * 60 + local.minute, _minute_ending(local_end)
        else:
            # each minute it passes, as the clock reads it (a shift is hours long: a few hundred readings)
            passed = [(moment + timedelta(minutes=m)).astimezone(tz)
                      for m in range(max(1, int((piece_end - moment).total_seconds() // 60)))]
            clock_minutes = [t.hour * 60 + t.minute for t in passed]
            first, last = min(clock_minutes), max(max(clock_minutes) + 1, _minute_ending(local_end))
        days.append((local.isoweekday(), first, MINUTES_A_DAY if piece_end == midnight else last))
        moment = piece_end
    return days


def _minute_ending(local: datetime) -> int:
    """The end minute of a time on the clock: 07:30:00 ends at minute 450, 07:30:20 at 451."""
    return local.hour * 60 + local.minute + (local.second > 0 or local.microsecond > 0)


# A volunteer's weekly windows of one weekday (:weekday), in minutes of the day. An "HH:MM" cannot say 24:00: a
# window ending 23:59 runs to midnight (22:00-23:59 and 00:00-06:00 cover a night shift).
_WINDOWS_OF_THE_DAY = """
    SELECT split_part(w ->> 'start', ':', 1)::int * 60 + split_part(w ->> 'start', ':', 2)::int AS s,
           CASE WHEN w ->> 'end' = '23:59' THEN 1440
                ELSE split_part(w ->> 'end', ':', 1)::int * 60 + split_part(w ->> 'end', ':', 2)::int END AS e
    FROM jsonb_array_elements(volunteer.availability) w WHERE (w ->> 'weekday')::int = :weekday{n}"""
# [:first, :end) is covered by the day's windows, touching ones together (08:00-10:00 and 10:00-12:00 cover
# 09:00-11:00): no minute left out, and a minute left out would be :first or the end of a window inside the span.
_COVERED = """NOT EXISTS (
    WITH windows AS ({windows})
    SELECT FROM (SELECT :first{n} AS m UNION ALL SELECT e FROM windows WHERE e > :first{n} AND e < :end{n}) edge
    WHERE NOT EXISTS (SELECT FROM windows WHERE windows.s <= edge.m AND windows.e > edge.m))"""


def free_for(shift: Shift, days: list[tuple[int, int, int]]):
    """SQL: the volunteer (``Volunteer``, unaliased) could take a place in ``shift``, as a liaison staffing it asks:
    their weekly availability covers its time (``days``, from ``shift_days``; a volunteer who gave no windows has
    not said they are free), they have the skills it requires, hold no place in it yet and no confirmed place in a
    shift overlapping it, and their account may volunteer. What ``shifts.sign_up`` would then decide: confirmed
    or waitlisted, by the places left."""
    # a window that weekday at all (a cheap containment test) before the windows are read for the coverage
    some_window = [Volunteer.availability.contains([{"weekday": weekday}]) for weekday in sorted({d for d, _, _ in days})]
    covered = [text(_COVERED.format(windows=_WINDOWS_OF_THE_DAY.format(n=n), n=n))
               .bindparams(**{f"weekday{n}": weekday, f"first{n}": first, f"end{n}": end})
               for n, (weekday, first, end) in enumerate(days)]
    required = sorted(set(shift.required_skill_codes))
    # those holding every skill it requires, found by skill (indexed), not by reading each volunteer's
    skilled = ([Volunteer.id.in_(select(VolunteerSkill.volunteer_id).where(VolunteerSkill.skill_code.in_(required))
                                 .group_by(VolunteerSkill.volunteer_id).having(func.count() == len(required)))]
               if required else [])
    holds_a_place = select(Signup.id).where(Signup.shift_id == shift.id, Signup.volunteer_id == Volunteer.id,
                                            Signup.status.in_(LIVE_SIGNUP_STATUSES))
    busy = (select(Signup.id).join(Shift, Shift.id == Signup.shift_id)
            .where(Signup.volunteer_id == Volunteer.id, Signup.status == "confirmed", Shift.status == "scheduled",
                   Shift.id != shift.id, Shift.starts_at < shift.ends_at, Shift.ends_at > shift.starts_at))
    return and_(*skilled, *some_window, *covered, ~holds_a_place.exists(), ~busy.exists(), volunteer_may_serve())


def search(session: Session, *, now: datetime, zone_id: int | None = None, skill: str | None = None,
           team: str | None = None, on_duty: bool | None = None, near: tuple[float, float] | None = None,
           radius_m: float | None = None, visible_in_zones: frozenset[int] | None = None, or_user_id: int | None = None,
           of_communities_of: frozenset[int] | None = None, free_for_shift: Shift | None = None, limit: int = 100,
           offset: int = 0) -> Page[Found]:
    """Volunteers by home zone, skill, team and duty; ``near`` sorts nearest first; ``free_for_shift``: those who
    could take a place in that shift (``free_for``).

    On duty means checked in to a shift that has not ended yet (a check-in
    left open past the shift's end no longer counts). ``visible_in_zones``
    keeps only the volunteers who work in those zones now (``works_in``),
    and the account ``or_user_id``: whose positions a liaison may see.
    ``of_communities_of`` keeps those whose home zone is in a community of
    those zones, or who work in them now, and ``or_user_id``: whom a liaison
    lists (someone who served there once and moved on is another park's).
    Each item's ``zones_worked`` are the zones the volunteer works in now.
    """
    query = select(Volunteer)
    distance = None
    if visible_in_zones is not None:
        query = query.where(works_in(visible_in_zones, now=now) | (Volunteer.user_id == or_user_id))
    if of_communities_of is not None:
        communities = select(Zone.community_id).where(Zone.id.in_(list(of_communities_of)))
        query = query.where(Volunteer.home_zone_id.in_(select(Zone.id).where(Zone.community_id.in_(communities)))
                            | works_in(of_communities_of, now=now) | (Volunteer.user_id == or_user_id))
    if zone_id is not None:
        query = query.where(Volunteer.home_zone_id == zone_id)
    if skill:
        query = query.where(Volunteer.skills.any(Skill.code == skill))
    if team:
        query = query.where(Volunteer.team == team)
    if free_for_shift is not None:
        days = shift_days(free_for_shift, community_timezone(session, free_for_shift.community_id))
        query = query.where(free_for(free_for_shift, days))
    duty = and_(Volunteer.on_duty_shift_id.is_not(None),
                select(Shift.id).where(Shift.id == Volunteer.on_duty_shift_id, Shift.ends_at > now).exists())
    if on_duty is True:
        query = query.where(duty)
    elif on_duty is False:
        query = query.where(~duty)
    if near is not None:
        here = gsql.point(*near)
        distance = gsql.distance_m(Volunteer.last_position, here)
        query = query.where(Volunteer.last_position.is_not(None),
                            gsql.within_m(Volunteer.last_position, *near, radius_m))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    # a page's accounts and skills in two queries, not two per volunteer
    query = query.options(selectinload(Volunteer.user), selectinload(Volunteer.skills))
    if distance is not None:
        rows = session.execute(query.add_columns(distance).order_by(distance, Volunteer.id).limit(limit).offset(offset)).all()
    else:
        rows = [(v, None) for v in session.scalars(query.order_by(Volunteer.id).limit(limit).offset(offset))]
    volunteers = [v for v, _ in rows]
    on_duty = on_duty_among(session, volunteers, now)
    zones = zones_worked_by(session, volunteers, now=now)
    items = [Found(volunteer=v, distance_m=d, on_duty=v.id in on_duty, zones_worked=zones[v.id]) for v, d in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


def is_on_duty(session: Session, volunteer: Volunteer, now: datetime) -> bool:
    return volunteer.id in on_duty_among(session, [volunteer], now)


def on_duty_among(session: Session, volunteers: list[Volunteer], now: datetime) -> set[int]:
    """Which of these volunteers are on duty: checked in to a shift that has not ended yet."""
    shifts = {v.on_duty_shift_id for v in volunteers if v.on_duty_shift_id is not None}
    if not shifts:
        return set()
    running = set(session.scalars(select(Shift.id).where(Shift.id.in_(shifts), Shift.ends_at > now)))
    return {v.id for v in volunteers if v.on_duty_shift_id in running}


# ---------------------------------------------------------------- positions


def fix_time(client_time: datetime | None, *, now: datetime, max_age: timedelta, skew: timedelta,
             default_tz: tzinfo) -> datetime:
    """When a fix was taken: the phone's ``client_time`` (one without an offset on ``default_tz``'s clock), else
    now. Up to ``skew`` ahead is now (the phone's clock is fast); further ahead, or older than ``max_age``, is a
    422: a fix dated in the future would stay the last known position until then, past every newer one."""
    if client_time is None:
        return now
    if is_naive(client_time):
        client_time = client_time.replace(tzinfo=default_tz)
    # in UTC, as every answer writes an instant (the phone's "+08:00" was the same instant written another way)
    client_time = client_time.astimezone(timezone.utc)
    refused = outside_window(client_time, now=now, max_age=max_age, skew=skew)
    if refused:
        raise ValidationFailed(refused, errors={"client_time": ["too old, or too far ahead of the server's clock"]})
    return min(client_time, now)


def volunteer_clock(session: Session, volunteer: Volunteer, *, now: datetime, default_tz: tzinfo) -> tzinfo:
    """The clock the volunteer's phone shows: that of the park they are on duty in (a shift not over: a check-in
    left open past the end is no duty, whether or not it has been closed yet), else of their home zone's park,
    else ``default_tz``. A time their app sends without an offset is read on it."""
    community_id = session.scalar(select(Shift.community_id).where(Shift.id == volunteer.on_duty_shift_id,
                                                                   Shift.ends_at > now)) \
        if volunteer.on_duty_shift_id is not None else None
    if community_id is None and volunteer.home_zone_id is not None:
        community_id = session.scalar(select(Zone.community_id).where(Zone.id == volunteer.home_zone_id))
    if community_id is None:
        return default_tz
    return community_timezone(session, community_id)


@dataclass(frozen=True)
class HistoryThinning:
    """Which fixes the position history keeps: a fix taken within ``seconds`` of one kept (before or after
    it: a late offline fix too), within ``metres`` of it and no more accurate adds nothing the history does
    not hold, and is left out. Why: an app reporting every few seconds, standing at a gate, would otherwise
    store thousands of copies of one place a day per volunteer (PIPL: keep no more than needed). 0 seconds
    keeps every fix."""

    seconds: float
    metres: float

    @classmethod
    def of_config(cls, config: Any) -> HistoryThinning:
        return cls(seconds=float(config["GRIDSVC_POSITION_HISTORY_SECONDS"]),
                   metres=float(config["GRIDSVC_POSITION_HISTORY_METRES"]))


def record_position(session: Session, volunteer: Volunteer, *, lon: float, lat: float, crs: str,
                    accuracy_m: float | None, at: datetime, thinning: HistoryThinning) -> bool:
    """Keep the last known position (for dispatch) and a short history;
    whether the fix joined the history (see ``HistoryThinning``). The
    caller holds the volunteer's lock, so two fixes sent at once are judged
    one after the other.

    An older fix (an offline upload arriving late) joins the history but
    does not replace a newer last-known position.
    """
    point = gsql.point(lon, lat)
    in_history = thinning.seconds <= 0 or not _near_a_kept_fix(session, volunteer.id, lon, lat, accuracy_m, at,
                                                                thinning)
    if in_history:
        session.add(VolunteerPosition(volunteer_id=volunteer.id, position=point, accuracy_m=accuracy_m,
                                      input_crs=crs, recorded_at=at))
    if volunteer.last_position_at is None or at >= volunteer.last_position_at:
        volunteer.last_position = point
        volunteer.last_position_at = at
        volunteer.last_accuracy_m = accuracy_m
    session.flush()
    return in_history


def _near_a_kept_fix(session: Session, volunteer_id: int, lon: float, lat: float, accuracy_m: float | None,
                     at: datetime, thinning: HistoryThinning) -> bool:
    window = timedelta(seconds=thinning.seconds)
    # a fix of unknown accuracy is no better than any; one of known accuracy betters a kept one of unknown
    as_accurate = (true() if accuracy_m is None
                   else and_(VolunteerPosition.accuracy_m.is_not(None), VolunteerPosition.accuracy_m <= accuracy_m))
    return session.scalar(select(
        select(VolunteerPosition.id)
        .where(VolunteerPosition.volunteer_id == volunteer_id,
               VolunteerPosition.recorded_at.between(at - window, at + window), as_accurate,
               func.ST_DWithin(gsql.geography(VolunteerPosition.position), gsql.geography(gsql.point(lon, lat)),
                               thinning.metres))
        .exists()))


def position_history(session: Session, volunteer_id: int, *, limit: int, offset: int) -> Page[dict[str, Any]]:
    """The positions kept of a volunteer, newest first (their own to read: what is stored about them)."""
    theirs = VolunteerPosition.volunteer_id == volunteer_id
    total = session.scalar(select(func.count()).where(theirs)) or 0
    rows = session.execute(
        select(func.ST_X(VolunteerPosition.position), func.ST_Y(VolunteerPosition.position), VolunteerPosition.input_crs,
               VolunteerPosition.accuracy_m, VolunteerPosition.recorded_at)
        .where(theirs)
        .order_by(VolunteerPosition.recorded_at.desc(), VolunteerPosition.id.desc()).limit(limit).offset(offset))
    items = [{"point": {"lon": round(lon, 8), "lat": round(lat, 8), "crs": "wgs84"}, "input_crs": crs,
              "accuracy_m": accuracy_m, "recorded_at": recorded_at} for lon, lat, crs, accuracy_m, recorded_at in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


def purge_positions(session: Session, *, retention_days: float, now: datetime | None = None) -> tuple[int, int]:
    """Delete position history older than the retention period (PIPL: keep no more than needed). Returns the
    history rows deleted and the last known positions cleared."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
    history = session.execute(delete(VolunteerPosition).where(VolunteerPosition.recorded_at < cutoff))
    # The last known position is history too once it is that old. One UPDATE, not a read then a write:
    # PostgreSQL checks its condition again on a row another request had locked, so a position reported
    # while the purge runs (newer than the cutoff) stays.
    last_known = session.execute(update_rows(Volunteer).where(Volunteer.last_position_at < cutoff)
                                 .values(last_position=None, last_position_at=None, last_accuracy_m=None))
    return history.rowcount or 0, last_known.rowcount or 0

