"""Found by an app developer's review of the volunteer flows (each failed before its fix): an offline upload's
results all have one shape, the calendar feed takes its parameters as every operation does, and a stint left
open past its shift's end stays in "my shifts" with the time its check-out is taken until."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.volunteer_helpers import make_shift, offline, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem


def test_every_result_of_an_upload_says_replayed_and_each_refusal_gives_its_reason(login, session, clock):
    admin, volunteer = login("admin"), login("volunteer-001")
    g01 = zone_of(session, "G01").id
    point = zone_center(admin, g01)
    mine = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=2)
    not_mine = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=2)
    volunteer.post(f"/api/v1/shifts/{mine['id']}/signups", json={})
    clock.advance(minutes=20)
    at = clock() - timedelta(minutes=1)
    events = [offline("check_in", mine["id"], at, point, "r-ok"),
              offline("check_in", 987654, at, point, "r-no-shift"),
              offline("check_in", not_mine["id"], at, point, "r-not-signed-up"),
              offline("check_out", mine["id"], clock() - timedelta(days=2), point, "r-too-old")]
    answer = volunteer.post("/api/v1/me/check-events", json={"events": events})
    assert answer.status_code == 200, answer.get_json()
    results = {r["idempotency_key"]: r for r in answer.get_json()["results"]}
    assert all(isinstance(r["replayed"], bool) for r in results.values())
    assert (results["r-ok"]["status"], results["r-ok"]["replayed"]) == (201, False)
    assert (results["r-no-shift"]["status"], results["r-no-shift"]["result"]["reason"]) == (404, "no_shift")
    assert results["r-not-signed-up"]["result"]["reason"] == "not_signed_up"
    too_old = results["r-too-old"]["result"]
    assert (too_old["reason"], list(too_old["errors"])) == ("client_time_out_of_range", ["client_time"])

    again = volunteer.post("/api/v1/me/check-events", json={"events": events}).get_json()["results"]
    assert [r["replayed"] for r in again] == [True, False, False, False]  # only the recorded one is a replay


def test_the_calendar_refuses_an_unknown_parameter_and_a_key_given_twice(login, session):
    volunteer = login("volunteer-001")
    me = volunteer_id(session, "volunteer-001")
    url = volunteer.get("/api/v1/me/volunteer").get_json()["calendar_url"]
    feed = volunteer.get(url)
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    key = url.split("key=", 1)[1]
    unknown = assert_problem(volunteer.get(f"/api/v1/volunteers/{me}/shifts.ics?key={key}&foo=1"), 422)
    assert set(unknown["errors"]) == {"foo"}
    twice = assert_problem(volunteer.get(f"/api/v1/volunteers/{me}/shifts.ics?key={key}&key=wrong"), 422)
    assert set(twice["errors"]) == {"key"}


def test_a_stint_left_open_past_its_shift_stays_in_my_shifts_until_its_check_out_closes(login, session, clock):
    admin, volunteer = login("admin"), login("volunteer-001")
    g01 = zone_of(session, "G01").id
    point = zone_center(admin, g01)
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    url = f"/api/v1/shifts/{shift['id']}"
    me = volunteer_id(session, "volunteer-001")
    volunteer.post(f"{url}/signups", json={})
    clock.advance(minutes=15)
    body = {"lon": point[0], "lat": point[1], "accuracy_m": 10}
    assert volunteer.post(f"{url}/check-in", json=body, headers={"Idempotency-Key": "open-1"}).status_code == 201
    ends_at = datetime.fromisoformat(shift["ends_at"])

    def listed() -> dict:
        return {item["shift"]["id"]: item for item in volunteer.get(f"/api/v1/volunteers/{me}/signups").get_json()["items"]}

    during = listed()[shift["id"]]
    assert during["on_duty"] and datetime.fromisoformat(during["check_out_by"]) == ends_at + timedelta(hours=2)

    clock.advance(hours=1)  # the shift is over, the volunteer forgot to check out: still listed, with its deadline
    after = listed()[shift["id"]]
    assert not after["on_duty"] and after["checked_out_at"] is None and after["hours"] is None
    assert datetime.fromisoformat(after["check_out_by"]) == ends_at + timedelta(hours=2)

    assert volunteer.post(f"{url}/check-out", json=body, headers={"Idempotency-Key": "open-2"}).status_code == 201
    assert shift["id"] not in listed()  # over and closed: the default list is the shifts to come

    # a stint never checked out: closed at the grace's end as a missing check-out, and gone from the list
    other = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    volunteer.post(f"/api/v1/shifts/{other['id']}/signups", json={})
    clock.advance(minutes=15)
    volunteer.post(f"/api/v1/shifts/{other['id']}/check-in", json=body, headers={"Idempotency-Key": "open-3"})
    clock.advance(hours=2, minutes=50)  # 5 min before its check-out closes: listed
    assert other["id"] in listed()
    clock.advance(minutes=10)  # past it
    assert other["id"] not in listed()
