"""Check-ins, offline uploads and service hours: found in review (each test failed before its fix)."""
from __future__ import annotations

from datetime import datetime, timedelta

from geo.crs import from_wgs84, geodesic_distance_m
from gridsvc.models import CheckEvent
from tests.api.test_checkins import _offline, admin, duty, post_check  # noqa: F401  (fixtures)
from tests.api.volunteer_helpers import volunteer_id
from tests.helpers import assert_problem, count


def test_an_offline_upload_without_a_volunteer_profile_is_one_404(admin, login, session, clock):
    """The OpenAPI document promises a 404 for an account with no volunteer profile yet (given the volunteer
    role by an admin, not registered); the upload answered 200 with a 404 per event, which an app reads as
    "uploaded" and drops from its queue."""
    created = admin.post("/api/v1/users", json={"username": "new-volunteer", "password": "gridsvc-demo-12345",
                                                "display_name": "新志愿者", "roles": ["volunteer"]})
    assert created.status_code == 201, created.get_json()
    event = _offline(1, "check_in", clock(), (121.78, 29.87), "first-ever")
    answer = login("new-volunteer").post("/api/v1/me/check-events", json={"events": [event]})
    assert "POST /api/v1/volunteers" in assert_problem(answer, 404)["detail"]
    assert count(session, CheckEvent) == 0


def test_a_bd09_position_at_the_antimeridian_or_a_pole_is_a_wgs84_position(duty, login, session):
    """BD-09's shift applies everywhere: (-180, 10) in BD-09 became longitude -180.0065 and (0, -90) latitude
    -90.006, answered and stored as "the WGS-84 point used". A search near the antimeridian then missed the
    volunteer who stood 600 m away."""
    volunteer = duty["client"]
    refused = post_check(volunteer, duty["shift"]["id"], "check-in", 0, -90, crs="bd09")
    point = assert_problem(refused, 422)["point"]
    assert point["lat"] == -90 and -180 <= point["lon"] <= 180
    stored = volunteer.post("/api/v1/me/location", json={"lon": -180, "lat": 10, "crs": "bd09"}).get_json()["point"]
    assert -180 <= stored["lon"] <= 180
    assert geodesic_distance_m(stored["lon"], stored["lat"], 179.999, 10) < 1000
    found = login("admin").get("/api/v1/volunteers?near=179.999,10&radius_m=2000").get_json()["items"]
    assert [v["id"] for v in found] == [volunteer_id(session, "volunteer-001")]


def test_a_bd09_position_near_the_edge_of_chinas_box_converts_to_where_it_was(login):
    """GCJ-02's shift stops at the edge of China's box (0.8293 N in the south); the iteration bounced across it
    and gave a WGS-84 point whose BD-09 image is 200 m from what the phone said, though one maps there exactly."""
    reported = (80.0, 0.835117)
    point = login("volunteer-001").post("/api/v1/me/location", json={
        "lon": reported[0], "lat": reported[1], "crs": "bd09"}).get_json()["point"]
    assert geodesic_distance_m(*from_wgs84(point["lon"], point["lat"], "bd09"), *reported) < 0.01


def test_a_queued_offline_check_in_does_not_count_a_stint_twice(duty, clock, session):
    """The phone queued a check-in without signal at 07:03; at 07:05 the volunteer checked in online, and out at
    08:00. Uploaded at 08:01, the queued check-in was accepted as a new stint from 07:03: the volunteer was on
    duty again, and its hours (approved at once) counted 07:05-08:00 a second time. It is a stint of its own,
    07:03-07:05, closed where the online one began and left to the liaison (no check-out came for it); the
    volunteer stays off duty, and no minute counts twice."""
    volunteer, shift_id, center = duty["client"], duty["shift"]["id"], duty["center"]
    queued = _offline(shift_id, "check_in", clock() - timedelta(minutes=2), center, "queued-in")
    assert post_check(volunteer, shift_id, "check-in", *center).status_code == 201
    clock.advance(minutes=55)
    assert post_check(volunteer, shift_id, "check-out", *center).get_json()["hours"]["hours"] == 0.92
    clock.advance(minutes=1)
    [result] = volunteer.post("/api/v1/me/check-events", json={"events": [queued]}).get_json()["results"]
    assert (result["status"], result["result"]["on_duty"]) == (201, False)
    clock.advance(minutes=30)
    # a second check-out long after: not the end of the 07:03 stint either (that ended by 07:05); the last stint
    # begun before it was checked out, so it is the second tap it is (migration 0044), recorded nowhere
    assert post_check(volunteer, shift_id, "check-out", *center).get_json()["reason"] == "not_checked_in"
    report = volunteer.get(f"/api/v1/volunteers/{duty['id']}/hours").get_json()
    assert (report["approved"], report["pending"]) == (0.92, 0.03)
    assert sorted((e["hours"], e["flag_reason"]) for e in report["entries"]) == [
        (0.03, "missing_check_out"), (0.92, None)]


def test_a_check_out_after_the_grace_period_is_refused_as_late(duty, clock, session):
    """The volunteer forgot to check out and pressed it 2 h 10 min after the end: the answer was 409 "You have
    no open check-in to shift N" (they had one; it had just been closed as a missing check-out), and the
    attempt was not recorded for the liaison. The rules (README, services/checks.py): a check-out is accepted
    until 2 hours after the end; a refused event is still recorded, flagged, and answered with a 422."""
    volunteer, shift_id, center = duty["client"], duty["shift"]["id"], duty["center"]
    assert post_check(volunteer, shift_id, "check-in", *center).status_code == 201
    clock.current = datetime.fromisoformat(duty["shift"]["ends_at"]) + timedelta(hours=2, minutes=10)
    late = assert_problem(post_check(volunteer, shift_id, "check-out", *center), 422, "check-refused")
    assert late["reason"] == "outside_window" and "A check-out is accepted from" in late["detail"]
    assert session.get(CheckEvent, late["event_id"]).flagged
    [entry] = volunteer.get(f"/api/v1/volunteers/{duty['id']}/hours").get_json()["entries"]
    assert (entry["flag_reason"], entry["status"]) == ("missing_check_out", "pending")


def test_a_reused_key_names_the_header_online_and_the_event_field_offline(duty, clock):
    """An offline event that reused a key was refused naming the Idempotency-Key header, which the upload never
    sent: the app looked for the mistake in the wrong place."""
    volunteer, shift_id, center = duty["client"], duty["shift"]["id"], duty["center"]
    assert post_check(volunteer, shift_id, "check-in", *center, key="used-once").status_code == 201
    online = assert_problem(post_check(volunteer, shift_id, "check-out", *center, key="used-once"), 422)
    assert list(online["errors"]) == ["Idempotency-Key"]
    event = _offline(shift_id, "check_out", clock(), center, "used-once")
    [result] = volunteer.post("/api/v1/me/check-events", json={"events": [event]}).get_json()["results"]
    assert result["status"] == 422 and list(result["result"]["errors"]) == ["idempotency_key"]


def test_an_overnight_stint_in_the_csv_ends_on_its_own_date(login, session):
    """A night patrol 22:00-01:00 was written date 2026-03-02, start 22:00, end 01:00: a spreadsheet joining
    date and end put the end before the start, on the same day."""
    import csv
    import io
    from zoneinfo import ZoneInfo

    from gridsvc.models import ServiceHours
    from gridsvc.services.shifts import create_shift
    from tests.api.volunteer_helpers import zone_of

    shanghai = ZoneInfo("Asia/Shanghai")
    starts, ends = datetime(2026, 3, 2, 22, 0, tzinfo=shanghai), datetime(2026, 3, 3, 1, 0, tzinfo=shanghai)
    shift = create_shift(session, zone_id=zone_of(session, "G01").id, title="夜间巡查", activity="inspection",
                         capacity=2, starts_at=starts, ends_at=ends)
    vid = volunteer_id(session, "volunteer-001")
    check_in = CheckEvent(shift_id=shift.id, volunteer_id=vid, kind="check_in", effective_at=starts,
                          position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87, input_crs="wgs84",
                          inside=True, distance_m=0, accepted=True, status_code=201, response={})
    session.add(check_in)
    session.flush()
    session.add(ServiceHours(volunteer_id=vid, shift_id=shift.id, check_in_id=check_in.id, started_at=starts,
                             ended_at=ends, hours=3, status="approved"))
    session.flush()
    answer = login("volunteer-001").get(f"/api/v1/volunteers/{vid}/hours.csv?from=2026-03-01&to=2026-03-31")
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[1][3:7] == ["2026-03-02", "22:00:00", "2026-03-03 01:00:00", "3.00"]
