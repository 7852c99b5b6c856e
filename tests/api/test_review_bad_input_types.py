"""A review of bad input to the volunteer, shift, check-in and hours endpoints.

Each test failed before its fix, a defect found by a systematic round of malformed, mistyped,
out-of-range and odd-unicode input: what the caller sends, what they get, and
what they should get (a clear 4xx problem that changes nothing)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gridsvc.models import CheckEvent, Shift, Skill, VolunteerPosition
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, community_body, count, zone_feature


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def signed_up(admin, login, session, clock):
    """volunteer-001 confirmed for a G01 shift starting in 10 minutes (check-in is open)."""
    g01 = zone_of(session, "G01")
    shift = make_shift(admin, zone_id=g01.id, starts_at=clock() + timedelta(minutes=10), hours=2)
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    return {"shift": shift, "client": volunteer, "center": zone_center(admin, g01.id)}


@pytest.mark.parametrize("kind", ["check-in", "check-out"])
def test_a_check_in_idempotency_key_holding_nul_is_a_422_not_a_500(signed_up, session, kind):
    """A check-in (or check-out) sent with ``Idempotency-Key: a<NUL>b`` gets a bare 500: the key goes into
    the gridsvc_check statement and PostgreSQL cannot hold U+0000 (UntranslatableCharacter). Every other
    write refuses such a key with a 422 naming Idempotency-Key (gridsvc.idempotency.answer_once); so
    should these (cause: gridsvc/resources/shifts.py valid_key checks the length only)."""
    before = count(session, CheckEvent)
    lon, lat = signed_up["center"]
    answer = signed_up["client"].post(f"/api/v1/shifts/{signed_up['shift']['id']}/{kind}",
                                      json={"lon": lon, "lat": lat, "crs": "wgs84", "accuracy_m": 10},
                                      headers={"Idempotency-Key": "a\x00b"})
    problem = assert_problem(answer, 422, "validation")
    assert "Idempotency-Key" in problem["errors"] and "NUL" in problem["detail"]
    assert count(session, CheckEvent) == before


@pytest.mark.parametrize("sent", ["yes", "true", 1, 0, "off"])
def test_retired_is_a_json_boolean_only(admin, session, sent):
    """``PATCH /api/v1/skills/first_aid {"retired": "yes"}`` (or 1, "true") retires the skill, and 0 or
    "off" brings it back: a 200. The document says boolean, and the API's other body booleans
    (``disabled``, ``commit``) refuse anything but JSON true/false (JsonBool). It should be a 422 naming
    ``retired`` that changes nothing (cause: gridsvc/schemas/volunteers.py SkillUpdate.retired is
    marshmallow's lenient fields.Bool)."""
    retired_before = session.scalar(select(Skill.retired_at).where(Skill.code == "first_aid"))
    problem = assert_problem(admin.patch("/api/v1/skills/first_aid", json={"retired": sent}), 422, "validation")
    assert "retired" in problem["errors"]
    session.expire_all()
    assert session.scalar(select(Skill.retired_at).where(Skill.code == "first_aid")) == retired_before


def test_a_capacity_sent_as_text_creates_no_shift(admin, session, clock):
    """``POST /api/v1/shifts`` with ``"capacity": "１２３"`` (a JSON string of full-width digits) creates a shift
    of 123 places (201), and ``"5"`` one of 5: the OpenAPI document says integer, and a string is the
    client's error (the parking import refuses ``"capacity": "50"``). It should be a 422 naming capacity,
    with no shift written (cause: gridsvc/schemas/common.py Int, a non-strict marshmallow Integer, which
    runs int() on text)."""
    g01 = zone_of(session, "G01")
    start = clock() + timedelta(days=1)
    body = {"title": "北门交通疏导", "activity": "traffic_guidance", "zone_id": g01.id,
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()}
    before = count(session, Shift)
    for capacity in ("１２３", "5"):
        problem = assert_problem(admin.post("/api/v1/shifts", json={**body, "capacity": capacity}), 422, "validation")
        assert "capacity" in problem["errors"]
    assert count(session, Shift) == before


def test_a_position_sent_as_text_is_refused(login, session):
    """``POST /api/v1/me/location {"lon": "121.7695", "lat": "29.8715"}`` (numbers as JSON strings) is
    stored as a position (201). The document says number; check-in's fast path refuses anything but a JSON
    number, then the Flask view takes the string. It should be a 422 naming lon and lat, with no position
    written (cause: gridsvc/schemas/common.py PointIn.lon/lat, non-strict marshmallow Floats)."""
    before = count(session, VolunteerPosition)
    answer = login("volunteer-001").post("/api/v1/me/location", json={"lon": "121.7695", "lat": "29.8715"})
    problem = assert_problem(answer, 422, "validation")
    assert {"lon", "lat"} <= set(problem["errors"])
    assert count(session, VolunteerPosition) == before


def test_a_shift_search_whose_to_is_before_its_from_is_a_422(login, session):
    """``GET /api/v1/shifts?from=2031-01-02T00:00:00Z&to=2031-01-01T00:00:00Z`` (and the same on
    ``/volunteers/{id}/signups``) answers 200 with an empty list, as if no shift matched. ``/hours``,
    ``/hours/totals`` and ``/volunteers/{id}/hours`` answer such a range with a 422 ("'to' is before
    'from'"); so should these (cause: gridsvc/schemas/shifts.py ShiftQuery and VolunteerSignupQuery lack
    the order check HoursQuery has)."""
    volunteer = login("volunteer-001")
    query = {"from": "2031-01-02T00:00:00Z", "to": "2031-01-01T00:00:00Z"}
    for path in ("/api/v1/shifts", f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}/signups"):
        problem = assert_problem(volunteer.get(path, query_string=query), 422, "validation")
        assert "to" in problem["errors"], path


def _next_spring_change(tz: ZoneInfo) -> date:
    """The next day (at least a week ahead) whose 02:30 the clock skips."""
    day = datetime.now(timezone.utc).date() + timedelta(days=7)
    while True:
        before = datetime.combine(day, datetime.min.time(), tz).utcoffset()
        after = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).utcoffset()
        if after > before:
            return day
        day += timedelta(days=1)


def test_a_shift_in_the_hour_the_spring_change_skips_is_not_told_it_ends_before_it_starts(admin, session):
    """In a community on Europe/Berlin's clock, ``POST /api/v1/shifts`` with the wall-clock times
    02:30-03:30 (or 02:30-03:00) on the night the clocks go forward gets 422 "A shift must end after it
    starts": 02:30 is read as 03:30 CEST, which is where the end is. The same times as a recurring series
    are created as 03:30-04:30 (RFC 5545's reading, the night keeping its length), and 02:00-02:30 as a
    single shift is created too. The caller should get the shift as the series reads it, or a 422 that
    says the time does not exist on the community's clock, not one saying the end is before the start
    (cause: gridsvc/services/shifts.py create_shift: the gap handling is in occurrences() only)."""
    tz = ZoneInfo("Europe/Berlin")
    body = community_body(name="夏令时园区 DST park", timezone="Europe/Berlin")
    created = admin.post("/api/v1/communities", json=body)
    assert created.status_code == 201, created.get_json()
    zone = admin.post(f"/api/v1/communities/{created.get_json()['id']}/zones",
                      json=zone_feature("D01", body["boundary"]))
    assert zone.status_code == 201, zone.get_json()
    night = _next_spring_change(tz).isoformat()
    before = count(session, Shift)
    answer = admin.post("/api/v1/shifts", json={
        "title": "夜间巡逻", "activity": "night_watch", "zone_id": zone.get_json()["id"], "capacity": 2,
        "starts_at": f"{night}T02:30:00", "ends_at": f"{night}T03:30:00"})
    problem = assert_problem(answer, 422)
    assert "does not exist on the community's clock (Europe/Berlin)" in problem["detail"], problem["detail"]
    assert list(problem["errors"]) == ["starts_at"] and count(session, Shift) == before
    # moved there later: the same
    shift = admin.post("/api/v1/shifts", json={
        "title": "夜间巡逻", "activity": "night_watch", "zone_id": zone.get_json()["id"], "capacity": 2,
        "starts_at": f"{night}T01:00:00", "ends_at": f"{night}T01:45:00"}).get_json()
    moved = assert_problem(admin.patch(f"/api/v1/shifts/{shift['id']}", json={"ends_at": f"{night}T02:15:00"}), 422)
    assert list(moved["errors"]) == ["ends_at"]
    kept = admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["ends_at"]
    assert datetime.fromisoformat(kept) == datetime.fromisoformat(shift["ends_at"])


@pytest.mark.parametrize("invisible", ["\u200b", "\u202d", "\u2060", "\ufeff"])
def test_a_national_volunteer_id_with_an_invisible_character_is_not_a_second_holders(admin, session, invisible):
    """volunteer-001 holds ZJ-NB-330206001. ``PATCH /api/v1/volunteers/{volunteer-003}`` with that ID plus a
    zero-width space (U+200B), a bidi override (U+202D), a word joiner (U+2060) or a BOM (U+FEFF), as a
    paste from a chat app or a web page brings along, is a 200: a second holder of an ID that looks and
    prints the same (full-width forms are folded since the last round; these survive NFKC). It should be a
    409 (the ID is another volunteer's) or a 422 (no invisible characters in an ID), with nothing stored
    (cause: gridsvc/schemas/volunteers.py NationalVolunteerId keeps Unicode format characters, category Cf)."""
    from gridsvc.models import Volunteer

    held = session.get(Volunteer, volunteer_id(session, "volunteer-001")).national_volunteer_id
    other = volunteer_id(session, "volunteer-003")
    was = session.get(Volunteer, other).national_volunteer_id
    typed = held + invisible if invisible != "\u202d" else invisible + held
    answer = admin.patch(f"/api/v1/volunteers/{other}", json={"national_volunteer_id": typed})
    assert answer.status_code in (409, 422), answer.get_json()
    assert_problem(answer, answer.status_code)
    session.expire_all()
    assert session.get(Volunteer, other).national_volunteer_id == was
