"""A second review of the offline upload, POST /api/v1/me/check-events: each test failed before its fix."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from gridsvc.models import CheckEvent
from tests.api.volunteer_helpers import hours_of_shift, make_shift, offline, volunteer_id, zone_center, zone_of


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def shift_a(admin, login, session, clock):
    """volunteer-001 confirmed for a 2-hour shift in G01 starting in an hour."""
    g01 = zone_of(session, "G01").id
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(hours=1), hours=2)
    v = login("volunteer-001")
    assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    return {"shift": shift, "client": v, "at": zone_center(admin, g01), "id": volunteer_id(session, "volunteer-001"),
            "start": datetime.fromisoformat(shift["starts_at"]), "end": datetime.fromisoformat(shift["ends_at"])}


def test_a_retried_upload_with_a_double_tapped_check_in_records_nothing_new(shift_a, session, clock, login):
    """No signal at the gate: the volunteer tapped "check in" twice a minute apart, and checked out at the end;
    the phone uploads the queue 3 minutes after the end, and the answer is lost (timeout), so it sends the same
    upload again. The first time the second tap is a 409 "already checked in" and nothing is recorded for it. The
    retry judges that tap again against the stint the first upload closed, and answers 422 "outside_window"
    instead, recording a new refused check-in flagged for the liaison (GET .../check-events?flagged=true shows an
    attempt the volunteer never made at that point). A retry of the same upload should give the same answers and
    record nothing new, as every retried check event does (README "Check-in / check-out")."""
    s, v = shift_a, shift_a["client"]
    clock.current = s["end"] + timedelta(minutes=3)
    events = [offline("check_in", s["shift"]["id"], s["start"] - timedelta(minutes=5), s["at"], "tap-1"),
              offline("check_in", s["shift"]["id"], s["start"] - timedelta(minutes=4), s["at"], "tap-2"),
              offline("check_out", s["shift"]["id"], s["end"] - timedelta(minutes=2), s["at"], "out")]
    first = v.post("/api/v1/me/check-events", json={"events": events}).get_json()["results"]
    assert [r["status"] for r in first] == [201, 409, 201], first
    recorded = session.scalar(select(func.count()).select_from(CheckEvent).where(CheckEvent.volunteer_id == s["id"]))
    again = v.post("/api/v1/me/check-events", json={"events": events}).get_json()["results"]
    assert [(r["status"], r["result"].get("reason")) for r in again] == [
        (r["status"], r["result"].get("reason")) for r in first], again
    assert session.scalar(select(func.count()).select_from(CheckEvent)
                          .where(CheckEvent.volunteer_id == s["id"])) == recorded
    flagged = login("liaison-g01").get(f"/api/v1/shifts/{s['shift']['id']}/check-events?flagged=true").get_json()
    assert flagged["items"] == [], flagged["items"]


def test_a_double_tapped_check_in_uploaded_after_the_grace_period_is_the_same_409(shift_a, session, clock):
    """The same queue uploaded the next morning: the first tap's stint is closed on arrival (the shift and its
    grace are over), and the second tap, inside it, was a recorded, flagged 422 "outside_window"; it is the 409
    "already checked in" it would have been on time, nothing recorded, and the check-out completes the stint."""
    s, v = shift_a, shift_a["client"]
    clock.current = s["end"] + timedelta(hours=14)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["shift"]["id"], s["start"] - timedelta(minutes=5), s["at"], "tap-1"),
        offline("check_in", s["shift"]["id"], s["start"] - timedelta(minutes=4), s["at"], "tap-2"),
        offline("check_out", s["shift"]["id"], s["end"] - timedelta(minutes=2), s["at"], "out")]}).get_json()["results"]
    assert [(r["status"], r["result"].get("reason")) for r in results] == [
        (201, None), (409, "already_checked_in"), (201, None)], results
    assert session.scalar(select(func.count()).where(CheckEvent.idempotency_key == "tap-2")) == 0
    [entry] = hours_of_shift(session, s["shift"]["id"])
    assert (float(entry.hours), entry.status) == (1.97, "approved")


def test_a_volunteer_at_work_without_signal_cannot_be_removed_as_a_no_show(shift_a, session, clock, login):
    """The volunteer checked in and out offline; 20 minutes into the shift the liaison, seeing no check-in, removed
    them as a no-show, and the upload after the shift got 409 not_signed_up for both events: 1.97 h of work lost,
    nothing recorded. A confirmed place is the shift's record from its start (a no-show is one without a
    check-in): the removal is refused, and the upload keeps the stint."""
    s, v = shift_a, shift_a["client"]
    clock.current = s["start"] + timedelta(minutes=20)
    removal = login("liaison-g01").delete(f"/api/v1/shifts/{s['shift']['id']}/signups/{s['id']}")
    assert (removal.status_code, removal.get_json()["reason"]) == (409, "started"), removal.get_json()
    clock.current = s["end"] + timedelta(minutes=10)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["shift"]["id"], s["start"] + timedelta(minutes=2), s["at"], "in"),
        offline("check_out", s["shift"]["id"], s["end"] - timedelta(minutes=1), s["at"], "out")]}).get_json()["results"]
    assert [r["status"] for r in results] == [201, 201], results
    [entry] = hours_of_shift(session, s["shift"]["id"])
    assert (float(entry.hours), entry.status) == (1.95, "approved")
