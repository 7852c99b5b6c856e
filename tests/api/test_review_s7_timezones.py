"""Review (s7): the service's days do not depend on the time zone around it.

An operations team in China commonly runs PostgreSQL with ``timezone = 'Asia/Shanghai'`` (postgresql.conf, or
``ALTER DATABASE ... SET timezone``) and the app server with ``TZ=Asia/Shanghai``; others leave UTC, or a
laptop's own zone. Every day boundary must come from the community's own ``timezone`` column, never from the
database session's TimeZone nor the process's TZ.

Each test runs with the test connection's session TimeZone and the process's TZ set to zones chosen so that a
day read on either of them differs from the park's (Asia/Shanghai, UTC+8): Pacific/Kiritimati (UTC+14) puts
both stints below on 1 April, America/Los_Angeles (UTC-7 in spring) both on 31 March, Asia/Kolkata (UTC+5:30)
puts hour buckets on the half hour; Asia/Shanghai for both is the usual Chinese setting. All guards: checked
sound (the whole suite was also run under PGTZ/TZ = Asia/Shanghai, America/New_York, Pacific/Kiritimati and
Pacific/Pago_Pago; the only failures were tests that compare a time's text, whose offset is the session's: the
instant is the same).
"""
from __future__ import annotations

import csv
import io
import os
import time as walltime
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gridsvc.models import OccupancyObservation, ParkingLot, ServiceHours
from tests.api.volunteer_helpers import approved_hours, volunteer_id, zone_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
ACTIVITY = "tz_review_patrol"  # only these tests' shifts have it

# (database session TimeZone, process TZ)
AROUND = [("Pacific/Kiritimati", "America/Los_Angeles"), ("America/Los_Angeles", "Pacific/Kiritimati"),
          ("Asia/Kolkata", "Asia/Kolkata"), ("Asia/Shanghai", "Asia/Shanghai")]


@pytest.fixture(params=AROUND, ids=[f"db={d},tz={p}" for d, p in AROUND])
def deployed(request, connection):
    """The database session's TimeZone and the process's TZ set as a deployment around the service might
    (SET inside the test's transaction: its rollback undoes it)."""
    db_zone, process_zone = request.param
    connection.exec_driver_sql(f"SET timezone = '{db_zone}'")
    assert connection.exec_driver_sql("SHOW timezone").scalar() == db_zone
    before = os.environ.get("TZ")
    os.environ["TZ"] = process_zone
    walltime.tzset()
    try:
        yield request.param
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        walltime.tzset()


@pytest.fixture()
def admin(login):
    return login("admin")


def _stint(session, zone_id: int, starts: datetime, hours: float = 1.0) -> ServiceHours:
    return approved_hours(session, zone_id, starts, hours, activity=ACTIVITY, title="夜间巡查", at=(121.78, 29.87))


def test_hours_fall_on_the_parks_day_and_month_whatever_the_zone_around(deployed, admin, login, session):
    """Guard (checked sound): a volunteer served 22:00-23:00 on 31 March in Lingfeng and 00:30-01:30 on
    1 April. Read on the database's or the server's clock both stints fall on one day (1 April at UTC+14, 31
    March at UTC-7); the volunteer's report, its CSV for the national record and the liaison's queue and totals
    keep them on the park's days, in March and in April."""
    g01 = zone_of(session, "G01").id
    march = _stint(session, g01, datetime(2031, 3, 31, 22, 0, tzinfo=SHANGHAI))
    april = _stint(session, g01, datetime(2031, 4, 1, 0, 30, tzinfo=SHANGHAI))
    vid = volunteer_id(session, "volunteer-001")
    me = login("volunteer-001")
    url = f"/api/v1/volunteers/{vid}/hours"

    whole = me.get(f"{url}?from=2031-03-31&to=2031-04-01").get_json()
    assert [(m["key"], m["approved"]) for m in whole["by_month"]] == [("2031-03", 1.0), ("2031-04", 1.0)], whole
    assert [e["id"] for e in me.get(f"{url}?from=2031-03-01&to=2031-03-31").get_json()["entries"]] == [march.id]
    assert [e["id"] for e in me.get(f"{url}?from=2031-04-01&to=2031-04-30").get_json()["entries"]] == [april.id]

    answer = me.get(f"{url}.csv?from=2031-03-31&to=2031-04-01")
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row[3:7] for row in rows[1:]] == [["2031-03-31", "22:00:00", "23:00:00", "1.00"],
                                              ["2031-04-01", "00:30:00", "01:30:00", "1.00"]]

    queue = admin.get(f"/api/v1/hours?status=approved&volunteer_id={vid}&from=2031-03-31&to=2031-03-31").get_json()
    assert [e["id"] for e in queue["items"]] == [march.id]
    liaison = login("liaison-g01")
    for day, hours in (("2031-03-31", 1.0), ("2031-04-01", 1.0), ("2031-04-02", 0.0)):
        totals = liaison.get(f"/api/v1/hours/totals?from={day}&to={day}").get_json()
        assert totals["total_hours"] == hours, (day, totals)


def test_occupancy_buckets_start_at_the_parks_midnights_and_hours(deployed, admin, session):
    """Guard (checked sound): a Lingfeng lot counted at 23:30 on 31 March and at 00:30 and 00:45 on 1 April.
    The daily series has two days starting at the park's midnights (not the database's: at UTC+14 all three
    counts are on 1 April), written on the park's clock; hourly buckets start on the park's hours (at UTC+5:30
    a truncation to the session's hour would start them on the half hour)."""
    lot = session.scalars(select(ParkingLot).where(ParkingLot.community_id == zone_of(session, "G01").community_id)
                          .order_by(ParkingLot.id)).first()
    for at, occupied in ((datetime(2031, 3, 31, 23, 30), 10), (datetime(2031, 4, 1, 0, 30), 20),
                         (datetime(2031, 4, 1, 0, 45), 30)):
        session.add(OccupancyObservation(lot_id=lot.id, observed_at=at.replace(tzinfo=SHANGHAI), occupied=occupied))
    session.flush()
    url = f"/api/v1/parking/lots/{lot.id}/occupancy"
    window = {"from": "2031-03-31T00:00:00+08:00", "to": "2031-04-02T00:00:00+08:00"}

    days = admin.get(url, query_string={**window, "bucket": "1d"}).get_json()
    assert [(b["start"], b["peak"], b["samples"]) for b in days["buckets"]] == [
        ("2031-03-31T00:00:00+08:00", 10, 1), ("2031-04-01T00:00:00+08:00", 30, 2)], days
    hours = admin.get(url, query_string={**window, "bucket": "1h"}).get_json()
    assert [(b["start"], b["samples"]) for b in hours["buckets"]] == [
        ("2031-03-31T23:00:00+08:00", 1), ("2031-04-01T00:00:00+08:00", 2)], hours


def test_times_without_an_offset_are_the_parks_whatever_the_zone_around(deployed, admin, login, session):
    """Guard (checked sound): a liaison types a shift as 07:30-09:00 on 6 May; the shift search (in Python) and
    a volunteer's own list of shifts (in SQL, each shift's community's clock) read times typed the same way as
    the park's wall-clock times, not the database's nor the server's; a weekly series "Tuesdays 07:30-09:00"
    gets its one Tuesday at 07:30 in the park."""
    g01 = zone_of(session, "G01").id
    shift = admin.post("/api/v1/shifts", json={"title": "早班巡查", "activity": ACTIVITY, "zone_id": g01,
                                               "capacity": 3, "starts_at": "2031-05-06T07:30:00",
                                               "ends_at": "2031-05-06T09:00:00"})
    assert shift.status_code == 201, shift.get_json()
    shift = shift.get_json()
    assert datetime.fromisoformat(shift["starts_at"]) == datetime(2031, 5, 6, 7, 30, tzinfo=SHANGHAI)
    volunteer, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201

    def searched(**params) -> list[int]:
        answer = admin.get("/api/v1/shifts", query_string={"activity": ACTIVITY, **params})
        assert answer.status_code == 200, answer.get_json()
        return [item["id"] for item in answer.get_json()["items"]]

    def listed(**params) -> list[int]:
        answer = volunteer.get(f"/api/v1/volunteers/{vid}/signups", query_string=params)
        assert answer.status_code == 200, answer.get_json()
        return [item["shift"]["id"] for item in answer.get_json()["items"] if item["shift"]["activity"] == ACTIVITY]

    for found in (searched, listed):
        assert found(**{"from": "2031-05-06T08:59:00"}) == [shift["id"]], found
        assert found(**{"from": "2031-05-06T09:00:00"}) == [], found
        assert found(**{"from": "2031-05-06T00:00:00", "to": "2031-05-06T07:31:00"}) == [shift["id"]], found
        assert found(**{"from": "2031-05-06T00:00:00", "to": "2031-05-06T07:30:00"}) == [], found

    series = admin.post("/api/v1/shifts/series", json={
        "title": "周二巡查", "activity": ACTIVITY, "zone_id": g01, "capacity": 2, "weekdays": [2],
        "start_time": "07:30", "end_time": "09:00", "from_date": "2031-05-12", "until_date": "2031-05-18"})
    assert series.status_code == 201, series.get_json()
    later = admin.get("/api/v1/shifts", query_string={"activity": ACTIVITY, "zone_id": g01,
                                                      "from": "2031-05-12T00:00:00+08:00"}).get_json()["items"]
    assert [datetime.fromisoformat(item["starts_at"]) for item in later] == [datetime(2031, 5, 13, 7, 30,
                                                                                      tzinfo=SHANGHAI)]
