"""A review of shifts: editing a running shift, and recurring series on a clock with daylight saving.

Each test failed before its fix; its docstring says what the user saw and should see.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_of
from tests.helpers import community_body, rect, zone_feature


@pytest.fixture()
def admin(login):
    return login("admin")


def _same_times(shift: dict) -> dict:
    return {"starts_at": shift["starts_at"], "ends_at": shift["ends_at"]}


@pytest.mark.parametrize("edit", [
    pytest.param(lambda s: {"title": "北门交通疏导（改）", "capacity": s["capacity"]}, id="capacity-unchanged"),
    pytest.param(lambda s: {"title": "北门交通疏导（改）", "required_skills": s["required_skills"]}, id="skills-unchanged"),
    pytest.param(lambda s: {"title": "北门交通疏导（改）", **_same_times(s)}, id="times-unchanged"),
])
def test_editing_the_title_of_a_running_shift_confirms_nobody_from_the_waitlist(login, admin, session, clock, edit):
    """A one-place shift came to require translation, and volunteer-001 withdrew before the start: volunteer-002,
    first in line, was passed over (no translation), and the place stayed free. Ten minutes into the shift
    volunteer-002 adds translation to their profile (which promotes nobody once a shift has started: sign-ups are
    closed). The liaison then fixes a typo in the title from an edit form that sends the other fields back
    unchanged (the same capacity, the same required skills, or the same times): volunteer-002 was confirmed,
    unawares, for a shift already running, and the roster showed the place filled. Only raising the capacity
    should confirm someone now (README); a PATCH that changes nothing but the title leaves the roster as it was
    (0 confirmed, 1 waiting)."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=1, starts_at=clock() + timedelta(hours=3))
    url = f"/api/v1/shifts/{shift['id']}"
    first, second = login("volunteer-001"), login("volunteer-002")
    assert first.post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
    assert second.post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
    shift = admin.patch(url, json={"required_skills": ["translation"]}).get_json()
    withdrawn = first.delete(f"{url}/signups/{volunteer_id(session, 'volunteer-001')}")
    assert withdrawn.status_code == 200 and withdrawn.get_json()["promoted"] == []
    clock.current = datetime.fromisoformat(shift["starts_at"]) + timedelta(minutes=10)
    profile = f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-002')}"
    skills = second.get(profile).get_json()["skills"]
    assert second.patch(profile, json={"skills": [*skills, "translation"]}).status_code == 200
    assert admin.get(url).get_json()["confirmed"] == 0

    edited = login("liaison-g01").patch(url, json=edit(shift))
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["title"] == "北门交通疏导（改）"
    assert (edited.get_json()["confirmed"], edited.get_json()["waitlisted"]) == (0, 1), edited.get_json()
    roster = login("liaison-g01").get(f"{url}/signups").get_json()["items"]
    assert [(s["volunteer_id"], s["status"]) for s in roster] == [(volunteer_id(session, "volunteer-002"), "waitlisted")]


def test_a_series_over_a_spring_clock_change_is_created(admin, session):
    """A market on Berlin's clock posts a night patrol, 02:30-03:30 on Saturday, Sunday and Monday, 29-31 March
    2031. On Sunday 30 March the clocks go from 02:00 to 03:00, so that day's 02:30 does not exist on the wall:
    the service read both times with the offset before the change, 02:30+01:00 and 03:30+02:00, the same instant,
    and refused the whole template with a 422 "A shift must end after it starts" naming ends_at, though 03:30 is
    after 02:30 and the other two nights are ordinary. It should create the series (the Saturday and Monday
    shifts at 02:30-03:30 local time, and Sunday's at the times that exist, e.g. 03:00-03:30 or 03:30-04:30, or
    left out and said so), not refuse every night for one clock change."""
    community = admin.post("/api/v1/communities", json=community_body(
        name="Berliner Markt", boundary=rect(13.40, 52.50, 1000, 1000), timezone="Europe/Berlin"))
    assert community.status_code == 201, community.get_json()
    zone = admin.post(f"/api/v1/communities/{community.get_json()['id']}/zones",
                      json=zone_feature("B1", rect(13.40, 52.50, 1000, 1000)))
    assert zone.status_code == 201, zone.get_json()
    answer = admin.post("/api/v1/shifts/series", json={
        "title": "Nachtstreife", "activity": "market_patrol", "zone_id": zone.get_json()["id"], "capacity": 2,
        "weekdays": [6, 7, 1], "start_time": "02:30", "end_time": "03:30",
        "from_date": "2031-03-29", "until_date": "2031-03-31"})
    assert answer.status_code == 201, answer.get_json()
    berlin = ZoneInfo("Europe/Berlin")
    local = sorted(tuple(datetime.fromisoformat(item[key]).astimezone(berlin).replace(tzinfo=None)
                         for key in ("starts_at", "ends_at")) for item in answer.get_json()["items"])
    # Sunday's 02:30 is read as RFC 5545 reads it (03:30), and the night keeps its hour
    assert local == [(datetime(2031, 3, 29, 2, 30), datetime(2031, 3, 29, 3, 30)),
                     (datetime(2031, 3, 30, 3, 30), datetime(2031, 3, 30, 4, 30)),
                     (datetime(2031, 3, 31, 2, 30), datetime(2031, 3, 31, 3, 30))], local


def test_a_series_over_the_autumn_clock_change_ends_at_its_wall_clock_time():
    """02:00-03:00 on the night Berlin's clocks go back from 03:00 to 02:00: the patrol goes home at 03:00 on the
    wall, two real hours later (02:00 is read before the change, as RFC 5545 reads the first of two)."""
    from gridsvc.services.shifts import occurrences

    berlin = ZoneInfo("Europe/Berlin")
    [(start, end)] = occurrences(weekdays=[7], start_time=time(2), end_time=time(3), from_date=date(2031, 10, 26),
                                 until_date=date(2031, 10, 26), tz=berlin)
    assert (start.isoformat(), end.isoformat()) == ("2031-10-26T02:00:00+02:00", "2031-10-26T03:00:00+01:00")
