"""Two reviews of the volunteer, shift, check-in and hours endpoints (session 12): a hostile client's, and a
liaison's and auditor's who checked every figure by hand.

Each test failed before its fix: what the caller sent, what they got, and what they should get (a clear
4xx problem that changes nothing, or the answer the README promises)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from gridsvc.models import Shift, Signup, Skill, Volunteer
from tests.api.test_checkins import admin, post_check  # noqa: F401  (fixture)
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, count, csv_rows


def test_to_before_from_is_a_422_when_one_has_an_offset_and_the_other_not(login, session):
    """``GET /shifts?from=2031-01-01T00:00:00Z&to=2030-01-01T00:00:00`` answered 200 with nothing listed: the
    schema leaves a time and an instant to the search, which never compared them once both were on a clock. A
    year apart, no park's clock reads them in order. A pair in order on the clock still lists."""
    volunteer = login("volunteer-001")
    signups = f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}/signups"
    for path, query in (("/api/v1/shifts", {"from": "2031-01-01T00:00:00Z", "to": "2030-01-01T00:00:00"}),
                        ("/api/v1/shifts", {"from": "2031-01-01T00:00:00", "to": "2030-01-01T00:00:00Z"}),
                        (signups, {"from": "2031-01-01T00:00:00", "to": "2030-01-01T00:00:00Z"}),
                        (signups, {"from": "2031-01-01T00:00:00Z", "to": "2030-01-01T00:00:00"})):
        problem = assert_problem(volunteer.get(path, query_string=query), 422, "validation")
        assert "to" in problem["errors"], (path, query, problem)
    # 07:00 Shanghai is 23:00 UTC the day before: in order, though "07:00" reads earlier than "23:30Z"
    for path in ("/api/v1/shifts", signups):
        answer = volunteer.get(path, query_string={"from": "2031-01-01T22:30:00Z", "to": "2031-01-02T07:00:00"})
        assert answer.status_code == 200, answer.get_json()


def test_a_series_whose_end_time_is_its_start_time_is_refused(login, session, clock):
    """``POST /shifts/series`` with start_time and end_time both 07:30 made 20 shifts of 24 hours each, back
    to back (an end_time not after the start ends the next day), where a single shift with equal times is a
    422. It should be a 422 naming end_time, with no shift written."""
    g01 = zone_of(session, "G01").id
    monday = (clock() + timedelta(days=14)).date()
    monday -= timedelta(days=monday.weekday())
    before = count(session, Shift)
    answer = login("liaison-g01").post("/api/v1/shifts/series", json={
        "zone_id": g01, "title": "北门", "activity": "traffic_guidance", "weekdays": [1, 2, 3, 4, 5],
        "start_time": "07:30", "end_time": "07:30", "from_date": monday.isoformat(),
        "until_date": (monday + timedelta(days=27)).isoformat(), "capacity": 6})
    problem = assert_problem(answer, 422, "validation")
    assert "end_time" in problem["errors"]
    assert count(session, Shift) == before


def test_a_phone_number_without_digits_is_refused(login, session):
    """``PATCH /volunteers/{id} {"phone": "     "}`` stored five spaces (and "-----" too: others then saw it
    masked as "*****"): the pattern allowed digits, spaces and '-' in any mix. A phone number needs digits."""
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    phone = session.scalar(select(Volunteer.phone).where(Volunteer.id == vid))
    for typed in ("     ", "-----", "+ 1 -", "12 3"):
        problem = assert_problem(me.patch(f"/api/v1/volunteers/{vid}", json={"phone": typed}), 422, "validation")
        assert "phone" in problem["errors"], typed
    session.expire_all()
    assert session.scalar(select(Volunteer.phone).where(Volunteer.id == vid)) == phone
    assert me.patch(f"/api/v1/volunteers/{vid}", json={"phone": "+86 139-1234-5678"}).get_json()["phone"] \
        == "+86 139-1234-5678"


def test_a_national_id_typed_with_minus_signs_is_the_same_id(login, session):
    """volunteer-001 set their national volunteer ID to volunteer-002's written with U+2212 MINUS SIGN for the
    hyphens ("ZJ−NB−…"): 200, and one person's ID had two holders. Only Unicode's dashes (Pd) were folded; the
    minus (Sm) and an IME's "ー" print as one too. It should be the 409 a full-width spelling gets."""
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    theirs = session.scalar(select(Volunteer.national_volunteer_id)
                            .where(Volunteer.id == volunteer_id(session, "volunteer-002")))
    assert "-" in theirs
    for sign in ("\u2212", "\u30fc"):
        answer = me.patch(f"/api/v1/volunteers/{vid}", json={"national_volunteer_id": theirs.replace("-", sign)})
        assert_problem(answer, 409)
    own = me.patch(f"/api/v1/volunteers/{vid}", json={"national_volunteer_id": "ZJ\u2212NB\u2212990001"})
    assert own.get_json()["national_volunteer_id"] == "ZJ-NB-990001"


def test_an_over_long_list_is_refused_before_its_items_are_read(login):
    """An offline upload of 45,000 events (7 MB) kept a worker busy 4.3 s before its 422 "At most 200 events",
    and a bulk review of a million ids 4.4 s: every item was loaded before the list's length was checked (two
    sync workers, so a few such requests stalled the server). Refused by length first, the answer names the
    list alone, not the items' faults."""
    volunteer = login("volunteer-001")
    upload = volunteer.post("/api/v1/me/check-events", json={"events": [{}] * 201})
    problem = assert_problem(upload, 422, "validation")
    assert problem["errors"] == {"events": [
        "at most 200 events per upload; send the rest in another upload (nothing was recorded)"]}
    review = login("liaison-g01").post("/api/v1/hours/review",
                                       json={"ids": ["x"] * 501, "action": "approve"})
    problem = assert_problem(review, 422, "validation")
    assert problem["errors"] == {"ids": ["at most 500 ids per request; send the rest in another"]}
    # at the limit, the items are read (and each fault named)
    at_limit = assert_problem(volunteer.post("/api/v1/me/check-events", json={"events": [{}] * 200}), 422)
    assert at_limit["errors"]["events"]["199"]["shift_id"] == ["Missing data for required field."]


def test_a_url_that_is_not_utf8_is_a_400(login, app):
    """``GET /volunteers?team=%FF`` searched for a team named U+FFFD (200, nobody), and
    ``DELETE /shifts/series/%FF`` said "Series \ufffd does not exist": Werkzeug reads the URL with errors
    replaced, where a body with such bytes is a 400. UTF-8 percent-encoded still reads."""
    admin = login("admin")
    for method, url in (("GET", "/api/v1/volunteers?team=%FF"), ("GET", "/api/v1/shifts?series_id=%C3%28")):
        problem = assert_problem(admin.open(url, method=method), 400)
        assert "UTF-8" in problem["detail"], (url, problem)
    # the path as a server hands it on (WSGI: its bytes as latin-1; the test client would send U+FFFD's UTF-8)
    problem = assert_problem(admin.delete("/api/v1/shifts/series/x",
                                          environ_overrides={"PATH_INFO": "/api/v1/shifts/series/\xff"}), 400)
    assert problem["detail"].startswith("The URL's path must be UTF-8"), problem
    assert admin.get("/api/v1/volunteers?team=%E7%81%B5%E5%8A%A8").get_json()["total"] > 0  # 灵动
    open311 = app.test_client().get("/open311/v2/services.json?jurisdiction_id=%FF")
    assert open311.status_code == 400
    assert "UTF-8" in open311.get_json()[0]["description"]


def _a_stint_of_volunteer_001(admin, login, session, clock, served: timedelta, hours: float = 1):
    """volunteer-001 signs up for a G01 shift of ``hours`` starting in 10 minutes, checks in at its start and out
    ``served`` later, at the zone's middle: (their client, their volunteer id, the check-out's answer)."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=hours)
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    assert post_check(me, shift["id"], "check-in", *center).status_code == 201
    clock.advance(seconds=served.total_seconds())
    checked_out = post_check(me, shift["id"], "check-out", *center)
    assert checked_out.status_code == 201, checked_out.get_json()
    return me, vid, checked_out.get_json()


def test_a_volunteer_id_in_the_national_record_stays_text_whatever_its_form(admin, login, session, clock):  # noqa: F811
    """A national volunteer ID such as "1e5" (or "1-2") was written bare in hours.csv: a spreadsheet opens it
    as 100000 (or 2 January). Only all-digit IDs were kept text. An identifier of digits and punctuation alone
    goes after a tab too; an ID with letters is as typed."""
    me, vid, _ = _a_stint_of_volunteer_001(admin, login, session, clock, timedelta(minutes=30))
    for typed, written in (("1e5", "\t1e5"), ("3-4", "\t3-4"), ("ZJ-NB-1", "ZJ-NB-1")):
        assert me.patch(f"/api/v1/volunteers/{vid}", json={"national_volunteer_id": typed}).status_code == 200
        [header, row] = csv_rows(me.get(f"/api/v1/volunteers/{vid}/hours.csv"))
        assert row[header.index("volunteer_id")] == written
        assert row[header.index("hours")] == "0.50"  # a number still


def test_acting_for_another_volunteer_is_refused_before_the_id_is_looked_up(admin, login, session, clock):  # noqa: F811
    """volunteer-001 signing up volunteer 999999 was told "Volunteer 999999 does not exist" (404), and 403 for
    an id that exists: a plain volunteer could list which volunteer ids exist. Both are a 403."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=1))
    me = login("volunteer-001")
    other = volunteer_id(session, "volunteer-002")
    for target in (999999, other):
        assert_problem(me.post(f"/api/v1/shifts/{shift['id']}/signups", json={"volunteer_id": target}), 403)
        assert_problem(me.delete(f"/api/v1/shifts/{shift['id']}/signups/{target}"), 403)
    assert session.scalar(select(func.count()).select_from(Signup).where(Signup.shift_id == shift["id"])) == 0
    # a zone's liaison still learns that an id is unknown
    assert_problem(login("liaison-g01").post(f"/api/v1/shifts/{shift['id']}/signups", json={"volunteer_id": 999999}),
                   404)


def test_the_hours_queue_of_another_zone_names_that_zone(login, session):
    """``GET /hours?zone_id=<G01>`` as liaison-g04 said "Only admins and the liaison of the shift's zone may do
    this.": there is no shift in that request."""
    g01 = zone_of(session, "G01").id
    for path in ("/api/v1/hours", "/api/v1/hours/totals"):
        problem = assert_problem(login("liaison-g04").get(path, query_string={"zone_id": g01}), 403)
        assert problem["detail"] == f"Only admins and the liaison of zone {g01} may do this.", path


def test_a_time_in_a_form_the_api_does_not_take_is_refused(admin, session, clock):  # noqa: F811
    """``starts_at: "2031-03-04"`` made a shift at midnight, and ``"2031-W10-2T07:30"`` (a week date) or
    ``"20310304T0730"`` one at 07:30: Python's fromisoformat reads them all. The API documents RFC 3339
    date-times; a date alone where a time is asked is a typo, not midnight."""
    g01 = zone_of(session, "G01").id
    body = {"title": "北门", "activity": "traffic_guidance", "zone_id": g01, "capacity": 3,
            "ends_at": "2031-03-04T09:00:00"}
    before = count(session, Shift)
    for typed in ("2031-03-04", "2031-W10-2T07:30", "20310304T0730", "2031-03-04T07", "2031-03-04T07:30+0800"):
        problem = assert_problem(admin.post("/api/v1/shifts", json={**body, "starts_at": typed}), 422, "validation")
        assert "starts_at" in problem["errors"], typed
    assert count(session, Shift) == before
    for typed in ("2031-03-04T07:30", "2031-03-04 07:30:00", "2031-03-04T07:30:00.5+08:00", "2031-03-03T23:30:00Z",
                  "2031-03-03t23:30:00z"):
        assert admin.post("/api/v1/shifts", json={**body, "starts_at": typed}).status_code == 201, typed
    assert_problem(admin.get("/api/v1/volunteers/1/hours", query_string={"from": "2031-W10-2"}), 422)


def test_a_delete_answered_204_has_no_content_type(login, session):
    """``DELETE /skills/{code}`` answered 204 labelled application/json, with no body."""
    admin = login("admin")
    assert admin.post("/api/v1/skills", json={"code": "sign_language", "name_zh": "手语",
                                              "name_en": "Sign language"}).status_code == 201
    answer = admin.delete("/api/v1/skills/sign_language")
    assert answer.status_code == 204
    assert "Content-Type" not in answer.headers and answer.data == b""
    assert session.scalar(select(func.count()).select_from(Skill).where(Skill.code == "sign_language")) == 0


def test_the_records_start_and_end_give_its_hours(admin, login, session, clock):  # noqa: F811
    """An auditor reading hours.csv: a stint of 13:00:00 to 15:44:14.56 was written "13:00", "15:44", "2.74",
    and 15:44 - 13:00 is 2.73 h. The times were cut to the minute, the hours counted to the second. Written to
    the second, the row's own times give its hours."""
    me, vid, checked_out = _a_stint_of_volunteer_001(admin, login, session, clock,
                                                     timedelta(hours=2, minutes=44, seconds=14.56), hours=4)
    assert checked_out["hours"]["hours"] == 2.74
    [header, row] = csv_rows(me.get(f"/api/v1/volunteers/{vid}/hours.csv"))
    start, end = (datetime.strptime(row[header.index(name)], "%H:%M:%S") for name in ("start", "end"))
    assert round((end - start).total_seconds() / 3600, 2) == float(row[header.index("hours")]) == 2.74


def test_the_calendar_feed_declares_no_itip_method(login, session):
    """The feed said METHOD:PUBLISH, which RFC 5546 gives only with an ORGANIZER in each event and RFC 5545
    with ``method=PUBLISH`` in the Content-Type: strict importers flagged it. A subscribed feed needs no
    method."""
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    answer = me.get(f"/api/v1/volunteers/{vid}/shifts.ics")
    assert answer.status_code == 200 and answer.mimetype == "text/calendar"
    feed = answer.get_data(as_text=True)
    assert feed.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert "\r\nMETHOD:" not in feed


def test_an_activity_refused_is_told_the_whole_rule(login, session):
    """``"activity": "x"`` was told "lower-case letters, digits and _", which "x" is: the rule is 2-60 of them,
    beginning with a letter. Skill codes likewise (2-40)."""
    body = {"title": "北门", "activity": "x", "zone_id": zone_of(session, "G01").id, "capacity": 3,
            "starts_at": "2031-03-04T07:30:00", "ends_at": "2031-03-04T09:00:00"}
    problem = assert_problem(login("liaison-g01").post("/api/v1/shifts", json=body), 422, "validation")
    assert problem["errors"]["activity"] == [
        "2-60 lower-case letters, digits and _, beginning with a letter, e.g. traffic_guidance"]
    problem = assert_problem(login("admin").post("/api/v1/skills", json={"code": "x", "name_zh": "x", "name_en": "x"}),
                             422, "validation")
    assert problem["errors"]["code"][0].startswith("2-40 lower-case letters")
