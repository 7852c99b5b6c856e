"""Review s8: every surface that shows a volunteer's personal data follows the privacy rule of a1f5b52.

The rule (README, "Who sees what"): a volunteer's phone, national volunteer ID, positions and duty are for the
volunteer, admins and the liaison of a zone they work in NOW (home zone, a place in a shift there neither
cancelled nor over, a stint there still open, hours there waiting for review); their record (sign-ups, hours, CSV,
calendar) is whole for the volunteer, admins and their home zone's liaison, and another zone's liaison reads the
entries of their own zones' shifts only.

The tests marked "failed before" found a surface that did not follow it; the others guard a surface that does
(and that the liaison can still do their job with it).
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from gridsvc.models import Volunteer
from tests.api.volunteer_helpers import make_shift, post_check, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, csv_rows
from tests.test_review_s8_privacy import is_masked, past_hours, personal


@pytest.fixture()
def admin(login):
    return login("admin")


def national_id(session, username: str) -> str:
    found = session.get(Volunteer, volunteer_id(session, username)).national_volunteer_id
    assert found, "the seed gives every volunteer a national volunteer ID"
    return found


def csv_ids(client, vid: int) -> set[str]:
    """The national volunteer IDs written in the rows of the volunteer's hours CSV."""
    rows = csv_rows(client.get(f"/api/v1/volunteers/{vid}/hours.csv"))
    assert rows[0][1] == "volunteer_id" and len(rows) > 1, rows
    return {row[1] for row in rows[1:]}


# ---------------------------------------------------------------- the hours CSV (failed before)


def test_the_hours_csv_names_the_national_id_only_to_those_who_may_see_the_person(admin, login, session, clock):
    """volunteer-001 (home G01) served in G03 three hundred days ago, approved, and has nothing in G03 now. G03's
    liaison reads that entry of the record (right), and GET /volunteers/{id} gives them no national volunteer ID
    (right: personal data, and the volunteer works elsewhere now); but the CSV of the same record wrote the ID on
    every row. Expected: the G03 rows with the ID left empty while the volunteer does not work in G03, written
    again once they hold a place in a G03 shift to come; the volunteer, their home zone's liaison and admins get
    it as before."""
    vid, nid = volunteer_id(session, "volunteer-001"), national_id(session, "volunteer-001")
    g03 = zone_of(session, "G03").id
    past_hours(session, clock, "volunteer-001", g03, days_ago=300, activity="night_patrol", hours=2.0)
    g03_liaison = login("liaison-g03")
    assert g03_liaison.get(f"/api/v1/volunteers/{vid}").get_json()["national_volunteer_id"] is None
    assert csv_ids(g03_liaison, vid) == {""}
    for reader in (login("volunteer-001"), login("liaison-g01"), admin):
        assert csv_ids(reader, vid) == {nid}

    shift = make_shift(admin, zone_id=g03, starts_at=clock() + timedelta(days=2))
    assert login("volunteer-001").post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    assert g03_liaison.get(f"/api/v1/volunteers/{vid}").get_json()["national_volunteer_id"] == nid
    assert csv_ids(g03_liaison, vid) == {nid}


# ---------------------------------------------------------------- an overlap refused (failed before)


def test_a_sign_up_refused_for_an_overlap_names_the_other_shift_only_to_who_reads_it(admin, login, session, clock):
    """volunteer-002 (home G02) holds a place in a G05 shift tomorrow at nine. G03's liaison signs them up for a
    G03 shift at the same time (they work in the park: right) and is refused for the overlap (right), with the
    G05 shift's id and title: an entry of the volunteer's record in another zone, which their record
    (GET /volunteers/{id}/signups) does not give G03's liaison. Expected: the same 409 with reason overlap and no
    other shift named; the volunteer, their home zone's liaison and admins are told which shift it is, and so
    is G03's liaison when the clash is in G03."""
    vid = volunteer_id(session, "volunteer-002")
    me = login("volunteer-002")
    g02, g03, g05 = (zone_of(session, code).id for code in ("G02", "G03", "G05"))
    nine = clock().replace(hour=1, minute=0, second=0, microsecond=0) + timedelta(days=1)  # 09:00 in Shanghai
    elsewhere = make_shift(admin, zone_id=g05, starts_at=nine, title="G05 夜间秘密巡查")
    assert me.post(f"/api/v1/shifts/{elsewhere['id']}/signups", json={}).get_json()["status"] == "confirmed"
    in_g03 = make_shift(admin, zone_id=g03, starts_at=nine + timedelta(minutes=30))
    g03_liaison = login("liaison-g03")

    refused = assert_problem(g03_liaison.post(f"/api/v1/shifts/{in_g03['id']}/signups", json={"volunteer_id": vid}),
                             409)
    assert refused["reason"] == "overlap", refused
    assert "overlapping_shift_id" not in refused, refused
    assert str(elsewhere["id"]) not in refused["detail"] and "秘密" not in refused["detail"], refused
    assert_problem(g03_liaison.get(f"/api/v1/volunteers/{vid}/signups"), 403)  # (the record says the same)

    in_g02 = make_shift(admin, zone_id=g02, starts_at=nine + timedelta(minutes=30))
    for client, shift in ((me, in_g03), (login("liaison-g02"), in_g02), (admin, in_g03)):
        body = {} if client is me else {"volunteer_id": vid}
        named = assert_problem(client.post(f"/api/v1/shifts/{shift['id']}/signups", json=body), 409)
        assert (named["reason"], named["overlapping_shift_id"]) == ("overlap", elsewhere["id"]), named

    # the clash in G03's own shift: G03's liaison reads that entry, and is told
    assert me.delete(f"/api/v1/shifts/{elsewhere['id']}/signups/{vid}").status_code == 200
    assert me.post(f"/api/v1/shifts/{in_g03['id']}/signups", json={}).get_json()["status"] == "confirmed"
    other_g03 = make_shift(admin, zone_id=g03, starts_at=nine)
    named = assert_problem(g03_liaison.post(f"/api/v1/shifts/{other_g03['id']}/signups", json={"volunteer_id": vid}),
                           409)
    assert named["overlapping_shift_id"] == in_g03["id"], named


def test_new_times_refused_for_a_clash_name_the_other_shift_only_to_who_reads_it(admin, login, session, clock):
    """volunteer-002 (home G02) holds places in a G03 shift at nine and a G05 shift at two. G03's liaison moves
    their shift to two and is refused (right: the volunteer would be double-booked), with `clashes` naming the
    G05 shift. Expected: the volunteer named (the liaison must talk to them: their phone is the liaison's while
    they hold the G03 place), the other zone's shift not (`overlapping_shift_id` null); an admin is told it."""
    vid = volunteer_id(session, "volunteer-002")
    me = login("volunteer-002")
    g03, g05 = zone_of(session, "G03").id, zone_of(session, "G05").id
    nine = clock().replace(hour=1, minute=0, second=0, microsecond=0) + timedelta(days=1)
    ours = make_shift(admin, zone_id=g03, starts_at=nine)
    theirs = make_shift(admin, zone_id=g05, starts_at=nine + timedelta(hours=5))
    for shift in (ours, theirs):
        assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    move = {"starts_at": theirs["starts_at"], "ends_at": theirs["ends_at"]}

    g03_liaison = login("liaison-g03")
    refused = assert_problem(g03_liaison.patch(f"/api/v1/shifts/{ours['id']}", json=move), 409)
    assert refused["reason"] == "overlap" and refused["clashes"] == [
        {"volunteer_id": vid, "overlapping_shift_id": None}], refused
    assert personal(g03_liaison, vid)[0]  # whom to call about it: theirs while the G03 place is held
    told = assert_problem(admin.patch(f"/api/v1/shifts/{ours['id']}", json=move), 409)
    assert told["clashes"] == [{"volunteer_id": vid, "overlapping_shift_id": theirs["id"]}], told


# ---------------------------------------------------------------- surfaces that follow the rule (guards)


def test_a_zone_liaison_runs_their_shift_whatever_the_volunteers_home_zone(admin, login, session, clock):
    """G03's liaison runs a G03 shift of volunteers from other zones: the roster, the phones of those holding a
    place (confirmed or waitlisted), the check-ins' positions, the zone map's positions and the hours queue's
    check-in and check-out. Another zone's liaison gets none of it (403, a masked phone, no position); the
    shift over and the hours decided, the record of the shift stays G03's, the phone does not."""
    g03 = zone_of(session, "G03").id
    here = zone_center(admin, g03)
    shift = make_shift(admin, zone_id=g03, starts_at=clock() + timedelta(minutes=10), hours=1, capacity=1)
    first, second = volunteer_id(session, "volunteer-002"), volunteer_id(session, "volunteer-004")
    v2, v4 = login("volunteer-002"), login("volunteer-004")
    assert v2.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert v4.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "waitlisted"
    g03_liaison, g05_liaison = login("liaison-g03"), login("liaison-g05")

    roster = g03_liaison.get(f"/api/v1/shifts/{shift['id']}/signups")
    assert roster.status_code == 200
    assert [(s["volunteer_id"], s["status"]) for s in roster.get_json()["items"]] == [
        (first, "confirmed"), (second, "waitlisted")]
    for vid in (first, second):
        assert personal(g03_liaison, vid)[0] and not personal(g05_liaison, vid)[0]
    assert_problem(g05_liaison.get(f"/api/v1/shifts/{shift['id']}/signups"), 403)

    assert post_check(v2, shift["id"], "check-in", here, key="g03-in").status_code == 201
    assert v2.post("/api/v1/me/location", json={"lon": here[0], "lat": here[1], "accuracy_m": 10}).status_code == 201
    events = g03_liaison.get(f"/api/v1/shifts/{shift['id']}/check-events").get_json()["items"]
    assert [(e["volunteer_id"], e["kind"]) for e in events] == [(first, "check_in")] and events[0]["point"]
    assert_problem(g05_liaison.get(f"/api/v1/shifts/{shift['id']}/check-events"), 403)
    on_map = [f for f in g03_liaison.get(f"/api/v1/zones/{g03}/map").get_json()["features"]
              if f["properties"]["layer"] == "volunteer"]
    assert [f["id"] for f in on_map] == [f"volunteer.{first}"] and on_map[0]["geometry"] is not None
    elsewhere = g05_liaison.get(f"/api/v1/zones/{g03}/map").get_json()
    assert elsewhere["volunteers_on_duty"] == 1
    assert not [f for f in elsewhere["features"] if f["properties"]["layer"] == "volunteer"]

    clock.advance(minutes=40)
    out = post_check(v2, shift["id"], "check-out", here, key="g03-out")
    assert out.status_code == 201, out.get_json()
    clock.advance(hours=2)  # the shift over, the hours decided (approved at once: both ends inside)
    assert out.get_json()["hours"]["status"] == "approved"
    for vid in (first, second):
        assert personal(g03_liaison, vid) == (False, False, None)
    queue = g03_liaison.get(f"/api/v1/hours?status=approved&shift_id={shift['id']}").get_json()["items"]
    assert [(e["volunteer_id"], e["check_in"]["inside"]) for e in queue] == [(first, True)]
    assert len(g03_liaison.get(f"/api/v1/shifts/{shift['id']}/check-events").get_json()["items"]) == 2


def test_the_open_stint_reason_is_correlated_with_the_volunteer_asked_about(admin, login, session, clock):
    """The EXISTS built from a stint still open (volunteer.on_duty_shift_id) must be about the volunteer asked
    about: an uncorrelated one is true for everyone once anybody is on duty in the zone. With volunteer-002 on
    duty in G03, G03's liaison finds only them by position and sees only their phone; admins see everyone's."""
    g03 = zone_of(session, "G03").id
    here = zone_center(admin, g03)
    shift = make_shift(admin, zone_id=g03, starts_at=clock() + timedelta(minutes=10), hours=1)
    v2 = login("volunteer-002")
    assert v2.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert post_check(v2, shift["id"], "check-in", here, key="open-in").status_code == 201
    others = []
    for name in ("volunteer-004", "volunteer-006"):
        others.append(volunteer_id(session, name))
        assert login(name).post("/api/v1/me/location", json={"lon": here[0], "lat": here[1],
                                                              "accuracy_m": 10}).status_code == 201
    assert v2.post("/api/v1/me/location", json={"lon": here[0], "lat": here[1], "accuracy_m": 10}).status_code == 201
    g03_liaison = login("liaison-g03")
    found = [v["id"] for v in g03_liaison.get(
        f"/api/v1/volunteers?near={here[0]},{here[1]}&radius_m=50000&limit=200").get_json()["items"]]
    assert volunteer_id(session, "volunteer-002") in found and not set(others) & set(found)
    for vid in others:
        assert personal(g03_liaison, vid) == (False, False, None)
        assert not is_masked(admin.get(f"/api/v1/volunteers/{vid}").get_json()["phone"])  # admins: everyone
