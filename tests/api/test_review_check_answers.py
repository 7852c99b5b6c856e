"""Check-in and check-out answers found in review: the verdict as the figures show it, and what a key names.

Each test failed before its fix; its docstring says what the volunteer saw and sees now.
"""
from __future__ import annotations

from datetime import timedelta

from pyproj import Geod
from sqlalchemy import func, select

from gridsvc.models import CheckEvent
from tests.api.test_checkins import admin, duty  # noqa: F401  (fixtures)
from tests.api.volunteer_helpers import make_shift, north_of, zone_center, zone_of
from tests.helpers import assert_problem

WGS84 = Geod(ellps="WGS84")


def test_a_check_in_is_judged_on_the_distance_and_allowance_its_answer_gives(admin, login, session, clock):
    """A gate shift with a 50 m radius; the phone is 70.04 m from the gate (20.04 m outside) and reports 20 m
    accuracy. It was refused, but the answer's fields read {"inside": false, "distance_m": 20.0, "allowed_m": 20.0}:
    by the numbers it gives, the volunteer was within the allowance (only the prose `detail` rounded outward).
    Now the verdict is taken on the figures shown, to a tenth of a metre: every answer's `inside` is
    `distance_m <= allowed_m`, and the detail of a refusal gives the same two figures."""
    gate = zone_center(admin, zone_of(session, "G02").id)
    shift = make_shift(admin, point=gate, radius_m=50, starts_at=clock() + timedelta(minutes=10))
    volunteer = login("volunteer-002")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    url = f"/api/v1/shifts/{shift['id']}/check-in"
    verdicts = []
    for metres_from_gate, accuracy in ((70.04, 20), (70.07, 20), (62.38, 12.36), (62.48, 12.36), (62.34, 12.33)):
        lon, lat, _ = WGS84.fwd(gate[0], gate[1], 0, metres_from_gate)
        body = volunteer.post(url, json={"lon": lon, "lat": lat, "accuracy_m": accuracy}).get_json()
        assert body["inside"] is (body["distance_m"] <= body["allowed_m"]), body
        if body["inside"]:
            assert volunteer.post(f"/api/v1/shifts/{shift['id']}/check-out",
                                  json={"lon": lon, "lat": lat}).status_code == 201
        else:
            assert body["reason"] == "outside_geofence", body
            assert (f"You are {body['distance_m']:.1f} m outside the shift's area (allowed {body['allowed_m']:.1f} m"
                    in body["detail"]), body
        verdicts.append((body["distance_m"], body["allowed_m"], body["inside"]))
    assert verdicts == [(20.0, 20.0, True), (20.1, 20.0, False), (12.4, 12.4, True), (12.5, 12.4, False),
                        (12.3, 12.3, True)]


def test_the_same_key_for_a_check_in_from_another_position_is_not_replayed(duty, session):
    """The phone checks in 5 km away with Idempotency-Key K1 (refused, outside the area), walks to the zone and
    sends a check-in from the middle of it with the same key. It gets the old refusal back ("outside_geofence",
    5000 m, Idempotent-Replayed: true) and nothing is recorded; the app tells a volunteer standing in the zone
    that they are 5 km away. The README's rule for every write is "the same key for another request is a 422"
    (a retry is the same method, path and body); the check-in's stored key only compares shift and kind.
    A check-in from another position (another body) with a used key should be the 422 naming the key."""
    volunteer, shift_id, center = duty["client"], duty["shift"]["id"], duty["center"]
    url = f"/api/v1/shifts/{shift_id}/check-in"
    far = north_of(center, 5000)
    first = volunteer.post(url, json={"lon": far[0], "lat": far[1], "accuracy_m": 10}, headers={"Idempotency-Key": "K1"})
    assert assert_problem(first, 422, "check-refused")["reason"] == "outside_geofence"
    again = volunteer.post(url, json={"lon": center[0], "lat": center[1], "accuracy_m": 10},
                           headers={"Idempotency-Key": "K1"})
    assert "Idempotent-Replayed" not in again.headers, again.get_json()
    assert "Idempotency-Key" in assert_problem(again, 422).get("errors", {})
    assert session.scalar(select(func.count()).where(CheckEvent.volunteer_id == duty["id"])) == 1


def test_a_check_in_whose_answer_was_lost_and_queued_offline_with_its_key_is_replayed(duty, session, clock):
    """The other side of the rule above: the app sent a check-in online, lost the answer, queued the same event
    for the offline upload with its client time, and sent it later. Same key, same position: the same event,
    replayed (not a 422, not a second stint)."""
    volunteer, shift_id, center = duty["client"], duty["shift"]["id"], duty["center"]
    sent_at = clock()
    online = volunteer.post(f"/api/v1/shifts/{shift_id}/check-in",
                            json={"lon": center[0], "lat": center[1], "accuracy_m": 10}, headers={"Idempotency-Key": "K2"})
    assert online.status_code == 201
    clock.advance(minutes=3)
    [queued] = volunteer.post("/api/v1/me/check-events", json={"events": [
        {"shift_id": shift_id, "kind": "check_in", "client_time": sent_at.isoformat(), "lon": center[0],
         "lat": center[1], "accuracy_m": 10, "idempotency_key": "K2"}]}).get_json()["results"]
    assert (queued["status"], queued["replayed"]) == (201, True), queued
    assert queued["result"]["event_id"] == online.get_json()["event_id"]
    assert session.scalar(select(func.count()).where(CheckEvent.volunteer_id == duty["id"])) == 1
