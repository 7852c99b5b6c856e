"""A privacy review (session 12): who may see a volunteer's duty and whereabouts, and which ids exist.

Each test failed before its fix."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gridsvc.models import Volunteer
from tests.api.test_checkins import admin, post_check  # noqa: F401  (fixture)
from tests.api.test_requests import file, g03  # noqa: F401  (fixture)
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem


def test_a_worker_or_another_volunteer_is_not_told_who_is_on_duty(login, g03, session):  # noqa: F811
    """``GET /volunteers/{id}`` as worker-001 or volunteer-005 said ``"on_duty": true``, where the README shows it
    to whoever may search volunteers (both are refused the search). And the requester's trail said "volunteer N
    went off duty before answering", with its time."""
    on_duty = g03["volunteers"]["volunteer-013"]
    for reader in ("worker-001", "volunteer-005"):
        assert login(reader).get(f"/api/v1/volunteers/{on_duty}").get_json()["on_duty"] is None, reader
    for reader in ("planner", "liaison-g03", "volunteer-013"):
        assert login(reader).get(f"/api/v1/volunteers/{on_duty}").get_json()["on_duty"] is True, reader
    requester = login("worker-001")
    request = file(requester, g03["here"]).get_json()
    assert request["offer"]["volunteer_id"] == on_duty
    session.get(Volunteer, on_duty).on_duty_shift_id = None  # checks out (the check-out's own path ends duty so)
    session.commit()
    assert requester.get(f"/api/v1/requests/{request['id']}").status_code == 200  # a read moves the offer on
    notes = [e["note"] for e in requester.get(f"/api/v1/requests/{request['id']}/events").get_json()]
    assert f"the offer to volunteer {on_duty} was withdrawn: they can no longer answer it" in notes
    assert not any("duty" in (note or "") for note in notes), notes


def test_a_liaison_keeps_no_gps_point_of_a_volunteer_whose_service_there_is_over(admin, login, session, clock):  # noqa: F811
    """volunteer-040 (home G10) served a G01 shift, hours approved, shift over: liaison-g01's view of the profile
    no longer shows a position, but ``/shifts/{id}/check-events`` still gave each event's exact point. Service
    past and decided grants nothing: the events stay listed, without where."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    me = login("volunteer-040")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    assert post_check(me, shift["id"], "check-in", *center).status_code == 201
    liaison = login("liaison-g01")
    url = f"/api/v1/shifts/{shift['id']}/check-events"
    [during] = liaison.get(url).get_json()["items"]
    assert during["point"] is not None and during["input"] is not None  # they work in G01 now
    clock.advance(minutes=40)
    assert post_check(me, shift["id"], "check-out", *center).get_json()["hours"]["status"] == "approved"
    clock.advance(hours=4)  # the shift over, the hours decided
    events = liaison.get(url).get_json()["items"]
    assert [(e["kind"], e["inside"], e["point"], e["input"]) for e in events] == [
        ("check_in", True, None, None), ("check_out", True, None, None)]
    assert all(e["point"] is not None for e in login("admin").get(url).get_json()["items"])


def test_an_anonymous_caller_cannot_tell_which_volunteer_ids_exist(client, session):
    """``GET /volunteers/{id}/shifts.ics`` without a token answered 401 for a volunteer and 404 for an id with
    none, with no key or a wrong one: anyone could count the volunteers."""
    real = volunteer_id(session, "volunteer-001")
    for query in ("", "?key=wrong"):
        there = client.get(f"/api/v1/volunteers/{real}/shifts.ics{query}")
        nobody = client.get(f"/api/v1/volunteers/999999/shifts.ics{query}")
        assert there.status_code == nobody.status_code == 401, query
        assert there.get_json()["detail"] == nobody.get_json()["detail"]


def test_a_liaisons_batch_keeps_to_their_zones(login, session):
    """liaison-g01's ``POST /dispatch/batch`` listed (and re-offered) a G05 request that answers them 404."""
    here = zone_center(login("admin"), zone_of(session, "G05").id)
    elsewhere = file(login("worker-002"), here, service="commute").get_json()
    assert elsewhere["status"] == "with_liaison"  # nobody on duty there
    assert_problem(login("liaison-g01").get(f"/api/v1/requests/{elsewhere['id']}"), 404)
    community = zone_of(session, "G05").community_id
    batch = login("liaison-g01").post(f"/api/v1/dispatch/batch?community_id={community}")
    assert batch.status_code == 200, batch.get_json()
    answer = batch.get_json()
    assert elsewhere["id"] not in answer["unassigned"] + [pair["request_id"] for pair in answer["pairs"]]
    mine = login("liaison-g05").post(f"/api/v1/dispatch/batch?community_id={community}").get_json()
    assert elsewhere["id"] in mine["unassigned"]
