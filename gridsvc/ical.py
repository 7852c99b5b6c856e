"""RFC 5545 calendars: a volunteer's shifts, subscribable from a phone."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

PRODID = "-//gridsvc//volunteer shifts//ZH"
# SEQUENCE counts seconds from here (see shifts_calendar)
_SEQUENCE_EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _escape(text: str) -> str:
    """RFC 5545 TEXT: backslash, semicolon and comma escaped; any line break
    (CRLF, LF, or a bare CR pasted from old text) as ``\\n``; other control
    characters, which TEXT may not hold, dropped (a raw CR would break the
    feed's lines for a phone's parser)."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return "".join(char for char in text if char == "\t" or not (ord(char) < 32 or ord(char) == 127))


def _fold(line: str) -> str:
    """Lines longer than 75 octets are folded (RFC 5545 3.1), never inside a UTF-8 character."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return line
    parts, current = [], b""
    for char in line:
        encoded = char.encode("utf-8")
        limit = 75 if not parts else 74  # continuation lines start with a space
        if len(current) + len(encoded) > limit:
            parts.append(current.decode("utf-8"))
            current = b""
        current += encoded
    parts.append(current.decode("utf-8"))
    return "\r\n ".join(parts)


def _local(dt: datetime, tz: ZoneInfo) -> str:
    return dt.astimezone(tz).strftime("%Y%m%dT%H%M%S")


def _vtimezone(tzid: str) -> list[str]:
    # China has kept +08:00 without daylight saving since 1991 (the calendar's own zone is Asia/Shanghai's).
    return ["BEGIN:VTIMEZONE", f"TZID:{tzid}", "BEGIN:STANDARD", "DTSTART:19700101T000000",
            "TZOFFSETFROM:+0800", "TZOFFSETTO:+0800", "TZNAME:CST", "END:STANDARD", "END:VTIMEZONE"]


def _when(name: str, moment: datetime, event_tzid: str | None, tzid: str, tz: ZoneInfo) -> str:
    """DTSTART/DTEND on the calendar's clock (``TZID=Asia/Shanghai``), or, for a shift in a park on another
    clock, as a UTC time (RFC 5545 3.3.5 form 2): a phone shows either at the right moment in its own zone,
    and a VTIMEZONE of that other zone (its daylight-saving rules) need not be written out."""
    if event_tzid in (None, tzid):
        return f"{name};TZID={tzid}:{_local(moment, tz)}"
    return f"{name}:{moment.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def shifts_calendar(events: Iterable[dict], *, name: str, tzid: str = "Asia/Shanghai",
                    now: datetime | None = None) -> str:
    """``events``: dicts with uid, title, starts_at, ends_at, location, description, status (CONFIRMED|TENTATIVE|CANCELLED),
    ``tzid``, the time zone of the shift's community (None: the calendar's), and ``last_modified``, when the
    event last changed (its shift moved or cancelled, the place confirmed).

    Why ``last_modified``: an event that changes keeps its UID, and a calendar that imported the feed (rather
    than subscribing to it) takes a new version only if its SEQUENCE is higher (RFC 5545 3.8.7.4, RFC 5546
    2.1.4); with none (0 every time) a moved or cancelled shift stayed as it was on the volunteer's phone.
    There is no revision counter, so SEQUENCE counts the seconds from 2020 to the last change: it grows with
    every change and fits the integer RFC 5545 allows until 2088."""
    tz = ZoneInfo(tzid)
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
             f"X-WR-CALNAME:{_escape(name)}", f"X-WR-TIMEZONE:{tzid}", *_vtimezone(tzid)]
    for event in events:
        lines += ["BEGIN:VEVENT", f"UID:{event['uid']}", f"DTSTAMP:{stamp}",
                  _when("DTSTART", event["starts_at"], event.get("tzid"), tzid, tz),
                  _when("DTEND", event["ends_at"], event.get("tzid"), tzid, tz),
                  f"SUMMARY:{_escape(event['title'])}", f"STATUS:{event['status']}"]
        if event.get("last_modified") is not None:
            changed = event["last_modified"].astimezone(timezone.utc)
            lines += [f"LAST-MODIFIED:{changed.strftime('%Y%m%dT%H%M%SZ')}",
                      f"SEQUENCE:{max(0, int((changed - _SEQUENCE_EPOCH).total_seconds()))}"]
        if event.get("location"):
            lines.append(f"LOCATION:{_escape(event['location'])}")
        if event.get("description"):
            lines.append(f"DESCRIPTION:{_escape(event['description'])}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
