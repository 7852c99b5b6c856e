"""Review: times without an offset are read on the right community's clock (each test failed before its fix,
unless its docstring says it guards behaviour that was right).

The demo park keeps Shanghai time (UTC+8); a market here keeps Xinjiang time (Asia/Urumqi, UTC+6 all year), two
hours behind. A time read on the wrong clock lands two hours off, which the tests place a shift's edge between.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gridsvc.models import CheckEvent, Community, ServiceHours, Shift
from gridsvc.seed import load_demo_shifts
from gridsvc.services import communities, zones
from tests.api.volunteer_helpers import approved_hours, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, community_body, rect, zone_feature

SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")
ORIGIN = (87.60, 43.80)  # in Urumqi
DAY = "2031-05-06"  # a Tuesday, far from the demo park's own shifts
ACTIVITY = "bazaar_patrol"  # only the tests' shifts have it


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def market(admin) -> dict:
    """A market on Xinjiang time, with one zone."""
    community = admin.post("/api/v1/communities", json=community_body(
        name="乌鲁木齐大巴扎 Urumqi Bazaar", boundary=rect(*ORIGIN, 1000, 1000), timezone="Asia/Urumqi"))
    assert community.status_code == 201, community.get_json()
    zone = admin.post(f"/api/v1/communities/{community.get_json()['id']}/zones",
                      json=zone_feature("U1", rect(*ORIGIN, 1000, 1000)))
    assert zone.status_code == 201, zone.get_json()
    return {"community_id": community.get_json()["id"], "zone_id": zone.get_json()["id"]}


def _morning_shift(admin, zone_id: int, day: str = DAY) -> dict:
    """07:30-09:00 on the zone's community's clock (times sent without an offset, as a liaison types them)."""
    answer = admin.post("/api/v1/shifts", json={
        "title": "早市巡查", "activity": ACTIVITY, "zone_id": zone_id, "capacity": 3,
        "starts_at": f"{day}T07:30:00", "ends_at": f"{day}T09:00:00"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def _found(client, **params) -> list[int]:
    answer = client.get("/api/v1/shifts?" + urlencode({"activity": ACTIVITY, **params}))
    assert answer.status_code == 200, answer.get_json()
    return [item["id"] for item in answer.get_json()["items"]]


# ------------------------------------------------------------------ 1. the shift search


def test_a_search_kept_to_one_community_reads_naive_times_on_its_clock(admin, market):
    """?zone_id=&from=...T09:30 (no offset) was 09:30 in Shanghai, 01:30 UTC, and found the market's 07:30-09:00
    shift (Xinjiang time, 01:30-03:00 UTC), over half an hour before; on the market's clock 09:30 is after it."""
    shift = _morning_shift(admin, market["zone_id"])
    assert datetime.fromisoformat(shift["ends_at"]) == datetime(2031, 5, 6, 9, tzinfo=URUMQI)
    for pinned in ({"zone_id": market["zone_id"]}, {"community_id": market["community_id"]}):
        assert _found(admin, **pinned, **{"from": f"{DAY}T07:00:00"}) == [shift["id"]]
        assert _found(admin, **pinned, **{"from": f"{DAY}T09:30:00"}) == []
        # to: shifts starting before it; 07:45 there is after the 07:30 start (07:45 in Shanghai is 05:45 there)
        assert _found(admin, **pinned, **{"from": f"{DAY}T00:00:00", "to": f"{DAY}T07:45:00"}) == [shift["id"]]
        assert _found(admin, **pinned, **{"from": f"{DAY}T00:00:00", "to": f"{DAY}T07:15:00"}) == []
    # an offset always wins: 09:30 Shanghai time is 07:30 in the market, while the shift runs
    assert _found(admin, zone_id=market["zone_id"], **{"from": f"{DAY}T09:30:00+08:00"}) == [shift["id"]]


def test_a_series_search_reads_naive_times_on_the_series_communitys_clock(admin, market):
    """?series_id= keeps to the series' community: its 07:30 is the market's."""
    series = admin.post("/api/v1/shifts/series", json={
        "title": "早市巡查", "activity": ACTIVITY, "zone_id": market["zone_id"], "capacity": 2, "weekdays": [2, 3],
        "start_time": "07:30", "end_time": "09:00", "from_date": DAY, "until_date": "2031-05-07"}).get_json()
    tuesday, wednesday = (item["id"] for item in series["items"])
    assert _found(admin, series_id=series["series_id"], **{"from": f"{DAY}T08:45:00"}) == [tuesday, wednesday]
    assert _found(admin, series_id=series["series_id"], **{"from": f"{DAY}T09:15:00"}) == [wednesday]


def test_a_search_over_several_communities_reads_naive_times_on_the_default_clock(admin, market, session):
    """Guard (documented default): a search that may span communities reads a naive time on
    GRIDSVC_DEFAULT_TIMEZONE's clock (Asia/Shanghai), and the OpenAPI document says so."""
    there = _morning_shift(admin, market["zone_id"])  # 01:30-03:00 UTC
    here = _morning_shift(admin, zone_of(session, "G01").id)  # 07:30-09:00 Shanghai: 23:30-01:00 UTC
    # 08:30 Shanghai is 00:30 UTC: the park's shift is running, the market's to come; both are found
    assert _found(admin, **{"from": f"{DAY}T08:30:00"}) == [here["id"], there["id"]]
    # 10:30 Shanghai is 02:30 UTC: the market's shift (till 03:00 UTC) still runs; read there, 10:30 was after it
    assert _found(admin, **{"from": f"{DAY}T10:30:00"}) == [there["id"]]
    spec = admin.get("/api/openapi.json").get_json()
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/shifts"]["get"]["parameters"]}
    for name in ("from", "to"):
        assert "GRIDSVC_DEFAULT_TIMEZONE" in parameters[name]["description"]
        assert "zone_id" in parameters[name]["description"]
    assert "GRIDSVC_DEFAULT_TIMEZONE" in spec["paths"]["/api/v1/shifts"]["get"]["description"]


def test_a_naive_search_for_an_unknown_zone_or_community_finds_nothing_and_is_no_error(admin, market):
    """Guard: the community's clock is looked up for a naive time; an unknown one is an empty page, not a 500."""
    _morning_shift(admin, market["zone_id"])
    for pinned in ({"zone_id": 2_000_000_000}, {"community_id": 2_000_000_000}, {"series_id": "no-such-series"}):
        assert _found(admin, **pinned, **{"from": f"{DAY}T07:00:00"}) == []
    assert_problem(admin.get(f"/api/v1/shifts?zone_id={market['zone_id']}&from=tomorrow"), 422)


# ------------------------------------------------------------------ 2. "my shifts"


def test_my_shifts_read_naive_times_on_each_shifts_own_clock(admin, login, market, session):
    """A volunteer's list read ?from=/?to= without an offset in Shanghai: the market's shift was listed from 09:30,
    after it ended there, and not up to 08:00, though it started at 07:30 there. Each shift's own clock now: the
    park's and the market's shift are both in "07:00 to 08:00" (each on its own clock)."""
    there = _morning_shift(admin, market["zone_id"])
    here = _morning_shift(admin, zone_of(session, "G01").id)
    me = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    for shift in (there, here):
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"

    def listed(**params) -> list[int]:
        answer = me.get(f"/api/v1/volunteers/{vid}/signups?" + urlencode(params))
        assert answer.status_code == 200, answer.get_json()
        return [item["shift"]["id"] for item in answer.get_json()["items"]]

    assert listed(**{"from": f"{DAY}T07:00:00", "to": f"{DAY}T08:00:00"}) == [here["id"], there["id"]]
    assert listed(**{"from": f"{DAY}T08:50:00", "to": f"{DAY}T12:00:00"}) == [here["id"], there["id"]]
    assert listed(**{"from": f"{DAY}T09:30:00", "to": f"{DAY}T12:00:00"}) == []
    assert listed(**{"from": f"{DAY}T00:00:00", "to": f"{DAY}T07:15:00"}) == []
    # with an offset, one instant for both: 09:30 Shanghai is after the park's shift, during the market's
    assert listed(**{"from": f"{DAY}T09:30:00+08:00", "to": f"{DAY}T12:00:00+08:00"}) == [there["id"]]
    assert_problem(me.get(f"/api/v1/volunteers/{vid}/signups?from=2031-13-01T00:00:00"), 422)


# ------------------------------------------------------------------ 3. check-in and offline client times


@pytest.fixture()
def on_duty(admin, login, market, session, clock):
    """volunteer-001 confirmed for the market's 07:30-09:00 shift, at 07:40 there."""
    clock.current = datetime(2031, 5, 6, 7, 0, tzinfo=URUMQI)
    shift = _morning_shift(admin, market["zone_id"])
    me = login("volunteer-001")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    clock.current = datetime(2031, 5, 6, 7, 40, tzinfo=URUMQI)
    return {"shift": shift, "client": me, "id": volunteer_id(session, "volunteer-001"),
            "center": zone_center(admin, market["zone_id"])}


def test_an_online_check_in_with_a_naive_client_time_records_it_on_the_shifts_clock(on_duty, session):
    """The phone's clock, sent without an offset, was stored as Shanghai time: 07:40 there became 05:40 there."""
    lon, lat = on_duty["center"]
    answer = on_duty["client"].post(f"/api/v1/shifts/{on_duty['shift']['id']}/check-in",
                                    json={"lon": lon, "lat": lat, "client_time": f"{DAY}T07:39:00"})
    assert answer.status_code == 201, answer.get_json()
    event = session.scalar(select(CheckEvent).where(CheckEvent.id == answer.get_json()["event_id"]))
    assert event.client_time == datetime(2031, 5, 6, 7, 39, tzinfo=URUMQI)
    # an online event counts at the server's time, whatever the phone's clock says
    assert datetime.fromisoformat(answer.get_json()["at"]) == datetime(2031, 5, 6, 7, 40, tzinfo=URUMQI)


def test_offline_events_with_naive_client_times_count_on_the_shifts_clock(on_duty, session, clock):
    """An offline check-in at 07:45 (no offset) was read as 07:45 in Shanghai, 05:45 in the market: before the
    check-in window opened (07:00 there), refused. On the market's clock it is accepted at 07:45 there, and the
    hours run 07:45-08:50."""
    clock.current = datetime(2031, 5, 6, 9, 10, tzinfo=URUMQI)  # back online after the shift
    shift_id, (lon, lat) = on_duty["shift"]["id"], on_duty["center"]

    def event(kind: str, at: str, key: str, shift: int = shift_id) -> dict:
        return {"shift_id": shift, "kind": kind, "client_time": at, "lon": lon, "lat": lat, "accuracy_m": 10,
                "idempotency_key": key}

    answer = on_duty["client"].post("/api/v1/me/check-events", json={"events": [
        event("check_out", f"{DAY}T02:50:00Z", "out"),  # with an offset: 08:50 there
        event("check_in", f"{DAY}T07:45:00", "in"),
        event("check_in", f"{DAY}T07:46:00", "lost", shift=2_000_000_000),  # no such shift: a 404 of its own
    ]})
    assert answer.status_code == 200, answer.get_json()
    results = {r["idempotency_key"]: r for r in answer.get_json()["results"]}
    assert [results[k]["status"] for k in ("out", "in", "lost")] == [201, 201, 404], results
    assert datetime.fromisoformat(results["in"]["result"]["at"]) == datetime(2031, 5, 6, 7, 45, tzinfo=URUMQI)
    assert results["in"]["result"]["at"] == "2031-05-06T01:45:00+00:00"  # in UTC, as every GET writes an instant
    assert results["out"]["result"]["hours"]["hours"] == pytest.approx(1.08)  # 65 minutes
    entry = session.scalar(select(ServiceHours).where(ServiceHours.shift_id == shift_id))
    assert (entry.started_at, entry.ended_at) == (datetime(2031, 5, 6, 7, 45, tzinfo=URUMQI),
                                                  datetime(2031, 5, 6, 8, 50, tzinfo=URUMQI))


def test_a_position_with_a_naive_client_time_is_on_the_clock_of_the_park_the_volunteer_is_in(on_duty, session):
    """/me/location read a time without an offset on Shanghai's clock wherever the volunteer was: a fix taken at
    07:38 in the market was kept as 05:38 there, two hours older than it was (and it would not have replaced a
    fix from 06:00 as the last known position). Now on the clock of the park they are on duty in, else of their
    home zone's park."""
    lon, lat = on_duty["center"]
    me = on_duty["client"]
    checked_in = me.post(f"/api/v1/shifts/{on_duty['shift']['id']}/check-in", json={"lon": lon, "lat": lat},
                         headers={"Idempotency-Key": "clock-in"})
    assert checked_in.status_code == 201, checked_in.get_json()
    fix = me.post("/api/v1/me/location", json={"lon": lon, "lat": lat, "client_time": f"{DAY}T07:38:00"})
    assert fix.status_code == 201, fix.get_json()
    assert datetime.fromisoformat(fix.get_json()["recorded_at"]) == datetime(2031, 5, 6, 7, 38, tzinfo=URUMQI)

    # off duty, at home in the market: its clock too
    checked_out = me.post(f"/api/v1/shifts/{on_duty['shift']['id']}/check-out", json={"lon": lon, "lat": lat},
                          headers={"Idempotency-Key": "clock-out"})
    assert checked_out.status_code == 201, checked_out.get_json()
    home = me.patch(f"/api/v1/volunteers/{on_duty['id']}", json={"home_zone_id": on_duty["shift"]["zone_id"]})
    assert home.status_code == 200, home.get_json()
    fix = me.post("/api/v1/me/location", json={"lon": lon, "lat": lat, "client_time": f"{DAY}T07:39:00"})
    assert datetime.fromisoformat(fix.get_json()["recorded_at"]) == datetime(2031, 5, 6, 7, 39, tzinfo=URUMQI)


def test_the_check_in_documents_whose_clock_a_naive_client_time_is_on(client):
    spec = client.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for name in ("CheckEventIn", "OfflineEvent"):
        assert "shift's community" in schemas[name]["properties"]["client_time"]["description"], name


# ------------------------------------------------------------------ 4. hours, by day and month


def _hours(session, zone_id: int, starts: datetime, hours: float = 1.0) -> ServiceHours:
    return approved_hours(session, zone_id, starts, hours, activity=ACTIVITY, title="夜市巡查", at=(87.601, 43.801))


@pytest.fixture()
def month_end(market, session) -> dict:
    """Two stints at the turn of the month: at the market, 22:30-23:30 on 31 March there (00:30 on 1 April in
    Shanghai); at the park, 01:00-02:00 on 1 April in Shanghai (23:00 on 31 March in Xinjiang), later."""
    return {"there": _hours(session, market["zone_id"], datetime(2031, 3, 31, 22, 30, tzinfo=URUMQI)),
            "here": _hours(session, zone_of(session, "G01").id, datetime(2031, 4, 1, 1, 0, tzinfo=SHANGHAI)),
            "vid": volunteer_id(session, "volunteer-001")}


def test_hours_by_month_and_the_days_asked_are_each_entrys_own_communitys(login, month_end):
    """Both stints were counted in April (Shanghai's month); on no single clock do they fall in different
    months. Each is in the month of the park where it was served, and ?from=&to= picks the same ones."""
    me = login("volunteer-001")
    url = f"/api/v1/volunteers/{month_end['vid']}/hours"
    whole = me.get(f"{url}?from=2031-03-31&to=2031-04-01").get_json()
    assert [(m["key"], m["approved"]) for m in whole["by_month"]] == [("2031-03", 1.0), ("2031-04", 1.0)]
    march = me.get(f"{url}?from=2031-03-01&to=2031-03-31").get_json()
    assert [e["id"] for e in march["entries"]] == [month_end["there"].id] and march["approved"] == 1.0
    april = me.get(f"{url}?from=2031-04-01&to=2031-04-30").get_json()
    assert [e["id"] for e in april["entries"]] == [month_end["here"].id]
    assert [m["key"] for m in april["by_month"]] == ["2031-04"]


def test_the_hours_csv_writes_each_stint_on_its_own_communitys_clock(login, month_end):
    """The market's stint was written 2026-04-01 00:30-01:30 (Shanghai time) in the national record; it was served
    22:30-23:30 on 31 March there, the times its shift was posted at."""
    answer = login("volunteer-001").get(f"/api/v1/volunteers/{month_end['vid']}/hours.csv?from=2031-03-31&to=2031-04-01")
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row[3:7] for row in rows[1:]] == [["2031-03-31", "22:30:00", "23:30:00", "1.00"],
                                              ["2031-04-01", "01:00:00", "02:00:00", "1.00"]]
    assert "Urumqi" in rows[1][7] and "Lingfeng" in rows[2][7]


def test_the_liaisons_hours_views_read_the_days_on_each_entrys_clock(admin, month_end, market):
    """GET /hours and /hours/totals read ?from=&to= in Shanghai: the market's 31 March stint was in 1 April."""
    vid = month_end["vid"]
    queue = admin.get(f"/api/v1/hours?status=approved&volunteer_id={vid}&from=2031-03-31&to=2031-03-31").get_json()
    assert [e["id"] for e in queue["items"]] == [month_end["there"].id]
    queue = admin.get(f"/api/v1/hours?status=approved&volunteer_id={vid}&from=2031-04-01&to=2031-04-01").get_json()
    assert [e["id"] for e in queue["items"]] == [month_end["here"].id]
    for day, hours in (("2031-03-31", 1.0), ("2031-04-01", 0.0)):
        totals = admin.get(f"/api/v1/hours/totals?community_id={market['community_id']}&from={day}&to={day}").get_json()
        assert totals["total_hours"] == hours, (day, totals)
    both = admin.get("/api/v1/hours/totals?from=2031-03-31&to=2031-04-01").get_json()
    assert [(i["volunteer_id"], i["hours"], i["entries"]) for i in both["items"]] == [(vid, 2.0, 2)]


# ------------------------------------------------------------------ 5. the demo seed


def test_the_demo_seed_leaves_out_todays_shifts_already_over(session):
    """Seeded at 10:00, the demo made that morning's 07:30-09:00 shifts too, over before anyone could sign up."""
    community = communities.create_community(session, name="种子测试园 Seed Park", kind="industrial_park",
                                             boundary=_shape(rect(*ORIGIN, 1000, 1000)), timezone="Asia/Urumqi")
    zones.create_zone(session, community.id, code="S1", name="S1", geometry=_shape(rect(*ORIGIN, 1000, 1000)))
    monday_after = datetime(2031, 3, 3, 10, 0, tzinfo=URUMQI)
    made = load_demo_shifts(session, community, monday_after)
    starts = sorted(session.scalars(select(Shift.starts_at).where(Shift.community_id == community.id)))
    assert starts[0] == datetime(2031, 3, 4, 7, 30, tzinfo=URUMQI)  # not Monday's, on the park's own clock
    assert made == len(starts) == 19  # four weeks of weekdays from Monday 3 March, less Monday 3


def test_the_demo_seed_before_the_morning_shift_keeps_today(session):
    """Guard (was right): seeded before today's shift ends, today's is made."""
    community = communities.create_community(session, name="种子测试园 Seed Park", kind="industrial_park",
                                             boundary=_shape(rect(*ORIGIN, 1000, 1000)), timezone="Asia/Urumqi")
    zones.create_zone(session, community.id, code="S1", name="S1", geometry=_shape(rect(*ORIGIN, 1000, 1000)))
    made = load_demo_shifts(session, community, datetime(2031, 3, 3, 8, 0, tzinfo=URUMQI))
    starts = sorted(session.scalars(select(Shift.starts_at).where(Shift.community_id == community.id)))
    assert starts[0] == datetime(2031, 3, 3, 7, 30, tzinfo=URUMQI) and made == 20


def _shape(geojson: dict):
    from shapely.geometry import shape

    return shape(geojson)


def test_the_seeded_demo_has_no_shift_already_over_from_its_first_day(session):
    """The demo the tests run on was seeded at the run's start: none of its shifts was over by then (that morning's,
    seeded after them, are left out). Failed before the fix in a run started after 09:00 Shanghai time."""
    lingfeng = session.scalar(select(Community).where(Community.name.like("%Lingfeng%")))
    shifts = session.scalars(select(Shift).where(Shift.community_id == lingfeng.id, Shift.series_id.is_not(None))).all()
    assert shifts
    seeded = min(s.created_at for s in shifts)
    assert all(s.ends_at > seeded for s in shifts)


# ------------------------------------------------------------------ 6. the calendar


def test_the_calendar_writes_each_shift_on_its_own_parks_clock(admin, login, market, session):
    """The feed wrote every shift under TZID=Asia/Shanghai: the market's 07:30 shift came out as 09:30 China
    Standard Time, the right moment, but a calendar that shows an event's own zone said 09:30 for a shift the
    volunteer knows as 07:30. Each shift now carries its park's TZID, with that zone's VTIMEZONE; a zone with
    daylight saving (whose rules are not written out) goes out as UTC."""
    there = _morning_shift(admin, market["zone_id"])
    here = _morning_shift(admin, zone_of(session, "G01").id)
    me = login("volunteer-001")
    for shift in (there, here):
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    feed = me.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}/shifts.ics").get_data(as_text=True)
    events = {block.split("UID:shift-", 1)[1].split("-", 1)[0]: block for block in feed.split("BEGIN:VEVENT")[1:]}
    market_event, park_event = events[str(there["id"])], events[str(here["id"])]
    assert "DTSTART;TZID=Asia/Urumqi:20310506T073000\r\n" in market_event
    assert "DTEND;TZID=Asia/Urumqi:20310506T090000\r\n" in market_event
    assert "DTSTART;TZID=Asia/Shanghai:20310506T073000\r\n" in park_event
    assert "DTEND;TZID=Asia/Shanghai:20310506T090000\r\n" in park_event
    zones = feed.split("BEGIN:VEVENT")[0]
    assert "TZID:Asia/Shanghai\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0800\r\n" in zones
    assert "TZID:Asia/Urumqi\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0600\r\n" in zones


def test_a_shift_on_a_clock_with_daylight_saving_goes_out_as_utc():
    """Guard: no VTIMEZONE is written for Europe/Berlin (its rules change twice a year): its shift is in UTC."""
    from gridsvc.ical import shifts_calendar

    berlin = ZoneInfo("Europe/Berlin")
    feed = shifts_calendar([{"uid": "shift-1-volunteer-1@gridsvc", "title": "Markt", "status": "CONFIRMED",
                             "starts_at": datetime(2031, 7, 1, 8, 0, tzinfo=berlin),
                             "ends_at": datetime(2031, 7, 1, 9, 30, tzinfo=berlin), "tzid": "Europe/Berlin"}],
                           name="Test", now=datetime(2031, 6, 1, tzinfo=SHANGHAI))
    assert "DTSTART:20310701T060000Z\r\n" in feed and "DTEND:20310701T073000Z\r\n" in feed
    assert "TZID:Europe/Berlin" not in feed and "TZID:Asia/Shanghai" in feed
