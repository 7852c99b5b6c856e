"""Review s8 of who sees a volunteer's personal data (PIPL art. 6: no more than the work needs).

"Works in a zone" counted any sign-up or hours ever: the liaison of a zone where a volunteer served once kept,
for good, their full phone number, their live position (while they served in another zone or park), the shift
they were on duty at, and their whole record (every park's hours and sign-ups). A liaison now sees the person's
data while the volunteer works in one of their zones NOW: home zone, a place (confirmed or waitlisted) in a shift
there neither cancelled nor over, or hours there waiting for review. The record of a zone's shifts stays its
liaison's; the rest of the record is the volunteer's, their home zone's liaison's and the admins'.

Each test failed before the change.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from gridsvc.models import CheckEvent, ServiceHours, Volunteer
from gridsvc.services.shifts import create_shift
from tests.api.volunteer_helpers import make_shift, north_of, post_check, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, community_body, csv_rows, rect, zone_feature


@pytest.fixture()
def admin(login):
    return login("admin")


def is_masked(phone: str) -> bool:
    return "*" in phone


def personal(client, vid: int) -> tuple[bool, bool, int | None]:
    """What ``client`` sees of volunteer ``vid``: (the full phone, a position, the shift they are on duty at)."""
    body = client.get(f"/api/v1/volunteers/{vid}").get_json()
    return not is_masked(body["phone"]), body["last_position"] is not None, body["on_duty_shift_id"]


def past_hours(session, clock, username: str, zone_id: int, *, days_ago: int, status: str = "approved",
               activity: str = "traffic_guidance", hours: float = 1.0) -> ServiceHours:
    """An hours entry of ``username`` for a shift in ``zone_id`` ``days_ago`` days ago (written directly: a stint
    a year back cannot be made through the API, whose check-ins are now)."""
    vid = volunteer_id(session, username)
    starts = clock() - timedelta(days=days_ago)
    shift = create_shift(session, zone_id=zone_id, title="往日巡查", activity=activity, capacity=2, starts_at=starts,
                         ends_at=starts + timedelta(hours=hours))
    check_in = CheckEvent(shift_id=shift.id, volunteer_id=vid, kind="check_in", effective_at=starts,
                          position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87,
                          input_crs="wgs84", inside=True, distance_m=0, accepted=True, status_code=201, response={})
    session.add(check_in)
    session.flush()
    entry = ServiceHours(volunteer_id=vid, shift_id=shift.id, check_in_id=check_in.id, started_at=starts,
                         ended_at=starts + timedelta(hours=hours), hours=hours, status=status)
    session.add(entry)
    session.commit()
    return entry


def near(point: tuple[float, float], radius_m: int = 5000) -> str:
    return f"/api/v1/volunteers?near={point[0]},{point[1]}&radius_m={radius_m}&limit=200"


# ---------------------------------------------------------------- 1. the liaison of a zone served in once


def test_a_liaison_sees_the_volunteer_while_they_serve_in_the_zone_and_not_after(admin, login, session, clock):
    """volunteer-002 (home G02) served one shift in G03. G03's liaison saw their phone and position while they held
    the place and were on duty (right), and while the hours waited for review (right: they must be able to call
    about them); after approving the hours they still saw the full phone, and, weeks later, the live position and
    the shift the volunteer was on duty at in G05, and found them by position near G05. Expected: once the shift
    is over and the hours decided, a masked phone and no position, duty or search hit; G05's liaison (on duty
    there) and G02's (home) see them; the record of G03's shift stays G03's liaison's."""
    vid = volunteer_id(session, "volunteer-002")
    me, g03_liaison = login("volunteer-002"), login("liaison-g03")
    g03, g05 = zone_of(session, "G03").id, zone_of(session, "G05").id
    assert personal(g03_liaison, vid) == (False, False, None)  # nothing to do with G03 yet

    here = zone_center(admin, g03)
    shift = make_shift(admin, zone_id=g03, starts_at=clock() + timedelta(minutes=10), hours=1, title="G03 北门")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert personal(g03_liaison, vid)[0]  # a place in a shift of G03 to come: its liaison may call
    assert post_check(me, shift["id"], "check-in", here, key="in-g03").status_code == 201
    assert me.post("/api/v1/me/location", json={"lon": here[0], "lat": here[1], "accuracy_m": 10}).status_code == 201
    assert personal(g03_liaison, vid) == (True, True, shift["id"])
    clock.advance(minutes=40)
    out = post_check(me, shift["id"], "check-out", north_of(here, 3000), key="out-g03")  # away: hours pending
    assert out.status_code == 201 and out.get_json()["hours"]["status"] == "pending", out.get_json()

    clock.advance(hours=2)  # the shift is over; the hours wait for G03's liaison
    assert personal(g03_liaison, vid)[:2] == (True, True)
    assert g03_liaison.post(f"/api/v1/hours/{out.get_json()['hours']['id']}/approve", json={}).status_code == 200
    assert personal(g03_liaison, vid) == (False, False, None)

    # weeks later the volunteer is on duty in G05, reporting where they are
    clock.advance(days=20)
    elsewhere = zone_center(admin, g05)
    later = make_shift(admin, zone_id=g05, starts_at=clock() + timedelta(minutes=10), hours=2, title="G05 巡查")
    assert me.post(f"/api/v1/shifts/{later['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert post_check(me, later["id"], "check-in", elsewhere, key="in-g05").status_code == 201
    assert me.post("/api/v1/me/location", json={"lon": elsewhere[0], "lat": elsewhere[1],
                                                "accuracy_m": 10}).status_code == 201
    seen = g03_liaison.get(f"/api/v1/volunteers/{vid}").get_json()
    assert is_masked(seen["phone"]) and seen["last_position"] is None and seen["on_duty_shift_id"] is None, seen
    assert seen["national_volunteer_id"] is None
    assert vid not in [v["id"] for v in g03_liaison.get(near(elsewhere)).get_json()["items"]]
    ranked = g03_liaison.get(f"/api/v1/dispatch/candidates?lon={elsewhere[0]}&lat={elsewhere[1]}")
    assert ranked.status_code == 200 and vid not in [c["volunteer_id"] for c in ranked.get_json()]
    # whose they are now: G05's liaison (on duty there) and G02's (home), with the position and the duty
    for liaison in ("liaison-g05", "liaison-g02"):
        assert personal(login(liaison), vid) == (True, True, later["id"]), liaison
    assert vid in [v["id"] for v in login("liaison-g05").get(near(elsewhere)).get_json()["items"]]
    ranked = login("liaison-g05").get(f"/api/v1/dispatch/candidates?lon={elsewhere[0]}&lat={elsewhere[1]}")
    assert vid in [c["volunteer_id"] for c in ranked.get_json()]
    # the record of G03's shift is still G03's liaison's, and only that
    record = g03_liaison.get(f"/api/v1/volunteers/{vid}/hours")
    assert record.status_code == 200, record.get_json()
    assert [e["shift_id"] for e in record.get_json()["entries"]] == [shift["id"]]


def test_hours_waiting_for_review_let_the_liaison_reach_the_volunteer_until_decided(admin, login, session, clock):
    """volunteer-004 (home G04) has hours from last week's G07 shift still waiting for review, and nothing else in
    G07. G07's liaison, who must call them about the missing check-out, saw the phone (right) and saw it after
    declining them too. Expected: the full phone while pending, masked once decided."""
    vid = volunteer_id(session, "volunteer-004")
    entry = past_hours(session, clock, "volunteer-004", zone_of(session, "G07").id, days_ago=7, status="pending")
    g07_liaison = login("liaison-g07")
    assert personal(g07_liaison, vid)[0]
    answer = g07_liaison.post(f"/api/v1/hours/{entry.id}/decline", json={"note": "没有签退"})
    assert answer.status_code == 200, answer.get_json()
    assert personal(g07_liaison, vid) == (False, False, None)
    assert personal(login("liaison-g04"), vid)[0]  # the home zone's liaison still may


def test_a_cancelled_shift_or_one_over_grants_nothing(admin, login, session, clock):
    """volunteer-006 (home G06) signed up for a G08 shift that was then called off, and for a G09 shift they never
    turned up to. The liaisons of G08 and G09 kept the full phone for good. Expected: G08's liaison sees it until
    the shift is cancelled, G09's until the shift is over."""
    vid = volunteer_id(session, "volunteer-006")
    me = login("volunteer-006")
    off = make_shift(admin, zone_id=zone_of(session, "G08").id, starts_at=clock() + timedelta(days=2))
    missed = make_shift(admin, zone_id=zone_of(session, "G09").id, starts_at=clock() + timedelta(hours=1), hours=1)
    for shift in (off, missed):
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    g08, g09 = login("liaison-g08"), login("liaison-g09")
    assert personal(g08, vid)[0] and personal(g09, vid)[0]
    assert admin.delete(f"/api/v1/shifts/{off['id']}").get_json()["status"] == "cancelled"
    assert not personal(g08, vid)[0]
    clock.advance(hours=1, minutes=59)
    assert personal(g09, vid)[0]  # still running
    clock.advance(minutes=2)
    assert not personal(g09, vid)[0]


# ---------------------------------------------------------------- 2. the record: each zone's own entries


def test_another_zones_liaison_reads_only_their_zones_entries_and_the_home_liaison_all(admin, login, session, clock):
    """volunteer-001 (home G01) served in G03 and in G05 last year and holds places in both zones next week. G03's
    liaison read all of it: G05's hours, the totals of both, the CSV of both (for the national record), G05's
    sign-ups and calendar. Expected: G03's liaison reads G03's entries only (totals of those), G01's liaison
    (home) and the admin everything, G07's liaison (nothing there) nothing."""
    vid = volunteer_id(session, "volunteer-001")
    g01, g03, g05 = (zone_of(session, code).id for code in ("G01", "G03", "G05"))
    in_g03 = past_hours(session, clock, "volunteer-001", g03, days_ago=300, activity="night_patrol", hours=2.0)
    in_g05 = past_hours(session, clock, "volunteer-001", g05, days_ago=290, activity="garbage_sorting", hours=3.0)
    me = login("volunteer-001")
    coming = {}
    for zone_id, days in ((g03, 7), (g05, 8)):
        shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=days))
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
        coming[zone_id] = shift["id"]

    def record(client) -> dict:
        hours = client.get(f"/api/v1/volunteers/{vid}/hours")
        assert hours.status_code == 200, hours.get_json()
        signups = client.get(f"/api/v1/volunteers/{vid}/signups")
        assert signups.status_code == 200, signups.get_json()
        calendar = client.get(f"/api/v1/volunteers/{vid}/shifts.ics")
        assert calendar.status_code == 200
        csv = csv_rows(client.get(f"/api/v1/volunteers/{vid}/hours.csv"))
        return {"entries": sorted(e["id"] for e in hours.get_json()["entries"]),
                "approved": hours.get_json()["approved"],
                "activities": sorted(a["key"] for a in hours.get_json()["by_activity"]),
                "csv": sorted(row[2] for row in csv[1:]),
                "signups": (signups.get_json()["total"], sorted(i["shift"]["id"] for i in signups.get_json()["items"])),
                "calendar": sorted(int(uid) for uid in re.findall(r"UID:shift-(\d+)-volunteer-",
                                                                   calendar.get_data(as_text=True)))}

    everything = {"entries": sorted([in_g03.id, in_g05.id]), "approved": 5.0,
                  "activities": ["garbage_sorting", "night_patrol"], "csv": ["garbage_sorting", "night_patrol"],
                  "signups": (2, sorted(coming.values())), "calendar": sorted(coming.values())}
    assert record(admin) == everything
    assert record(login("liaison-g01")) == everything
    assert record(login("liaison-g03")) == {"entries": [in_g03.id], "approved": 2.0, "activities": ["night_patrol"],
                                            "csv": ["night_patrol"], "signups": (1, [coming[g03]]),
                                            "calendar": [coming[g03]]}
    # a page of the liaison's own: counted after the choice
    page = login("liaison-g03").get(f"/api/v1/volunteers/{vid}/signups?limit=1&offset=1").get_json()
    assert (page["total"], page["items"]) == (1, [])
    for path in ("hours", "hours.csv", "signups", "shifts.ics"):
        assert_problem(login("liaison-g07").get(f"/api/v1/volunteers/{vid}/{path}"), 403)


def test_a_past_zones_liaison_keeps_its_entries_but_not_the_person(admin, login, session, clock):
    """volunteer-030 moved to another park; a year ago they served in Lingfeng's G02, approved. G02's liaison kept
    the full phone, and could sign them up for a new G02 shift (or hand them a worker's request, with its contact)
    as one of the park's. Expected: the phone masked, the sign-up (and reassign) refused as for any other park's
    volunteer, the G02 entry of their record still readable by G02's liaison."""
    other = admin.post("/api/v1/communities", json=community_body(name="Other park", boundary=rect(120.30, 31.50, 800, 800)))
    zone = admin.post(f"/api/v1/communities/{other.get_json()['id']}/zones",
                      json=zone_feature("O1", rect(120.30, 31.50, 800, 800))).get_json()["id"]
    vid = volunteer_id(session, "volunteer-030")
    session.get(Volunteer, vid).home_zone_id = zone
    session.commit()
    g02 = zone_of(session, "G02").id
    entry = past_hours(session, clock, "volunteer-030", g02, days_ago=365)
    liaison = login("liaison-g02")
    assert personal(liaison, vid) == (False, False, None)
    shift = make_shift(admin, zone_id=g02, starts_at=clock() + timedelta(days=3))
    refused = assert_problem(liaison.post(f"/api/v1/shifts/{shift['id']}/signups", json={"volunteer_id": vid}), 422)
    assert refused["errors"] == {"volunteer_id": ["does not work in this shift's community"]}, refused
    hours = liaison.get(f"/api/v1/volunteers/{vid}/hours")
    assert hours.status_code == 200 and [e["id"] for e in hours.get_json()["entries"]] == [entry.id]


def test_another_parks_liaison_no_longer_lists_a_volunteer_who_served_there_once(admin, login, session, clock):
    """volunteer-001 (Lingfeng) served once, a year ago, in a market's zone. The market's liaison's volunteer list
    (no `near`) kept naming them, with skills and weekly availability. Expected: listed while they hold a place
    in a market shift to come, not otherwise."""
    made = admin.post("/api/v1/users", json={"username": "liaison-mk1", "password": "Market-liaison-77",
                                             "display_name": "市场联络员", "roles": ["liaison"]})
    assert made.status_code == 201, made.get_json()
    cid = admin.post("/api/v1/communities", json=community_body(name="Market", boundary=rect(120.30, 31.50, 800, 800))
                     ).get_json()["id"]
    zone = admin.post(f"/api/v1/communities/{cid}/zones",
                      json=zone_feature("M1", rect(120.30, 31.50, 800, 800), liaison="liaison-mk1")).get_json()["id"]
    past_hours(session, clock, "volunteer-001", zone, days_ago=365)
    market = login("liaison-mk1")

    def listed() -> list[str]:
        answer = market.get("/api/v1/volunteers?limit=200")
        assert answer.status_code == 200, answer.get_json()
        return [v["username"] for v in answer.get_json()["items"]]

    assert "volunteer-001" not in listed()
    shift = make_shift(admin, zone_id=zone, starts_at=clock() + timedelta(days=5))
    assert login("volunteer-001").post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    assert "volunteer-001" in listed()


# ---------------------------------------------------------------- 3. who may search by position


def test_a_search_by_position_refused_says_who_may_search_so(login):
    """A volunteer asking GET /api/v1/volunteers?near= was told the search "needs one of the roles admin,
    department, liaison, planner", although planners and department staff are refused it too (with another
    message). Expected: one refusal for all three, naming who may search by position (admins, and liaisons for
    their zones)."""
    refusals = []
    for username in ("volunteer-001", "planner", "dept-traffic"):
        problem = assert_problem(login(username).get("/api/v1/volunteers?near=121.78,29.87&radius_m=500"), 403)
        refusals.append((problem["detail"], tuple(problem.get("required_roles") or ())))
    assert len(set(refusals)) == 1, refusals
    detail, roles = refusals[0]
    assert "admin" in detail and "liaison" in detail and "planner" not in detail and "department" not in detail
    assert roles == ("admin", "liaison")
    # without near, the volunteer is told the roles that may search at all
    problem = assert_problem(login("volunteer-001").get("/api/v1/volunteers?skill=first_aid"), 403)
    assert problem["required_roles"] == ["admin", "department", "liaison", "planner"]


def test_a_stint_left_open_past_the_shifts_end_keeps_the_volunteer_the_zones_until_closed(admin, login, session,
                                                                                          clock):
    """volunteer-002 (home G02) forgot to check out of a G03 shift. Between the shift's end and the stint's
    closing (the grace for a late check-out, before gridsvc tick or a read of hours closes it), no place in a
    shift not over and no hours yet: G03's liaison, who must call them about the check-out, lost the phone for
    those two hours, and had it back once the stint was closed pending review."""
    vid = volunteer_id(session, "volunteer-002")
    me, g03_liaison = login("volunteer-002"), login("liaison-g03")
    g03 = zone_of(session, "G03").id
    here = zone_center(admin, g03)
    shift = make_shift(admin, zone_id=g03, starts_at=clock() + timedelta(minutes=10), hours=1, title="G03 南门")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert post_check(me, shift["id"], "check-in", here, key="in-open").status_code == 201
    clock.advance(minutes=90)  # the shift ended 20 minutes ago; no check-out
    assert personal(g03_liaison, vid)[0]
    assert session.get(Volunteer, vid).on_duty_shift_id == shift["id"]  # (still open: not yet closed)
    # and only them: a volunteer with nothing in G03 stays masked, and out of G03's liaison's search by position
    other = volunteer_id(session, "volunteer-004")
    assert login("volunteer-004").post("/api/v1/me/location", json={"lon": here[0], "lat": here[1],
                                                                    "accuracy_m": 10}).status_code == 201
    assert personal(g03_liaison, other) == (False, False, None)
    found = [v["id"] for v in g03_liaison.get(near(here, 50_000)).get_json()["items"]]
    assert vid in found and other not in found


def test_a_request_the_volunteer_holds_in_a_zone_lets_its_liaison_reach_them_until_it_is_done(admin, login,
                                                                                             session):
    """volunteer-004 (home G04, nothing in G03) is given a worker's parking request in G03. G03's liaison handed
    it over (or sees it assigned) and must be able to call the volunteer about it, but saw a masked phone: holding
    a request of a zone is work there, as much as a place in its shift. Done (resolved), it grants nothing more."""
    from tests.api.test_requests import file

    vid = volunteer_id(session, "volunteer-004")
    g03_liaison, volunteer = login("liaison-g03"), login("volunteer-004")
    here = zone_center(admin, zone_of(session, "G03").id)
    filed = file(login("worker-001"), here)
    assert filed.status_code == 201, filed.get_json()
    request_id = filed.get_json()["id"]
    assert not personal(g03_liaison, vid)[0]
    moved = admin.post(f"/api/v1/requests/{request_id}/reassign", json={"volunteer_id": vid})
    assert moved.status_code == 200 and moved.get_json()["status"] == "assigned", moved.get_json()
    assert personal(g03_liaison, vid)[0]
    assert volunteer.post(f"/api/v1/requests/{request_id}/start", json={}).status_code == 200
    assert personal(g03_liaison, vid)[0]
    assert volunteer.post(f"/api/v1/requests/{request_id}/resolve", json={"note": "已引导"}).status_code == 200
    assert not personal(g03_liaison, vid)[0]
