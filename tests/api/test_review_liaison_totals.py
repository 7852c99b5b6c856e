"""A grid liaison's day through the API, reviewed: what a liaison would call wrong (each test failed before its fix)."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.volunteer_helpers import make_shift, post_check, zone_center, zone_of


def check(client, shift_id, kind, point, key):
    answer = post_check(client, shift_id, kind, point, key=key)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_hours_totals_last_served_is_the_end_of_a_stint_counted_not_of_one_that_missed_its_shift(login, session,
                                                                                                  clock):
    """The liaison's recognition list says a volunteer with one stint counted (``entries: 1``, an hour served
    this morning) was last served at the start of a shift that has not even begun: the 0-hour entry of a
    check-in and check-out made by mistake before that shift's start (both ends are the shift's start). The
    field is "the end of the latest stint counted": it should be the end of the hour served."""
    liaison = login("liaison-g01")
    g01 = zone_of(session, "G01").id
    at = zone_center(liaison, g01)
    volunteer = login("volunteer-001")
    served = make_shift(liaison, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    later = make_shift(liaison, zone_id=g01, starts_at=clock() + timedelta(hours=3), hours=1)
    for shift in (served, later):
        assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    check(volunteer, served["id"], "check-in", at, "served-in")
    clock.advance(hours=1)
    served_out = check(volunteer, served["id"], "check-out", at, "served-out")
    assert served_out["hours"]["hours"] == 1.0 and served_out["hours"]["status"] == "approved"
    clock.advance(minutes=90)  # 20 minutes before the later shift: check-in is open
    check(volunteer, later["id"], "check-in", at, "early-in")
    clock.advance(minutes=5)
    missed = check(volunteer, later["id"], "check-out", at, "early-out")  # by mistake, before the start
    assert missed["hours"]["hours"] == 0.0

    report = liaison.get("/api/v1/hours/totals").get_json()
    [item] = report["items"]
    assert item["hours"] == 1.0 and item["entries"] == 1  # the 0-hour stint is not counted ...
    last = datetime.fromisoformat(item["last_served_at"])
    assert last <= clock(), f"last served at {last}, after now ({clock()})"
    # ... so the last service is the end of the hour served
    assert last == datetime.fromisoformat(served_out["hours"]["ended_at"])
