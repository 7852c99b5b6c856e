"""Deadlines enforced at once, as ``gridsvc tick`` does every minute (there is no hidden cron)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from gridsvc.errors import LockHeldElsewhere
from gridsvc.models import RequestOffer, ServiceRequest, Volunteer
from gridsvc.services.checks import CheckPolicy, close_overdue
from gridsvc.services.requests import ALLOWED_FROM, DispatchPolicy, expire_offers, give_back_tasks
from gridsvc.services.volunteers import volunteer_may_serve


@dataclass(frozen=True)
class Enforced:
    closed_check_ins: int  # left open past their shift's end and grace: closed as missing check-outs
    moved_offers: int  # past their deadline, or to volunteers no longer on duty: on to the next candidate
    handed_back: int  # requests still held by accounts that may no longer volunteer: on to the next


def enforce_deadlines(session: Session, *, now: datetime, checks: CheckPolicy, dispatch: DispatchPolicy) -> Enforced:
    """Close forgotten check-outs, then move offers on, then hand back what accounts that may no longer
    volunteer still hold; the caller commits.

    Check-ins first: a volunteer whose forgotten check-out is closed here is
    off duty, and an offer still waiting for them moves on in this same
    tick, not a minute later."""
    closed = close_overdue(session, now=now, policy=checks)
    moved = expire_offers(session, now=now, policy=dispatch)
    return Enforced(closed_check_ins=closed, moved_offers=moved,
                    handed_back=_hand_back_from_those_who_may_not_serve(session, now=now, policy=dispatch))


def _hand_back_from_those_who_may_not_serve(session: Session, *, now: datetime, policy: DispatchPolicy) -> int:
    """Disabling an account (or taking its volunteer role) hands back its tasks at once; a request left with one
    anyway (by a crossing fixed in session 13, in a database that ran the code before) would stay there for
    good: nobody acts on it, and nothing else moves it. Each tick finds them. A volunteer whose offer lock is
    held elsewhere this minute is left for the next tick."""
    holding = or_(exists().where(ServiceRequest.volunteer_id == Volunteer.id,
                                 ServiceRequest.status.in_(ALLOWED_FROM["hand_back"])),
                  exists().where(RequestOffer.volunteer_id == Volunteer.id, RequestOffer.outcome == "pending"))
    handed = 0
    for volunteer_id in session.scalars(select(Volunteer.id).where(~volunteer_may_serve(), holding)
                                        .order_by(Volunteer.id)).all():
        try:
            handed += len(give_back_tasks(session, volunteer_id, now=now, policy=policy,
                                          note="the volunteer may no longer volunteer (account disabled or role "
                                               "removed)"))
        except LockHeldElsewhere:  # (raised before it changed anything)
            continue
    return handed
