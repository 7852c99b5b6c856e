"""A review of check-out and the hours it produces (online, with the tick and reads of hours).

Each test failed before its fix and asserts what the volunteer or the liaison should see."""
from __future__ import annotations

from datetime import timedelta

import pytest

from gridsvc.models import CheckEvent
from tests.api.volunteer_helpers import g01_shift_of_volunteer_001, post_check
from tests.helpers import assert_problem


@pytest.fixture()
def one(login, session, clock):
    """A two-hour shift in G01, starting in an hour, that volunteer-001 is confirmed for."""
    return g01_shift_of_volunteer_001(login, session, clock() + timedelta(hours=1))


@pytest.mark.parametrize("decision", ["approve", "decline"])
def test_a_late_check_out_after_the_liaison_reviewed_the_closed_stint_is_refused_as_late(one, clock, session, login,
                                                                                          decision):
    """The volunteer forgot to check out; after the grace period the stint was closed as a missing check-out and
    the liaison has already decided it. The check-out they press 2 h 8 min after the end is answered 409 "You have
    no open check-in to shift N to check out from" (they had one: it was closed and reviewed) and is not recorded,
    so the liaison never sees the attempt in check-events. Before the review the same press is the documented
    422 outside_window ("A check-out is accepted from ... to ..."), recorded and flagged: it should be the same
    after it (the decision stays as made)."""
    v, shift_id, center = one["client"], one["id"], one["center"]
    clock.current = one["start"] + timedelta(minutes=1)
    assert post_check(v, shift_id, "check-in", center).status_code == 201
    clock.current = one["end"] + timedelta(hours=2, minutes=5)
    liaison = login("liaison-g01")
    [entry] = liaison.get("/api/v1/hours").get_json()["items"]  # closed by this read: missing_check_out
    assert entry["flag_reason"] == "missing_check_out"
    assert liaison.post(f"/api/v1/hours/{entry['id']}/{decision}", json={}).status_code == 200
    clock.advance(minutes=3)
    late = assert_problem(post_check(v, shift_id, "check-out", center, key="late"), 422, "check-refused")
    assert late["reason"] == "outside_window" and "A check-out is accepted from" in late["detail"]
    assert session.get(CheckEvent, late["event_id"]).flagged
    events = liaison.get(f"/api/v1/shifts/{shift_id}/check-events?flagged=true").get_json()["items"]
    assert [(e["kind"], e["reason"]) for e in events] == [("check_out", "outside_window")]


def test_an_offline_check_out_in_time_uploaded_after_the_review_leaves_the_decision_as_made(one, clock, session,
                                                                                           login):
    """The check-out was pressed in time on a phone without signal and went up after the stint had been closed
    as a missing check-out and approved: it no longer completes the entry (the liaison's decision stands), and
    says so (409 hours_reviewed), recording nothing."""
    v, shift_id, center = one["client"], one["id"], one["center"]
    clock.current = one["start"] + timedelta(minutes=1)
    assert post_check(v, shift_id, "check-in", center).status_code == 201
    clock.current = one["end"] + timedelta(hours=2, minutes=5)
    liaison = login("liaison-g01")
    [entry] = liaison.get("/api/v1/hours").get_json()["items"]
    assert liaison.post(f"/api/v1/hours/{entry['id']}/approve", json={}).status_code == 200
    [late] = v.post("/api/v1/me/check-events", json={"events": [{
        "shift_id": shift_id, "kind": "check_out", "client_time": (one["end"] - timedelta(minutes=3)).isoformat(),
        "lon": center[0], "lat": center[1], "accuracy_m": 10, "idempotency_key": "queued-out"}]}).get_json()["results"]
    assert (late["status"], late["result"]["reason"], late["result"]["hours_status"]) == (
        409, "hours_reviewed", "approved"), late
    hours = liaison.get("/api/v1/hours?status=approved").get_json()["items"]
    assert [(h["id"], h["hours"], h["flag_reason"]) for h in hours] == [(entry["id"], entry["hours"], "missing_check_out")]
