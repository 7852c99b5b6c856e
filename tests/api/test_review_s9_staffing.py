"""A liaison staffing a shift asks who could take a place in it (``GET /volunteers?free_for=<shift id>``): the
weekly availability volunteers gave, their skills, the places they already hold, and whether they may serve."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.models import User
from tests.api.volunteer_helpers import make_shift, with_availability, zone_of
from tests.helpers import assert_problem

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _next(weekday: int, now: datetime, hour: int, minute: int = 0) -> datetime:
    """The first ``weekday`` (1 = Monday) at least two days after ``now``, at hour:minute, Shanghai time."""
    day = now.astimezone(SHANGHAI).date() + timedelta(days=2)
    day += timedelta(days=(weekday - day.isoweekday()) % 7)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def _free_for(client, shift_id: int) -> set[int]:
    answer = client.get(f"/api/v1/volunteers?free_for={shift_id}&limit=500")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["total"] == len(body["items"])
    return {item["id"] for item in body["items"]}


def test_who_could_take_a_place_in_a_wednesday_morning_shift(login, session, clock):
    admin = login("admin")
    g01 = zone_of(session, "G01")
    starts = _next(3, clock(), 6, 30)  # Wednesday 06:30-08:30: no demo volunteer is free in the morning
    shift = make_shift(admin, zone_id=g01.id, starts_at=starts, hours=2, capacity=1, skills=("first_aid",))
    free = with_availability(admin, session, 1, [(3, "06:00", "09:00")])
    touching = with_availability(admin, session, 2, [(3, "06:00", "07:30"), (3, "07:30", "09:00")])
    ends_too_soon = with_availability(admin, session, 3, [(3, "06:00", "08:00")])
    gap_between = with_availability(admin, session, 4, [(3, "06:00", "07:00"), (3, "07:10", "09:00")])
    other_day = with_availability(admin, session, 5, [(4, "06:00", "09:00")])
    no_skill = with_availability(admin, session, 6, [(3, "06:00", "09:00")], skills=("traffic_parking",))
    busy = with_availability(admin, session, 7, [(3, "05:00", "10:00")])
    signed_up = with_availability(admin, session, 8, [(3, "06:00", "09:00")])
    disabled = with_availability(admin, session, 9, [(3, "06:00", "09:00")])
    no_windows = with_availability(admin, session, 10, [])
    # volunteer-007 holds a confirmed place 08:00-09:00 that day; volunteer-008 already holds one here
    elsewhere = make_shift(admin, zone_id=zone_of(session, "G02").id, starts_at=starts + timedelta(minutes=90), hours=1)
    assert admin.post(f"/api/v1/shifts/{elsewhere['id']}/signups", json={"volunteer_id": busy}).status_code == 201
    assert admin.post(f"/api/v1/shifts/{shift['id']}/signups", json={"volunteer_id": signed_up}).status_code == 201
    user_9 = session.query(User.id).filter(User.username == "volunteer-009").scalar()
    assert admin.patch(f"/api/v1/users/{user_9}", json={"disabled": True}).status_code == 200

    listed = _free_for(admin, shift["id"])
    assert {free, touching} <= listed
    assert not listed & {ends_too_soon, gap_between, other_day, no_skill, busy, signed_up, disabled, no_windows}
    # the shift is full now (capacity 1): those listed would wait, and still are the ones to ask
    assert _free_for(login("liaison-g01"), shift["id"]) >= {free, touching}

    # the place elsewhere given up, volunteer-007 is free again
    assert admin.delete(f"/api/v1/shifts/{elsewhere['id']}/signups/{busy}").status_code == 200
    assert busy in _free_for(admin, shift["id"])


def test_a_night_shift_needs_both_evenings_windows_and_one_ending_2359_runs_to_midnight(login, session, clock):
    admin = login("admin")
    starts = _next(5, clock(), 22)  # Friday 22:00 to Saturday 06:00
    shift = make_shift(admin, zone_id=zone_of(session, "G03").id, starts_at=starts, hours=8, skills=("first_aid",))
    both_nights = with_availability(admin, session, 11, [(5, "22:00", "23:59"), (6, "00:00", "06:00")])
    friday_only = with_availability(admin, session, 12, [(5, "20:00", "23:59")])
    till_2330 = with_availability(admin, session, 13, [(5, "22:00", "23:30"), (6, "00:00", "06:00")])
    listed = _free_for(admin, shift["id"])
    assert both_nights in listed and not listed & {friday_only, till_2330}


@pytest.mark.parametrize("case", ["unknown", "cancelled", "started"])
def test_a_shift_that_takes_no_sign_ups_is_a_422_naming_free_for(login, session, clock, case):
    admin = login("admin")
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(hours=1))
    shift_id = shift["id"]
    if case == "unknown":
        shift_id = 987654
    elif case == "cancelled":
        assert admin.delete(f"/api/v1/shifts/{shift_id}").status_code == 200
    else:
        clock.advance(hours=1)
    problem = assert_problem(admin.get(f"/api/v1/volunteers?free_for={shift_id}"), 422)
    assert "free_for" in problem["errors"] and str(shift_id) in problem["detail"]


def test_the_demo_parks_morning_shifts_have_volunteers_free_for_them(login, session, clock):
    """The demo's traffic volunteers gave two weekday mornings: each morning-peak shift has people to ask."""
    admin = login("admin")
    shifts = admin.get("/api/v1/shifts", query_string={"from": (clock() + timedelta(days=1)).isoformat(), "limit": 100}).get_json()["items"]
    morning = [s for s in shifts if "早高峰" in s["title"]]
    assert morning
    for shift in morning[:5]:
        free = admin.get(f"/api/v1/volunteers?free_for={shift['id']}&limit=100").get_json()["items"]
        assert free and all("traffic_parking" in v["skills"] for v in free)


def test_a_shift_needing_two_skills_lists_only_who_holds_both(login, session, clock):
    admin = login("admin")
    starts = _next(2, clock(), 5)  # Tuesday 05:00-06:00
    shift = make_shift(admin, zone_id=zone_of(session, "G04").id, starts_at=starts, hours=1,
                       skills=("first_aid", "traffic_parking"))
    both = with_availability(admin, session, 14, [(2, "05:00", "06:00")], skills=("first_aid", "traffic_parking", "translation"))
    one = with_availability(admin, session, 15, [(2, "05:00", "06:00")], skills=("first_aid", "translation"))
    listed = _free_for(admin, shift["id"])
    assert both in listed and one not in listed
