"""GPS check-in/out, offline uploads, idempotency and verified service hours."""
from __future__ import annotations

import csv
import io
import json
import re
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from werkzeug.test import Client

from geo.crs import from_wgs84, geodesic_distance_m
from gridsvc.api import SURROGATE_MESSAGE
from gridsvc.models import CheckEvent, ServiceHours, Shift, User, Volunteer, VolunteerPosition, Zone
from tests.api.volunteer_helpers import make_shift, north_of, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, client_as, count


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def duty(admin, login, session, clock):
    """A two-hour shift in G01 that volunteer-001 signed up for; the clock is 5 minutes past its start."""
    center = zone_center(admin, zone_of(session, "G01").id)
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(hours=1), hours=2)
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    clock.advance(hours=1, minutes=5)
    return {"shift": shift, "client": volunteer, "center": center, "id": volunteer_id(session, "volunteer-001")}


def post_check(client, shift_id, kind, lon, lat, crs="wgs84", accuracy=10, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/shifts/{shift_id}/{kind}", json={"lon": lon, "lat": lat, "crs": crs, "accuracy_m": accuracy},
                       headers=headers)


def test_check_in_with_gcj02_inside_the_zone(duty, session):
    lon, lat = from_wgs84(*duty["center"], "gcj02")
    answer = post_check(duty["client"], duty["shift"]["id"], "check-in", lon, lat, crs="gcj02")
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["accepted"] and body["inside"] and body["distance_m"] == 0 and body["on_duty"]
    assert body["input"]["crs"] == "gcj02" and body["point"]["crs"] == "wgs84"
    assert geodesic_distance_m(body["point"]["lon"], body["point"]["lat"], *duty["center"]) < 1.0
    assert session.get(Volunteer, duty["id"]).on_duty_shift_id == duty["shift"]["id"]


def test_raw_gcj02_read_as_wgs84_would_be_hundreds_of_metres_off(duty):
    lon, lat = from_wgs84(*duty["center"], "gcj02")
    assert geodesic_distance_m(lon, lat, *duty["center"]) > 300


def test_outside_the_geofence_is_refused_recorded_and_flagged(admin, login, session, clock):
    gate = zone_center(admin, zone_of(session, "G02").id)
    shift = make_shift(admin, point=gate, radius_m=50, starts_at=clock() + timedelta(minutes=20))
    volunteer = login("volunteer-002")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    far = north_of(gate, 400)  # 350 m outside the 50 m circle
    refused = post_check(volunteer, shift["id"], "check-in", *far, accuracy=20)
    body = assert_problem(refused, 422, "check-refused")
    assert body["reason"] == "outside_geofence" and not body["inside"]
    assert body["distance_m"] == pytest.approx(350, abs=2) and body["allowed_m"] == 20
    assert f"You are {body['distance_m']:.1f} m outside" in body["detail"]
    event = session.get(CheckEvent, body["event_id"])
    assert event.flagged and not event.accepted and event.distance_m == pytest.approx(350, abs=2)
    assert session.scalar(select(Volunteer.on_duty_shift_id).where(Volunteer.id == event.volunteer_id)) is None


def test_a_refusal_just_outside_never_reads_as_within_the_allowance(admin, login, session, clock):
    gate = zone_center(admin, zone_of(session, "G02").id)
    shift = make_shift(admin, point=gate, radius_m=50, starts_at=clock() + timedelta(minutes=20))
    volunteer = login("volunteer-002")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    # 20.3 m outside with 20 m allowed: rounded to whole metres both read "20 m"
    body = assert_problem(post_check(volunteer, shift["id"], "check-in", *north_of(gate, 70.3), accuracy=20), 422)
    assert body["reason"] == "outside_geofence" and 20 < body["distance_m"] < 21
    shown = re.search(r"You are (\d+\.\d) m outside the shift's area \(allowed (\d+\.\d) m", body["detail"])
    assert shown, body["detail"]
    assert float(shown[2]) == 20.0 and float(shown[1]) > float(shown[2])


@pytest.mark.parametrize("outside_m, accuracy, accepted", [(80, 100, True), (80, 50, False), (150, 500, False), (90, 500, True)])
def test_accuracy_widens_the_geofence_up_to_the_cap(admin, login, session, clock, outside_m, accuracy, accepted):
    gate = zone_center(admin, zone_of(session, "G03").id)
    shift = make_shift(admin, point=gate, radius_m=50, starts_at=clock() + timedelta(minutes=10))
    volunteer = login("volunteer-003")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    answer = post_check(volunteer, shift["id"], "check-in", *north_of(gate, 50 + outside_m), accuracy=accuracy)
    assert (answer.status_code == 201) is accepted, answer.get_json()
    assert answer.get_json()["distance_m"] == pytest.approx(outside_m, abs=1.5)


def test_check_in_window_opens_30_minutes_before_start(admin, login, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(hours=2))
    volunteer = login("volunteer-007")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    center = zone_center(admin, zone_of(session, "G01").id)
    early = assert_problem(post_check(volunteer, shift["id"], "check-in", *center), 422)
    assert early["reason"] == "outside_window"
    # the window as the API writes instants (the fields), and on the park's clock in the detail (migration 0039)
    opens = datetime.fromisoformat(shift["starts_at"]).astimezone(timezone.utc) - timedelta(minutes=30)
    ends = datetime.fromisoformat(shift["ends_at"]).astimezone(timezone.utc)
    assert (early["opens_at"], early["closes_at"]) == (opens.isoformat(), ends.isoformat())
    park = ZoneInfo("Asia/Shanghai")
    assert f"accepted from {opens.astimezone(park):%Y-%m-%d %H:%M} to " in early["detail"]
    assert f"Asia/Shanghai time; it was {clock().astimezone(park):%H:%M:%S}." in early["detail"]
    clock.advance(hours=1, minutes=31)
    assert post_check(volunteer, shift["id"], "check-in", *center).status_code == 201


def test_state_rules_are_409(duty, login, admin, session, clock):
    center, shift_id = duty["center"], duty["shift"]["id"]
    other = login("volunteer-011")  # not signed up
    assert assert_problem(post_check(other, shift_id, "check-in", *center), 409)["reason"] == "not_signed_up"
    assert assert_problem(post_check(duty["client"], shift_id, "check-out", *center), 409)["reason"] == "not_checked_in"
    assert post_check(duty["client"], shift_id, "check-in", *center).status_code == 201
    second = assert_problem(post_check(duty["client"], shift_id, "check-in", *center), 409)
    assert second["reason"] == "already_checked_in"
    assert_problem(post_check(duty["client"], 987654, "check-in", *center), 404)
    assert_problem(post_check(login("planner"), shift_id, "check-in", *center), 403)


@pytest.mark.parametrize("body", [{"lon": 200, "lat": 29.8}, {"lon": 121.7, "lat": 29.8, "crs": "mars"},
                                  {"lon": 121.7, "lat": 29.8, "accuracy_m": -5}, {"lat": 29.8}, {"lon": "x", "lat": 1}])
def test_bad_check_in_input_is_422_and_records_nothing(duty, session, body):
    before = count(session, CheckEvent)
    assert_problem(duty["client"].post(f"/api/v1/shifts/{duty['shift']['id']}/check-in", json=body), 422)
    assert count(session, CheckEvent) == before


def test_retry_with_the_same_key_returns_the_first_answer(duty, session):
    center, shift_id = duty["center"], duty["shift"]["id"]
    first = post_check(duty["client"], shift_id, "check-in", *center, key="phone-7f3a-1")
    again = post_check(duty["client"], shift_id, "check-in", *center, key="phone-7f3a-1")
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert session.scalar(select(func.count()).where(CheckEvent.volunteer_id == duty["id"])) == 1
    refused_key = assert_problem(post_check(duty["client"], shift_id, "check-out", *center, key="phone-7f3a-1"), 422)
    assert "Idempotency-Key" in refused_key["errors"]


def test_a_check_in_before_the_start_fixes_the_shift(admin, login, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(hours=1), hours=2)
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    clock.advance(minutes=40)  # 20 minutes before the start: the check-in window is open
    center = zone_center(admin, zone_of(session, "G01").id)
    assert post_check(volunteer, shift["id"], "check-in", *center).get_json()["accepted"]
    later = datetime.fromisoformat(shift["starts_at"]) + timedelta(hours=1)
    problem = assert_problem(admin.patch(f"/api/v1/shifts/{shift['id']}", json={"starts_at": later.isoformat()}), 409)
    assert problem["reason"] == "started"
    assert session.get(Shift, shift["id"]).starts_at == datetime.fromisoformat(shift["starts_at"])
    assert assert_problem(admin.delete(f"/api/v1/shifts/{shift['id']}"), 409)["reason"] == "started"  # nor cancelled


def test_check_out_records_hours_as_the_overlap_with_the_shift(duty, session, clock):
    center, shift_id = duty["center"], duty["shift"]["id"]
    post_check(duty["client"], shift_id, "check-in", *center)  # 5 min after start
    clock.advance(hours=2, minutes=20)  # 20 min after the end
    out = post_check(duty["client"], shift_id, "check-out", *center)
    assert out.status_code == 201, out.get_json()
    hours = out.get_json()["hours"]
    assert hours["hours"] == pytest.approx(1.92, abs=0.01)  # 1 h 55 min: travel after the end does not count
    assert hours["status"] == "approved"  # both ends inside the zone
    assert not out.get_json()["on_duty"]


def test_check_out_answer_and_its_replay_give_the_hours_entry(duty, session, clock):
    center, shift_id = duty["center"], duty["shift"]["id"]
    checked_in_at = clock()
    post_check(duty["client"], shift_id, "check-in", *center)
    clock.advance(hours=3)  # an hour after the end
    out = post_check(duty["client"], shift_id, "check-out", *center, key="out-1")
    hours = out.get_json()["hours"]
    entry = session.get(ServiceHours, hours["id"])
    assert entry.check_out_id == out.get_json()["event_id"] and float(entry.hours) == hours["hours"]
    assert datetime.fromisoformat(hours["started_at"]) == checked_in_at == entry.started_at
    assert datetime.fromisoformat(hours["ended_at"]) == datetime.fromisoformat(duty["shift"]["ends_at"])
    assert out.get_json()["at"] == clock().isoformat()
    again = post_check(duty["client"], shift_id, "check-out", *center, key="out-1")
    assert again.get_json() == out.get_json() and again.headers["Idempotent-Replayed"] == "true"


def test_check_in_is_refused_for_an_account_that_may_not(duty, client, login, session):
    """The account is checked in check-in's own statement: the same answers as everywhere else."""
    from tests.api.test_auth import bearer, sign_in, user_id

    center, shift_id = duty["center"], duty["shift"]["id"]
    url = f"/api/v1/shifts/{shift_id}/check-in"
    tokens = sign_in(client, "volunteer-001").get_json()
    client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    revoked = assert_problem(client.post(url, json={"lon": center[0], "lat": center[1]},
                                         headers=bearer(tokens["access_token"])), 401)
    assert "revoked" in revoked["detail"]
    volunteer = login("volunteer-001")
    login("admin").patch(f"/api/v1/users/{user_id(session, 'volunteer-001')}", json={"disabled": True})
    assert "disabled" in assert_problem(post_check(volunteer, shift_id, "check-in", *center), 401)["detail"]
    # a caller without the role learns that, not what is wrong with the body
    planner = login("planner")
    assert assert_problem(planner.post(url, json={"lon": "x"}), 403)["required_roles"] == ["volunteer"]
    assert_problem(planner.post(url, data="{not json", content_type="application/json"), 403)
    assert count(session, CheckEvent) == 0


def test_an_overdue_check_in_is_closed_by_the_next_check_in(duty, admin, session, clock):
    later = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(hours=5), hours=1)
    assert duty["client"].post(f"/api/v1/shifts/{later['id']}/signups", json={}).get_json()["status"] == "confirmed"
    post_check(duty["client"], duty["shift"]["id"], "check-in", *duty["center"])
    clock.advance(hours=5)  # the first shift ended 3 h ago: never checked out
    answer = post_check(duty["client"], later["id"], "check-in", *duty["center"])
    assert answer.status_code == 201, answer.get_json()
    [closed] = session.scalars(select(ServiceHours).where(ServiceHours.shift_id == duty["shift"]["id"])).all()
    assert closed.flag_reason == "missing_check_out" and closed.status == "pending" and closed.check_out_id is None
    assert float(closed.hours) == pytest.approx(1.92, abs=0.01)
    session.expire_all()
    assert session.get(Volunteer, duty["id"]).on_duty_shift_id == later["id"]


def test_check_out_outside_leaves_hours_pending(duty, clock):
    center, shift_id = duty["center"], duty["shift"]["id"]
    post_check(duty["client"], shift_id, "check-in", *center)
    clock.advance(minutes=45)
    out = post_check(duty["client"], shift_id, "check-out", *north_of(center, 5000))
    assert out.status_code == 201 and not out.get_json()["inside"]
    assert out.get_json()["hours"]["status"] == "pending" and out.get_json()["hours"]["hours"] == 0.75


def test_missing_check_out_closes_at_shift_end_flagged(duty, session, clock):
    post_check(duty["client"], duty["shift"]["id"], "check-in", *duty["center"])
    clock.advance(hours=5)  # past the end and the 2 h grace
    report = duty["client"].get(f"/api/v1/volunteers/{duty['id']}/hours").get_json()
    [entry] = report["entries"]
    assert entry["flagged"] and entry["flag_reason"] == "missing_check_out" and entry["status"] == "pending"
    assert entry["hours"] == pytest.approx(1.92, abs=0.01)
    session.expire_all()
    assert session.get(Volunteer, duty["id"]).on_duty_shift_id is None


def test_liaison_reviews_hours_singly_and_in_bulk(duty, login, session, clock):
    post_check(duty["client"], duty["shift"]["id"], "check-in", *duty["center"])
    clock.advance(minutes=30)
    entry = post_check(duty["client"], duty["shift"]["id"], "check-out", *north_of(duty["center"], 5000)).get_json()["hours"]
    assert_problem(login("liaison-g02").post(f"/api/v1/hours/{entry['id']}/approve", json={}), 403)
    declined = login("liaison-g01").post(f"/api/v1/hours/{entry['id']}/decline", json={"note": "离开了岗位"}).get_json()
    assert declined["status"] == "declined" and declined["review_note"] == "离开了岗位"
    assert_problem(login("liaison-g01").post(f"/api/v1/hours/{entry['id']}/approve", json={}), 409)
    assert session.get(ServiceHours, entry["id"]) is not None  # declined entries stay
    bulk = login("admin").post("/api/v1/hours/review", json={"ids": [entry["id"], 987654], "action": "approve"}).get_json()
    assert [r["status"] for r in bulk["results"]] == [409, 404]


def _offline(shift_id, kind, at, point, key, crs="wgs84"):
    return {"shift_id": shift_id, "kind": kind, "client_time": at.isoformat(), "lon": point[0], "lat": point[1],
            "crs": crs, "accuracy_m": 15, "idempotency_key": key}


def test_offline_upload_judges_each_event_by_its_client_time(duty, session, clock):
    shift = duty["shift"]
    start = clock() - timedelta(minutes=5)
    center = duty["center"]
    clock.advance(hours=2)  # the phone comes back online after the shift
    events = [
        _offline(shift["id"], "check_out", start + timedelta(minutes=90), center, "k-out"),  # sent out of order
        _offline(shift["id"], "check_in", start - timedelta(minutes=10), from_wgs84(*center, "bd09"), "k-in", crs="bd09"),
        _offline(shift["id"], "check_in", clock() - timedelta(hours=30), center, "k-old"),
        _offline(shift["id"], "check_in", clock() + timedelta(minutes=30), center, "k-future"),
    ]
    answer = duty["client"].post("/api/v1/me/check-events", json={"events": events})
    assert answer.status_code == 200, answer.get_json()
    results = answer.get_json()["results"]
    assert [r["idempotency_key"] for r in results] == ["k-out", "k-in", "k-old", "k-future"]
    assert [r["status"] for r in results] == [201, 201, 422, 422]
    assert results[0]["result"]["hours"]["hours"] == 1.5  # from the start (not 10 min before) to 90 min in
    assert results[2]["result"]["reason"] == results[3]["result"]["reason"] == "client_time_out_of_range"
    assert "at most 24 h old and 5 min ahead" in results[2]["result"]["detail"]
    again = duty["client"].post("/api/v1/me/check-events", json={"events": events[:2]}).get_json()["results"]
    assert all(r["replayed"] for r in again)
    assert session.scalar(select(func.count()).where(CheckEvent.volunteer_id == duty["id"])) == 2


def test_offline_upload_over_the_limit_is_refused_whole(duty, session, clock):
    event = _offline(duty["shift"]["id"], "check_in", clock(), duty["center"], "k")
    events = [dict(event, idempotency_key=f"k{i}") for i in range(10_000)]
    before = count(session, CheckEvent)
    body = assert_problem(duty["client"].post("/api/v1/me/check-events", json={"events": events}), 422)
    assert "200" in body["detail"]
    assert count(session, CheckEvent) == before


def test_hours_report_csv_and_calendar(duty, login, clock, session):
    post_check(duty["client"], duty["shift"]["id"], "check-in", *duty["center"])
    clock.advance(hours=1)
    post_check(duty["client"], duty["shift"]["id"], "check-out", *duty["center"])
    report = duty["client"].get(f"/api/v1/volunteers/{duty['id']}/hours").get_json()
    assert report["approved"] == 1.0 and report["pending"] == 0
    assert report["by_activity"] == [{"key": "traffic_guidance", "approved": 1.0, "pending": 0.0, "declined": 0.0}]
    assert len(report["by_month"]) == 1
    raw = duty["client"].get(f"/api/v1/volunteers/{duty['id']}/hours.csv")
    assert raw.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(raw.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["name", "volunteer_id", "activity", "date", "start", "end", "hours", "recording_organisation", "status"]
    assert rows[1][1].startswith("ZJ-NB-") and rows[1][6] == "1.00" and "Lingfeng" in rows[1][7] and rows[1][8] == "approved"
    assert_problem(login("volunteer-002").get(f"/api/v1/volunteers/{duty['id']}/hours"), 403)
    assert login("liaison-g01").get(f"/api/v1/volunteers/{duty['id']}/hours").status_code == 200

    url = duty["client"].get("/api/v1/me/volunteer").get_json()["calendar_url"]
    path = url.split("localhost", 1)[1]
    feed = login("volunteer-002").get(path)  # the key works without the owner's token
    text = feed.get_data(as_text=True)
    assert feed.mimetype == "text/calendar" and text.startswith("BEGIN:VCALENDAR\r\n")
    assert "BEGIN:VTIMEZONE" in text and "TZID:Asia/Shanghai" in text
    shift = session.get(Shift, duty["shift"]["id"])
    local_start = shift.starts_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%dT%H%M%S")
    assert f"DTSTART;TZID=Asia/Shanghai:{local_start}" in text and "STATUS:CONFIRMED" in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert_problem(login("volunteer-002").get(path[:-4] + "0000"), 401)
    assert_problem(login("volunteer-002").get(f"/api/v1/volunteers/{duty['id']}/shifts.ics"), 403)


def test_five_copies_of_one_check_in_at_once_record_one(committed_app, engine, clock):
    admin = client_as(committed_app, "admin")
    with engine.connect() as conn:
        zone_id = conn.execute(select(Zone.id).order_by(Zone.id).limit(1)).scalar()
    center = zone_center(admin, zone_id)
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(minutes=10), capacity=2)
    volunteer = client_as(committed_app, "volunteer-050")
    try:
        signup = volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
        assert signup.status_code == 201, signup.get_json()
        answers: list = []
        barrier = threading.Barrier(5)

        def send():
            client = client_as(committed_app, "volunteer-050")
            barrier.wait()
            answers.append(post_check(client, shift["id"], "check-in", *center, key="same-key-5x"))

        threads = [threading.Thread(target=send) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a.status_code for a in answers] == [201] * 5
        assert len({a.get_json()["event_id"] for a in answers}) == 1
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).where(CheckEvent.shift_id == shift["id"])).scalar() == 1
    finally:
        with engine.begin() as conn:  # leave the shared database as it was
            vid = conn.execute(select(Volunteer.id).join(User, User.id == Volunteer.user_id)
                               .where(User.username == "volunteer-050")).scalar()
            conn.execute(Volunteer.__table__.update().where(Volunteer.id == vid).values(
                on_duty_shift_id=None, last_position=None, last_position_at=None, last_accuracy_m=None))
            conn.execute(VolunteerPosition.__table__.delete().where(VolunteerPosition.volunteer_id == vid))
            conn.execute(Shift.__table__.delete().where(Shift.id == shift["id"]))


# ---------------------------------------------------------------- the fast path (gridsvc/fastpath.py)


@pytest.fixture()
def reached_flask(app):
    """The paths of the requests the fast path handed on to Flask."""
    fast_path = app.wsgi_app
    flask_wsgi_app, seen = fast_path.flask_wsgi_app, []

    def spy(environ, start_response):
        seen.append(environ["PATH_INFO"])
        return flask_wsgi_app(environ, start_response)

    fast_path.flask_wsgi_app = spy
    yield seen
    fast_path.flask_wsgi_app = flask_wsgi_app


def test_the_fast_path_answers_check_in_and_out_as_the_view_does(duty, app, reached_flask, session, clock):
    center, shift_id, volunteer = duty["center"], duty["shift"]["id"], duty["client"]
    gcj = from_wgs84(*center, "gcj02")
    checked_in = post_check(volunteer, shift_id, "check-in", *gcj, crs="gcj02", key="fast-in")
    assert checked_in.status_code == 201 and checked_in.get_json()["inside"]
    clock.advance(minutes=50)
    checked_out = post_check(volunteer, shift_id, "check-out", *north_of(center, 3000), key="fast-out")
    assert checked_out.status_code == 201 and checked_out.get_json()["hours"]["status"] == "pending"  # outside
    assert reached_flask == []  # both answered in front of Flask
    # Flask's own view replays the same events: the same status, headers and bytes
    flask_only = Client(app.wsgi_app.flask_wsgi_app)
    for kind, point, crs, key, first in (("check-in", gcj, "gcj02", "fast-in", checked_in),
                                         ("check-out", north_of(center, 3000), "wgs84", "fast-out", checked_out)):
        url = f"/api/v1/shifts/{shift_id}/{kind}"
        headers = {"Idempotency-Key": key, "Authorization": volunteer.environ_base["HTTP_AUTHORIZATION"]}
        body = {"lon": point[0], "lat": point[1], "crs": crs, "accuracy_m": 10}
        replayed_fast = volunteer.post(url, json=body, headers={"Idempotency-Key": key})
        replayed_by_view = flask_only.post(url, json=body, headers=headers)
        assert replayed_fast.status == replayed_by_view.status == "201 CREATED"
        assert list(replayed_fast.headers) == list(replayed_by_view.headers)
        assert replayed_fast.headers["Idempotent-Replayed"] == "true"
        assert replayed_fast.get_data() == replayed_by_view.get_data() == first.get_data()
    assert reached_flask == [f"/api/v1/shifts/{shift_id}/check-in", f"/api/v1/shifts/{shift_id}/check-out"]
    assert session.scalar(select(func.count()).where(CheckEvent.volunteer_id == duty["id"])) == 2


def test_a_refused_check_in_is_recorded_and_answered_by_the_fast_path(admin, login, session, clock, reached_flask):
    gate = zone_center(admin, zone_of(session, "G02").id)
    shift = make_shift(admin, point=gate, radius_m=50, starts_at=clock() + timedelta(minutes=20))
    volunteer = login("volunteer-002")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    reached_flask.clear()
    refused = assert_problem(post_check(volunteer, shift["id"], "check-in", *north_of(gate, 250), accuracy=20), 422)
    assert refused["reason"] == "outside_geofence" and refused["distance_m"] == pytest.approx(200, abs=2)
    assert reached_flask == [] and session.get(CheckEvent, refused["event_id"]).flagged


def test_what_the_fast_path_cannot_answer_is_left_to_the_view(duty, client, login, session, reached_flask):
    center, shift_id, volunteer = duty["center"], duty["shift"]["id"], duty["client"]
    url = f"/api/v1/shifts/{shift_id}/check-in"
    good = {"lon": center[0], "lat": center[1]}
    assert_problem(client.post(url, json=good), 401)  # no token
    assert_problem(volunteer.post(url, data="{not json", content_type="application/json"), 400, "malformed-json")
    assert assert_problem(volunteer.post(url, json={**good, "altitude": 3}), 422)["errors"] == {
        "altitude": ["Unknown field."]}
    assert "lat" in assert_problem(volunteer.post(url, json={**good, "lat": 91}), 422)["errors"]
    assert_problem(volunteer.post(url, data="lon=1&lat=2", content_type="application/x-www-form-urlencoded"), 415)
    assert_problem(volunteer.post(url, json=good, headers={"Idempotency-Key": "k" * 101}), 422)
    assert assert_problem(login("volunteer-011").post(url, json=good), 409)["reason"] == "not_signed_up"
    assert_problem(volunteer.post("/api/v1/shifts/987654/check-in", json=good), 404)
    # a query string (the view takes none, but a NUL in it is the app's 422)
    assert "source" in assert_problem(volunteer.post(url + "?source=%00", json=good), 422)["errors"]
    # text that is not Unicode: a key or a value with an unpaired surrogate (half an emoji)
    raw = '{"lon": %r, "lat": %r, "crs": "gcj02\\ud83d"}' % tuple(center)
    problem = assert_problem(volunteer.post(url, data=raw, content_type="application/json"), 422)
    assert problem["errors"] == {"crs": [SURROGATE_MESSAGE]}
    raw = '{"lon": %r, "lat": %r, "note\\ud83d": 1}' % tuple(center)
    assert assert_problem(volunteer.post(url, data=raw, content_type="application/json"), 422)["errors"] == {
        "note\\ud83d": [SURROGATE_MESSAGE]}
    assert len(reached_flask) == 11 and count(session, CheckEvent) == 0
    # the next good one is the fast path's again
    assert volunteer.post(url, json=good).status_code == 201 and len(reached_flask) == 11


# the plain bodies a phone sends: the fast path loads them itself
PLAIN_BODIES = [
    {"lon": 121.77, "lat": 29.87}, {"lon": 121, "lat": 29, "crs": "gcj02", "accuracy_m": 0},
    {"lon": 121.77, "lat": 29.87, "crs": "bd09", "accuracy_m": None}, {"lon": 180, "lat": -90, "accuracy_m": 100_000},
    {"lon": -180.0, "lat": 90.0, "crs": "wgs84", "accuracy_m": 12.5},
]
# every other body is the schema's, whether it takes it or refuses it
SCHEMA_BODIES = [
    {"lon": "121.77", "lat": "29.87", "crs": "bd09", "accuracy_m": None},
    {"lon": 121.77, "lat": 29.87, "client_time": "2026-11-21T08:00:00"},  # naive: Asia/Shanghai
    {"lon": 121.77, "lat": 29.87, "client_time": "2026-11-21T08:00:00Z", "accuracy_m": 100_000},
    {"lon": 121.77, "lat": 29.87, "client_time": None},
    {"lon": 180.5, "lat": 29.87}, {"lon": 121.77, "lat": -90.01}, {"lon": True, "lat": 29.87},
    {"lon": 121.77, "lat": 29.87, "crs": None}, {"lon": 121.77, "lat": 29.87, "crs": "GCJ02"},
    {"lon": 121.77, "lat": 29.87, "crs": ["gcj02"]}, {"lon": 121.77, "lat": 29.87, "accuracy_m": -1},
    {"lon": 121.77, "lat": 29.87, "accuracy_m": 100_000.5}, {"lon": 121.77, "lat": 29.87, "accuracy_m": False},
    {"lon": 121.77, "lat": 29.87, "accuracy_m": "far"}, {"lon": 10 ** 400, "lat": 29.87},
    {"lon": 121.77, "lat": 29.87, "client_time": "yesterday"}, {"lon": 121.77, "lat": 29.87, "client_time": 5},
    {"lon": 121.77}, {"lon": 121.77, "lat": 29.87, "speed": 3}, {"lon": None, "lat": 29.87},
    [121.77, 29.87], "121.77,29.87", None,
]


@pytest.mark.parametrize("body", PLAIN_BODIES + SCHEMA_BODIES)
def test_the_fast_path_loads_a_plain_body_as_the_schema_does_and_leaves_it_any_other(app, body):
    """The fast path takes a strict subset of what the schema takes, and reads
    it exactly as the schema does; anything else (refused or not) it leaves
    to the schema, which also words the errors."""
    from marshmallow import ValidationError

    from gridsvc.schemas.shifts import CheckEventIn

    try:
        expected = CheckEventIn().load(body)
    except ValidationError:
        expected = None
    loaded = app.wsgi_app.load(body)
    if body in PLAIN_BODIES:
        assert loaded == expected is not None
    else:
        assert loaded is None


def test_the_liaison_sees_the_shifts_check_ins_refused_ones_included(duty, login, session, clock):
    shift_id = duty["shift"]["id"]
    far = north_of(duty["center"], 5000)
    refused = post_check(duty["client"], shift_id, "check-in", *from_wgs84(*far, "gcj02"), crs="gcj02", key="far")
    assert refused.status_code == 422
    clock.advance(minutes=2)
    post_check(duty["client"], shift_id, "check-in", *duty["center"], key="near")
    liaison = login("liaison-g01")
    events = liaison.get(f"/api/v1/shifts/{shift_id}/check-events").get_json()
    assert events["total"] == 2
    first, second = events["items"]
    assert (first["kind"], first["accepted"], first["reason"], first["flagged"]) == ("check_in", False, "outside_geofence", True)
    assert first["volunteer_id"] == duty["id"] and first["volunteer_name"]
    assert first["distance_m"] == pytest.approx(refused.get_json()["distance_m"])
    assert first["input"]["crs"] == "gcj02" and geodesic_distance_m(first["point"]["lon"], first["point"]["lat"], *far) < 1
    assert (second["accepted"], second["inside"], second["distance_m"]) == (True, True, 0)
    assert datetime.fromisoformat(second["at"]) == clock()
    flagged = liaison.get(f"/api/v1/shifts/{shift_id}/check-events?flagged=true").get_json()
    assert [e["id"] for e in flagged["items"]] == [first["id"]]
    assert_problem(login("liaison-g02").get(f"/api/v1/shifts/{shift_id}/check-events"), 403)
    assert_problem(duty["client"].get(f"/api/v1/shifts/{shift_id}/check-events"), 403)
    assert_problem(liaison.get("/api/v1/shifts/987654/check-events"), 404)


# ---------------------------------------------------------------- found in review (each failed before its fix)


def test_an_offline_shift_uploaded_hours_after_it_ended_keeps_its_check_out(duty, session, clock):
    """No signal the whole shift: the phone records the check-in and check-out in time and uploads both 3 hours
    after the end (offline events count for 24 h). The upload itself closed the check-in as a missing check-out
    before judging the check-out, which was refused (409): the hours stayed pending, flagged."""
    shift, center = duty["shift"], duty["center"]
    start, end = datetime.fromisoformat(shift["starts_at"]), datetime.fromisoformat(shift["ends_at"])
    clock.current = end + timedelta(hours=3)
    events = [_offline(shift["id"], "check_in", start + timedelta(minutes=2), center, "off-in"),
              _offline(shift["id"], "check_out", end - timedelta(minutes=2), center, "off-out")]
    results = duty["client"].post("/api/v1/me/check-events", json={"events": events}).get_json()["results"]
    assert [r["status"] for r in results] == [201, 201]
    hours = results[1]["result"]["hours"]
    assert hours["status"] == "approved" and hours["hours"] == pytest.approx(1.93)  # 07:02 to 08:58 of a 2 h shift
    [entry] = session.scalars(select(ServiceHours).where(ServiceHours.shift_id == shift["id"])).all()
    assert (entry.flagged, entry.flag_reason, entry.check_out_id) == (False, None, results[1]["result"]["event_id"])


def test_an_offline_check_out_completes_the_hours_closed_while_it_waited(duty, session, clock, login):
    """Checked in online; the check-out is recorded offline a minute before the end and uploaded 3 h later.
    Meanwhile a read of the hours closed the check-in at the shift's end as a missing check-out: the late
    check-out completes those hours (its time, the flag cleared, approved: both ends inside)."""
    shift, center = duty["shift"], duty["center"]
    assert post_check(duty["client"], shift["id"], "check-in", *center).status_code == 201
    end = datetime.fromisoformat(shift["ends_at"])
    clock.current = end + timedelta(hours=3)
    [closed] = duty["client"].get(f"/api/v1/volunteers/{duty['id']}/hours").get_json()["entries"]
    assert closed["flag_reason"] == "missing_check_out" and closed["status"] == "pending"
    event = _offline(shift["id"], "check_out", end - timedelta(minutes=1), center, "late-upload")
    [result] = duty["client"].post("/api/v1/me/check-events", json={"events": [event]}).get_json()["results"]
    assert result["status"] == 201
    assert result["result"]["hours"]["id"] == closed["id"] and result["result"]["hours"]["status"] == "approved"
    session.expire_all()
    entry = session.get(ServiceHours, closed["id"])
    assert entry.status == "approved" and entry.flag_reason is None and entry.check_out_id == result["result"]["event_id"]
    assert entry.ended_at == end - timedelta(minutes=1)
    # hours a liaison has decided stay as decided: a second late check-out says so
    entry.status = "declined"
    entry.check_out_id, entry.flag_reason = None, "missing_check_out"
    session.flush()
    again = _offline(shift["id"], "check_out", end - timedelta(seconds=30), center, "later-upload")
    [result] = duty["client"].post("/api/v1/me/check-events", json={"events": [again]}).get_json()["results"]
    assert (result["status"], result["result"]["reason"]) == (409, "hours_reviewed"), result


def test_a_retried_offline_event_gets_its_first_answer_after_24_hours(duty, clock, session):
    """Accepted at 23 h 49 min old, the answer lost on the way; the retry 15 minutes later is a replay, not a
    refusal for its age (the app would believe the check-in refused)."""
    event = _offline(duty["shift"]["id"], "check_in", clock() - timedelta(minutes=1), duty["center"], "retry-me")
    clock.advance(hours=23, minutes=49)
    [first] = duty["client"].post("/api/v1/me/check-events", json={"events": [event]}).get_json()["results"]
    assert first["status"] == 201
    clock.advance(minutes=15)
    [again] = duty["client"].post("/api/v1/me/check-events", json={"events": [event]}).get_json()["results"]
    assert again["status"] == 201 and again["replayed"] is True and again["result"] == first["result"]
    # a new event as old is still refused
    old = _offline(duty["shift"]["id"], "check_out", event_time := clock() - timedelta(hours=25), duty["center"], "new")
    [refused] = duty["client"].post("/api/v1/me/check-events", json={"events": [old]}).get_json()["results"]
    assert refused["status"] == 422 and refused["result"]["reason"] == "client_time_out_of_range" and event_time
    assert count(session, CheckEvent) == 1


def test_an_offline_upload_with_an_unpaired_surrogate_is_refused_whole(duty, app, session, clock):
    """One good event and one whose key ends in half an emoji: the good one was committed, then the answer
    could not be encoded (a 500, again on every retry)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production
    good = _offline(duty["shift"]["id"], "check_in", clock() - timedelta(minutes=1), duty["center"], "ok-1")
    bad = _offline(duty["shift"]["id"], "check_out", clock(), duty["center"], "out-\ud83d")
    answer = duty["client"].post("/api/v1/me/check-events", data=json.dumps({"events": [good, bad]}),
                                 content_type="application/json")
    assert assert_problem(answer, 422)["errors"] == {"events.1.idempotency_key": [SURROGATE_MESSAGE]}
    assert count(session, CheckEvent) == 0


def test_a_check_in_left_open_past_the_shift_is_not_shown_as_duty(duty, login, clock):
    """The profile said on_duty false but still gave the shift's id once the shift had ended."""
    assert post_check(duty["client"], duty["shift"]["id"], "check-in", *duty["center"]).status_code == 201
    profile = login("admin").get(f"/api/v1/volunteers/{duty['id']}").get_json()
    assert (profile["on_duty"], profile["on_duty_shift_id"]) == (True, duty["shift"]["id"])
    clock.current = datetime.fromisoformat(duty["shift"]["ends_at"]) + timedelta(minutes=1)  # within the grace period
    profile = login("admin").get(f"/api/v1/volunteers/{duty['id']}").get_json()
    assert (profile["on_duty"], profile["on_duty_shift_id"]) == (False, None)


def test_an_offline_event_from_a_fast_clock_counts_now(duty, session, clock):
    """A phone whose clock runs 3 minutes fast uploads a check-in (within the 5 minutes' skew allowed). Counted
    at its client time, in our future, it made the online check-out sent at once 'outside the window' and
    pinned the volunteer's last known position ahead of every fix until then."""
    shift, center = duty["shift"], duty["center"]
    ahead = _offline(shift["id"], "check_in", clock() + timedelta(minutes=3), center, "fast-clock")
    [result] = duty["client"].post("/api/v1/me/check-events", json={"events": [ahead]}).get_json()["results"]
    assert result["status"] == 201 and datetime.fromisoformat(result["result"]["at"]) == clock()
    out = post_check(duty["client"], shift["id"], "check-out", *center)
    assert out.status_code == 201, out.get_json()
    assert session.get(Volunteer, duty["id"]).last_position_at == clock()
