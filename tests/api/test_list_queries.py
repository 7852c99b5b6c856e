"""A list costs the same number of statements for 3 items as for 20: related rows (skills, zones,
editors, offers, shifts) are read in one query per page, not one per item."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from gridsvc.models import CheckEvent, ServiceHours, User, Volunteer
from gridsvc.services.shifts import create_shift
from tests.api.test_requests import file
from tests.api.volunteer_helpers import zone_center, zone_of


@pytest.fixture()
def statements(connection):
    counted = {"n": 0}

    def count(*_args, **_kwargs):
        counted["n"] += 1

    event.listen(connection, "before_cursor_execute", count)
    yield counted
    event.remove(connection, "before_cursor_execute", count)


@pytest.fixture()
def twenty_of_each(admin_client, login, session, clock, lingfeng):
    """At least 20 shifts (each needing a skill), requests, and hours entries of volunteer-001 across 20 shifts."""
    g01 = zone_of(session, "G01")
    volunteer = session.scalar(select(Volunteer).join(User, User.id == Volunteer.user_id).where(User.username == "volunteer-001"))
    for i in range(20):
        shift = create_shift(session, zone_id=g01.id, title=f"past {i}", activity="traffic_guidance", capacity=3,
                             starts_at=clock() - timedelta(days=i + 1, hours=3), ends_at=clock() - timedelta(days=i + 1, hours=2),
                             required_skills=["traffic_parking"])
        check_in = CheckEvent(shift_id=shift.id, volunteer_id=volunteer.id, kind="check_in", effective_at=shift.starts_at,
                              position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87,
                              input_crs="wgs84", inside=True, distance_m=0, accepted=True, status_code=201, response={})
        session.add(check_in)
        session.flush()
        session.add(ServiceHours(volunteer_id=volunteer.id, shift_id=shift.id, check_in_id=check_in.id,
                                 started_at=shift.starts_at, ended_at=shift.ends_at, hours=1, status="pending"))
    session.commit()
    here = zone_center(admin_client, g01.id)
    for _ in range(20):
        assert file(login("worker-001"), here, service="other").status_code == 201
    return {"volunteer_id": volunteer.id, "community_id": lingfeng.id}


@pytest.mark.parametrize("path", [
    "/api/v1/shifts?include_cancelled=true&from=2000-01-01T00:00:00Z&",
    "/api/v1/requests?",
    "/api/v1/hours?",
    "/api/v1/users?",
    "/api/v1/volunteers?",
    "/api/v1/communities/{community_id}/enterprises?",
])
def test_a_page_of_20_costs_what_a_page_of_3_does(admin_client, twenty_of_each, statements, path):
    url = path.format(**twenty_of_each)
    counts = {}
    for limit in (3, 20):
        statements["n"] = 0
        answer = admin_client.get(f"{url}limit={limit}")
        assert answer.status_code == 200, answer.get_json()
        assert len(answer.get_json()["items"]) == limit
        counts[limit] = statements["n"]
    assert counts[20] == counts[3], counts


def test_hours_their_csv_and_the_zones_do_not_grow_with_their_rows(admin_client, twenty_of_each, statements):
    volunteer_id = twenty_of_each["volunteer_id"]
    for path, bound in ((f"/api/v1/volunteers/{volunteer_id}/hours", 15), (f"/api/v1/volunteers/{volunteer_id}/hours.csv", 15),
                        (f"/api/v1/communities/{twenty_of_each['community_id']}/zones", 8)):
        statements["n"] = 0
        answer = admin_client.get(path)
        assert answer.status_code == 200
        # 20 hours entries, 10 zones: over 40 and 22 statements when each row's relations were read one by one
        assert statements["n"] <= bound, (path, statements["n"])
