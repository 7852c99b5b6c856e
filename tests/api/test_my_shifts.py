"""A volunteer's own shifts ("my shifts" in the app): sign-ups, the place in line, and checking in."""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest

from tests.api.volunteer_helpers import make_shift, offline, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem


@pytest.fixture()
def admin(login):
    return login("admin")


def my_shifts(client, vid: int, **params) -> dict:
    answer = client.get(f"/api/v1/volunteers/{vid}/signups" + (f"?{urlencode(params)}" if params else ""))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def window(start: datetime, days: int) -> dict:
    """from/to around the shifts a test made (the demo park has sign-ups of its own)."""
    return {"from": start.isoformat(), "to": (start + timedelta(days=days)).isoformat()}


def test_confirmed_and_waitlisted_in_shift_order_with_the_place_in_line(admin, login, session, clock):
    g01 = zone_of(session, "G01").id
    first_day = clock() + timedelta(days=200)
    full = make_shift(admin, zone_id=g01, starts_at=first_day, capacity=1, title="早高峰疏导")
    later = make_shift(admin, zone_id=g01, starts_at=first_day + timedelta(days=1), capacity=3, title="垃圾分类督导",
                       activity="garbage_sorting")
    clients = {name: login(name) for name in ("volunteer-003", "volunteer-001", "volunteer-002")}
    for name in ("volunteer-003", "volunteer-001", "volunteer-002"):  # one place: 003 gets it, then the line
        clients[name].post(f"/api/v1/shifts/{full['id']}/signups", json={})
    clients["volunteer-002"].post(f"/api/v1/shifts/{later['id']}/signups", json={})
    me = volunteer_id(session, "volunteer-002")

    listed = my_shifts(clients["volunteer-002"], me, **window(first_day - timedelta(hours=1), 3))
    assert listed["total"] == 2
    waiting, confirmed = listed["items"]
    assert (waiting["shift"]["id"], waiting["status"], waiting["waitlist_position"]) == (full["id"], "waitlisted", 2)
    assert waiting["shift"]["title"] == "早高峰疏导" and waiting["shift"]["places_left"] == 0
    assert (confirmed["shift"]["id"], confirmed["status"], confirmed["waitlist_position"]) == (later["id"], "confirmed", None)
    assert confirmed["shift"]["activity"] == "garbage_sorting" and confirmed["shift"]["places_left"] == 2
    assert not confirmed["on_duty"] and confirmed["checked_in_at"] is None and confirmed["checked_out_at"] is None

    # the one confirmed withdraws: 001 moves up, and 002 is next in line
    clients["volunteer-003"].delete(f"/api/v1/shifts/{full['id']}/signups/{volunteer_id(session, 'volunteer-003')}")
    moved = my_shifts(clients["volunteer-002"], me, status="waitlisted", **window(first_day - timedelta(hours=1), 3))
    assert [(i["shift"]["id"], i["waitlist_position"]) for i in moved["items"]] == [(full["id"], 1)]
    promoted = my_shifts(clients["volunteer-001"], volunteer_id(session, "volunteer-001"),
                         **window(first_day - timedelta(hours=1), 3))
    assert [(i["shift"]["id"], i["status"]) for i in promoted["items"]] == [(full["id"], "confirmed")]
    # a withdrawn sign-up is not listed
    gone = my_shifts(clients["volunteer-003"], volunteer_id(session, "volunteer-003"),
                     **window(first_day - timedelta(hours=1), 3))
    assert gone["total"] == 0


def signed_up_in_g01(admin, login, session, starts_at: datetime, hours: float):
    """A G01 shift volunteer-001 signed up for: (the shift, their client, their volunteer id, the zone's centre)."""
    g01 = zone_of(session, "G01").id
    shift = make_shift(admin, zone_id=g01, starts_at=starts_at, hours=hours)
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    return shift, volunteer, volunteer_id(session, "volunteer-001"), zone_center(admin, g01)


def item_for(listed: dict, shift: dict) -> dict:
    [item] = [i for i in listed["items"] if i["shift"]["id"] == shift["id"]]
    return item


def test_checking_in_and_out_shows_on_duty_and_the_times(admin, login, session, clock):
    shift, volunteer, me, (lon, lat) = signed_up_in_g01(admin, login, session, clock() + timedelta(hours=1), hours=2)

    def mine() -> dict:  # without from/to: the shifts not yet over
        return item_for(my_shifts(volunteer, me), shift)

    checked_in_at = clock.advance(hours=1, minutes=5)
    answer = volunteer.post(f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": lon, "lat": lat, "accuracy_m": 10},
                            headers={"Idempotency-Key": "in-1"})
    assert answer.status_code == 201, answer.get_json()
    item = mine()
    assert item["on_duty"] and datetime.fromisoformat(item["checked_in_at"]) == checked_in_at
    assert item["checked_out_at"] is None

    checked_out_at = clock.advance(minutes=50)
    answer = volunteer.post(f"/api/v1/shifts/{shift['id']}/check-out", json={"lon": lon, "lat": lat, "accuracy_m": 10},
                            headers={"Idempotency-Key": "out-1"})
    assert answer.status_code == 201, answer.get_json()
    item = mine()
    assert not item["on_duty"] and datetime.fromisoformat(item["checked_out_at"]) == checked_out_at
    assert datetime.fromisoformat(item["checked_in_at"]) == checked_in_at

    # over: gone from the default list, still there for the day it ran
    clock.advance(hours=2)
    assert shift["id"] not in [i["shift"]["id"] for i in my_shifts(volunteer, me)["items"]]
    day = my_shifts(volunteer, me, **window(checked_in_at - timedelta(hours=2), 1))
    assert shift["id"] in [i["shift"]["id"] for i in day["items"]]


def test_a_check_in_left_open_is_closed_when_the_list_is_read(admin, login, session, clock):
    shift, volunteer, me, (lon, lat) = signed_up_in_g01(admin, login, session, clock() + timedelta(minutes=10), hours=1)
    clock.advance(minutes=15)
    volunteer.post(f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": lon, "lat": lat}, headers={"Idempotency-Key": "a"})
    clock.advance(hours=3)  # past the end and the grace period, never checked out
    item = item_for(my_shifts(volunteer, me, **window(clock() - timedelta(hours=4), 1)), shift)
    assert not item["on_duty"] and item["checked_in_at"] is not None and item["checked_out_at"] is None


def test_who_may_see_a_volunteers_shifts(admin, login, session, clock):
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=3))
    login("volunteer-001").post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    me = volunteer_id(session, "volunteer-001")
    assert shift["id"] in [i["shift"]["id"] for i in my_shifts(admin, me)["items"]]
    assert shift["id"] in [i["shift"]["id"] for i in my_shifts(login("liaison-g01"), me)["items"]]  # a zone they work in
    assert_problem(login("volunteer-002").get(f"/api/v1/volunteers/{me}/signups"), 403)
    assert_problem(admin.get("/api/v1/volunteers/987654/signups"), 404)
    problem = assert_problem(admin.get(f"/api/v1/volunteers/{me}/signups?status=cancelled"), 422)
    assert "status" in problem["errors"]
    problem = assert_problem(admin.get(f"/api/v1/volunteers/{me}/signups?from=yesterday"), 422)
    assert "from" in problem["errors"]


def test_a_second_stint_shows_its_own_check_out_and_hours_not_the_first_ones(admin, login, session, clock):
    shift, volunteer, me, (lon, lat) = signed_up_in_g01(admin, login, session, clock() + timedelta(minutes=10), hours=2)
    body = {"lon": lon, "lat": lat, "accuracy_m": 10}
    url = f"/api/v1/shifts/{shift['id']}"
    clock.advance(minutes=15)
    assert volunteer.post(f"{url}/check-in", json=body, headers={"Idempotency-Key": "s1-in"}).status_code == 201
    first_out = clock.advance(minutes=30)
    assert volunteer.post(f"{url}/check-out", json=body, headers={"Idempotency-Key": "s1-out"}).status_code == 201
    first = item_for(my_shifts(volunteer, me), shift)
    assert datetime.fromisoformat(first["checked_out_at"]) == first_out
    assert first["hours"]["hours"] == 0.5 and first["hours"]["status"] == "approved"

    back_at = clock.advance(minutes=10)  # back after a break: a new stint, open
    assert volunteer.post(f"{url}/check-in", json=body, headers={"Idempotency-Key": "s2-in"}).status_code == 201
    second = item_for(my_shifts(volunteer, me), shift)
    assert second["on_duty"] and datetime.fromisoformat(second["checked_in_at"]) == back_at
    # the first stint's check-out and approved half hour are not this one's
    assert second["checked_out_at"] is None and second["hours"] is None

    clock.advance(minutes=20)
    assert volunteer.post(f"{url}/check-out", json=body, headers={"Idempotency-Key": "s2-out"}).status_code == 201
    done = item_for(my_shifts(volunteer, me), shift)
    assert not done["on_duty"] and done["hours"]["hours"] == round(20 / 60, 2)


def test_a_check_out_and_a_check_in_at_the_same_instant_leave_the_new_stint_open(admin, login, session, clock):
    shift, volunteer, me, point = signed_up_in_g01(admin, login, session, clock() + timedelta(minutes=10), hours=2)
    start = clock() + timedelta(minutes=15)
    handover = start + timedelta(minutes=30)
    clock.advance(hours=1)
    events = [offline("check_in", shift["id"], start, point, "o-1"),
              offline("check_out", shift["id"], handover, point, "o-2"),
              offline("check_in", shift["id"], handover, point, "o-3")]
    answer = volunteer.post("/api/v1/me/check-events", json={"events": events})
    assert answer.status_code == 200 and [r["status"] for r in answer.get_json()["results"]] == [201, 201, 201]
    item = item_for(my_shifts(volunteer, me), shift)
    assert item["on_duty"] and datetime.fromisoformat(item["checked_in_at"]) == handover
    assert item["checked_out_at"] is None and item["hours"] is None
