"""The service's notion of now: one place, so tests can move time."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app


# The forms the API takes (RFC 3339's, with the offset optional: a wall-clock time on a community's clock, and
# the seconds optional). Why: marshmallow 4 reads with Python's fromisoformat, which also takes a date alone as a
# date-time ("2031-03-04": midnight), week dates ("2031-W10-2T07:30"), basic forms ("20310304T0730") and an hour
# alone: a typo in a client became a shift at a time nobody meant.
DATE_TIME_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
                             r"([Zz]|[+-][0-9]{2}:[0-9]{2})?")
DATE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date_time(text: str) -> datetime:
    """A date-time in one of the forms the API takes (``DATE_TIME_FORM``), naive without an offset; a ValueError
    for any other (fromisoformat alone also reads week dates and compact forms, and not RFC 3339's "z")."""
    if DATE_TIME_FORM.fullmatch(text) is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    return datetime.fromisoformat(text.upper())


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


# Files of the zoneinfo directory that are no place's clock: "localtime" is the host's (whatever it is set to),
# "posixrules" a default rule file, "Factory" a placeholder; posix/ and right/ are copies (right/ counts leap
# seconds, which PostgreSQL does not).
_NOT_A_PLACES_CLOCK = ("localtime", "posixrules", "Factory")


def timezone_named(name: str) -> ZoneInfo:
    """The IANA time zone of that name (Asia/Shanghai); a ValueError for any other: unknown, too long (a file name
    too long for the system is an OSError, not ZoneInfoNotFoundError), or no place's clock."""
    if (not isinstance(name, str) or len(name) > 64 or name in _NOT_A_PLACES_CLOCK
            or name.startswith(("posix/", "right/"))):
        raise ValueError(f"not an IANA time zone: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"not an IANA time zone: {name!r}") from exc
