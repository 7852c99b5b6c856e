"""Deadlines enforced at once, as ``gridsvc tick`` does every minute (there is no hidden cron)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gridsvc.services.checks import CheckPolicy, close_overdue
from gridsvc.services.requests import DispatchPolicy, expire_offers


@dataclass(frozen=True)
class Enforced:
    closed_check_ins: int  # left open past their shift's end and grace: closed as missing check-outs
    moved_offers: int  # past their deadline, or to volunteers no longer on duty: on to the next candidate


def enforce_deadlines(session: Session, *, now: datetime, checks: CheckPolicy, dispatch: DispatchPolicy) -> Enforced:
    """Close forgotten check-outs, then move offers on; the caller commits.

    Check-ins first: a volunteer whose forgotten check-out is closed here is
    off duty, and an offer still waiting for them moves on in this same
    tick, not a minute later."""
    closed = close_overdue(session, now=now, policy=checks)
    return Enforced(closed_check_ins=closed, moved_offers=expire_offers(session, now=now, policy=dispatch))
