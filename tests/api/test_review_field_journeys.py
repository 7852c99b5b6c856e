"""A review of the volunteer's field journeys (sign-up, check-in/out online and offline, hours, exports).

Each test failed before its fix (or is marked xfail where the fix belongs to a file this review did not own) and
asserts what the volunteer or the liaison would see: hours, times, who is on duty, what the calendar says.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridsvc.ical import shifts_calendar
from gridsvc.models import CheckEvent, ServiceHours, Signup, Volunteer
from tests.api.volunteer_helpers import (hours_of_shift, make_shift, offline, post_check, volunteer_id, zone_center,
                                        zone_of)
from tests.helpers import calendar_events, client_as, delete_shifts, duty_restored


@pytest.fixture()
def admin(login):
    return login("admin")


# ------------------------------------------------------------------ an offline stint behind an online check-in


@pytest.fixture()
def two_shifts(admin, login, session, clock):
    """volunteer-001 confirmed for A in G01 (2 h) and B in G02, starting 30 min after A ends; the clock stands
    10 minutes before B, and the volunteer has just checked in to B online: the phone's queue, holding A's
    check-in and check-out, reaches the server after that."""
    g01, g02 = zone_of(session, "G01").id, zone_of(session, "G02").id
    at_a, at_b = zone_center(admin, g01), zone_center(admin, g02)
    start = clock() + timedelta(minutes=20)
    a = make_shift(admin, zone_id=g01, starts_at=start, hours=2)
    b = make_shift(admin, zone_id=g02, starts_at=start + timedelta(hours=2, minutes=30), hours=2,
                   title="垃圾分类督导", activity="garbage_sorting")
    v = login("volunteer-001")
    for shift in (a, b):
        assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    a_start = datetime.fromisoformat(a["starts_at"])
    clock.current = a_start + timedelta(hours=2, minutes=20)
    checked_in = post_check(v, b["id"], "check-in", at_b, key="b-in")
    assert checked_in.status_code == 201, checked_in.get_json()
    return {"a": a, "b": b, "at_a": at_a, "at_b": at_b, "client": v, "a_start": a_start,
            "b_in": clock(), "id": volunteer_id(session, "volunteer-001")}


def test_an_offline_stint_uploaded_after_an_online_check_in_elsewhere_keeps_its_hours(two_shifts, session, clock):
    """The morning at A (no signal: checked in at its start and out at its end on the phone) was lost when the
    online check-in at B reached the server before the phone's queue: A's check-in was refused as "already
    checked in to B", its check-out as "no open check-in", and the volunteer's record had no hours for A."""
    s, v = two_shifts, two_shifts["client"]
    upload = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["a"]["id"], s["a_start"], s["at_a"], "a-in"),
        offline("check_out", s["a"]["id"], s["a_start"] + timedelta(hours=2), s["at_a"], "a-out")]})
    assert upload.status_code == 200, upload.get_json()
    results = upload.get_json()["results"]
    assert [r["status"] for r in results] == [201, 201], results
    assert results[0]["result"]["on_duty"] is False  # they are on duty at B, not A
    [entry] = hours_of_shift(session, s["a"]["id"])
    # both ends inside the zone and in time: the two hours, approved as an online stint would be
    assert (float(entry.hours), entry.status, entry.flagged) == (2.0, "approved", False)
    assert session.get(Volunteer, s["id"]).on_duty_shift_id == s["b"]["id"]  # still on duty at B
    # ... and B's own stint goes on as usual
    clock.advance(hours=1)
    out = post_check(v, s["b"]["id"], "check-out", s["at_b"], key="b-out")
    assert out.status_code == 201 and out.get_json()["hours"]["hours"] == pytest.approx(0.83, abs=0.01)
    report = v.get(f"/api/v1/volunteers/{s['id']}/hours").get_json()
    assert report["approved"] == pytest.approx(2.83, abs=0.01)


def test_a_second_offline_check_in_inside_that_stint_names_it_and_not_the_duty_at_b(two_shifts, session):
    """A's stint uploaded after B's online check-in, and with it a second tap at A an hour in: refused as a second
    tap (409 already_checked_in, nothing recorded). Its answer said "already checked in to shift A; check out
    first" with on_duty_shift_id A, while A's stint was over and the duty was at B."""
    s, v = two_shifts, two_shifts["client"]
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["a"]["id"], s["a_start"], s["at_a"], "a-in"),
        offline("check_in", s["a"]["id"], s["a_start"] + timedelta(hours=1), s["at_a"], "a-in-again"),
        offline("check_out", s["a"]["id"], s["a_start"] + timedelta(hours=2), s["at_a"], "a-out")]}).get_json()["results"]
    assert [(r["status"], r["result"].get("reason")) for r in results] == [
        (201, None), (409, "already_checked_in"), (201, None)], results
    refused = results[1]["result"]
    assert "on_duty_shift_id" not in refused and "check out first" not in refused["detail"]
    assert f"inside a stint of yours at shift {s['a']['id']} already on record" in refused["detail"]
    assert session.scalar(select(func.count()).where(CheckEvent.idempotency_key == "a-in-again")) == 0
    assert session.get(Volunteer, s["id"]).on_duty_shift_id == s["b"]["id"]


def test_an_offline_stint_without_its_check_out_waits_closed_where_the_next_duty_began(two_shifts, session):
    """Only A's check-in in the queue (the check-out was never pressed): the stint is closed at A's end, flagged
    for the liaison, as a forgotten check-out always is; the volunteer stays on duty at B."""
    s, v = two_shifts, two_shifts["client"]
    upload = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["a"]["id"], s["a_start"] + timedelta(minutes=5), s["at_a"], "a-in")]})
    assert upload.get_json()["results"][0]["status"] == 201, upload.get_json()
    [entry] = hours_of_shift(session, s["a"]["id"])
    assert (float(entry.hours), entry.status, entry.flag_reason) == (pytest.approx(1.92, abs=0.01), "pending",
                                                                     "missing_check_out")
    assert entry.ended_at == datetime.fromisoformat(s["a"]["ends_at"])
    assert session.get(Volunteer, s["id"]).on_duty_shift_id == s["b"]["id"]


@pytest.fixture()
def early_at_b(admin, login, session, clock):
    """volunteer-001 confirmed for A in G01 (2 h) and B in G02, starting 10 minutes after A ends, and checked in
    online at B 30 minutes early, 20 minutes before A's end; A's queue has not gone up yet."""
    g01, g02 = zone_of(session, "G01").id, zone_of(session, "G02").id
    start = clock() + timedelta(minutes=20)
    a = make_shift(admin, zone_id=g01, starts_at=start, hours=2)
    b = make_shift(admin, zone_id=g02, starts_at=start + timedelta(hours=2, minutes=10), hours=2)
    v = login("volunteer-001")
    for shift in (a, b):
        assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    clock.current = start + timedelta(hours=1, minutes=40)
    at_b = zone_center(admin, g02)
    assert post_check(v, b["id"], "check-in", at_b, key="b-in").status_code == 201
    return {"a": a, "b": b, "at_a": zone_center(admin, g01), "at_b": at_b, "start": start, "b_in": clock(), "client": v}


def test_an_offline_stint_never_runs_into_the_next_check_in(early_at_b, session, clock):
    """B checked in 30 minutes early, 20 minutes before A's end: A's stint ends there, whatever its check-out
    says; a check-out after it is refused as outside its window, and no minute is counted at both shifts."""
    s = early_at_b
    a, at_a, start, b_in, v = s["a"], s["at_a"], s["start"], s["b_in"], s["client"]
    clock.advance(minutes=30)
    upload = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", a["id"], start, at_a, "a-in"),
        offline("check_out", a["id"], start + timedelta(hours=2), at_a, "a-out")]})
    results = upload.get_json()["results"]
    assert [r["status"] for r in results] == [201, 422], results
    assert results[1]["result"]["reason"] == "outside_window"
    [entry] = hours_of_shift(session, a["id"])
    assert entry.ended_at == b_in and float(entry.hours) == pytest.approx(1.67, abs=0.01)
    assert entry.status == "pending" and entry.flag_reason == "missing_check_out"


def test_an_offline_check_in_after_the_online_one_is_still_refused(two_shifts, session):
    """What the fix keeps: a check-in recorded after the volunteer went on duty, elsewhere or at the same shift,
    is refused (409): they were on duty then."""
    s, v = two_shifts, two_shifts["client"]
    upload = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["a"]["id"], s["b_in"] + timedelta(minutes=1), s["at_a"], "a-late-in"),
        offline("check_in", s["b"]["id"], s["b_in"] + timedelta(minutes=2), s["at_b"], "b-late-in")]})
    results = upload.get_json()["results"]
    assert [(r["status"], r["result"]["reason"]) for r in results] == [(409, "already_checked_in")] * 2, results
    assert hours_of_shift(session, s["a"]["id"]) == [] and hours_of_shift(session, s["b"]["id"]) == []


@pytest.fixture()
def one_shift(admin, login, session, clock):
    """volunteer-001 confirmed for a 2-hour shift in G01 starting in an hour: (the shift, the volunteer's
    client, the zone's centre)."""
    g01 = zone_of(session, "G01").id
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(hours=1), hours=2)
    v = login("volunteer-001")
    assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    return shift, v, zone_center(admin, g01)


def test_a_queued_stint_uploaded_after_an_online_check_in_at_the_same_shift_keeps_its_hours(one_shift, session, clock):
    """No signal at the start: the phone queued a check-in at the start and a check-out 30 minutes in. Back in
    signal, the volunteer checked in online at 45 minutes, and the queue went up a minute later. The queued
    check-in was refused (409 "already checked in"), its check-out judged as the end of the online stint (422,
    too early): 0.75 hours on record instead of 1.25."""
    shift, v, at = one_shift
    start = datetime.fromisoformat(shift["starts_at"])
    clock.current = start + timedelta(minutes=45)
    assert post_check(v, shift["id"], "check-in", at, key="online-in").status_code == 201
    clock.advance(minutes=1)
    upload = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start, at, "queued-in"),
        offline("check_out", shift["id"], start + timedelta(minutes=30), at, "queued-out")]})
    results = upload.get_json()["results"]
    assert [r["status"] for r in results] == [201, 201], results
    # still checked in to the shift, by the online check-in, as both answers say
    assert [r["result"]["on_duty"] for r in results] == [True, True]
    assert session.get(Volunteer, volunteer_id(session, "volunteer-001")).on_duty_shift_id == shift["id"]
    [queued] = hours_of_shift(session, shift["id"])
    assert (float(queued.hours), queued.status, queued.flagged) == (0.5, "approved", False)

    clock.current = start + timedelta(minutes=90)
    out = post_check(v, shift["id"], "check-out", at, key="online-out")
    assert out.status_code == 201 and out.get_json()["hours"]["hours"] == 0.75
    assert sorted(float(e.hours) for e in hours_of_shift(session, shift["id"])) == [0.5, 0.75]
    report = v.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}/hours").get_json()
    assert report["approved"] == 1.25 and report["pending"] == 0


def test_a_queued_check_in_just_before_the_online_one_at_the_same_shift_counts_no_minute_twice(one_shift, session,
                                                                                               clock):
    """The queue held only a check-in, a minute before the online one at the same shift: its minute is a stint
    of its own, closed where the online one began (pending, flagged for the liaison as any stint without its
    check-out), and the online stint is untouched."""
    shift, v, at = one_shift
    start = datetime.fromisoformat(shift["starts_at"])
    clock.current = start + timedelta(minutes=10)
    assert post_check(v, shift["id"], "check-in", at, key="online-in").status_code == 201
    online_in = clock()
    upload = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start + timedelta(minutes=4), at, "queued-in")]})
    assert upload.get_json()["results"][0]["status"] == 201, upload.get_json()
    [closed] = hours_of_shift(session, shift["id"])
    assert (closed.ended_at, float(closed.hours), closed.status, closed.flag_reason) == (
        online_in, 0.1, "pending", "missing_check_out")
    clock.current = start + timedelta(minutes=70)
    out = post_check(v, shift["id"], "check-out", at, key="online-out")
    assert out.status_code == 201 and out.get_json()["hours"]["hours"] == 1.0


def test_checked_out_by_mistake_before_the_start_and_in_again_offline_keeps_the_shift(one_shift, session, clock):
    """No signal at the gate: in 20 minutes early, out by mistake 5 minutes later, in again at once, out 5
    minutes before the end, all uploaded after the shift. The first stint's end was read from its hours, which
    stop at the shift's start: the second check-in was refused (422, "accepted from" the start), then its
    check-out (409), and the shift's hours were lost."""
    shift, v, at = one_shift
    start, end = datetime.fromisoformat(shift["starts_at"]), datetime.fromisoformat(shift["ends_at"])
    clock.current = end + timedelta(minutes=10)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start - timedelta(minutes=20), at, "first-in"),
        offline("check_out", shift["id"], start - timedelta(minutes=15), at, "first-out"),
        offline("check_in", shift["id"], start - timedelta(minutes=14), at, "second-in"),
        offline("check_out", shift["id"], end - timedelta(minutes=5), at, "second-out")]}).get_json()["results"]
    assert [r["status"] for r in results] == [201] * 4, results
    assert sorted((float(e.hours), e.status) for e in hours_of_shift(session, shift["id"])) == [
        (0.0, "approved"), (1.92, "approved")]
    # a check-in inside a stint on record is still refused: the volunteer was checked in then (409, as a second
    # tap online, nothing recorded)
    late = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start + timedelta(minutes=30), at, "inside-in")]}).get_json()["results"]
    assert (late[0]["status"], late[0]["result"]["reason"]) == (409, "already_checked_in"), late
    assert session.scalar(select(func.count()).where(CheckEvent.idempotency_key == "inside-in")) == 0
    # which stint, on the park's clock; not "check out first" with a duty to check out from: that stint is over
    park = ZoneInfo("Asia/Shanghai")
    assert late[0]["result"]["detail"] == (
        f"This check-in, at {(start + timedelta(minutes=30)).astimezone(park):%Y-%m-%d %H:%M:%S}, falls inside a "
        f"stint of yours at shift {shift['id']} already on record, from "
        f"{(start - timedelta(minutes=14)).astimezone(park):%Y-%m-%d %H:%M:%S} to "
        f"{(end - timedelta(minutes=5)).astimezone(park):%Y-%m-%d %H:%M:%S}, Asia/Shanghai time: you were checked "
        f"in then. It was not recorded.")
    assert "on_duty_shift_id" not in late[0]["result"]


def test_a_queued_stint_at_the_same_shift_uploaded_after_the_online_stint_ended_keeps_its_hours(one_shift, session,
                                                                                                clock):
    """The same queue (in at the start, out 30 minutes in) went up after the online stint (45 to 90 minutes)
    had ended: the window then opened after every stint recorded at the shift, so the check-in was refused
    (422, "accepted from" the online check-out), its check-out too (409), and the half hour was lost; it
    was kept when the upload came while the volunteer was still on duty."""
    shift, v, at = one_shift
    start = datetime.fromisoformat(shift["starts_at"])
    clock.current = start + timedelta(minutes=45)
    assert post_check(v, shift["id"], "check-in", at, key="online-in").status_code == 201
    clock.current = start + timedelta(minutes=90)
    assert post_check(v, shift["id"], "check-out", at, key="online-out").status_code == 201
    clock.advance(minutes=1)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start, at, "queued-in"),
        offline("check_out", shift["id"], start + timedelta(minutes=30), at, "queued-out")]}).get_json()["results"]
    assert [r["status"] for r in results] == [201, 201], results
    assert results[0]["result"]["on_duty"] is False
    assert session.get(Volunteer, volunteer_id(session, "volunteer-001")).on_duty_shift_id is None
    assert sorted((float(e.hours), e.status) for e in hours_of_shift(session, shift["id"])) == [
        (0.5, "approved"), (0.75, "approved")]


def test_a_queued_check_out_completes_its_own_stint_after_the_online_one_was_closed_overdue(one_shift, session,
                                                                                           clock):
    """The queued check-in went up alone while the volunteer was on duty online (kept, closed at the online
    check-in); nobody checked out online, and the online stint was closed at the shift's end. The queued
    check-out then took the stint that started last, the online one, and was refused as too early."""
    shift, v, at = one_shift
    start, end = datetime.fromisoformat(shift["starts_at"]), datetime.fromisoformat(shift["ends_at"])
    clock.current = start + timedelta(minutes=45)
    assert post_check(v, shift["id"], "check-in", at, key="online-in").status_code == 201
    clock.advance(minutes=1)
    [queued] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start, at, "queued-in")]}).get_json()["results"]
    assert queued["status"] == 201, queued
    clock.current = end + timedelta(hours=3)  # past the grace: the online stint is closed as a missing check-out
    [out] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_out", shift["id"], start + timedelta(minutes=30), at, "queued-out")]}).get_json()["results"]
    assert out["status"] == 201, out
    entries = sorted(hours_of_shift(session, shift["id"]), key=lambda e: e.started_at)
    assert [(float(e.hours), e.status, e.flag_reason) for e in entries] == [
        (0.5, "approved", None), (1.25, "pending", "missing_check_out")]


def test_a_stint_closed_at_a_check_in_before_the_start_does_not_block_checking_in_again(one_shift, session, clock):
    """Queued in 25 minutes early; checked in online 20 minutes early (the queue went up after it), out by mistake
    18 minutes early; in again offline 17 minutes early, out 5 minutes before the end. The queued stint ended at
    the online check-in, but its hours end at the start (hours never count before it), and the new check-in's
    window opened there: refused, its check-out too, and the shift's hours lost."""
    shift, v, at = one_shift
    start, end = datetime.fromisoformat(shift["starts_at"]), datetime.fromisoformat(shift["ends_at"])
    clock.current = start - timedelta(minutes=20)
    assert post_check(v, shift["id"], "check-in", at, key="online-in").status_code == 201
    clock.advance(minutes=1)
    [queued] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start - timedelta(minutes=25), at, "queued-in")]}).get_json()["results"]
    assert queued["status"] == 201, queued
    clock.current = start - timedelta(minutes=18)
    assert post_check(v, shift["id"], "check-out", at, key="online-out").status_code == 201
    clock.current = end + timedelta(minutes=10)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start - timedelta(minutes=17), at, "again-in"),
        offline("check_out", shift["id"], end - timedelta(minutes=5), at, "again-out")]}).get_json()["results"]
    assert [r["status"] for r in results] == [201, 201], results
    assert sum(float(e.hours) for e in hours_of_shift(session, shift["id"])) == 1.92


def test_a_late_check_out_from_before_any_stint_ends_none(one_shift, session, clock):
    """An offline check-out at 10 minutes, before the queued stint that began at 20 (and the online one at 45):
    it took the stint after it and was refused as outside that stint's window, recorded and flagged. It ends no
    stint: 409, nothing recorded, as a check-out without a check-in online."""
    shift, v, at = one_shift
    start = datetime.fromisoformat(shift["starts_at"])
    clock.current = start + timedelta(minutes=45)
    assert post_check(v, shift["id"], "check-in", at, key="online-in").status_code == 201
    clock.advance(minutes=1)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start + timedelta(minutes=20), at, "queued-in")]}).get_json()["results"]
    assert results[0]["status"] == 201, results
    [stray] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_out", shift["id"], start + timedelta(minutes=10), at, "stray-out")]}).get_json()["results"]
    assert (stray["status"], stray["result"]["reason"]) == (409, "not_checked_in"), stray
    assert session.scalar(select(func.count()).where(CheckEvent.idempotency_key == "stray-out")) == 0


def test_a_stale_offline_check_in_neither_puts_the_volunteer_on_duty_nor_runs_into_the_next_stint(early_at_b, session,
                                                                                                  clock):
    """A's queued check-in (no check-out) went up after the volunteer had checked in and out at B, 30 minutes
    early at B, inside A's time: it put them on duty at A, where they no longer were, and the stint ran to A's
    end, through B's. Now it is a stint of its own, closed where B's began."""
    s = early_at_b
    a, b, at_a, at_b, start, b_in, v = s["a"], s["b"], s["at_a"], s["at_b"], s["start"], s["b_in"], s["client"]
    clock.current = start + timedelta(hours=2, minutes=30)
    assert post_check(v, b["id"], "check-out", at_b, key="b-out").status_code == 201
    [queued] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", a["id"], start, at_a, "a-in")]}).get_json()["results"]
    assert queued["status"] == 201 and queued["result"]["on_duty"] is False, queued
    vid = volunteer_id(session, "volunteer-001")
    assert session.get(Volunteer, vid).on_duty_shift_id is None
    [entry] = hours_of_shift(session, a["id"])
    assert (entry.ended_at, float(entry.hours), entry.flag_reason) == (b_in, 1.67, "missing_check_out")


def test_an_offline_check_in_uploaded_after_the_shift_and_its_grace_is_closed_at_once(one_shift, admin, session, clock):
    """The phone queued a check-in 10 minutes into the shift and nothing more; it reached the server the next
    morning. It put the volunteer on duty at a shift long over (on the liaison's map, in `on_duty=true`) until
    the next `gridsvc tick`. Now the stint is closed at the shift's end on arrival, flagged as a missing
    check-out, as tick would have closed it; its own check-out, uploaded after it, still completes it."""
    shift, v, at = one_shift
    start = datetime.fromisoformat(shift["starts_at"])
    clock.current = start + timedelta(hours=14)
    [queued] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", shift["id"], start + timedelta(minutes=10), at, "late-in")]}).get_json()["results"]
    assert queued["status"] == 201 and queued["result"]["on_duty"] is False, queued
    vid = volunteer_id(session, "volunteer-001")
    assert session.get(Volunteer, vid).on_duty_shift_id is None
    [entry] = hours_of_shift(session, shift["id"])
    assert (entry.ended_at, float(entry.hours), entry.status, entry.flag_reason) == (
        start + timedelta(hours=2), 1.83, "pending", "missing_check_out")
    on_duty = admin.get("/api/v1/volunteers", query_string={"on_duty": "true", "limit": 500}).get_json()["items"]
    assert vid not in [item["id"] for item in on_duty]
    [out] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_out", shift["id"], start + timedelta(minutes=100), at, "late-out")]}).get_json()["results"]
    assert out["status"] == 201, out
    [entry] = hours_of_shift(session, shift["id"])
    assert (float(entry.hours), entry.status, entry.flag_reason) == (1.5, "approved", None)


# ------------------------------------------------------------------ the calendar after a shift moves or is cancelled


def test_the_calendar_folds_long_chinese_titles_at_75_octets_between_characters():
    title = "北门早高峰交通疏导与文明城市创建志愿服务（灵动志愿者服务队，请穿红马甲）" * 3
    start = datetime(2026, 3, 4, 0, 0, tzinfo=ZoneInfo("UTC"))
    feed = shifts_calendar([{"uid": "shift-1-volunteer-1@gridsvc", "title": title, "starts_at": start,
                             "ends_at": start + timedelta(hours=2), "status": "CONFIRMED", "location": "第一网格 G01",
                             "description": "traffic_guidance; confirmed",
                             "last_modified": datetime(2026, 3, 1, 8, 0, tzinfo=ZoneInfo("UTC"))}], name="龙军 志愿服务班次")
    raw = feed.encode("utf-8")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # each physical line whole UTF-8: no character cut in two
    [event] = calendar_events(feed).values()
    assert event["SUMMARY"] == title.replace(",", "\\,")
    assert event["LAST-MODIFIED"] == "20260301T080000Z"
    assert int(event["SEQUENCE"]) == int((datetime(2026, 3, 1, 8, 0, tzinfo=ZoneInfo("UTC"))
                                          - datetime(2020, 1, 1, tzinfo=ZoneInfo("UTC"))).total_seconds())


def test_a_moved_or_cancelled_shift_raises_its_calendar_sequence(committed_app, engine, clock):
    """The volunteer imported the feed into their phone's calendar; then the liaison moved one shift an hour later
    and cancelled the other. Each event kept its UID, SEQUENCE (0) and every other mark of a revision but DTSTAMP
    (which is the feed's own time, new at every download), so a calendar that keeps the highest SEQUENCE it has
    seen kept the old time and the cancelled shift as confirmed."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone = zone_of(s, "G01").id
        vid = volunteer_id(s, "volunteer-059")
    start = clock() + timedelta(days=3)
    moved = make_shift(admin, zone_id=zone, starts_at=start, hours=2)
    cancelled = make_shift(admin, zone_id=zone, starts_at=start + timedelta(hours=5), hours=2)
    v = client_as(committed_app, "volunteer-059")
    try:
        for shift in (moved, cancelled):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
        before = calendar_events(v.get(f"/api/v1/volunteers/{vid}/shifts.ics").get_data(as_text=True))
        time.sleep(1.1)  # the changes come at least a second later, as a liaison's would
        assert admin.patch(f"/api/v1/shifts/{moved['id']}", json={
            "starts_at": (start + timedelta(hours=1)).isoformat(),
            "ends_at": (start + timedelta(hours=3)).isoformat()}).status_code == 200
        assert admin.delete(f"/api/v1/shifts/{cancelled['id']}").status_code == 200
        after = calendar_events(v.get(f"/api/v1/volunteers/{vid}/shifts.ics").get_data(as_text=True))
        for shift in (moved, cancelled):
            uid = f"shift-{shift['id']}-volunteer-{vid}@gridsvc"
            assert int(after[uid].get("SEQUENCE", 0)) > int(before[uid].get("SEQUENCE", 0)), (before[uid], after[uid])
            assert after[uid]["LAST-MODIFIED"] > before[uid]["LAST-MODIFIED"]
        assert after[f"shift-{cancelled['id']}-volunteer-{vid}@gridsvc"]["STATUS"] == "CANCELLED"
    finally:
        delete_shifts(engine, moved["id"], cancelled["id"])


# ------------------------------------------------------------------ races checked and found sound


def _at_once(*calls):
    """Run the calls in threads released together; their answers, in order."""
    barrier, answers = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index, call):
        barrier.wait()
        answers[index] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_two_withdrawals_and_the_promoted_volunteers_own_sign_up_at_once(committed_app, engine, clock):
    """A full shift (2 places) with three waiting; both confirmed withdraw at the same moment as the first in line
    signs up for an overlapping shift elsewhere. Whatever the order: two confirmed, the first in line never
    confirmed twice at one time, and the waitlist numbered 1..n without a gap."""
    admin = client_as(committed_app, "admin")
    names = [f"volunteer-0{n}" for n in range(40, 45)]
    with Session(engine) as s:
        ids = [volunteer_id(s, name) for name in names]
        g03, g04 = zone_of(s, "G03").id, zone_of(s, "G04").id
    start = clock() + timedelta(days=11)
    full = make_shift(admin, zone_id=g03, starts_at=start, capacity=2)
    other = make_shift(admin, zone_id=g04, starts_at=start + timedelta(minutes=30), capacity=5)
    clients = [client_as(committed_app, name) for name in names]
    try:
        statuses = [c.post(f"/api/v1/shifts/{full['id']}/signups", json={}).get_json()["status"] for c in clients]
        assert statuses == ["confirmed"] * 2 + ["waitlisted"] * 3
        first_in_line = ids[2]
        answers = _at_once(lambda: clients[0].delete(f"/api/v1/shifts/{full['id']}/signups/{ids[0]}"),
                           lambda: clients[1].delete(f"/api/v1/shifts/{full['id']}/signups/{ids[1]}"),
                           lambda: clients[2].post(f"/api/v1/shifts/{other['id']}/signups", json={}))
        assert [a.status_code for a in answers[:2]] == [200, 200], [a.get_json() for a in answers]
        with engine.connect() as conn:
            confirmed = set(conn.execute(select(Signup.volunteer_id).where(Signup.shift_id == full["id"],
                                                                           Signup.status == "confirmed")).scalars())
            elsewhere = conn.execute(select(Signup.status).where(Signup.shift_id == other["id"],
                                                                 Signup.volunteer_id == first_in_line)).scalar()
        assert len(confirmed) == 2
        assert not (first_in_line in confirmed and elsewhere == "confirmed"), "confirmed for two shifts at once"
        if answers[2].status_code == 201:
            assert confirmed == {ids[3], ids[4]}  # skipped for the overlap: the next two in line
        else:
            assert answers[2].get_json()["reason"] == "overlap" and confirmed == {ids[2], ids[3]}
        roster = admin.get(f"/api/v1/shifts/{full['id']}/signups").get_json()["items"]
        positions = [item["waitlist_position"] for item in roster if item["status"] == "waitlisted"]
        assert positions == list(range(1, len(positions) + 1))
    finally:
        delete_shifts(engine, full["id"], other["id"])


def test_an_online_check_out_and_the_same_stints_offline_check_out_at_once_record_one(committed_app, engine, clock):
    """The phone sends the check-out live and, not having seen the answer, uploads its queued copy (another key)
    at the same moment: one is recorded with the hours, the other is refused as "no open check-in" (409), and
    the hours are counted once."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone = zone_of(s, "G05").id
        vid = volunteer_id(s, "volunteer-045")
    center = zone_center(admin, zone)
    shift = make_shift(admin, zone_id=zone, starts_at=clock() + timedelta(minutes=10), hours=2)
    v = client_as(committed_app, "volunteer-045")
    try:
        with duty_restored(engine, vid):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
            clock.advance(minutes=15)
            assert post_check(v, shift["id"], "check-in", center, key="race-in").status_code == 201
            clock.advance(hours=1)
            queued = offline("check_out", shift["id"], clock() - timedelta(seconds=30), center, "race-out-queued")
            other = client_as(committed_app, "volunteer-045")
            online, upload = _at_once(lambda: post_check(v, shift["id"], "check-out", center, key="race-out-live"),
                                      lambda: other.post("/api/v1/me/check-events", json={"events": [queued]}))
            answers = sorted([online.status_code, upload.get_json()["results"][0]["status"]])
            assert answers == [201, 409], (online.get_json(), upload.get_json())
            refused = online.get_json() if online.status_code == 409 else upload.get_json()["results"][0]["result"]
            assert refused["reason"] == "not_checked_in"
            with engine.connect() as conn:
                hours = conn.execute(select(ServiceHours.hours).where(ServiceHours.shift_id == shift["id"])).scalars().all()
            assert len(hours) == 1 and float(hours[0]) == pytest.approx(1.0, abs=0.02)  # (the queued copy is 30 s earlier)
    finally:
        delete_shifts(engine, shift["id"])
