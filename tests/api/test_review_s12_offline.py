"""A mobile app developer's review on a flaky network (session 12): queued and repeated check events.

Each test failed before its fix (migration 0044, and the offers' 409)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gridsvc.models import CheckEvent, Volunteer
from tests.api.test_checkins import admin  # noqa: F401  (fixture)
from tests.api.test_requests import file, g03  # noqa: F401  (fixture)
from tests.api.volunteer_helpers import (hours_of_shift, make_shift, offline, post_check, volunteer_id, zone_center,
                                         zone_of)
from tests.helpers import assert_problem


def _events(session, shift_id) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(CheckEvent).where(CheckEvent.shift_id == shift_id))


def test_an_offline_check_in_after_a_forgotten_check_out_closes_that_stint_as_online(admin, login, session, clock):  # noqa: F811
    """volunteer-001 checked in to shift X and forgot to check out; 20 minutes after X ended (its check-out
    still taken for 2 h), the phone recorded a check-in to the next shift Y offline. Uploaded, it was 409
    "already checked in" and recorded nowhere: the stint at Y was lost. Sent online it is accepted, and X is
    closed at its end, flagged missing_check_out; offline, timed after X's end, it is too."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    x = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    y = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=80), hours=1)
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    for shift in (x, y):
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    assert post_check(me, x["id"], "check-in", center).status_code == 201
    clock.advance(minutes=80)  # X ended 20 minutes ago; Y began 10 minutes ago
    upload = me.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", y["id"], clock() - timedelta(minutes=1), center, "y-in")]})
    [result] = upload.get_json()["results"]
    assert result["status"] == 201, result
    [at_x] = hours_of_shift(session, x["id"])
    assert (at_x.flag_reason, at_x.ended_at) == ("missing_check_out", at_x.shift.ends_at)
    assert session.get(Volunteer, vid).on_duty_shift_id == y["id"]


def test_an_offline_check_in_timed_inside_the_open_stint_is_still_refused(admin, login, session, clock):  # noqa: F811
    """Guard: a check-in to Y recorded while X was still running is inside the stint at X (409, nothing)."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    x = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    y = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=70), hours=1)
    me = login("volunteer-001")
    for shift in (x, y):
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    assert post_check(me, x["id"], "check-in", center).status_code == 201
    clock.advance(minutes=75)
    upload = me.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", y["id"], clock() - timedelta(minutes=20), center, "y-early")]})
    [result] = upload.get_json()["results"]
    assert (result["status"], result["result"]["reason"]) == (409, "already_checked_in"), result
    assert _events(session, y["id"]) == 0


def test_a_second_check_out_is_not_taken_for_an_earlier_closed_stint(admin, login, session, clock):  # noqa: F811
    """A stint at 07:05 uploaded late was closed where the next one (07:20) began, as a missing check-out. The
    volunteer checked out at 07:40 and tapped check-out again at 07:41 (a new key): 422 outside_window "from
    07:05 to 07:20", recorded and flagged for the liaison, as if it ended that earlier stint. It is the
    second tap it is: 409 not_checked_in, recorded nowhere."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=2)
    me = login("volunteer-001")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=30)  # start + 20
    assert post_check(me, shift["id"], "check-in", center, key="online-in").status_code == 201
    upload = me.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], clock() - timedelta(minutes=15), center, "queued-in")]})
    assert upload.get_json()["results"][0]["status"] == 201
    assert sorted(h.flag_reason or "" for h in hours_of_shift(session, shift["id"])) == ["missing_check_out"]
    clock.advance(minutes=20)
    assert post_check(me, shift["id"], "check-out", center, key="out-1").status_code == 201
    recorded = _events(session, shift["id"])
    clock.advance(minutes=1)
    again = assert_problem(post_check(me, shift["id"], "check-out", center, key="out-2"), 409)
    assert again["reason"] == "not_checked_in", again
    assert _events(session, shift["id"]) == recorded


def test_accepting_an_offer_you_declined_is_a_409(login, g03):  # noqa: F811
    """volunteer-013 declined an offer, then pressed accept: 403 /problems/forbidden, read by an app as a
    rights problem; an expired or withdrawn offer answers 409, as any action the state does not allow."""
    request = file(login("worker-001"), g03["here"]).get_json()
    volunteer = login("volunteer-013")
    assert volunteer.post(f"/api/v1/requests/{request['id']}/decline", json={}).status_code == 200
    problem = assert_problem(volunteer.post(f"/api/v1/requests/{request['id']}/accept", json={}), 409)
    assert "declined" in problem["detail"]
