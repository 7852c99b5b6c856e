"""RFC 5545 calendars: a volunteer's shifts, subscribable from a phone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
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


def _fixed_offset(tz: ZoneInfo, moments: list[datetime]) -> timedelta | None:
    """The zone's one UTC offset through the years ``moments`` fall in, or None when it changes (daylight
    saving). China has kept +08:00 all year since 1991, Xinjiang time +06:00."""
    years = {moment.astimezone(tz).year for moment in moments}
    offsets = {datetime(year, month, 1, tzinfo=tz).utcoffset() for year in years for month in range(1, 13)}
    return offsets.pop() if len(offsets) == 1 else None


def _vtimezone(tzid: str, tz: ZoneInfo, offset: timedelta, moment: datetime) -> list[str]:
    minutes = int(offset.total_seconds() // 60)
    written = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return ["BEGIN:VTIMEZONE", f"TZID:{tzid}", "BEGIN:STANDARD", "DTSTART:19700101T000000",
            f"TZOFFSETFROM:{written}", f"TZOFFSETTO:{written}", f"TZNAME:{moment.astimezone(tz).tzname()}",
            "END:STANDARD", "END:VTIMEZONE"]


def _when(name: str, moment: datetime, tzid: str, written_zones: dict[str, ZoneInfo]) -> str:
    """DTSTART/DTEND on the clock of the shift's park (``TZID=Asia/Shanghai``), or, for a zone whose offset
    changes (its daylight-saving rules are not written out), as a UTC time (RFC 5545 3.3.5 form 2)."""
    if tzid in written_zones:
        return f"{name};TZID={tzid}:{_local(moment, written_zones[tzid])}"
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
    events = list(events)
    now = now or datetime.now(timezone.utc)
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             f"X-WR-CALNAME:{_escape(name)}", f"X-WR-TIMEZONE:{tzid}"]
    # Each shift on its park's clock: the calendar's own first, then any other a shift is in.
    moments: dict[str, list[datetime]] = {tzid: [now]}
    for event in events:
        moments.setdefault(event.get("tzid") or tzid, []).extend((event["starts_at"], event["ends_at"]))
    written_zones: dict[str, ZoneInfo] = {}
    for zone_name, zone_moments in moments.items():
        zone = ZoneInfo(zone_name)
        offset = _fixed_offset(zone, zone_moments)
        if offset is not None:
            written_zones[zone_name] = zone
            lines += _vtimezone(zone_name, zone, offset, zone_moments[-1])
    for event in events:
        lines += ["BEGIN:VEVENT", f"UID:{event['uid']}", f"DTSTAMP:{stamp}",
                  _when("DTSTART", event["starts_at"], event.get("tzid") or tzid, written_zones),
                  _when("DTEND", event["ends_at"], event.get("tzid") or tzid, written_zones),
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
