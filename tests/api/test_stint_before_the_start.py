"""A stint over before its shift began counts 0.00 h, dated when it ended (migration 0041).

The check-in window opens 30 minutes before a shift's start, so a volunteer can check in and leave again before
it starts. Their entry was dated from the start to the start: a time still to come when it was written.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from gridsvc.models import ServiceHours
from tests.api.volunteer_helpers import g01_shift_of_volunteer_001, hours_of_shift, offline, post_check


@pytest.fixture()
def early(login, session, clock):
    """volunteer-001 holds a place in a G01 shift starting in 25 minutes (its check-in window is open)."""
    return g01_shift_of_volunteer_001(login, session, clock() + timedelta(minutes=25))


def test_a_check_out_before_the_start_is_an_entry_of_no_time_at_the_check_out(early, session, clock):
    shift_id, center = early["id"], early["center"]
    assert post_check(early["client"], shift_id, "check-in", center, key="in").status_code == 201
    clock.advance(minutes=15)  # 10 minutes before the start: they leave
    left_at = clock()
    out = post_check(early["client"], shift_id, "check-out", center, key="out")
    assert out.status_code == 201, out.get_json()
    hours = out.get_json()["hours"]
    assert hours["hours"] == 0.0
    # when they left, not the start still 10 minutes away
    assert datetime.fromisoformat(hours["started_at"]) == datetime.fromisoformat(hours["ended_at"]) == left_at
    [entry] = hours_of_shift(session, shift_id)
    assert entry.started_at == entry.ended_at == left_at < early["start"]
    [listed] = [e for e in early["client"].get(f"/api/v1/volunteers/{early['vid']}/hours").get_json()["entries"]
                if e["shift_id"] == shift_id]
    assert datetime.fromisoformat(listed["ended_at"]) == left_at


def test_a_check_out_after_the_start_still_counts_from_the_start(early, session, clock):
    shift_id, center = early["id"], early["center"]
    assert post_check(early["client"], shift_id, "check-in", center, key="in").status_code == 201
    clock.advance(minutes=55)  # half an hour into the shift
    hours = post_check(early["client"], shift_id, "check-out", center, key="out").get_json()["hours"]
    assert hours["hours"] == 0.5
    assert datetime.fromisoformat(hours["started_at"]) == early["start"]  # travel before the start is not service


def test_an_account_disabled_before_the_start_ends_the_stint_then(early, session, clock):
    shift_id, center = early["id"], early["center"]
    assert post_check(early["client"], shift_id, "check-in", center, key="in").status_code == 201
    clock.advance(minutes=5)
    disabled_at = clock()
    user_id = early["admin"].get(f"/api/v1/volunteers/{early['vid']}").get_json()["user_id"]
    assert early["admin"].patch(f"/api/v1/users/{user_id}", json={"disabled": True}).status_code == 200
    [entry] = hours_of_shift(session, shift_id)
    assert (entry.started_at, entry.ended_at, float(entry.hours), entry.flag_reason) == (
        disabled_at, disabled_at, 0.0, "may_not_volunteer")


def test_a_late_check_out_from_before_the_start_completes_the_closed_entry_at_its_time(early, session, clock):
    """Checked in early, out again offline 5 minutes before the start; the upload came after the shift and its
    grace, when the stint had been closed at the shift's end as a missing check-out (2 h, pending)."""
    shift_id, center = early["id"], early["center"]
    assert post_check(early["client"], shift_id, "check-in", center, key="in").status_code == 201
    clock.current = early["end"] + timedelta(hours=3)
    [closed] = [e for e in early["client"].get(f"/api/v1/volunteers/{early['vid']}/hours").get_json()["entries"]
                if e["shift_id"] == shift_id]
    assert (closed["hours"], closed["flag_reason"]) == (2.0, "missing_check_out")
    left_at = early["start"] - timedelta(minutes=5)
    upload = {"events": [offline("check_out", shift_id, left_at, center, "late-out")]}
    [result] = early["client"].post("/api/v1/me/check-events", json=upload).get_json()["results"]
    assert result["status"] == 201, result
    assert result["result"]["hours"]["id"] == closed["id"] and result["result"]["hours"]["hours"] == 0.0
    session.expire_all()
    entry = session.get(ServiceHours, closed["id"])
    assert entry.started_at == entry.ended_at == left_at and entry.flag_reason is None
