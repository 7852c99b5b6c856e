"""Volunteer registration, profiles, search, positions and privacy."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from geo.crs import from_wgs84, geodesic_distance_m
from gridsvc.models import Volunteer, VolunteerPosition
from gridsvc.services.volunteers import purge_positions
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, client_as, count, offset, while_uncommitted


def test_worker_registers_as_volunteer_and_gets_the_role(login, session):
    worker = login("worker-001")
    g03 = zone_of(session, "G03")
    response = worker.post("/api/v1/volunteers", json={
        "real_name": "陈静", "phone": "13912345678", "team": "灵动", "home_zone_id": g03.id,
        "skills": ["first_aid", "garbage_sorting"], "national_volunteer_id": "ZJ-NB-9",
        "availability": [{"weekday": 6, "start": "08:00", "end": "12:00"}]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["skills"] == ["first_aid", "garbage_sorting"] and body["home_zone_id"] == g03.id
    assert body["phone"] == "13912345678" and body["calendar_url"].startswith("http")
    assert "volunteer" in worker.get("/api/v1/me").get_json()["roles"]
    assert_problem(worker.post("/api/v1/volunteers", json={"real_name": "x", "phone": "13912345678"}), 409)


@pytest.mark.parametrize("body, field", [
    ({"real_name": "x", "phone": "13912345678", "skills": ["juggling"]}, "skills"),
    ({"real_name": "x", "phone": "call me"}, "phone"),
    ({"real_name": "x", "phone": "13912345678", "home_zone_id": 987654}, "home_zone_id"),
    ({"real_name": "x", "phone": "13912345678", "availability": [{"weekday": 8, "start": "08:00", "end": "09:00"}]}, "availability"),
    ({"real_name": "x", "phone": "13912345678", "availability": [{"weekday": 1, "start": "10:00", "end": "09:00"}]}, "availability"),
    ({"real_name": "x", "phone": "13912345678", "availability": [{"weekday": 1, "start": "08:00", "end": "10:00"},
                                                                  {"weekday": 1, "start": "09:30", "end": "11:00"}]},
     "availability"),
    ({"real_name": "x", "phone": "13912345678", "availability": [{"weekday": 3, "start": "18:00", "end": "21:00"}] * 2},
     "availability"),
    ({"phone": "13912345678"}, "real_name"),
])
def test_bad_registration_is_422_and_changes_nothing(login, session, body, field):
    before = count(session, Volunteer)
    problem = assert_problem(login("worker-002").post("/api/v1/volunteers", json=body), 422)
    assert field in problem["errors"]
    assert count(session, Volunteer) == before


def test_only_admins_and_liaisons_register_someone_else(login, session):
    from gridsvc.services.accounts import find_user

    target = find_user(session, "worker-003").id
    body = {"user_id": target, "real_name": "x", "phone": "13900000000"}
    assert_problem(login("worker-004").post("/api/v1/volunteers", json=body), 403)
    assert login("liaison-g01").post("/api/v1/volunteers",
                                     json={**body, "home_zone_id": zone_of(session, "G01").id}).status_code == 201


def test_admin_extends_the_skill_list(login, client):
    assert len(client.get("/api/v1/skills").get_json()) == 7
    assert login("admin").post("/api/v1/skills", json={"code": "sign_language", "name_zh": "手语", "name_en": "Sign language"}).status_code == 201
    assert "sign_language" in {s["code"] for s in client.get("/api/v1/skills").get_json()}
    assert_problem(login("planner").post("/api/v1/skills", json={"code": "x_y", "name_zh": "x", "name_en": "x"}), 403)
    assert_problem(login("admin").post("/api/v1/skills", json={"code": "Bad Code", "name_zh": "x", "name_en": "x"}), 422)
    # names are trimmed, as a change of names is: blanks are no name
    blank = assert_problem(login("admin").post("/api/v1/skills", json={"code": "blank", "name_zh": "   ", "name_en": " "}), 422)
    assert set(blank["errors"]) == {"name_zh", "name_en"}
    made = login("admin").post("/api/v1/skills", json={"code": "first_aid_2", "name_zh": " 急救二 ", "name_en": "First aid 2 "})
    assert (made.get_json()["name_zh"], made.get_json()["name_en"]) == ("急救二", "First aid 2")
    assert "blank" not in {s["code"] for s in client.get("/api/v1/skills").get_json()}


def test_filter_by_zone_skill_and_team(login, session):
    planner = login("planner")
    g02 = zone_of(session, "G02")
    in_g02 = planner.get(f"/api/v1/volunteers?zone_id={g02.id}&limit=100").get_json()
    assert in_g02["total"] == 6 and all(v["home_zone_id"] == g02.id for v in in_g02["items"])
    first_aid = planner.get("/api/v1/volunteers?skill=first_aid&limit=100").get_json()
    assert first_aid["total"] == 6 and all("first_aid" in v["skills"] for v in first_aid["items"])
    assert planner.get("/api/v1/volunteers?team=灵动").get_json()["total"] == 60
    assert planner.get("/api/v1/volunteers?team=nobody").get_json()["total"] == 0



def test_a_page_of_volunteers_costs_the_same_queries_for_5_or_60(login, connection):
    """Accounts, skills, duty and zones are read for the whole page, not per volunteer."""
    from sqlalchemy import event

    liaison = login("liaison-g02")  # phones shown for G02's volunteers, masked for the others
    statements = []

    def counted(path):
        statements.clear()
        body = liaison.get(path).get_json()
        return body, len(statements)

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        few, few_queries = counted("/api/v1/volunteers?limit=5")
        many, many_queries = counted("/api/v1/volunteers?limit=100")
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert len(few["items"]) == 5 and len(many["items"]) == 60
    assert many_queries == few_queries
    shown = {v["username"]: "*" not in v["phone"] for v in many["items"]}
    assert any(shown.values()) and not all(shown.values())
    assert all(v["skills"] and v["username"].startswith("volunteer-") for v in many["items"])

def test_near_lists_nearest_first_with_distance(login, session, clock):
    g05 = zone_of(session, "G05")
    here = zone_center(login("admin"), g05.id)
    # east, north and on the diagonal, just inside and just outside the radius (the index's degree circle
    # must not lose the east-west ones, where a degree is shorter)
    placed = {}
    for username, east, north in (("volunteer-010", 0, 300), ("volunteer-011", 100, 0), ("volunteer-012", 0, 2500),
                                  ("volunteer-013", 975, 0), ("volunteer-014", -1025, 0), ("volunteer-015", 680, -680)):
        lon, lat = placed[username] = offset(*here, east, north)
        login(username).post("/api/v1/me/location", json={"lon": lon, "lat": lat, "accuracy_m": 10})
    metres = {username: geodesic_distance_m(*here, *point) for username, point in placed.items()}
    inside = sorted((name for name, m in metres.items() if m <= 1000), key=metres.get)
    assert inside == ["volunteer-011", "volunteer-010", "volunteer-015", "volunteer-013"]  # 014 is 1,0xx m west
    found = login("admin").get(f"/api/v1/volunteers?near={here[0]},{here[1]}&radius_m=1000").get_json()
    assert [v["username"] for v in found["items"]] == inside
    assert [v["distance_m"] for v in found["items"]] == pytest.approx([metres[n] for n in inside], abs=0.1)
    # G05's liaison finds the volunteers whose positions they may see: volunteer-015 lives in G05, and
    # volunteer-011 (home G01) once signed up for a G05 shift
    by_liaison = login("liaison-g05")
    near = f"/api/v1/volunteers?near={here[0]},{here[1]}&radius_m=1000"
    assert [v["username"] for v in by_liaison.get(near).get_json()["items"]] == ["volunteer-015"]
    shift = make_shift(login("admin"), zone_id=g05.id, starts_at=clock() + timedelta(days=3))
    assert login("volunteer-011").post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    mine = by_liaison.get(near).get_json()
    assert [(v["username"], v["last_position"] is not None) for v in mine["items"]] == [
        ("volunteer-011", True), ("volunteer-015", True)]
    assert mine["total"] == 2


@pytest.mark.parametrize("role", ["planner", "dept-traffic"])
def test_a_search_by_position_is_refused_to_those_who_may_not_see_positions(login, role):
    """distance_m from three points, or a small radius, would locate a volunteer whose position is private."""
    searcher = login(role)
    assert_problem(searcher.get("/api/v1/volunteers?near=121.77,29.87&radius_m=5000"), 403)
    assert searcher.get("/api/v1/volunteers?skill=first_aid").status_code == 200  # other searches stay theirs


def test_location_in_gcj02_is_stored_as_wgs84_with_history(login, session):
    truth = zone_center(login("admin"), zone_of(session, "G01").id)
    phone = from_wgs84(*truth, "gcj02")
    volunteer = login("volunteer-001")
    answer = volunteer.post("/api/v1/me/location", json={"lon": phone[0], "lat": phone[1], "crs": "gcj02", "accuracy_m": 8})
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["input"]["crs"] == "gcj02" and body["point"]["crs"] == "wgs84"
    assert geodesic_distance_m(body["point"]["lon"], body["point"]["lat"], *truth) < 1.0
    assert body["in_history"] is True
    vid = volunteer_id(session, "volunteer-001")
    assert session.scalar(select(func.count()).where(VolunteerPosition.volunteer_id == vid)) == 1


def test_the_history_keeps_a_fix_a_minute_or_a_move_of_50_m(login, session, clock):
    """An app reporting every few seconds from one gate stores one fix a minute, not thousands a day; each
    fix is still the last known position dispatch uses. A move of more than 50 m is kept at once, so is a
    more accurate fix, and a late offline fix is judged against the kept fixes around its own time."""
    gate = zone_center(login("admin"), zone_of(session, "G04").id)
    moved = (gate[0], gate[1] + 60 / 111_320)  # 60 m north
    assert 59 < geodesic_distance_m(*gate, *moved) < 61
    volunteer = login("volunteer-004")

    def report(point, accuracy=5, **extra):
        answer = volunteer.post("/api/v1/me/location", json={"lon": point[0], "lat": point[1], "accuracy_m": accuracy,
                                                              **extra})
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()["in_history"]

    assert report(gate) is True
    clock.advance(seconds=10)
    assert report((gate[0] + 20 / 97_000, gate[1])) is False  # 20 m east, 10 s later: GPS jitter at the gate
    profile = volunteer.get("/api/v1/me/volunteer").get_json()
    assert geodesic_distance_m(profile["last_position"]["lon"], profile["last_position"]["lat"], *gate) > 15
    assert report(moved) is True  # walked off: kept though only 10 s later
    clock.advance(seconds=61)
    assert report(moved) is True  # a minute on, still there: kept, once a minute
    late = (clock() - timedelta(seconds=100)).isoformat()  # taken at the gate half a minute before the first fix, sent now
    assert report(gate, client_time=late) is False
    early = (clock() - timedelta(minutes=5)).isoformat()  # long before anything kept
    assert report(gate, client_time=early) is True
    clock.advance(seconds=5)
    assert report(moved, accuracy=60) is False  # a coarser fix of the same place
    assert report(moved, accuracy=3) is True  # a finer one is worth keeping

    kept = volunteer.get("/api/v1/me/locations").get_json()
    assert kept["total"] == 5
    assert [round(geodesic_distance_m(p["point"]["lon"], p["point"]["lat"], *gate)) for p in kept["items"]] == [
        60, 60, 60, 0, 0]
    assert kept["items"][0]["accuracy_m"] == 3
    profile = volunteer.get("/api/v1/me/volunteer").get_json()  # the late fixes did not replace the newest
    assert round(geodesic_distance_m(profile["last_position"]["lon"], profile["last_position"]["lat"], *gate)) == 60


def test_every_fix_joins_the_history_with_thinning_off(app, login, session):
    app.config["GRIDSVC_POSITION_HISTORY_SECONDS"] = 0
    gate = zone_center(login("admin"), zone_of(session, "G04").id)
    volunteer = login("volunteer-004")
    for _ in range(3):
        assert volunteer.post("/api/v1/me/location", json={"lon": gate[0], "lat": gate[1]}).get_json()["in_history"]
    assert volunteer.get("/api/v1/me/locations").get_json()["total"] == 3


@pytest.mark.parametrize("body", [{"lon": 200, "lat": 29}, {"lon": 121, "lat": 29, "crs": "utm"},
                                  {"lon": 121, "lat": 29, "accuracy_m": -1}, {"lat": 29}])
def test_bad_location_is_422(login, session, body):
    before = count(session, VolunteerPosition)
    assert_problem(login("volunteer-001").post("/api/v1/me/location", json=body), 422)
    assert count(session, VolunteerPosition) == before


def test_location_needs_a_volunteer(login):
    assert_problem(login("planner").post("/api/v1/me/location", json={"lon": 121.78, "lat": 29.87}), 403)


def test_a_volunteer_reads_the_positions_kept_about_them_newest_first(login, session, clock):
    """What the service holds of where a volunteer was is theirs to see (PIPL art. 45): each fix as stored (in
    WGS-84, with the crs the phone used), newest by when it was taken (a late offline fix in its place), paged,
    with the retention; another volunteer's are not among them."""
    truth = zone_center(login("admin"), zone_of(session, "G03").id)
    phone = from_wgs84(*truth, "gcj02")
    volunteer = login("volunteer-009")
    sent = [{"lon": phone[0], "lat": phone[1], "crs": "gcj02", "accuracy_m": 12,
             "client_time": (clock() - timedelta(minutes=10)).isoformat()},
            {"lon": truth[0], "lat": truth[1], "accuracy_m": 4},
            {"lon": truth[0], "lat": truth[1], "client_time": (clock() - timedelta(hours=2)).isoformat()}]
    for body in sent:
        assert volunteer.post("/api/v1/me/location", json=body).status_code == 201
    login("volunteer-010").post("/api/v1/me/location", json={"lon": 121.7, "lat": 29.8})

    kept = volunteer.get("/api/v1/me/locations").get_json()
    assert (kept["total"], kept["retention_days"]) == (3, 7.0)
    assert [(p["input_crs"], p["accuracy_m"]) for p in kept["items"]] == [("wgs84", 4.0), ("gcj02", 12.0), ("wgs84", None)]
    assert [p["recorded_at"][:16] for p in kept["items"][1:]] == [
        (clock() - timedelta(minutes=10)).isoformat()[:16], (clock() - timedelta(hours=2)).isoformat()[:16]]
    converted = kept["items"][1]["point"]
    assert converted["crs"] == "wgs84" and geodesic_distance_m(converted["lon"], converted["lat"], *truth) < 1.0
    second = volunteer.get("/api/v1/me/locations?limit=1&offset=1").get_json()
    assert (second["total"], [p["input_crs"] for p in second["items"]]) == (3, ["gcj02"])
    assert_problem(volunteer.get("/api/v1/me/locations?limit=0"), 422)
    assert "no volunteer profile" in assert_problem(login("planner").get("/api/v1/me/locations"), 404)["detail"]


def test_purge_deletes_positions_past_retention(login, session, clock):
    volunteer = login("volunteer-002")
    volunteer.post("/api/v1/me/location", json={"lon": 121.78, "lat": 29.87})
    vid = volunteer_id(session, "volunteer-002")
    assert purge_positions(session, retention_days=7, now=clock() + timedelta(days=6)) == (0, 0)
    history, last_known = purge_positions(session, retention_days=7, now=clock() + timedelta(days=8))
    assert history >= 1 and last_known >= 1
    assert session.scalar(select(func.count()).where(VolunteerPosition.volunteer_id == vid)) == 0
    session.expire_all()
    assert session.get(Volunteer, vid).last_position is None


def test_phone_and_position_only_for_the_volunteer_their_liaison_and_admins(login, session):
    vid = volunteer_id(session, "volunteer-001")  # home zone G01
    login("volunteer-001").post("/api/v1/me/location", json={"lon": 121.78, "lat": 29.87})
    full = login("liaison-g01").get(f"/api/v1/volunteers/{vid}").get_json()
    assert "*" not in full["phone"] and full["last_position"] is not None and full["national_volunteer_id"]
    for other in ("liaison-g02", "volunteer-002", "planner"):
        seen = login(other).get(f"/api/v1/volunteers/{vid}").get_json()
        assert seen["phone"] == full["phone"][:3] + "****" + full["phone"][-4:], other
        assert seen["last_position"] is None and seen["national_volunteer_id"] is None and seen["calendar_url"] is None
    assert login("admin").get(f"/api/v1/volunteers/{vid}").get_json()["phone"] == full["phone"]
    assert_problem(login("volunteer-002").get("/api/v1/volunteers"), 403)


def test_profile_edits_by_the_volunteer_or_an_admin_only(login, session):
    vid = volunteer_id(session, "volunteer-003")
    assert login("volunteer-003").patch(f"/api/v1/volunteers/{vid}", json={"team": "红马甲"}).get_json()["team"] == "红马甲"
    assert_problem(login("volunteer-004").patch(f"/api/v1/volunteers/{vid}", json={"team": "x"}), 403)
    assert_problem(login("volunteer-003").patch(f"/api/v1/volunteers/{vid}", json={"skills": ["nope"]}), 422)


def test_a_registration_sent_twice_at_once_registers_once(committed_app, engine):
    """A phone on a flaky network sends its registration again while the first is still being saved: the second
    waits for it and gets the 409 that says so, not a 500, and there is one volunteer."""
    from gridsvc.models import User
    from gridsvc.services.volunteers import register

    with engine.connect() as conn:
        user_id = conn.execute(select(User.id).where(User.username == "worker-010")).scalar()
    worker = client_as(committed_app, "worker-010")
    body = {"real_name": "周敏", "phone": "13912345670"}
    try:
        answer = while_uncommitted(engine, lambda own: register(own, user_id=user_id, skills=[], **body),
                                   lambda: worker.post("/api/v1/volunteers", json=body))
        assert "already registered" in assert_problem(answer, 409)["detail"]
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Volunteer).where(Volunteer.user_id == user_id)).scalar() == 1
    finally:
        _unregister(engine, user_id)


def test_a_unique_clash_between_two_requests_is_a_409_not_a_500(committed_app, engine):
    """Two admins add the same skill at the same moment: whichever the database refuses gets a 409."""
    from gridsvc.models import Skill
    from gridsvc.services.volunteers import create_skill

    admin = client_as(committed_app, "admin")
    skill = {"code": "sign_language", "name_zh": "手语", "name_en": "Sign language"}
    try:
        answer = while_uncommitted(engine, lambda own: create_skill(own, **skill),
                                   lambda: admin.post("/api/v1/skills", json=skill))
        problem = assert_problem(answer, 409)
        assert "at the same moment" in problem["detail"]
    finally:
        with engine.begin() as conn:
            conn.execute(Skill.__table__.delete().where(Skill.code == "sign_language"))


def _unregister(engine, user_id: int) -> None:
    """The committed tests share the database: the account back as it was, without its volunteer profile or role."""
    from gridsvc.models import UserRole

    with engine.begin() as conn:
        conn.execute(Volunteer.__table__.delete().where(Volunteer.user_id == user_id))
        conn.execute(UserRole.__table__.delete().where(UserRole.user_id == user_id, UserRole.role == "volunteer"))


def test_availability_windows_may_touch_but_not_overlap(login, session):
    """Saturday 08:00-12:00 twice, or 08:00-10:00 with 09:30-11:00, was stored as sent: the profile showed the
    same hours twice. Windows that only touch are two windows."""
    volunteer = login("volunteer-001")
    url = f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}"
    touching = [{"weekday": 6, "start": "10:00", "end": "12:00"}, {"weekday": 6, "start": "08:00", "end": "10:00"},
                {"weekday": 7, "start": "09:00", "end": "11:00"}]
    assert volunteer.patch(url, json={"availability": touching}).get_json()["availability"] == touching
    overlapping = [*touching, {"weekday": 6, "start": "11:30", "end": "13:00"}]
    problem = assert_problem(volunteer.patch(url, json={"availability": overlapping}), 422)
    assert "weekday 6: 10:00-12:00 and 11:30-13:00" in str(problem["errors"]["availability"])
    assert volunteer.get(url).get_json()["availability"] == touching


def test_a_skill_retired_while_a_volunteer_takes_it_up_is_not_taken_up(committed_app, engine, clock):
    """An admin retires sign_language while volunteer-009 adds it to their profile: the profile read the skill
    before the retirement committed, and the volunteer took up a skill nobody may take up any more. Now the
    profile waits for the retirement and is refused (422), as it would be a moment later."""
    from gridsvc.models import Skill, VolunteerSkill
    from gridsvc.services.volunteers import update_skill

    with engine.begin() as conn:
        conn.execute(Skill.__table__.insert().values(code="sign_language", name_zh="手语", name_en="Sign language"))
        vid = conn.execute(select(Volunteer.id).join(Volunteer.user).where(Volunteer.user.has(username="volunteer-009"))
                           ).scalar()
    volunteer = client_as(committed_app, "volunteer-009")
    url = f"/api/v1/volunteers/{vid}"
    held = volunteer.get(url).get_json()["skills"]
    try:
        answer = while_uncommitted(engine, lambda own: update_skill(own, "sign_language", {"retired": True}, now=clock()),
                                   lambda: volunteer.patch(url, json={"skills": [*held, "sign_language"]}))
        problem = assert_problem(answer, 422)
        assert "retired skill: sign_language" in problem["errors"]["skills"]
        assert volunteer.get(url).get_json()["skills"] == held
    finally:
        with engine.begin() as conn:
            conn.execute(VolunteerSkill.__table__.delete().where(VolunteerSkill.skill_code == "sign_language"))
            conn.execute(Skill.__table__.delete().where(Skill.code == "sign_language"))
