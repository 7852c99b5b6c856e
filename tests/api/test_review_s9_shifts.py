"""Where a shift stands in time (``phase``), as a volunteer app shows an activity: upcoming, in progress, ended."""
from __future__ import annotations

from datetime import timedelta

from tests.api.volunteer_helpers import make_shift, zone_of
from tests.helpers import assert_problem


def test_a_shift_reads_upcoming_then_in_progress_then_ended(login, session, clock):
    admin = login("admin")
    g01 = zone_of(session, "G01")
    shift = make_shift(admin, zone_id=g01.id, starts_at=clock() + timedelta(hours=1), hours=2, capacity=3)
    url = f"/api/v1/shifts/{shift['id']}"
    assert shift["phase"] == "upcoming" and shift["status"] == "scheduled"

    clock.advance(hours=1)  # at its start
    running = admin.get(url).get_json()
    assert (running["phase"], running["status"], running["places_left"]) == ("in_progress", "scheduled", 3)
    # what "in progress" tells the app: a sign-up is no longer taken
    assert_problem(login("volunteer-001").post(f"{url}/signups", json={}), 409)

    clock.advance(hours=2)  # at its end
    listed = {s["id"]: s for s in admin.get(f"/api/v1/shifts?zone_id={g01.id}&limit=100").get_json()["items"]}
    assert (listed[shift["id"]]["phase"], listed[shift["id"]]["status"]) == ("ended", "scheduled")


def test_a_cancelled_shift_keeps_its_phase_and_says_cancelled(login, session, clock):
    admin = login("admin")
    shift = make_shift(admin, zone_id=zone_of(session, "G02").id, starts_at=clock() + timedelta(days=1))
    cancelled = admin.delete(f"/api/v1/shifts/{shift['id']}")  # a cancellation: the shift stays on record
    assert (cancelled.get_json()["status"], cancelled.get_json()["phase"]) == ("cancelled", "upcoming")
    clock.advance(days=2)
    answer = admin.get(f"/api/v1/shifts/{shift['id']}").get_json()
    assert (answer["status"], answer["phase"]) == ("cancelled", "ended")
