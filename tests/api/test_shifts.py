"""Shifts and sign-ups: places, waitlist, overlap, skills, timing, and the race for the last place."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod
from shapely.geometry import shape
from sqlalchemy import select

from gridsvc.models import Shift, Signup, User, Volunteer, Zone
from gridsvc.services import shifts as shift_service
from tests.api.volunteer_helpers import make_shift, north_of, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, client_as, count, delete_shifts, duty_restored, while_uncommitted

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def admin(login):
    return login("admin")


def test_liaison_creates_shifts_in_their_zone_only(login, session, clock):
    g01, g02 = zone_of(session, "G01"), zone_of(session, "G02")
    liaison = login("liaison-g01")
    body = {"title": "垃圾分类督导", "activity": "garbage_sorting", "zone_id": g01.id, "capacity": 4,
            "starts_at": (clock() + timedelta(days=1)).isoformat(), "ends_at": (clock() + timedelta(days=1, hours=2)).isoformat()}
    created = liaison.post("/api/v1/shifts", json=body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["places_left"] == 4 and created.get_json()["zone_id"] == g01.id
    assert_problem(liaison.post("/api/v1/shifts", json={**body, "zone_id": g02.id}), 403)
    assert_problem(login("volunteer-001").post("/api/v1/shifts", json=body), 403)


def test_point_shift_finds_its_zone(admin, session, clock):
    g04 = zone_of(session, "G04")
    gate = zone_center(admin, g04.id)
    shift = make_shift(admin, point=gate, radius_m=60, starts_at=clock() + timedelta(hours=3))
    assert shift["zone_id"] == g04.id and shift["radius_m"] == 60
    assert shift["location"]["lon"] == pytest.approx(gate[0])


@pytest.mark.parametrize("change, field", [
    ({"ends_at": "2026-01-01T08:00:00+08:00", "starts_at": "2026-01-01T09:00:00+08:00"}, "ends_at"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": -3}, "capacity"),
    ({"zone_id": 987654}, "zone_id"),
    ({"zone_id": None}, "zone_id"),
    ({"required_skills": ["juggling"]}, "required_skills"),
    ({"location": {"lon": 100.0, "lat": 10.0}, "radius_m": 50, "zone_id": None}, "location"),
    ({"location": {"lon": 121.78, "lat": 29.87}}, "radius_m"),
    ({"location": {"lon": 121.78, "lat": 29.87}, "radius_m": 5000.5, "zone_id": None}, "radius_m"),
    ({"starts_at": "tomorrow"}, "starts_at"),
])
def test_bad_shifts_are_422_and_create_nothing(admin, session, clock, change, field):
    g01 = zone_of(session, "G01")
    body = {"title": "x", "activity": "traffic_guidance", "zone_id": g01.id, "capacity": 2,
            "starts_at": (clock() + timedelta(days=1)).isoformat(), "ends_at": (clock() + timedelta(days=1, hours=1)).isoformat()}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    before = count(session, Shift)
    problem = assert_problem(admin.post("/api/v1/shifts", json=body), 422)
    assert field in problem["errors"], problem
    assert count(session, Shift) == before


def test_recurring_template_makes_weekday_shifts_in_local_time(admin, session):
    g06 = zone_of(session, "G06")
    monday = date(2027, 3, 1)
    answer = admin.post("/api/v1/shifts/series", json={
        "title": "北门早高峰", "activity": "traffic_guidance", "zone_id": g06.id, "capacity": 2,
        "weekdays": [1, 2, 3, 4, 5], "start_time": "07:30", "end_time": "09:00",
        "from_date": monday.isoformat(), "until_date": (monday + timedelta(days=27)).isoformat()})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["count"] == 20
    starts = [datetime.fromisoformat(s["starts_at"]).astimezone(SHANGHAI) for s in body["items"]]
    assert all(s.weekday() < 5 and (s.hour, s.minute) == (7, 30) for s in starts)
    assert {s["series_id"] for s in body["items"]} == {body["series_id"]}
    listed = admin.get(f"/api/v1/shifts?zone_id={g06.id}&from=2027-03-01T00:00:00%2B08:00&to=2027-03-08T00:00:00%2B08:00").get_json()
    assert listed["total"] == 5
    assert_problem(admin.post("/api/v1/shifts/series", json={
        "title": "x", "activity": "x_y", "zone_id": g06.id, "capacity": 1, "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "07:30",
        "end_time": "09:00", "from_date": "2027-01-01", "until_date": "2029-01-01"}), 422)


def test_cancelling_the_rest_of_a_series_keeps_the_shift_under_way(admin, login, session, clock):
    g06 = zone_of(session, "G06")
    first_day = clock().astimezone(SHANGHAI).date() + timedelta(days=1)
    series = admin.post("/api/v1/shifts/series", json={
        "title": "北门早高峰", "activity": "traffic_guidance", "zone_id": g06.id, "capacity": 2, "weekdays": [1, 2, 3, 4, 5, 6, 7],
        "start_time": "07:30", "end_time": "09:00", "from_date": first_day.isoformat(),
        "until_date": (first_day + timedelta(days=5)).isoformat()}).get_json()
    shifts = series["items"]
    assert len(shifts) == 6
    volunteer = login("volunteer-006")
    for shift in (shifts[0], shifts[1], shifts[-1]):
        assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    # the second morning, 20 minutes before the start: the first is over, and the volunteer checks in to the second
    clock.advance(seconds=(datetime.fromisoformat(shifts[1]["starts_at"]) - timedelta(minutes=20) - clock()).total_seconds())
    here = zone_center(admin, g06.id)
    checked_in = volunteer.post(f"/api/v1/shifts/{shifts[1]['id']}/check-in", json={"lon": here[0], "lat": here[1]})
    assert checked_in.status_code == 201 and checked_in.get_json()["on_duty"]
    url = f"/api/v1/shifts/series/{series['series_id']}"
    assert_problem(login("liaison-g01").delete(url), 403)
    assert_problem(admin.delete("/api/v1/shifts/series/no-such-series"), 404)
    liaison = login("liaison-g06")
    assert_problem(liaison.delete(url, query_string={"from": "next week"}), 422)
    # "from the fourth day on"
    rest = liaison.delete(url, query_string={"from": shifts[3]["starts_at"]}).get_json()
    assert [s["id"] for s in rest["cancelled"]] == [s["id"] for s in shifts[3:]] and rest["kept"] == []
    everything = liaison.delete(url).get_json()  # the over one is history: in neither list
    assert [s["id"] for s in everything["cancelled"]] == [shifts[2]["id"]]
    assert [s["id"] for s in everything["kept"]] == [shifts[1]["id"]] and everything["kept"][0]["confirmed"] == 1
    listed = admin.get(f"/api/v1/shifts?series_id={series['series_id']}&include_cancelled=true").get_json()["items"]
    assert [s["status"] for s in listed] == ["scheduled", "scheduled"] + ["cancelled"] * 4
    mine = {item["shift"]["id"]: item for item in volunteer.get(
        f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-006')}/signups").get_json()["items"]}
    assert mine[shifts[1]["id"]]["on_duty"] and mine[shifts[-1]["id"]]["shift"]["status"] == "cancelled"


def test_signups_confirm_then_waitlist_and_cancel_promotes(login, admin, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=2, starts_at=clock() + timedelta(days=2))
    url = f"/api/v1/shifts/{shift['id']}/signups"
    answers = [login(f"volunteer-{i:03d}").post(url, json={}).get_json() for i in (1, 2, 3, 4)]
    assert [a["status"] for a in answers] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [a["waitlist_position"] for a in answers] == [None, None, 1, 2]
    assert admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["places_left"] == 0
    cancelled = login("volunteer-001").delete(f"{url}/{answers[0]['volunteer_id']}").get_json()
    assert cancelled["cancelled"]["status"] == "cancelled"
    assert cancelled["promoted"] == []  # who took the place is volunteer-003's record (the roster shows the liaison)
    roster = login("liaison-g01").get(url).get_json()["items"]
    assert [(s["volunteer_id"], s["status"], s["waitlist_position"]) for s in roster] == [
        (answers[1]["volunteer_id"], "confirmed", None), (answers[2]["volunteer_id"], "confirmed", None),
        (answers[3]["volunteer_id"], "waitlisted", 1)]
    assert_problem(login("liaison-g02").get(url), 403)
    assert_problem(login("volunteer-002").delete(f"{url}/{answers[3]['volunteer_id']}"), 403)


def test_signup_refusals_say_why(login, admin, session, clock):
    g01 = zone_of(session, "G01")
    start = clock() + timedelta(days=3)
    first = make_shift(admin, zone_id=g01.id, starts_at=start, hours=2)
    overlapping = make_shift(admin, zone_id=g01.id, starts_at=start + timedelta(hours=1), hours=2)
    skilled = make_shift(admin, zone_id=g01.id, starts_at=start + timedelta(days=1), skills=["translation"])
    started = make_shift(admin, zone_id=g01.id, starts_at=clock() - timedelta(minutes=5))
    volunteer = login("volunteer-002")
    assert volunteer.post(f"/api/v1/shifts/{first['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert assert_problem(volunteer.post(f"/api/v1/shifts/{overlapping['id']}/signups", json={}), 409)["reason"] == "overlap"
    missing = assert_problem(volunteer.post(f"/api/v1/shifts/{skilled['id']}/signups", json={}), 409)
    assert missing["reason"] == "missing_skill" and missing["missing_skills"] == ["translation"]
    assert assert_problem(volunteer.post(f"/api/v1/shifts/{started['id']}/signups", json={}), 409)["reason"] == "started"
    again = assert_problem(volunteer.post(f"/api/v1/shifts/{first['id']}/signups", json={}), 409)
    assert again["reason"] == "already_signed_up"
    assert_problem(volunteer.post("/api/v1/shifts/987654/signups", json={}), 404)
    assert_problem(login("planner").post(f"/api/v1/shifts/{first['id']}/signups", json={}), 403)


def test_cancelled_shift_takes_no_signups_and_frees_people(login, admin, session, clock):
    start = clock() + timedelta(days=4)
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=start)
    volunteer = login("volunteer-005")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    cancelled = admin.delete(f"/api/v1/shifts/{shift['id']}").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["places_left"] == 0
    # who was confirmed stays on record, under the cancelled shift ...
    assert [(s["volunteer_id"], s["status"]) for s in admin.get(f"/api/v1/shifts/{shift['id']}/signups").get_json()["items"]] == [
        (volunteer_id(session, "volunteer-005"), "confirmed")]
    mine = volunteer.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-005')}/signups").get_json()["items"]
    assert [(m["shift"]["id"], m["shift"]["status"]) for m in mine] == [(shift["id"], "cancelled")]
    calendar = volunteer.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-005')}/shifts.ics").get_data(as_text=True)
    assert f"UID:shift-{shift['id']}-" in calendar and "STATUS:CANCELLED" in calendar  # the phone's calendar marks it
    # ... but holds nobody: the same hours elsewhere are free, and the cancelled shift takes no one
    elsewhere = make_shift(admin, zone_id=zone_of(session, "G02").id, starts_at=start)
    assert volunteer.post(f"/api/v1/shifts/{elsewhere['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert_problem(login("volunteer-006").post(f"/api/v1/shifts/{shift['id']}/signups", json={}), 409)
    # ... and its record stays as it was: a withdrawal now would say the volunteer chose not to come
    withdrawn = volunteer.delete(f"/api/v1/shifts/{shift['id']}/signups/{volunteer_id(session, 'volunteer-005')}")
    assert assert_problem(withdrawn, 409)["reason"] == "cancelled"
    assert [s["status"] for s in admin.get(f"/api/v1/shifts/{shift['id']}/signups").get_json()["items"]] == ["confirmed"]


def test_find_a_shift_near_me_with_space(login, admin, session, clock):
    g08 = zone_of(session, "G08")
    gate = zone_center(admin, g08.id)
    full = make_shift(admin, point=gate, radius_m=50, capacity=1, starts_at=clock() + timedelta(days=5), activity="night_patrol")
    open_ = make_shift(admin, point=gate, radius_m=50, capacity=3, starts_at=clock() + timedelta(days=6), activity="night_patrol")
    started = make_shift(admin, point=gate, radius_m=50, capacity=3, starts_at=clock() + timedelta(hours=1),
                         activity="night_patrol")
    login("volunteer-008").post(f"/api/v1/shifts/{full['id']}/signups", json={})
    clock.advance(hours=1, minutes=10)  # `started` runs now, with three free places, but sign-ups are closed
    volunteer = login("volunteer-009")
    search = f"/api/v1/shifts?near={gate[0]},{gate[1]}&radius_m=500&activity=night_patrol&has_space="
    found = volunteer.get(search + "true").get_json()
    assert [s["id"] for s in found["items"]] == [open_["id"]] and found["total"] == 1
    assert found["items"][0]["distance_m"] == 0 and found["items"][0]["places_left"] == 3
    assert volunteer.post(f"/api/v1/shifts/{open_['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert volunteer.post(f"/api/v1/shifts/{started['id']}/signups", json={}).get_json()["reason"] == "started"
    no_space = volunteer.get(search + "false").get_json()
    assert [s["id"] for s in no_space["items"]] == [started["id"], full["id"]]  # by start


def test_near_measures_to_the_zone_polygon_or_the_point_circle_nearest_first(login, admin, session, clock):
    g01 = zone_of(session, "G01")
    polygon = shape(admin.get(f"/api/v1/zones/{g01.id}").get_json()["geometry"])
    # 300 m due north of the zone's northernmost corner: every point of the zone is 300 m away or more
    corner = max(polygon.exterior.coords, key=lambda p: p[1])
    here = north_of(corner, 300)
    zone_shift = make_shift(admin, zone_id=g01.id, capacity=2, starts_at=clock() + timedelta(days=3),
                            activity="night_patrol")
    # a gate at that corner with a 50 m circle: 250 m from here to the circle's edge
    gate_shift = make_shift(admin, point=corner, radius_m=50, starts_at=clock() + timedelta(days=4),
                            activity="night_patrol")
    volunteer = login("volunteer-009")
    url = f"/api/v1/shifts?near={here[0]},{here[1]}&activity=night_patrol&radius_m="
    found = volunteer.get(url + "400").get_json()
    assert [s["id"] for s in found["items"]] == [gate_shift["id"], zone_shift["id"]]
    assert [s["distance_m"] for s in found["items"]] == [pytest.approx(250, abs=2), pytest.approx(300, abs=2)]
    assert found["total"] == 2 and volunteer.get(url + "400&limit=1&offset=1").get_json()["total"] == 2
    past_the_end = volunteer.get(url + "400&offset=5").get_json()
    assert past_the_end["items"] == [] and past_the_end["total"] == 2
    assert [s["id"] for s in volunteer.get(url + "275").get_json()["items"]] == [gate_shift["id"]]
    assert volunteer.get(url + "240").get_json()["total"] == 0


def test_a_wide_point_geofence_is_found_from_beyond_the_search_radius(login, admin, session, clock):
    """A point shift is measured to its circle's edge: a 5,000 m circle whose centre is 5,400 m away is 400 m away."""
    gate = zone_center(admin, zone_of(session, "G05").id)
    wide = make_shift(admin, point=gate, radius_m=5000, starts_at=clock() + timedelta(days=3), activity="night_patrol")
    make_shift(admin, zone_id=zone_of(session, "G05").id, starts_at=clock() + timedelta(days=3), activity="night_patrol")
    here = north_of(gate, 5400)  # well outside the park: its zones are all farther than 500 m
    to_edge = Geod(ellps="WGS84").inv(*gate, *here)[2] - 5000  # ~400 m (north_of is approximate)
    url = f"/api/v1/shifts?near={here[0]},{here[1]}&activity=night_patrol&radius_m="
    found = login("volunteer-009").get(url + "500").get_json()
    assert [s["id"] for s in found["items"]] == [wide["id"]] and found["total"] == 1
    assert found["items"][0]["distance_m"] == pytest.approx(to_edge, abs=0.5)
    assert login("volunteer-009").get(url + str(round(to_edge) - 10)).get_json()["total"] == 0


def test_raising_capacity_promotes_and_lowering_below_confirmed_is_409(login, admin, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=1, starts_at=clock() + timedelta(days=7))
    url = f"/api/v1/shifts/{shift['id']}"
    login("volunteer-011").post(f"{url}/signups", json={})
    login("volunteer-021").post(f"{url}/signups", json={})
    assert admin.patch(url, json={"capacity": 2}).get_json()["confirmed"] == 2
    assert_problem(admin.patch(url, json={"capacity": 1}), 409)


def test_rescheduling_a_shift_keeps_its_volunteers_free_of_overlaps(admin, login, session, clock):
    g01 = zone_of(session, "G01").id
    day = clock() + timedelta(days=5)
    shift = make_shift(admin, zone_id=g01, starts_at=day, hours=2)
    later = make_shift(admin, zone_id=g01, starts_at=day + timedelta(hours=3), hours=2)
    volunteer = login("volunteer-011")
    for s in (shift, later):
        assert volunteer.post(f"/api/v1/shifts/{s['id']}/signups", json={}).get_json()["status"] == "confirmed"
    url = f"/api/v1/shifts/{shift['id']}"
    clash = assert_problem(admin.patch(url, json={"starts_at": (day + timedelta(hours=4)).isoformat(),
                                                  "ends_at": (day + timedelta(hours=6)).isoformat()}), 409)
    # a shift change, not a sign-up, was refused (nobody signed up): its own title and type
    assert (clash["title"], clash["type"].rsplit("/", 1)[-1]) == ("Shift change refused", "shift-change-refused")
    assert clash["reason"] == "overlap"
    assert clash["clashes"] == [{"volunteer_id": volunteer_id(session, "volunteer-011"), "overlapping_shift_id": later["id"]}]
    # a sign-up refused for the same overlap keeps its own
    overlapping = make_shift(admin, zone_id=g01, starts_at=day + timedelta(hours=1), hours=2)
    refused = assert_problem(volunteer.post(f"/api/v1/shifts/{overlapping['id']}/signups", json={}), 409)
    assert (refused["title"], refused["reason"]) == ("Sign-up refused", "overlap")
    assert admin.get(url).get_json()["starts_at"] == shift["starts_at"]  # nothing changed
    moved = admin.patch(url, json={"starts_at": (day + timedelta(hours=6)).isoformat(),
                                   "ends_at": (day + timedelta(hours=8)).isoformat()})
    assert moved.status_code == 200, moved.get_json()
    assert datetime.fromisoformat(moved.get_json()["starts_at"]) == day + timedelta(hours=6)
    assert moved.get_json()["confirmed"] == 1
    clock.advance(days=5, hours=6, minutes=1)  # it has started: its times are fixed, its title is not
    assert assert_problem(admin.patch(url, json={"ends_at": (day + timedelta(hours=9)).isoformat()}), 409)["reason"] == "started"
    assert admin.patch(url, json={"title": "北门交通疏导（加班）"}).status_code == 200


def test_a_promotion_waits_for_the_volunteers_own_sign_up_elsewhere(committed_app, engine, clock):
    """Volunteer V waits for shift A's one place and, at the same moment, signs up for shift B at the same time
    while X cancels A. V's sign-up commits first (it holds V's row); V ends up confirmed once, for B."""
    admin = client_as(committed_app, "admin")
    (x_name, x_id), (v_name, v_id) = _two_volunteers(engine)
    start = clock() + timedelta(days=40)
    a = _shift_in_first_zone(admin, engine, capacity=1, starts_at=start)
    b = _shift_in_first_zone(admin, engine, capacity=5, starts_at=start + timedelta(minutes=30))
    x, v = client_as(committed_app, x_name), client_as(committed_app, v_name)
    try:
        assert x.post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "confirmed"
        assert v.post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "waitlisted"
        status = while_uncommitted(engine, lambda own: shift_service.sign_up(own, b["id"], v_id, now=clock()),
                                    lambda: x.delete(f"/api/v1/shifts/{a['id']}/signups/{x_id}").status_code)
        assert status == 200
        assert _confirmed_for(engine, v_id, a["id"], b["id"]) == [b["id"]]  # A's place stays free rather than overlap
        assert admin.get(f"/api/v1/shifts/{a['id']}").get_json()["places_left"] == 1
    finally:
        delete_shifts(engine, a["id"], b["id"])


def test_a_reschedule_waits_for_a_volunteers_sign_up_at_the_new_time(committed_app, engine, clock):
    """V is confirmed for A and, at the same moment, signs up for B while a liaison moves A onto B's time.
    V's sign-up commits first; the move is then refused, naming V and B."""
    admin = client_as(committed_app, "admin")
    _, (v_name, v_id) = _two_volunteers(engine)
    start = clock() + timedelta(days=40)
    a = _shift_in_first_zone(admin, engine, capacity=3, starts_at=start)
    b = _shift_in_first_zone(admin, engine, capacity=3, starts_at=start + timedelta(hours=5))
    try:
        assert client_as(committed_app, v_name).post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "confirmed"
        move = {"starts_at": b["starts_at"], "ends_at": b["ends_at"]}
        answer = while_uncommitted(engine, lambda own: shift_service.sign_up(own, b["id"], v_id, now=clock()),
                                    lambda: admin.patch(f"/api/v1/shifts/{a['id']}", json=move))
        problem = assert_problem(answer, 409)
        assert problem["clashes"] == [{"volunteer_id": v_id, "overlapping_shift_id": b["id"]}]
        assert _confirmed_for(engine, v_id, a["id"], b["id"]) == sorted([a["id"], b["id"]])
        assert admin.get(f"/api/v1/shifts/{a['id']}").get_json()["starts_at"] == a["starts_at"]
    finally:
        delete_shifts(engine, a["id"], b["id"])


def test_a_cancellation_waits_for_a_check_in_in_flight(committed_app, engine, clock):
    """V checks in 20 minutes before the start while an admin cancels the shift. The check-in in flight holds V's
    row (and the shift's key) and commits first; the cancellation is then refused (the shift has begun), and V is
    on duty for a shift that still runs."""
    from gridsvc.resources.shifts import check_request
    from gridsvc.schemas.common import geopoint
    from gridsvc.services import checks

    admin = client_as(committed_app, "admin")
    _, (v_name, v_id) = _two_volunteers(engine)
    shift = _shift_in_first_zone(admin, engine, capacity=3, starts_at=clock() + timedelta(minutes=20))
    try:
        with duty_restored(engine, v_id):
            v = client_as(committed_app, v_name)
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            with engine.connect() as conn:
                user_id = conn.execute(select(Volunteer.user_id).where(Volunteer.id == v_id)).scalar()
            here = zone_center(admin, shift["zone_id"])
            request = check_request(shift["id"], "check_in", {"point": geopoint(*here, "wgs84"), "accuracy_m": 10}, None)

            def check_in(own):
                outcome = checks.check(own, user_id, request, now=clock(), policy=checks.CheckPolicy.of_app(committed_app))
                assert outcome.status == 201, outcome.body_json

            answer = while_uncommitted(engine, check_in, lambda: admin.delete(f"/api/v1/shifts/{shift['id']}"))
            assert assert_problem(answer, 409)["reason"] == "started"
            assert admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["status"] == "scheduled"
            with engine.connect() as conn:
                assert conn.execute(select(Volunteer.on_duty_shift_id).where(Volunteer.id == v_id)).scalar() == shift["id"]
    finally:
        delete_shifts(engine, shift["id"])


def test_a_check_in_waits_for_a_reschedule_in_flight(committed_app, engine, clock):
    """A liaison moves a shift three hours later while V checks in 20 minutes before its old start. The check-in
    waits for the move and is judged against the new times: too early, refused (and recorded, flagged)."""
    admin = client_as(committed_app, "admin")
    _, (v_name, v_id) = _two_volunteers(engine)
    start = clock() + timedelta(minutes=20)
    shift = _shift_in_first_zone(admin, engine, capacity=3, starts_at=start)
    v = client_as(committed_app, v_name)
    try:
        with duty_restored(engine, v_id):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            here = zone_center(admin, shift["zone_id"])
            later = {"starts_at": start + timedelta(hours=3), "ends_at": datetime.fromisoformat(shift["ends_at"]) + timedelta(hours=3)}
            answer = while_uncommitted(engine, lambda own: shift_service.update_shift(own, shift["id"], dict(later), now=clock()),
                                       lambda: v.post(f"/api/v1/shifts/{shift['id']}/check-in",
                                                      json={"lon": here[0], "lat": here[1]}, headers={"Idempotency-Key": "race-1"}))
            assert assert_problem(answer, 422)["reason"] == "outside_window"
            with engine.connect() as conn:
                assert conn.execute(select(Volunteer.on_duty_shift_id).where(Volunteer.id == v_id)).scalar() is None
    finally:
        delete_shifts(engine, shift["id"])


def test_a_check_in_sent_during_a_cancellation_finds_the_shift_cancelled(committed_app, engine, clock):
    """An admin cancels a shift (not yet committed) while V checks in 20 minutes before its start: the check-in
    waits and is refused, rather than putting V on duty for a cancelled shift."""
    admin = client_as(committed_app, "admin")
    _, (v_name, v_id) = _two_volunteers(engine)
    shift = _shift_in_first_zone(admin, engine, capacity=3, starts_at=clock() + timedelta(minutes=20))
    v = client_as(committed_app, v_name)
    try:
        with duty_restored(engine, v_id):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            here = zone_center(admin, shift["zone_id"])
            answer = while_uncommitted(engine, lambda own: shift_service.cancel_shift(own, shift["id"], now=clock()),
                                       lambda: v.post(f"/api/v1/shifts/{shift['id']}/check-in",
                                                      json={"lon": here[0], "lat": here[1]}, headers={"Idempotency-Key": "race-2"}))
            assert assert_problem(answer, 409)["detail"] == f"Shift {shift['id']} is cancelled."
            with engine.connect() as conn:
                assert conn.execute(select(Volunteer.on_duty_shift_id).where(Volunteer.id == v_id)).scalar() is None
    finally:
        delete_shifts(engine, shift["id"])


def _two_volunteers(engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(User.username, Volunteer.id).join(Volunteer, Volunteer.user_id == User.id)
                                                   .order_by(User.username).limit(2))]


def _shift_in_first_zone(admin, engine, **kwargs) -> dict:
    with engine.connect() as conn:
        return make_shift(admin, zone_id=conn.execute(select(Zone.id).order_by(Zone.id).limit(1)).scalar(), **kwargs)


def _confirmed_for(engine, volunteer: int, *shift_ids: int) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(Signup.shift_id).where(Signup.volunteer_id == volunteer, Signup.status == "confirmed",
                                                                 Signup.shift_id.in_(shift_ids))).scalars())


def test_fifty_volunteers_racing_for_ten_places(committed_app, engine, clock):
    """Real concurrent connections: exactly 10 confirmed, 40 waitlisted in arrival order."""
    admin = client_as(committed_app, "admin")
    with engine.connect() as conn:
        zone_id = conn.execute(select(Zone.id).order_by(Zone.id).limit(1)).scalar()
        usernames = list(conn.execute(select(User.username).join(Volunteer, Volunteer.user_id == User.id)
                                      .order_by(User.username).limit(50)).scalars())
    shift = make_shift(admin, zone_id=zone_id, capacity=10, starts_at=clock() + timedelta(days=30))
    clients = [client_as(committed_app, name) for name in usernames]
    results: list[dict] = []
    barrier = threading.Barrier(len(clients))

    def sign_up(client):
        barrier.wait()
        results.append(client.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json())

    try:
        threads = [threading.Thread(target=sign_up, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [r["status"] for r in results]
        assert statuses.count("confirmed") == 10 and statuses.count("waitlisted") == 40
        assert sorted(r["waitlist_position"] for r in results if r["status"] == "waitlisted") == list(range(1, 41))
        roster = admin.get(f"/api/v1/shifts/{shift['id']}/signups").get_json()["items"]
        assert [s["waitlist_position"] for s in roster if s["status"] == "waitlisted"] == list(range(1, 41))
    finally:
        with engine.begin() as conn:
            conn.execute(Shift.__table__.delete().where(Shift.id == shift["id"]))


# ------------------------------------------------------------------ found in review (each failed before its fix)


def _series_body(zone_id: int, **overrides) -> dict:
    body = {"title": "北门早高峰", "activity": "traffic_guidance", "zone_id": zone_id, "capacity": 2,
            "weekdays": [1, 2, 3, 4, 5], "start_time": "07:30", "end_time": "09:00",
            "from_date": "2031-03-03", "until_date": "2031-03-30"}
    return body | overrides


@pytest.mark.parametrize("start_time, end_time", [("07:30+08:00", "09:00"), ("07:30:00Z", "09:00:00Z")])
def test_series_times_are_wall_clock_times_without_an_offset(admin, session, start_time, end_time):
    """One offset made the two times incomparable (a 500); offsets on both were dropped, so 07:30Z (15:30 in
    Shanghai) made shifts at 07:30. An offset is refused and nothing is created."""
    before = count(session, Shift)
    answer = admin.post("/api/v1/shifts/series", json=_series_body(zone_of(session, "G06").id, start_time=start_time,
                                                                   end_time=end_time))
    problem = assert_problem(answer, 422)
    assert "start_time" in problem["errors"]
    assert count(session, Shift) == before


def test_has_space_never_lists_a_cancelled_shift(admin, login, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=150), capacity=3,
                       activity="review_has_space")
    assert admin.delete(f"/api/v1/shifts/{shift['id']}").status_code == 200
    volunteer = login("volunteer-001")
    query = "/api/v1/shifts?activity=review_has_space&include_cancelled=true&has_space="
    assert volunteer.get(query + "true").get_json()["total"] == 0
    assert [s["id"] for s in volunteer.get(query + "false").get_json()["items"]] == [shift["id"]]


def test_a_confirmed_place_is_the_shifts_record_from_its_start(login, admin, session, clock):
    """volunteer-001 calls off 10 minutes into the shift, or the liaison removes them as a no-show: either
    freed a place that went to the first in line for a shift already running, unawares, and a volunteer who was
    there with no signal lost the stint their phone uploaded later ("not signed up"). From the start a
    confirmed place stays (409, reason started: a no-show is a sign-up without a check-in); leaving the
    waitlist stays open, and the liaison who wants the next in line raises the capacity."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=1, starts_at=clock() + timedelta(hours=3))
    url = f"/api/v1/shifts/{shift['id']}"
    first, second, third = login("volunteer-001"), login("volunteer-002"), login("volunteer-003")
    assert first.post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
    assert second.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    assert third.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    clock.current = datetime.fromisoformat(shift["starts_at"]) + timedelta(minutes=10)
    for caller in (first, login("liaison-g01")):
        refused = assert_problem(caller.delete(f"{url}/signups/{volunteer_id(session, 'volunteer-001')}"), 409)
        assert refused["reason"] == "started", refused
    assert third.delete(f"{url}/signups/{volunteer_id(session, 'volunteer-003')}").status_code == 200
    roster = login("liaison-g01").get(f"{url}/signups").get_json()["items"]
    assert [(s["volunteer_id"], s["status"], s["waitlist_position"]) for s in roster] == [
        (volunteer_id(session, "volunteer-001"), "confirmed", None),
        (volunteer_id(session, "volunteer-002"), "waitlisted", 1)]
    assert login("liaison-g01").patch(url, json={"capacity": 2}).get_json()["confirmed"] == 2


def test_promotion_from_the_waitlist_skips_a_volunteer_without_a_newly_required_skill(admin, login, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=160), capacity=1)
    url = f"/api/v1/shifts/{shift['id']}"
    first, second, third = login("volunteer-001"), login("volunteer-002"), login("volunteer-003")
    assert first.post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
    assert second.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    # the liaison now asks for a translator: volunteer-002 could not sign up any more ...
    assert admin.patch(url, json={"required_skills": ["translation"]}).status_code == 200
    assert assert_problem(third.post(f"{url}/signups", json={}), 409)["reason"] == "missing_skill"
    # ... and is not confirmed by the waitlist either when volunteer-001 withdraws
    cancelled = first.delete(f"{url}/signups/{volunteer_id(session, 'volunteer-001')}").get_json()
    assert cancelled["promoted"] == []
    assert admin.get(url).get_json()["confirmed"] == 0
    # raising the capacity promotes nobody without the skill either
    assert admin.patch(url, json={"capacity": 3}).get_json()["confirmed"] == 0


def _waiting_behind_an_overlap(admin, login, session, clock):
    """V waits for A's one place while confirmed for B at the same time; X leaves A, and V is skipped."""
    start = clock() + timedelta(days=180)
    g01 = zone_of(session, "G01").id
    a, b = (make_shift(admin, zone_id=g01, starts_at=start, capacity=1) for _ in range(2))
    x, v = login("volunteer-001"), login("volunteer-002")
    assert x.post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert v.post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()["status"] == "waitlisted"
    assert v.post(f"/api/v1/shifts/{b['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert x.delete(f"/api/v1/shifts/{a['id']}/signups/{volunteer_id(session, 'volunteer-001')}").get_json()["promoted"] == []
    return a, b, v, volunteer_id(session, "volunteer-002")


def _status_on(admin, shift_id: int, vid: int) -> str:
    return {s["volunteer_id"]: s["status"] for s in admin.get(f"/api/v1/shifts/{shift_id}/signups").get_json()["items"]}[vid]


@pytest.mark.parametrize("freed_by", ["withdrawing", "b_cancelled", "b_moved"])
def test_a_volunteer_freed_from_an_overlap_gets_the_place_they_waited_for(admin, login, session, clock, freed_by):
    """Once V is free at A's time (V withdraws from B, B is cancelled, or B moves), A's free place is V's: first in
    line, before any newcomer."""
    a, b, v, vid = _waiting_behind_an_overlap(admin, login, session, clock)
    if freed_by == "withdrawing":
        assert v.delete(f"/api/v1/shifts/{b['id']}/signups/{vid}").status_code == 200
    elif freed_by == "b_cancelled":
        assert admin.delete(f"/api/v1/shifts/{b['id']}").status_code == 200
    else:
        later = datetime.fromisoformat(b["starts_at"]) + timedelta(hours=5)
        moved = admin.patch(f"/api/v1/shifts/{b['id']}", json={"starts_at": later.isoformat(),
                                                               "ends_at": (later + timedelta(hours=2)).isoformat()})
        assert moved.status_code == 200, moved.get_json()
    assert _status_on(admin, a["id"], vid) == "confirmed"
    newcomer = login("volunteer-003").post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()
    assert newcomer["status"] == "waitlisted" and newcomer["waitlist_position"] == 1


def test_a_newcomer_does_not_take_a_place_someone_waits_for(admin, login, session, clock):
    """A place left free for a skipped volunteer goes to them when they can take it, at the next sign-up."""
    a, b, v, vid = _waiting_behind_an_overlap(admin, login, session, clock)
    # V's B sign-up withdrawn behind the service's back: nothing ran the waitlist
    session.execute(Signup.__table__.update().where(Signup.shift_id == b["id"]).values(status="cancelled"))
    session.flush()
    newcomer = login("volunteer-003").post(f"/api/v1/shifts/{a['id']}/signups", json={}).get_json()
    assert newcomer["status"] == "waitlisted"
    assert _status_on(admin, a["id"], vid) == "confirmed"


def test_calendar_text_with_a_bare_carriage_return_or_control_characters_keeps_its_lines(admin, login, session, clock):
    """A title pasted from old text ("北门\\r疏导") put a raw CR into the feed, breaking its lines for a phone."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=170),
                       title="北门\r疏导\x0b, 早班")
    volunteer = login("volunteer-003")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    body = volunteer.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-003')}/shifts.ics").get_data()
    assert body.count(b"\r") == body.count(b"\r\n")  # every CR ends a line
    assert not any(byte < 32 and byte not in (9, 10, 13) for byte in body)
    assert "SUMMARY:北门\\n疏导\\, 早班".encode() in body.replace(b"\r\n ", b"")


def test_find_a_shift_near_me_from_a_phone_that_gives_gcj02(login, admin, session, clock):
    """The volunteer's phone (AMap, Baidu) gives its position in GCJ-02 or BD-09, hundreds of metres from
    WGS-84: near= without a crs found nothing within 100 m of the gate the volunteer stood at."""
    from geo.crs import from_wgs84, geodesic_distance_m

    gate = zone_center(admin, zone_of(session, "G08").id)
    at_gate = make_shift(admin, point=gate, radius_m=50, capacity=3, starts_at=clock() + timedelta(days=5),
                         activity="gate_watch")
    volunteer = login("volunteer-009")
    for crs in ("gcj02", "bd09"):
        seen = from_wgs84(*gate, crs)
        assert geodesic_distance_m(*seen, *gate) > 300
        found = volunteer.get(f"/api/v1/shifts?near={seen[0]},{seen[1]}&crs={crs}&radius_m=100&activity=gate_watch")
        assert [(s["id"], s["distance_m"]) for s in found.get_json()["items"]] == [(at_gate["id"], 0)]
    assert "crs" in assert_problem(volunteer.get(f"/api/v1/shifts?near={gate[0]},{gate[1]}&crs=utm"), 422)["errors"]
