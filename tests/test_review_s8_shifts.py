"""Review s8 of shifts, sign-ups and check events: each test failed before its fix.

- answers write instants as the GETs do (UTC, +00:00), whatever offset the client sent;
- a withdrawal's answer lists every sign-up it promoted, in other shifts too;
- a volunteer waiting in overlapping shifts moves up where they signed up first, not into the lowest shift id;
- an offline upload judges a check-out before a check-in made at the same instant.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.api.volunteer_helpers import make_shift, offline, volunteer_id, zone_center, zone_of

CST = timezone(timedelta(hours=8))  # the offset a phone or a liaison in Ningbo sends


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def g01(session) -> int:
    return zone_of(session, "G01").id


def utc(moment: datetime) -> str:
    """An instant as the API's GETs write it."""
    return moment.astimezone(timezone.utc).isoformat()


def sign_up(client, shift_id: int) -> str:
    response = client.post(f"/api/v1/shifts/{shift_id}/signups", json={})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["status"]


# ---------------------------------------------------------------- 1. one way of writing an instant


def test_a_shift_created_and_changed_with_an_offset_is_answered_in_utc_as_its_get(admin, g01, clock):
    """A liaison's app sends 08:00+08:00: the POST answered "08:00:00+08:00" while GET /shifts/{id} says
    "00:00:00+00:00" for the same shift; a client comparing the two strings (a cache, a calendar sync) saw two
    times. So did a PATCH."""
    starts = (clock() + timedelta(days=2)).astimezone(CST).replace(hour=8, minute=0, second=0)
    created = admin.post("/api/v1/shifts", json={
        "title": "北门早高峰", "activity": "traffic_guidance", "zone_id": g01, "capacity": 3,
        "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat()})
    assert created.status_code == 201, created.get_json()
    shift = created.get_json()
    assert (shift["starts_at"], shift["ends_at"]) == (utc(starts), utc(starts + timedelta(hours=2)))
    got = admin.get(f"/api/v1/shifts/{shift['id']}").get_json()
    assert (got["starts_at"], got["ends_at"]) == (shift["starts_at"], shift["ends_at"])

    moved = admin.patch(f"/api/v1/shifts/{shift['id']}", json={"ends_at": (starts + timedelta(hours=3)).isoformat()})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["ends_at"] == utc(starts + timedelta(hours=3)) == \
        admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["ends_at"]


def test_a_series_answers_its_shifts_times_in_utc_as_their_gets(admin, g01, clock):
    """POST /shifts/series answered each occurrence on the park's clock ("07:30:00+08:00"); GET of the same shift
    gives "23:30:00+00:00" the day before."""
    first = (clock() + timedelta(days=1)).astimezone(CST).date()
    made = admin.post("/api/v1/shifts/series", json={
        "title": "早高峰疏导", "activity": "traffic_guidance", "zone_id": g01, "capacity": 2,
        "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "07:30", "end_time": "09:00",
        "from_date": first.isoformat(), "until_date": (first + timedelta(days=2)).isoformat()})
    assert made.status_code == 201, made.get_json()
    items = made.get_json()["items"]
    assert len(items) == 3
    for day, item in enumerate(items):
        starts = datetime(first.year, first.month, first.day, 7, 30, tzinfo=CST) + timedelta(days=day)
        assert (item["starts_at"], item["ends_at"]) == (utc(starts), utc(starts + timedelta(minutes=90)))
        got = admin.get(f"/api/v1/shifts/{item['id']}").get_json()
        assert (got["starts_at"], got["ends_at"]) == (item["starts_at"], item["ends_at"])


def test_a_position_sent_with_the_phones_offset_is_answered_in_utc_as_the_profile(login, clock):
    """POST /me/location with client_time "…+08:00" answered recorded_at "…+08:00", where /me/volunteer gives the
    same fix's time as "…+00:00"."""
    v = login("volunteer-001")
    taken = (clock() - timedelta(minutes=3)).astimezone(CST).replace(microsecond=0)
    sent = v.post("/api/v1/me/location", json={"lon": 121.781, "lat": 29.871, "accuracy_m": 12,
                                                "client_time": taken.isoformat()})
    assert sent.status_code == 201, sent.get_json()
    assert sent.get_json()["recorded_at"] == utc(taken)
    assert v.get("/api/v1/me/volunteer").get_json()["last_position"]["at"] == utc(taken)
    too_old = (clock() - timedelta(days=3)).astimezone(CST).replace(microsecond=0)
    refused = v.post("/api/v1/me/location", json={"lon": 121.781, "lat": 29.871, "client_time": too_old.isoformat()})
    assert refused.status_code == 422 and utc(too_old) in refused.get_json()["detail"]


@pytest.fixture()
def on_shift(admin, login, session, g01, clock):
    """volunteer-001 confirmed for a 2-hour shift in G01 that started an hour ago."""
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(hours=1), hours=2)
    v = login("volunteer-001")
    assert sign_up(v, shift["id"]) == "confirmed"
    clock.advance(hours=2)
    return {"shift": shift, "client": v, "at": zone_center(admin, g01),
            "start": datetime.fromisoformat(shift["starts_at"])}


def test_an_offline_events_at_is_answered_in_utc_as_the_liaison_reads_it(on_shift, login):
    """The phone records its check-in at 10:05+08:00: the upload's answer said `at` "...+08:00" while the
    liaison's GET .../check-events gives the same moment as "...+00:00"."""
    s, v = on_shift, on_shift["client"]
    at = (s["start"] + timedelta(minutes=5)).astimezone(CST)
    [result] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["shift"]["id"], at, s["at"], "in-1")]}).get_json()["results"]
    assert result["status"] == 201, result
    assert result["result"]["at"] == utc(at)
    [seen] = login("liaison-g01").get(f"/api/v1/shifts/{s['shift']['id']}/check-events").get_json()["items"]
    assert seen["at"] == result["result"]["at"]


def test_a_refused_offline_event_says_when_it_was_on_the_clock_of_its_window(on_shift):
    """A check-in recorded an hour before the window opened: "accepted from 01:30+00:00 to 04:00+00:00; it was
    09:00+08:00" mixed two offsets in one sentence, and `at` echoed the phone's. The sentence is on the park's
    clock now (migration 0039), the fields in UTC."""
    s, v = on_shift, on_shift["client"]
    at = (s["start"] - timedelta(hours=1)).astimezone(CST)
    [result] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["shift"]["id"], at, s["at"], "early")]}).get_json()["results"]
    assert (result["status"], result["result"]["reason"]) == (422, "outside_window"), result
    assert result["result"]["at"] == utc(at)
    assert result["result"]["detail"].endswith(f"Asia/Shanghai time; it was {at:%H:%M:%S}."), result["result"]["detail"]


def test_an_offline_event_out_of_range_says_its_time_in_utc_as_the_range(on_shift, clock):
    """An event two days old is refused for that event only; its detail wrote the phone's "+08:00" next to the
    server's range in UTC."""
    s, v = on_shift, on_shift["client"]
    at = (clock() - timedelta(days=2)).astimezone(CST)
    [result] = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", s["shift"]["id"], at, s["at"], "stale")]}).get_json()["results"]
    assert (result["status"], result["result"]["reason"]) == (422, "client_time_out_of_range"), result
    assert result["result"]["detail"].startswith(f"client_time {utc(at)} is outside"), result["result"]["detail"]


# ---------------------------------------------------------------- 2, 3. promotions a withdrawal makes


@pytest.fixture()
def three_at_once(admin, g01, clock):
    """Three shifts at the same time tomorrow, one place each, made in the order A, B, C."""
    starts = clock() + timedelta(days=1)
    return [make_shift(admin, zone_id=g01, starts_at=starts, capacity=1, title=f"Shift {name}")["id"]
            for name in "ABC"]


def leave(client, shift_id: int, vid: int) -> dict:
    response = client.delete(f"/api/v1/shifts/{shift_id}/signups/{vid}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def statuses(client, vid: int) -> dict[int, str]:
    """The volunteer's sign-ups as "my shifts" lists them: shift id -> status."""
    page = client.get(f"/api/v1/volunteers/{vid}/signups").get_json()
    return {item["shift"]["id"]: item["status"] for item in page["items"]}


@pytest.mark.parametrize("withdrawn_by", ["volunteer-001", "liaison-g01"])
def test_a_withdrawal_lists_every_sign_up_it_promoted_with_its_shift(three_at_once, login, session, withdrawn_by):
    """volunteer-001 waits for B, then takes A (same time): when B's place frees, it is skipped for them (the
    overlap). Withdrawing from A then confirms volunteer-003 (waiting for A) and volunteer-001 in B; the answer
    listed only A's promotion, so the app never told the volunteer they now serve B. The zone's liaison is told
    both; the volunteer their own (who took their place in A is volunteer-003's record, not theirs to read)."""
    a, b, _ = three_at_once
    v1, v2, v3 = (login(f"volunteer-00{n}") for n in (1, 2, 3))
    id1, id2, id3 = (volunteer_id(session, f"volunteer-00{n}") for n in (1, 2, 3))
    assert sign_up(v2, b) == "confirmed"
    assert sign_up(v1, b) == "waitlisted"
    assert sign_up(v1, a) == "confirmed"
    assert sign_up(v3, a) == "waitlisted"
    assert leave(v2, b, id2)["promoted"] == []  # volunteer-001 skipped: confirmed for A at that time

    answer = leave(login(withdrawn_by), a, id1)
    everyone = [(a, id3, "confirmed"), (b, id1, "confirmed")]
    assert sorted((p["shift_id"], p["volunteer_id"], p["status"]) for p in answer["promoted"]) == sorted(
        everyone if withdrawn_by == "liaison-g01" else [(b, id1, "confirmed")])
    assert statuses(v1, id1) == {b: "confirmed"}
    assert statuses(v3, id3) == {a: "confirmed"}


def waiting_in_c_then_b_while_serving_a(three_at_once, login, session):
    """volunteer-001 waits for C (signed up first) and B, both full (volunteer-002 holds B, volunteer-003 C), and
    serves A at the same time. Returns the shift ids, the three volunteers' clients and their volunteer ids."""
    a, b, c = three_at_once
    v1, v2, v3 = (login(f"volunteer-00{n}") for n in (1, 2, 3))
    id1, id2, id3 = (volunteer_id(session, f"volunteer-00{n}") for n in (1, 2, 3))
    assert sign_up(v2, b) == "confirmed"
    assert sign_up(v3, c) == "confirmed"
    assert sign_up(v1, c) == "waitlisted"
    assert sign_up(v1, b) == "waitlisted"
    assert sign_up(v1, a) == "confirmed"
    return (a, b, c), (v1, v2, v3), (id1, id2, id3)


def test_a_volunteer_freed_moves_up_where_they_signed_up_first_not_the_lowest_shift_id(three_at_once, login,
                                                                                       session):
    """volunteer-001 waits for C (signed up first) and B, both full, then takes A at the same time; places free
    in B and C while they serve A. Withdrawing from A, they were confirmed in B, the lower id, and C's place
    stayed empty: their first sign-up is the fair choice (first come, first served), and B's place is left for
    whoever waits next."""
    (a, b, c), (v1, v2, v3), (id1, id2, id3) = waiting_in_c_then_b_while_serving_a(three_at_once, login, session)
    assert leave(v2, b, id2)["promoted"] == []
    assert leave(v3, c, id3)["promoted"] == []

    answer = leave(v1, a, id1)
    assert statuses(v1, id1) == {b: "waitlisted", c: "confirmed"}
    assert [(p["shift_id"], p["volunteer_id"]) for p in answer["promoted"]] == [(c, id1)]


def test_a_volunteer_skipped_for_their_first_sign_up_still_moves_up_where_they_wait_next(three_at_once, login,
                                                                                        session, admin):
    """The rule keeps its exceptions: a shift whose skill the volunteer lacks is passed over, and they move up
    into the other one."""
    (a, b, c), (v1, v2, v3), (id1, id2, id3) = waiting_in_c_then_b_while_serving_a(three_at_once, login, session)
    leave(v2, b, id2), leave(v3, c, id3)
    held = set(admin.get(f"/api/v1/volunteers/{id1}").get_json()["skills"])
    lacking = next(code for code in ("traffic_parking", "garbage_sorting", "epidemic_prevention", "civilized_city",
                                     "first_aid", "inspection", "translation") if code not in held)
    changed = admin.patch(f"/api/v1/shifts/{c}", json={"required_skills": [lacking]})
    assert changed.status_code == 200, changed.get_json()

    answer = leave(v1, a, id1)
    assert statuses(v1, id1) == {b: "confirmed", c: "waitlisted"}
    assert [(p["shift_id"], p["volunteer_id"]) for p in answer["promoted"]] == [(b, id1)]


# ---------------------------------------------------------------- 4. an offline upload's order


def test_a_check_out_and_a_check_in_elsewhere_at_the_same_second_are_judged_out_first(admin, login, session, g01,
                                                                                      clock):
    """Shift B starts as A ends: at 16:00:00 the volunteer checks out of A and into B, without signal. The phone
    lists the check-in first; judged in that order it was a 409 "already checked in" to A, and the stint in B
    was lost. At the same instant a check-out comes before a check-in."""
    start = clock() + timedelta(hours=1)
    a = make_shift(admin, zone_id=g01, starts_at=start, hours=2, title="Shift A")
    b = make_shift(admin, zone_id=g01, starts_at=start + timedelta(hours=2), hours=2, title="Shift B")
    v = login("volunteer-001")
    assert sign_up(v, a["id"]) == sign_up(v, b["id"]) == "confirmed"
    at = zone_center(admin, g01)
    clock.current = start + timedelta(hours=3)
    change = start + timedelta(hours=2)
    results = v.post("/api/v1/me/check-events", json={"events": [
        offline("check_in", a["id"], start, at, "in-a"),
        offline("check_in", b["id"], change, at, "in-b"),
        offline("check_out", a["id"], change, at, "out-a")]}).get_json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201), (1, 201), (2, 201)], results
    assert results[2]["result"]["hours"]["hours"] == 2.0
    assert results[1]["result"]["on_duty"] is True
    profile = v.get(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-001')}").get_json()
    assert (profile["on_duty"], profile["on_duty_shift_id"]) == (True, b["id"])


# ---------------------------------------------------------------- 5. a shift's activity is part of the record


def test_a_begun_shift_keeps_its_activity_the_hours_are_recorded_under(admin, login, g01, clock):
    """The national record's "activity" of every hours entry is its shift's: a PATCH of a shift that was over
    turned last month's traffic guidance into garbage sorting in every volunteer's record and CSV. Begun (started,
    or anyone checked in), the activity is fixed (409 started); a title still changes, and a shift to come takes a
    new activity."""
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=20), hours=1)
    v = login("volunteer-001")
    assert sign_up(v, shift["id"]) == "confirmed"
    url = f"/api/v1/shifts/{shift['id']}"
    changed = admin.patch(url, json={"activity": "garbage_sorting"})
    assert changed.status_code == 200 and changed.get_json()["activity"] == "garbage_sorting"
    here = zone_center(admin, g01)
    assert v.post(f"{url}/check-in", json={"lon": here[0], "lat": here[1]}).status_code == 201
    refused = admin.patch(url, json={"activity": "traffic_guidance"})
    assert refused.status_code == 409 and refused.get_json()["reason"] == "started", refused.get_json()
    assert admin.get(url).get_json()["activity"] == "garbage_sorting"
    same = admin.patch(url, json={"activity": "garbage_sorting", "title": "北门垃圾分类"})
    assert same.status_code == 200 and same.get_json()["title"] == "北门垃圾分类"


# ---------------------------------------------------------------- 6. a refusal's window on the park's clock


def test_a_check_in_too_early_says_the_window_on_the_parks_clock_and_gives_it_as_fields(admin, login, g01, clock):
    """At 06:25 in Ningbo, for a shift at 07:00-09:00, the refusal said "accepted from 2026-…T22:30:00+00:00 to
    …T01:00:00+00:00" (a volunteer read 22:30), and gave the window in no field the app could read, though the
    schema promised the app could say when it opens."""
    day = (clock() + timedelta(days=2)).astimezone(CST).date()
    starts = datetime(day.year, day.month, day.day, 7, 0, tzinfo=CST)
    shift = make_shift(admin, zone_id=g01, starts_at=starts.astimezone(timezone.utc), hours=2)
    v = login("volunteer-001")
    assert sign_up(v, shift["id"]) == "confirmed"
    clock.current = starts - timedelta(minutes=35)
    here = zone_center(admin, g01)
    refused = v.post(f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": here[0], "lat": here[1]})
    problem = refused.get_json()
    assert refused.status_code == 422 and problem["reason"] == "outside_window", problem
    assert f"from {day.isoformat()} 06:30 to 09:00, Asia/Shanghai time; it was 06:25:00" in problem["detail"]
    assert (problem["opens_at"], problem["closes_at"]) == (utc(starts - timedelta(minutes=30)),
                                                           utc(starts + timedelta(hours=2)))


# ---------------------------------------------------------------- 7. "my shifts" after a forgotten check-out


def test_my_shifts_says_a_stint_left_open_was_closed_at_the_shifts_end(admin, login, g01, clock, session):
    """volunteer-001 checked in and forgot to check out; gridsvc tick closed the stint at the shift's end. "My
    shifts" still showed checked in, never out (checked_out_at null), with nothing saying the stint was closed
    and waits for the liaison: only GET /hours did. Each sign-up carries its last stint's hours entry now."""
    from gridsvc.services.checks import CheckPolicy, close_overdue

    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    v = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    assert sign_up(v, shift["id"]) == "confirmed"
    here = zone_center(admin, g01)
    clock.advance(minutes=15)
    assert v.post(f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": here[0], "lat": here[1]}).status_code == 201

    def mine() -> dict:
        page = v.get(f"/api/v1/volunteers/{vid}/signups?from={shift['starts_at'].replace('+', '%2B')}").get_json()
        [item] = [item for item in page["items"] if item["shift"]["id"] == shift["id"]]
        return item

    assert mine()["hours"] is None  # on duty: no entry yet
    clock.advance(hours=4)  # past the end and the check-out's grace: tick closes the stint
    assert close_overdue(session, now=clock(), policy=CheckPolicy.of_app(admin.application)) == 1
    session.commit()
    item = mine()
    assert item["checked_out_at"] is None and not item["on_duty"]
    assert (item["hours"]["status"], item["hours"]["flag_reason"], item["hours"]["ended_at"]) == (
        "pending", "missing_check_out", shift["ends_at"])
    assert item["hours"]["hours"] == 0.92  # 07:05 to 08:00 of a shift 07:00-08:00 (55 minutes)
