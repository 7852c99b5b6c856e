"""RFC 5545 calendars: a volunteer's shifts, subscribable from a phone."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

PRODID = "-//gridsvc//volunteer shifts//ZH"


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
    # China has kept +08:00 without daylight saving since 1991.
    return ["BEGIN:VTIMEZONE", f"TZID:{tzid}", "BEGIN:STANDARD", "DTSTART:19700101T000000",
            "TZOFFSETFROM:+0800", "TZOFFSETTO:+0800", "TZNAME:CST", "END:STANDARD", "END:VTIMEZONE"]


def shifts_calendar(events: Iterable[dict], *, name: str, tzid: str = "Asia/Shanghai",
                    now: datetime | None = None) -> str:
    """``events``: dicts with uid, title, starts_at, ends_at, location, description, status (CONFIRMED|TENTATIVE|CANCELLED)."""
    tz = ZoneInfo(tzid)
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
             f"X-WR-CALNAME:{_escape(name)}", f"X-WR-TIMEZONE:{tzid}", *_vtimezone(tzid)]
    for event in events:
        lines += ["BEGIN:VEVENT", f"UID:{event['uid']}", f"DTSTAMP:{stamp}",
                  f"DTSTART;TZID={tzid}:{_local(event['starts_at'], tz)}",
                  f"DTEND;TZID={tzid}:{_local(event['ends_at'], tz)}",
                  f"SUMMARY:{_escape(event['title'])}", f"STATUS:{event['status']}"]
        if event.get("location"):
            lines.append(f"LOCATION:{_escape(event['location'])}")
        if event.get("description"):
            lines.append(f"DESCRIPTION:{_escape(event['description'])}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
