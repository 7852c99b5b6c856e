"""Volunteers and shifts: bugs found in review (each test failed before its fix).

What a volunteer, a zone's liaison or an admin would see: a place left free on a shift while someone able to take it
waits for it; sign-ups changed on a shift that is already over; a 500, or a value stored that nothing finds, for a
code or time sent with a trailing newline; a cancellation or a move answered 409 (a deadlock) because a volunteer
signed up at the same moment. The race tests commit for real (two connections) and clean up after themselves.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.models import Shift, Signup, Skill, User, Volunteer
from gridsvc.services import shifts as shift_service
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_of
from tests.helpers import assert_problem, client_as, delete_shifts, while_uncommitted

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def admin(login):
    return login("admin")


def _roster(admin, shift_id: int) -> dict[int, tuple[str, int | None]]:
    """volunteer id -> (status, place on the waitlist), as the liaison's roster shows it."""
    items = admin.get(f"/api/v1/shifts/{shift_id}/signups").get_json()["items"]
    return {s["volunteer_id"]: (s["status"], s["waitlist_position"]) for s in items}


def _my_shift(client, vid: int, shift_id: int) -> dict:
    """The volunteer's own "my shifts" entry for a shift."""
    items = client.get(f"/api/v1/volunteers/{vid}/signups").get_json()["items"]
    return next(item for item in items if item["shift"]["id"] == shift_id)


# ------------------------------------------------------------------ a free place nobody takes


def _free_place_skipped_for_an_overlap(admin, login, session, clock):
    """A (one place) and B at the same time: X confirmed for A, V waiting for A while confirmed for B. X withdraws:
    A's place stays free, skipped for V (confirmed for B at that time)."""
    start = clock() + timedelta(days=190)
    g01 = zone_of(session, "G01").id
    a, b = (make_shift(admin, zone_id=g01, starts_at=start, capacity=1) for _ in range(2))
    x, v = login("volunteer-001"), login("volunteer-002")
    vid = volunteer_id(session, "volunteer-002")
    assert x.post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert v.post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "waitlisted"
    assert v.post(f"/api/v1/shifts/{b['id']}/signups", json={}).get_json()["status"] == "confirmed"
    withdrawn = x.delete(f"/api/v1/shifts/{a['id']}/signups/{volunteer_id(session, 'volunteer-001')}")
    assert withdrawn.get_json()["promoted"] == []
    assert _roster(admin, a["id"]) == {vid: ("waitlisted", 1)}
    return a, v, vid


def test_moving_a_shift_clear_of_a_waiting_volunteers_other_shift_gives_them_its_free_place(admin, login, session,
                                                                                              clock):
    """The liaison moves A five hours later, clear of B: V can take A's free place now. Before the fix V stayed
    "waitlisted, 1st in line" on a shift showing a place left, until some newcomer happened to sign up."""
    a, v, vid = _free_place_skipped_for_an_overlap(admin, login, session, clock)
    later = datetime.fromisoformat(a["starts_at"]) + timedelta(hours=5)
    moved = admin.patch(f"/api/v1/shifts/{a['id']}", json={"starts_at": later.isoformat(),
                                                           "ends_at": (later + timedelta(hours=2)).isoformat()})
    assert moved.status_code == 200, moved.get_json()
    assert (moved.get_json()["confirmed"], moved.get_json()["waitlisted"], moved.get_json()["places_left"]) == (1, 0, 0)
    assert _roster(admin, a["id"]) == {vid: ("confirmed", None)}
    mine = _my_shift(v, vid, a["id"])
    assert (mine["status"], mine["waitlist_position"]) == ("confirmed", None)


def test_dropping_a_required_skill_gives_the_free_place_to_the_volunteer_waiting_for_it(admin, login, session, clock):
    """V waits for a shift that came to need a translator, which V is not; its one place is freed and skipped for
    V. The liaison then drops the requirement: V can take the place, and gets it."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=200), capacity=1)
    url = f"/api/v1/shifts/{shift['id']}"
    x, v = login("volunteer-001"), login("volunteer-002")
    vid = volunteer_id(session, "volunteer-002")
    assert x.post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
    assert v.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    assert admin.patch(url, json={"required_skills": ["translation"]}).status_code == 200
    assert x.delete(f"{url}/signups/{volunteer_id(session, 'volunteer-001')}").get_json()["promoted"] == []
    assert _roster(admin, shift["id"]) == {vid: ("waitlisted", 1)}

    answer = admin.patch(url, json={"required_skills": []})
    assert answer.status_code == 200, answer.get_json()
    assert (answer.get_json()["confirmed"], answer.get_json()["places_left"]) == (1, 0)
    assert _my_shift(v, vid, shift["id"])["status"] == "confirmed"


def test_raising_the_capacity_of_a_shift_that_is_over_confirms_nobody(admin, login, session, clock):
    """A shift's sign-ups are history once it is over (a withdrawal is refused then). Raising its capacity
    afterwards (tidying the record) confirmed the waitlist for a shift nobody can serve any more: their "my shifts"
    and calendar claimed a duty they never had."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(hours=1), capacity=1)
    url = f"/api/v1/shifts/{shift['id']}"
    x, v = login("volunteer-001"), login("volunteer-002")
    vid = volunteer_id(session, "volunteer-002")
    assert x.post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
    assert v.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    clock.advance(hours=4)  # the shift ended an hour ago

    answer = admin.patch(url, json={"capacity": 2})
    assert answer.status_code == 200, answer.get_json()
    assert (answer.get_json()["capacity"], answer.get_json()["confirmed"], answer.get_json()["waitlisted"]) == (2, 1, 1)
    assert _roster(admin, shift["id"])[vid] == ("waitlisted", 1)


# ------------------------------------------------------------------ a trailing newline


def test_a_new_skill_code_with_a_trailing_newline_is_a_422_not_a_500(admin, session):
    """Python's `$` matches before a final newline: "sign_language\\n" passed the schema and the database's check
    refused it, a 500."""
    before = session.scalar(select(Skill.code).where(Skill.code.like("sign_language%")))
    problem = assert_problem(admin.post("/api/v1/skills", json={"code": "sign_language\n", "name_zh": "手语",
                                                                "name_en": "Sign language"}), 422, "validation")
    assert "code" in problem["errors"]
    assert before is None and session.scalar(select(Skill.code).where(Skill.code.like("sign_language%"))) is None
    # the same code without the newline is fine
    assert admin.post("/api/v1/skills", json={"code": "sign_language", "name_zh": "手语",
                                              "name_en": "Sign language"}).status_code == 201


def test_a_shift_activity_with_a_trailing_newline_is_refused_not_stored(admin, session, clock):
    """"traffic_guidance\\n" was stored as an activity of its own: the shift was missing from ?activity=
    traffic_guidance, and its hours were totalled apart from the other traffic shifts'."""
    g01 = zone_of(session, "G01").id
    start = clock() + timedelta(days=210)
    body = {"title": "北门交通疏导", "activity": "traffic_guidance\n", "zone_id": g01, "capacity": 2,
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}
    before = session.scalar(select(Shift.id).order_by(Shift.id.desc()).limit(1))
    assert "activity" in assert_problem(admin.post("/api/v1/shifts", json=body), 422, "validation")["errors"]
    assert session.scalar(select(Shift.id).order_by(Shift.id.desc()).limit(1)) == before
    series = {k: v for k, v in body.items() if k not in ("starts_at", "ends_at")}
    series.update(weekdays=[1, 2, 3, 4, 5], start_time="07:30", end_time="09:00",
                  from_date=start.date().isoformat(), until_date=(start.date() + timedelta(days=6)).isoformat())
    assert "activity" in assert_problem(admin.post("/api/v1/shifts/series", json=series), 422)["errors"]
    shift = make_shift(admin, zone_id=g01, starts_at=start)
    assert "activity" in assert_problem(admin.patch(f"/api/v1/shifts/{shift['id']}",
                                                    json={"activity": "garbage_sorting\n"}), 422)["errors"]
    assert admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["activity"] == "traffic_guidance"


@pytest.mark.parametrize("change, field", [
    ({"availability": [{"weekday": 1, "start": "18:00\n", "end": "21:00"}]}, "availability"),
    ({"availability": [{"weekday": 1, "start": "18:00", "end": "21:00\n"}]}, "availability"),
    ({"phone": "13800001234\n"}, "phone"),
])
def test_a_profile_field_with_a_trailing_newline_is_refused_and_changes_nothing(login, session, change, field):
    """An availability window of "18:00\\n" or a phone number ending in a newline was stored as sent."""
    me = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    before = me.get(f"/api/v1/volunteers/{vid}").get_json()
    assert field in assert_problem(me.patch(f"/api/v1/volunteers/{vid}", json=change), 422, "validation")["errors"]
    after = me.get(f"/api/v1/volunteers/{vid}").get_json()
    assert (after["availability"], after["phone"], after["skills"]) == (before["availability"], before["phone"],
                                                                         before["skills"])


def test_registering_with_a_phone_ending_in_a_newline_is_refused(login, session):
    worker = login("worker-001")
    problem = assert_problem(worker.post("/api/v1/volunteers", json={"real_name": "王芳", "phone": "13800001234\n"}),
                             422, "validation")
    assert "phone" in problem["errors"]
    assert session.scalar(select(Volunteer.id).where(Volunteer.phone.like("13800001234%"))) is None


@pytest.mark.parametrize("path", ["/api/v1/shifts?activity=traffic_guidance%0A", "/api/v1/shifts?skill=first_aid%0A",
                                  "/api/v1/volunteers?skill=first_aid%0A"])
def test_a_search_filter_with_a_trailing_newline_is_a_422(admin, path):
    """It answered an empty list, as if nothing matched, where the filter itself was malformed."""
    assert_problem(admin.get(path), 422, "validation")


# ------------------------------------------------------------------ races: a deadlock for nothing


def _volunteer_ids(engine, *usernames: str) -> list[int]:
    with engine.connect() as conn:
        ids = dict(conn.execute(select(User.username, Volunteer.id).join(Volunteer, Volunteer.user_id == User.id)
                                .where(User.username.in_(usernames))).all())
    return [ids[name] for name in usernames]


def _two_skipped_on_a_free_place(committed_app, engine, clock, zone_code: str, *, series: bool):
    """Shifts S (alone, or a series of one), O and P at one time, O with one free place that both W and V wait
    for, each skipped for an overlap: W (first in line) is confirmed for P, V for S. Whatever frees V (S cancelled
    or moved, V withdrawing) runs O's waitlist again, and that locks W's row."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, zone_code).id
    if series:
        day = (clock() + timedelta(days=12)).astimezone(SHANGHAI).date().isoformat()
        made = admin.post("/api/v1/shifts/series", json={
            "title": "北门早高峰", "activity": "traffic_guidance", "zone_id": zone_id, "capacity": 1,
            "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "10:00", "end_time": "11:00", "from_date": day,
            "until_date": day})
        assert made.status_code == 201, made.get_json()
        s_ = made.get_json()["items"][0]
    else:
        s_ = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=12), hours=1, capacity=1)
    o, p = (make_shift(admin, zone_id=zone_id, starts_at=datetime.fromisoformat(s_["starts_at"]), hours=1, capacity=1)
            for _ in range(2))
    x, w, v = (client_as(committed_app, f"volunteer-0{n}") for n in (46, 47, 48))
    x_id, w_id, v_id = _volunteer_ids(engine, "volunteer-046", "volunteer-047", "volunteer-048")
    assert x.post(f"/api/v1/shifts/{o['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert w.post(f"/api/v1/shifts/{o['id']}/signups", json={}).get_json()["status"] == "waitlisted"
    assert v.post(f"/api/v1/shifts/{o['id']}/signups", json={}).get_json()["status"] == "waitlisted"
    assert w.post(f"/api/v1/shifts/{p['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert v.post(f"/api/v1/shifts/{s_['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert x.delete(f"/api/v1/shifts/{o['id']}/signups/{x_id}").get_json()["promoted"] == []
    return admin, (s_, o, p), (w_id, v_id)


@pytest.mark.parametrize("change", ["cancel", "move", "cancel_series"])
def test_cancelling_or_moving_a_shift_while_a_waiting_volunteer_signs_up_is_not_a_deadlock(committed_app, engine,
                                                                                           clock, change):
    """The liaison cancels (or moves, or cancels the rest of its series) S while W signs up for S. W's sign-up
    locks W's row, then S's. The change locked S, then, running O's waitlist for V (freed from S), W's row:
    opposite orders, a deadlock, and one of the two was answered 409 concurrent-update for nothing."""
    admin, (s_, o, p), (w_id, v_id) = _two_skipped_on_a_free_place(committed_app, engine, clock, "G05",
                                                                    series=change == "cancel_series")
    failures = []
    try:
        def w_starts(own):  # sign_up's first statement: W's row, locked
            shift_service.get_volunteer(own, w_id, for_update=True)

        def w_goes_on(own):  # ... and the rest of W's sign-up for S: refused, W is confirmed for P at that time
            try:
                shift_service.sign_up(own, s_["id"], w_id, now=clock())
            except shift_service.ShiftConflict as exc:
                assert exc.extra.get("reason") == "overlap", exc.extra
            except Exception as exc:  # noqa: BLE001
                failures.append(f"W's sign-up failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                own.rollback()

        if change == "cancel":
            def request():
                return admin.delete(f"/api/v1/shifts/{s_['id']}")
        elif change == "cancel_series":
            def request():
                return admin.delete(f"/api/v1/shifts/series/{s_['series_id']}")
        else:
            later = datetime.fromisoformat(s_["starts_at"]) + timedelta(hours=5)

            def request():
                return admin.patch(f"/api/v1/shifts/{s_['id']}", json={
                    "starts_at": later.isoformat(), "ends_at": (later + timedelta(hours=1)).isoformat()})
        answer = while_uncommitted(engine, w_starts, request, then=w_goes_on)
        if answer.status_code != 200:
            failures.append(f"the {change} was answered {answer.status_code} {answer.get_json().get('type')}")
        assert not failures, failures
        with engine.connect() as conn:
            # V, free of S at O's time now, has O's place; W (still confirmed for P) waits
            on_o = dict(conn.execute(select(Signup.volunteer_id, Signup.status)
                                     .where(Signup.shift_id == o["id"], Signup.status != "cancelled")).all())
        assert on_o == {w_id: "waitlisted", v_id: "confirmed"}
    finally:
        delete_shifts(engine, s_["id"], o["id"], p["id"])


def test_adding_the_skill_a_shift_came_to_require_gives_the_waiting_volunteer_its_free_place(admin, login, session,
                                                                                             clock):
    """The liaison asks for a translator on a shift V waits for; its place is freed and skipped for V, who lacks
    the skill. V adds translation to their profile: the place is V's, first in line. Before the fix V stayed
    waitlisted beside a free place, and the shift was listed with has_space=true to newcomers who were then
    waitlisted behind V."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=220), capacity=1)
    url = f"/api/v1/shifts/{shift['id']}"
    x, v = login("volunteer-001"), login("volunteer-002")
    vid = volunteer_id(session, "volunteer-002")
    assert x.post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
    assert v.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    assert admin.patch(url, json={"required_skills": ["translation"]}).status_code == 200
    assert x.delete(f"{url}/signups/{volunteer_id(session, 'volunteer-001')}").get_json()["promoted"] == []
    skills = v.get(f"/api/v1/volunteers/{vid}").get_json()["skills"]
    assert "translation" not in skills

    answer = v.patch(f"/api/v1/volunteers/{vid}", json={"skills": [*skills, "translation"]})
    assert answer.status_code == 200, answer.get_json()
    assert _my_shift(v, vid, shift["id"])["status"] == "confirmed"
    assert (admin.get(url).get_json()["confirmed"], admin.get(url).get_json()["places_left"]) == (1, 0)


# ------------------------------------------------------------------ whitespace around text


def test_a_team_typed_with_a_trailing_space_is_found_by_its_name(login, admin, session):
    """A phone keyboard's trailing space made "灵动 " a team of its own: the volunteer was missing from
    ?team=灵动 (the liaison's list of the team)."""
    worker = login("worker-002")
    registered = worker.post("/api/v1/volunteers", json={"real_name": " 李娜 ", "phone": "13800005678", "team": "灵动 "})
    assert registered.status_code == 201, registered.get_json()
    assert (registered.get_json()["real_name"], registered.get_json()["team"]) == ("李娜", "灵动")
    found = admin.get("/api/v1/volunteers?team=灵动&limit=1000").get_json()["items"]
    assert registered.get_json()["id"] in [v["id"] for v in found]


def test_registering_with_a_blank_name_is_refused(login, session):
    """A name of spaces went on the national volunteer service record."""
    before = session.scalar(select(Volunteer.id).order_by(Volunteer.id.desc()).limit(1))
    problem = assert_problem(login("worker-003").post("/api/v1/volunteers", json={"real_name": "   ",
                                                                                   "phone": "13800005678"}), 422)
    assert "real_name" in problem["errors"]
    assert session.scalar(select(Volunteer.id).order_by(Volunteer.id.desc()).limit(1)) == before


@pytest.mark.parametrize("change, field", [
    ({"real_name": "\u3000"}, "real_name"),  # an ideographic space: a Chinese IME's blank
    ({"team": "  "}, "team"),
])
def test_blanking_a_profile_field_is_refused_and_changes_nothing(login, session, change, field):
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    before = me.get(f"/api/v1/volunteers/{vid}").get_json()
    assert field in assert_problem(me.patch(f"/api/v1/volunteers/{vid}", json=change), 422, "validation")["errors"]
    assert me.get(f"/api/v1/volunteers/{vid}").get_json() == before


def test_a_blank_shift_title_is_refused(admin, session, clock):
    """A blank title showed on every volunteer's calendar and "my shifts"."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=9))
    assert "title" in assert_problem(admin.patch(f"/api/v1/shifts/{shift['id']}", json={"title": " \t "}), 422)["errors"]
    assert admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["title"] == shift["title"]
