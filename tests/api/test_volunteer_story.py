"""Issue 4's story, over HTTP with a demo account and the demo shifts: find a
shift near you, sign up, check in with a GCJ-02 position, check out, see
approved hours."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from geo.crs import from_wgs84
from tests.api.volunteer_helpers import zone_center, zone_of


def test_demo_volunteer_from_shift_search_to_approved_hours(login, session, clock):
    volunteer = login("volunteer-001")  # home zone G01, traffic_parking
    me = volunteer.get("/api/v1/me/volunteer").get_json()
    here = zone_center(login("admin"), zone_of(session, "G01").id)
    phone = from_wgs84(*here, "gcj02")  # what AMap hands the app
    assert volunteer.post("/api/v1/me/location", json={"lon": phone[0], "lat": phone[1], "crs": "gcj02",
                                                        "accuracy_m": 12}).status_code == 201

    found = volunteer.get(f"/api/v1/shifts?near={here[0]},{here[1]}&radius_m=500&has_space=true&skill=traffic_parking"
                          f"&from={clock().isoformat().replace('+', '%2B')}").get_json()
    assert found["total"] > 0
    shift = found["items"][0]
    assert shift["distance_m"] == 0 and shift["zone_id"] == zone_of(session, "G01").id
    assert "早高峰" in shift["title"] and shift["places_left"] > 0

    signup = volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()
    assert signup["status"] == "confirmed"

    starts = datetime.fromisoformat(shift["starts_at"])
    clock.current = starts + timedelta(minutes=2)
    checked_in = volunteer.post(f"/api/v1/shifts/{shift['id']}/check-in",
                                json={"lon": phone[0], "lat": phone[1], "crs": "gcj02", "accuracy_m": 12},
                                headers={"Idempotency-Key": "demo-in-1"})
    assert checked_in.status_code == 201 and checked_in.get_json()["inside"]
    assert volunteer.get("/api/v1/me/volunteer").get_json()["on_duty"] is True

    clock.current = datetime.fromisoformat(shift["ends_at"]) - timedelta(minutes=4)
    checked_out = volunteer.post(f"/api/v1/shifts/{shift['id']}/check-out",
                                 json={"lon": phone[0], "lat": phone[1], "crs": "gcj02", "accuracy_m": 12},
                                 headers={"Idempotency-Key": "demo-out-1"}).get_json()
    assert checked_out["hours"] == {**checked_out["hours"], "hours": 1.4, "status": "approved"}

    report = volunteer.get(f"/api/v1/volunteers/{me['id']}/hours").get_json()
    assert report["approved"] == pytest.approx(1.4) and report["entries"][0]["auto_approved"]
