"""Review (s7): two communities on one server (issue #4 across them).

The demo park, Lingfeng (Ningbo), and a second community made here, the Huaxia Home Port market (Wuxi), with two
grid zones (coded G01 and G02, as the 10-grid model names them in every market) and its own liaison account,
liaison-hx1, for its G01. A Lingfeng volunteer (volunteer-001, home zone Lingfeng G01) also serves a shift there.
Each test's docstring tells what a user did, what they saw and what they should have seen; each failed before its
fix but the last, which guards behaviour no other file covers.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.volunteer_helpers import make_shift, north_of, post_check, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, community_body, csv_rows, offset, rect, zone_feature

ORIGIN = (120.30, 31.50)  # Wuxi, some 200 km from Lingfeng
HUAXIA = "华夏家居港 Huaxia Home Port"


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def market(admin) -> dict:
    """The second community, made as an admin makes one over the API: the liaison's account, the community, and
    its zones (G01 with liaison-hx1; G02 without a liaison yet)."""
    made = admin.post("/api/v1/users", json={"username": "liaison-hx1", "password": "Huaxia-liaison-77",
                                             "display_name": "华夏联络员", "phone": "13900001111", "roles": ["liaison"]})
    assert made.status_code == 201, made.get_json()
    community = admin.post("/api/v1/communities", json=community_body(name=HUAXIA, boundary=rect(*ORIGIN, 1000, 1000)))
    assert community.status_code == 201, community.get_json()
    cid = community.get_json()["id"]
    g01 = admin.post(f"/api/v1/communities/{cid}/zones",
                     json=zone_feature("G01", rect(*ORIGIN, 500, 1000), name="第一网格 G01", liaison="liaison-hx1"))
    assert g01.status_code == 201, g01.get_json()
    g02 = admin.post(f"/api/v1/communities/{cid}/zones",
                     json=zone_feature("G02", rect(*offset(*ORIGIN, 500, 0), 500, 1000), name="第二网格 G02"))
    assert g02.status_code == 201, g02.get_json()
    return {"community_id": cid, "g01": g01.get_json()["id"], "g02": g02.get_json()["id"]}


def _serve(admin, volunteer, zone_id: int, clock, *, out_of_area: bool, title: str = "北门交通疏导") -> dict:
    """``volunteer`` signs up for a one-hour shift in ``zone_id`` starting in 10 minutes, checks in inside it, and
    40 minutes later checks out (3 km away if ``out_of_area``: the hours wait for review). The clock ends where
    it started plus 40 minutes. Returns the shift and the hours entry."""
    here = zone_center(admin, zone_id)
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(minutes=10), hours=1, title=title)
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert post_check(volunteer, shift["id"], "check-in", here, key=f"in-{shift['id']}").status_code == 201
    clock.advance(minutes=40)
    out = post_check(volunteer, shift["id"], "check-out", north_of(here, 3000) if out_of_area else here,
                     key=f"out-{shift['id']}")
    assert out.status_code == 201, out.get_json()
    return {"shift": shift, "hours": out.get_json()["hours"], "here": here}


# ------------------------------------------------------------------ 1. who sees the other park's people


def test_a_liaison_listing_volunteers_sees_only_their_own_zones_volunteers(login, session, market):
    """The Huaxia market's liaison opened the volunteer list (GET /api/v1/volunteers, no `near`): it listed all 60
    of Lingfeng's volunteers, none of whom has ever worked in the market, with their real names, usernames, home
    zones, skills, team, weekly availability and whether they are on duty now (?zone_id= of a Lingfeng zone and
    ?on_duty=true narrow it to a Lingfeng grid's people on duty). A liaison has no need of another park's
    people (PIPL art. 6, the minimum necessary): the list keeps to their community's volunteers (home zone there)
    and those who work in their zones."""
    hx = login("liaison-hx1")
    listed = hx.get("/api/v1/volunteers?limit=100")
    assert listed.status_code == 200, listed.get_json()
    lingfeng_people = [(item["username"], item["real_name"]) for item in listed.get_json()["items"]
                       if item["username"].startswith("volunteer-")]
    assert lingfeng_people == [], f"{len(lingfeng_people)} Lingfeng volunteers listed to Huaxia's liaison, e.g. " \
                                  f"{lingfeng_people[:3]}"
    # nor by a Lingfeng zone's id
    g01 = zone_of(session, "G01").id
    by_zone = hx.get(f"/api/v1/volunteers?zone_id={g01}")
    assert by_zone.status_code in (200, 403), by_zone.get_json()
    if by_zone.status_code == 200:
        assert by_zone.get_json()["total"] == 0, [i["real_name"] for i in by_zone.get_json()["items"]]


# ------------------------------------------------------------------ 2. the calendar with shifts in both parks


def test_the_calendar_says_which_park_each_shift_is_in(admin, login, session, clock, market):
    """volunteer-001 signed up for a shift in Lingfeng's G01 and one in the Huaxia market's G01, both titled as
    the liaisons title them ("北门交通疏导"). Their phone's calendar showed two events with the same summary and
    the same LOCATION, "第一网格 G01": nothing says which is in Ningbo and which 200 km away in Wuxi (the feed
    names the zone only, and zone names repeat from park to park in the 10-grid model). Expected: each event's
    LOCATION (or summary) names the community as well as the zone."""
    me = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    for zone_id, days in ((zone_of(session, "G01").id, 40), (market["g01"], 41)):
        shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=days))
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    feed = me.get(f"/api/v1/volunteers/{vid}/shifts.ics")
    assert feed.status_code == 200
    text = feed.get_data(as_text=True).replace("\r\n ", "")
    locations = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith("LOCATION")]
    assert len(locations) >= 2
    market_events = [loc for loc in locations if "华夏" in loc or "Huaxia" in loc]
    assert len(market_events) == 1 and len(set(locations)) == len(locations), locations


# ------------------------------------------------------------------ 3. guard: whose hours, who reviews, which organisation


def test_a_visiting_volunteers_hours_are_reviewed_and_recorded_by_the_host_park(admin, login, session, clock, market):
    """Guard (was right). volunteer-001 (home Lingfeng G01) served the market's G01 shift and checked out 3 km
    away: the hours wait. They are in the market liaison's queue, pending totals and check-events, not in Lingfeng
    G01's liaison's (who gets a 403 reviewing them, and nothing changes); the market's liaison approves them; the
    volunteer's CSV names the market as the recording organisation of that row, and Lingfeng for a Lingfeng one.
    A Lingfeng zone's id in the market liaison's queue or totals is a 403 problem; a shift body with a
    community_id of another park is a 422 naming it, and nothing is created."""
    me = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    at_home = _serve(admin, me, zone_of(session, "G01").id, clock, out_of_area=False)
    clock.advance(hours=2)
    away = _serve(admin, me, market["g01"], clock, out_of_area=True)
    entry = away["hours"]["id"]
    hx, g01 = login("liaison-hx1"), login("liaison-g01")

    assert [i["id"] for i in hx.get("/api/v1/hours").get_json()["items"]] == [entry]
    assert entry not in [i["id"] for i in g01.get("/api/v1/hours?limit=500").get_json()["items"]]
    assert [i["volunteer_id"] for i in hx.get("/api/v1/hours/totals?status=pending").get_json()["items"]] == [vid]
    assert vid not in [i["volunteer_id"] for i in g01.get("/api/v1/hours/totals?status=pending").get_json()["items"]]
    assert_problem(g01.get(f"/api/v1/shifts/{away['shift']['id']}/check-events"), 403)
    assert hx.get(f"/api/v1/shifts/{away['shift']['id']}/check-events").get_json()["total"] == 2
    assert_problem(g01.post(f"/api/v1/hours/{entry}/approve", json={}), 403)
    assert_problem(hx.get(f"/api/v1/hours?zone_id={zone_of(session, 'G01').id}"), 403)
    assert_problem(hx.get(f"/api/v1/hours/totals?zone_id={zone_of(session, 'G01').id}"), 403)
    assert [e["status"] for e in me.get(f"/api/v1/volunteers/{vid}/hours").get_json()["entries"]
            if e["id"] == entry] == ["pending"]
    approved = hx.post(f"/api/v1/hours/{entry}/approve", json={"note": "ok"})
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"

    rows = csv_rows(me.get(f"/api/v1/volunteers/{vid}/hours.csv"))
    lingfeng = admin.get("/api/v1/communities/1").get_json()["name"]
    assert [(row[7], row[8]) for row in rows[1:]] == [(lingfeng, "approved"), (HUAXIA, "approved")]

    before = len(admin.get(f"/api/v1/shifts?community_id={market['community_id']}").get_json()["items"])
    refused = assert_problem(hx.post("/api/v1/shifts", json={
        "title": "x", "activity": "traffic_guidance", "zone_id": market["g01"], "community_id": 1, "capacity": 2,
        "starts_at": (clock() + timedelta(days=3)).isoformat(),
        "ends_at": (clock() + timedelta(days=3, hours=1)).isoformat()}), 422)
    assert "community_id" in refused["errors"]
    assert len(admin.get(f"/api/v1/shifts?community_id={market['community_id']}").get_json()["items"]) == before
    assert at_home["hours"]["status"] == "approved"
