"""The service's notion of now: one place, so tests can move time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app


def now() -> datetime:
    return datetime.now(timezone.utc)


def outside_window(moment: datetime, *, now: datetime, max_age: timedelta, skew: timedelta) -> str | None:
    """Why a phone's time is refused, or None: more than ``max_age`` old, or more than ``skew`` ahead of ours (a
    phone's clock runs a little fast; further ahead, an event would count in the future)."""
    oldest, newest = now - max_age, now + skew
    if oldest <= moment <= newest:
        return None
    return (f"client_time {moment.isoformat()} is outside the accepted range ({oldest.isoformat()} .. "
            f"{newest.isoformat()}): at most {_span(max_age)} old and {_span(skew)} ahead of the server's clock.")


def _span(span: timedelta) -> str:
    """A span as people write it: "24 h", "5 min" (not "1 day, 0:00:00")."""
    minutes = span.total_seconds() / 60
    return f"{minutes / 60:g} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes:g} min"


def is_naive(moment: datetime | None) -> bool:
    """A time sent without an offset (None is not a time): a wall-clock time, on whichever clock applies."""
    return moment is not None and moment.utcoffset() is None


def default_timezone() -> ZoneInfo:
    """The clock of times without an offset where no one community's applies (a search over several parks,
    a phone's fix, a capacity whose area may span communities): GRIDSVC_DEFAULT_TIMEZONE's."""
    return ZoneInfo(current_app.config["GRIDSVC_DEFAULT_TIMEZONE"])
