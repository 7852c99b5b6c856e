"""Review (s7): a grid liaison's and an admin's management of shifts and hours.

Each test's docstring tells what the liaison or admin did and what they should see. The tests kept here guard
behaviour no other file covers (each passed when written); the race test commits for real and cleans up.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.models import ServiceHours, Shift, Signup, Volunteer
from gridsvc.services import shifts as shift_service
from tests.api.volunteer_helpers import (make_shift, north_of, post_check, volunteer_id, zone_center,
                                         zone_of)
from tests.helpers import assert_problem, client_as, delete_shifts, while_uncommitted


@pytest.fixture()
def admin(login):
    return login("admin")


def _served(admin, login, session, clock, zone_code: str, usernames: list[str], *, out_of_area: set[str]) -> dict:
    """A one-hour shift in ``zone_code`` starting 10 minutes from now, each of ``usernames`` confirmed, checked in
    inside, and checked out half an hour later (5 km away for those in ``out_of_area``: their hours wait)."""
    zone_id = zone_of(session, zone_code).id
    here = zone_center(admin, zone_id)
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(minutes=10), hours=1, capacity=3)
    clients = {name: login(name) for name in usernames}
    for name, client in clients.items():
        assert client.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    return {"shift": shift, "here": here, "clients": clients, "out_of_area": out_of_area}


def _check_in_and_out(clock, *served: dict) -> dict[str, int]:
    """Everyone of each shift checks in, and half an hour later out: their hours entries' ids by username."""
    for one in served:
        for name, client in one["clients"].items():
            assert post_check(client, one["shift"]["id"], "check-in", one["here"], key=f"{name}-in").status_code == 201
    clock.advance(minutes=30)
    entries = {}
    for one in served:
        for name, client in one["clients"].items():
            where = north_of(one["here"], 5000) if name in one["out_of_area"] else one["here"]
            answer = post_check(client, one["shift"]["id"], "check-out", where, key=f"{name}-out")
            assert answer.status_code == 201, answer.get_json()
            entries[name] = answer.get_json()["hours"]["id"]
    return entries


def test_a_bulk_review_with_a_mixed_list_decides_only_the_liaisons_pending_entries(admin, login, session, clock):
    """Guard (was right). The G01 liaison selects a page of ids and presses "approve all": their own pending entry,
    one already approved (auto, both ends inside), one of G02's (not theirs), an id that does not exist, and their
    pending entry again (ticked twice). They get one result per id, in the order sent: 200 for the pending one,
    409 already approved, 403 for G02's, 404 for the unknown; G02's entry and the decided one stay exactly as they
    were, and the totals count the newly approved half hour."""
    g01 = _served(admin, login, session, clock, "G01", ["volunteer-001", "volunteer-002"], out_of_area={"volunteer-001"})
    g02 = _served(admin, login, session, clock, "G02", ["volunteer-003"], out_of_area={"volunteer-003"})
    clock.advance(minutes=15)
    entries = _check_in_and_out(clock, g01, g02)
    pending, decided, other = entries["volunteer-001"], entries["volunteer-002"], entries["volunteer-003"]
    liaison = login("liaison-g01")
    answer = liaison.post("/api/v1/hours/review", json={"ids": [pending, decided, other, 2_000_000_000, pending],
                                                         "action": "approve", "note": "核实在岗"})
    assert answer.status_code == 200, answer.get_json()
    # the one already decided says how (as the single review's 409 does, status_now): the liaison sees why
    assert [(r["id"], r["status"], r.get("hours_status")) for r in answer.get_json()["results"]] == [
        (pending, 200, "approved"), (decided, 409, "approved"), (other, 403, None), (2_000_000_000, 404, None)]
    session.expire_all()
    rows = {e.id: (e.status, e.review_note, e.reviewed_by_id, e.auto_approved) for e in session.scalars(
        select(ServiceHours).where(ServiceHours.id.in_([pending, decided, other])))}
    assert rows[pending][:2] == ("approved", "核实在岗") and rows[pending][2] is not None
    assert rows[decided] == ("approved", None, None, True)
    assert rows[other] == ("pending", None, None, False)
    totals = liaison.get("/api/v1/hours/totals").get_json()
    assert (totals["total"], totals["total_hours"]) == (2, 1.0)
    # and the G02 liaison still finds theirs waiting
    assert [e["id"] for e in login("liaison-g02").get("/api/v1/hours").get_json()["items"]] == [other]
    # an admin checking the liaison's decisions sees who made each (nobody for the automatic approval)
    record = {e["id"]: e for e in admin.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}/hours")
              .get_json()["entries"]}
    assert record[pending]["reviewed_by_id"] == rows[pending][2] == _user_id(session, "liaison-g01")
    decided_entry = admin.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-002')}/hours").get_json()
    assert [e["reviewed_by_id"] for e in decided_entry["entries"] if e["id"] == decided] == [None]


def _user_id(session, username: str) -> int:
    from gridsvc.models import User

    return session.scalar(select(User.id).where(User.username == username))


def test_an_edit_of_a_cancelled_shift_says_why_it_is_refused(admin, login, session, clock):
    """The liaison opens a shift an admin has just cancelled and saves a new title: the 409 carries
    reason "cancelled", as a sign-up to it does, so the app can say "this shift was cancelled" rather than a
    generic conflict; nothing changes."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=1))
    assert admin.delete(f"/api/v1/shifts/{shift['id']}").status_code in (200, 204)
    problem = assert_problem(login("liaison-g01").patch(f"/api/v1/shifts/{shift['id']}", json={"title": "改名"}), 409)
    assert problem["reason"] == "cancelled" and "cancelled" in problem["detail"]
    assert admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["title"] == shift["title"]


def test_editing_a_running_shift_leaves_its_volunteers_on_duty_and_their_hours_as_served(admin, login, session, clock):
    """Guard (was right). Two volunteers are on duty at a running G01 shift (capacity 3). The liaison tries to
    shrink it to one place (409: two are confirmed), to end it half an hour early or to cancel it (409 started:
    hours are measured against its times), then adds a required skill and renames it, which work. Both stay on
    duty on the liaison's map, in the same places, and the hours of the one who then checks out are the
    overlap with the shift's times as they were when they checked in."""
    g01 = _served(admin, login, session, clock, "G01", ["volunteer-001", "volunteer-002"], out_of_area=set())
    shift_id, url = g01["shift"]["id"], f"/api/v1/shifts/{g01['shift']['id']}"
    clock.advance(minutes=15)
    for name, client in g01["clients"].items():
        assert post_check(client, shift_id, "check-in", g01["here"], key=f"{name}-in").status_code == 201
    liaison = login("liaison-g01")
    before = liaison.get(url).get_json()
    assert assert_problem(liaison.patch(url, json={"capacity": 1}), 409)["confirmed"] == 2
    early = (clock() + timedelta(minutes=5)).isoformat()
    assert assert_problem(liaison.patch(url, json={"ends_at": early}), 409)["reason"] == "started"
    assert assert_problem(liaison.delete(url), 409)["reason"] == "started"
    assert liaison.get(url).get_json() == before
    edited = liaison.patch(url, json={"required_skills": ["first_aid"], "title": "北门交通疏导（加急）"})
    assert edited.status_code == 200, edited.get_json()
    assert (edited.get_json()["status"], edited.get_json()["confirmed"]) == ("scheduled", 2)
    zone_map = liaison.get(f"/api/v1/zones/{g01['shift']['zone_id']}/map").get_json()
    assert zone_map["volunteers_on_duty"] == 2
    clock.advance(minutes=30)
    out = post_check(g01["clients"]["volunteer-001"], shift_id, "check-out", g01["here"], key="one-out")
    assert out.status_code == 201, out.get_json()
    assert (out.get_json()["hours"]["hours"], out.get_json()["hours"]["status"]) == (0.5, "approved")
    session.expire_all()
    assert session.get(Volunteer, volunteer_id(session, "volunteer-002")).on_duty_shift_id == shift_id


def test_cancelling_a_shift_while_the_liaison_raises_its_capacity_confirms_nobody(committed_app, engine, clock):
    """Guard (was right). A one-place G05 shift tomorrow: one confirmed, one waiting. The admin cancels it while the
    G05 liaison raises the capacity to 2. The raise waits for the cancellation and is refused (409), not run on
    the cancelled shift: the one waiting is not confirmed for a shift that will not run, and the roster stays
    as it was when it was cancelled."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G05").id
        first, second = volunteer_id(s, "volunteer-041"), volunteer_id(s, "volunteer-042")
    shift = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(days=1, hours=3))
    url = f"/api/v1/shifts/{shift['id']}"
    try:
        assert client_as(committed_app, "volunteer-041").post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
        assert client_as(committed_app, "volunteer-042").post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
        liaison = client_as(committed_app, "liaison-g05")
        answer = while_uncommitted(engine, lambda own: shift_service.cancel_shift(own, shift["id"], now=clock()),
                                   lambda: liaison.patch(url, json={"capacity": 2}))
        assert_problem(answer, 409)
        with engine.connect() as conn:
            status, capacity = conn.execute(select(Shift.status, Shift.capacity).where(Shift.id == shift["id"])).one()
            roster = dict(conn.execute(select(Signup.volunteer_id, Signup.status)
                                       .where(Signup.shift_id == shift["id"])).all())
        assert (status, capacity, roster) == ("cancelled", 1, {first: "confirmed", second: "waitlisted"})
    finally:
        delete_shifts(engine, shift["id"])
