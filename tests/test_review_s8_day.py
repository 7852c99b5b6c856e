"""One realistic day of the Lingfeng demo park, played through the HTTP API as its people would, every answer
read the way they would read it (review s8): the G03 liaison's north-gate morning series and a zone shift,
volunteers from several zones finding, signing up, waiting, withdrawing, checking in and out (online, retried,
refused outside the geofence, from a Baidu phone, offline), a worker's parking request dispatched to the nearest
volunteer on duty, the liaison's review, maps, roster and exports, the volunteer's own record, and the evening's
tick closing a forgotten check-out."""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod
from shapely.geometry import Point

from geo.crs import from_wgs84
from tests.api.volunteer_helpers import volunteer_id, zone_of
from tests.helpers import PROBLEM, assert_problem, calendar_events, csv_rows, offset

SHANGHAI = ZoneInfo("Asia/Shanghai")
GEOD = Geod(ellps="WGS84")
GATE = (121.7794, 29.8767)  # the north gate of G03 (WGS-84)
GATE_RADIUS_M = 80.0


def metres(a, b) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def the_day() -> date:
    """A Tuesday at least three days ahead (so nothing of the day is already past for the real clock either)."""
    day = datetime.now(SHANGHAI).date() + timedelta(days=3)
    while day.isoweekday() != 2:
        day += timedelta(days=1)
    return day


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), SHANGHAI).astimezone(timezone.utc)


def utc_text(value: str) -> datetime:
    assert value.endswith("+00:00"), value
    return datetime.fromisoformat(value)


def key() -> str:
    return str(uuid.uuid4())


def not_500(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == PROBLEM, response.get_data(as_text=True)
        body = response.get_json()
        assert body["title"] and body["type"] and body.get("detail"), body
    return response


def test_a_day_at_the_north_gate(app, login, session, clock):
    day = the_day()
    g03 = zone_of(session, "G03")
    assert shape_of(session, g03).contains(Point(GATE))
    admin, liaison = login("admin"), login("liaison-g03")

    clock.current = at(day, 0) - timedelta(hours=6)  # the evening before
    series = not_500(liaison.post("/api/v1/shifts/series", json={
        "location": {"lon": GATE[0], "lat": GATE[1]}, "radius_m": GATE_RADIUS_M, "title": "北门早高峰",
        "activity": "traffic_guidance", "weekdays": [1, 2, 3, 4, 5], "start_time": "07:00", "end_time": "09:00",
        "from_date": day.isoformat(), "until_date": (day + timedelta(days=13)).isoformat(), "capacity": 2}))
    assert series.status_code == 201
    body = series.get_json()
    assert body["count"] == 10
    gate = body["items"][0]
    assert gate["zone_id"] == g03.id and gate["radius_m"] == GATE_RADIUS_M
    assert utc_text(gate["starts_at"]) == at(day, 7) and utc_text(gate["ends_at"]) == at(day, 9)
    assert [utc_text(s["starts_at"]).astimezone(SHANGHAI).isoweekday() for s in body["items"]] == [2, 3, 4, 5, 1] * 2
    zone_shift = not_500(liaison.post("/api/v1/shifts", json={
        "zone_id": g03.id, "title": "第三网格垃圾分类督导", "activity": "garbage_sorting",
        "starts_at": f"{day.isoformat()}T09:00:00", "ends_at": f"{day.isoformat()}T11:00:00", "capacity": 3}))
    assert zone_shift.status_code == 201 and zone_shift.headers["Location"].endswith(f"/shifts/{zone_shift.get_json()['id']}")
    zone_shift = zone_shift.get_json()
    assert utc_text(zone_shift["starts_at"]) == at(day, 9) and zone_shift["location"] is None
    # another zone's liaison may not post at the gate
    assert_problem(login("liaison-g01").post("/api/v1/shifts", json={
        "location": {"lon": GATE[0], "lat": GATE[1]}, "radius_m": 50, "title": "x", "activity": "traffic_guidance",
        "starts_at": f"{day.isoformat()}T10:00:00", "ends_at": f"{day.isoformat()}T11:00:00", "capacity": 1}), 403)

    # the admin adds the required skills to the day's gate shift
    patched = not_500(admin.patch(f"/api/v1/shifts/{gate['id']}", json={"required_skills": ["traffic_parking"]}))
    assert patched.status_code == 200 and patched.get_json()["required_skills"] == ["traffic_parking"]

    # volunteers find shifts near them, with what their phones give
    vids = {u: volunteer_id(session, u) for u in ("volunteer-013", "volunteer-043", "volunteer-007", "volunteer-025",
                                                 "volunteer-003", "volunteer-023", "volunteer-033")}
    v = {u: login(u) for u in vids}
    near_gate = offset(*GATE, 30, -150)  # 150 m south, 30 m east of the gate: inside G03, outside the circle
    phone = from_wgs84(*near_gate, "gcj02")
    since = clock().isoformat().replace("+", "%2B")
    found = not_500(v["volunteer-013"].get(f"/api/v1/shifts?near={phone[0]},{phone[1]}&crs=gcj02&radius_m=500"
                                           f"&has_space=true&from={since}")).get_json()
    by_id = {s["id"]: s for s in found["items"]}
    assert gate["id"] in by_id and zone_shift["id"] in by_id
    assert by_id[zone_shift["id"]]["distance_m"] == 0
    expected = metres(near_gate, GATE) - GATE_RADIUS_M
    assert by_id[gate["id"]]["distance_m"] == pytest.approx(expected, abs=1.0)
    distances = [s["distance_m"] for s in found["items"]]
    assert distances == sorted(distances)
    baidu = from_wgs84(*near_gate, "bd09")
    found_bd = not_500(v["volunteer-007"].get(f"/api/v1/shifts?near={baidu[0]},{baidu[1]}&crs=bd09&radius_m=500"
                                              f"&has_space=true&from={since}")).get_json()
    assert {s["id"]: s["distance_m"] for s in found_bd["items"]}[gate["id"]] == pytest.approx(expected, abs=1.0)

    # sign-ups: two places at the gate
    def sign_up(user, shift_id):
        return not_500(v[user].post(f"/api/v1/shifts/{shift_id}/signups", json={}))

    first = sign_up("volunteer-013", gate["id"])
    assert first.status_code == 201 and first.get_json()["status"] == "confirmed"
    assert sign_up("volunteer-043", gate["id"]).get_json()["status"] == "confirmed"
    waiting = [sign_up(u, gate["id"]).get_json() for u in ("volunteer-007", "volunteer-025")]
    assert [(w["status"], w["waitlist_position"]) for w in waiting] == [("waitlisted", 1), ("waitlisted", 2)]
    no_skill = assert_problem(sign_up("volunteer-003", gate["id"]), 409)
    assert no_skill["reason"] == "missing_skill" and no_skill["missing_skills"] == ["traffic_parking"]
    for user in ("volunteer-003", "volunteer-023", "volunteer-033"):
        assert sign_up(user, zone_shift["id"]).get_json()["status"] == "confirmed"
    withdrawn = not_500(v["volunteer-043"].delete(f"/api/v1/shifts/{gate['id']}/signups/{vids['volunteer-043']}"))
    assert withdrawn.status_code == 200
    assert withdrawn.get_json()["cancelled"]["status"] == "cancelled" and withdrawn.get_json()["promoted"] == []
    mine = not_500(v["volunteer-007"].get(f"/api/v1/volunteers/{vids['volunteer-007']}/signups")).get_json()
    assert [(i["shift"]["id"], i["status"], i["waitlist_position"]) for i in mine["items"]] == [(gate["id"], "confirmed", None)]
    roster = not_500(liaison.get(f"/api/v1/shifts/{gate['id']}/signups")).get_json()
    assert [(i["volunteer_id"], i["status"], i["waitlist_position"]) for i in roster["items"]] == [
        (vids["volunteer-013"], "confirmed", None), (vids["volunteer-007"], "confirmed", None),
        (vids["volunteer-025"], "waitlisted", 1)]

    # 06:25: too early for the gate (opens 06:30), a 422 that says when
    clock.current = at(day, 6, 25)
    at_gate = offset(*GATE, 5, -10)
    gcj = from_wgs84(*at_gate, "gcj02")
    early = assert_problem(v["volunteer-013"].post(f"/api/v1/shifts/{gate['id']}/check-in", json={
        "lon": gcj[0], "lat": gcj[1], "crs": "gcj02", "accuracy_m": 10}, headers={"Idempotency-Key": key()}), 422)
    assert early["reason"] == "outside_window" and utc_text(early["at"]) == at(day, 6, 25)
    assert "06:30 to 09:00, Asia/Shanghai time; it was 06:25:00" in early["detail"]  # the park's clock
    assert early["opens_at"] == at(day, 6, 30).isoformat()
    # 06:52: volunteer-013 checks in from AMap; the answer is lost, the app retries with the same key
    clock.current = at(day, 6, 52)
    tap = key()
    body = {"lon": gcj[0], "lat": gcj[1], "crs": "gcj02", "accuracy_m": 10}
    checked_in = not_500(v["volunteer-013"].post(f"/api/v1/shifts/{gate['id']}/check-in", json=body,
                                                 headers={"Idempotency-Key": tap}))
    assert checked_in.status_code == 201, checked_in.get_json()
    first_answer = checked_in.get_json()
    assert first_answer["inside"] is True and first_answer["distance_m"] == 0
    assert first_answer["point"]["lon"] == pytest.approx(at_gate[0], abs=1e-5)
    assert first_answer["point"]["lat"] == pytest.approx(at_gate[1], abs=1e-5)
    clock.current = at(day, 6, 53)
    again = not_500(v["volunteer-013"].post(f"/api/v1/shifts/{gate['id']}/check-in", json=body,
                                            headers={"Idempotency-Key": tap}))
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first_answer

    # 06:58: volunteer-007, on a Baidu phone, first from the car park 250 m away: refused, with the distance
    clock.current = at(day, 6, 58)
    car_park = offset(*GATE, 0, -250)
    bd = from_wgs84(*car_park, "bd09")
    refused = assert_problem(v["volunteer-007"].post(f"/api/v1/shifts/{gate['id']}/check-in", json={
        "lon": bd[0], "lat": bd[1], "crs": "bd09", "accuracy_m": 20}, headers={"Idempotency-Key": key()}), 422)
    assert refused["reason"] == "outside_geofence" and refused["inside"] is False
    assert refused["distance_m"] == pytest.approx(metres(car_park, GATE) - GATE_RADIUS_M, abs=0.5)
    clock.current = at(day, 7, 1)
    by_gate = offset(*GATE, -20, 15)
    bd = from_wgs84(*by_gate, "bd09")
    in_007 = not_500(v["volunteer-007"].post(f"/api/v1/shifts/{gate['id']}/check-in", json={
        "lon": bd[0], "lat": bd[1], "crs": "bd09", "accuracy_m": 20}, headers={"Idempotency-Key": key()}))
    assert in_007.status_code == 201 and in_007.get_json()["inside"] is True
    assert metres((in_007.get_json()["point"]["lon"], in_007.get_json()["point"]["lat"]), by_gate) < 1

    # 07:30: who the liaison may call now
    clock.current = at(day, 7, 30)
    def phone_seen(user):
        return not_500(liaison.get(f"/api/v1/volunteers/{volunteer_id(session, user)}")).get_json()["phone"]
    assert "*" not in phone_seen("volunteer-007")  # home G07, on duty at the gate
    assert "*" not in phone_seen("volunteer-025")  # home G05, waiting for the gate
    assert "*" not in phone_seen("volunteer-013")  # home G03
    assert "*" in phone_seen("volunteer-060")  # home G10, nothing in G03
    near_me = from_wgs84(*GATE, "gcj02")
    nearby = not_500(liaison.get(f"/api/v1/volunteers?near={near_me[0]},{near_me[1]}&crs=gcj02&radius_m=300")).get_json()
    assert [(i["username"], i["distance_m"]) for i in nearby["items"]] == [
        ("volunteer-013", pytest.approx(metres(GATE, at_gate), abs=0.15)),
        ("volunteer-007", pytest.approx(metres(GATE, by_gate), abs=0.15))]
    cands = not_500(liaison.get(f"/api/v1/dispatch/candidates?lon={GATE[0]}&lat={GATE[1]}&skill=traffic_parking")).get_json()
    assert cands == [{"volunteer_id": i["id"], "distance_m": i["distance_m"]} for i in nearby["items"]]

    # 07:40: a worker cannot park by the gate; the nearest volunteer on duty is offered it
    clock.current = at(day, 7, 40)
    worker = login("worker-001")
    spot = offset(*GATE, 10, -30)
    spot_gcj = from_wgs84(*spot, "gcj02")
    filed = not_500(worker.post("/api/v1/requests", json={
        "service_code": "parking", "description": "北门找不到车位", "lon": spot_gcj[0], "lat": spot_gcj[1],
        "crs": "gcj02", "attributes": {"problem": "no_space"}, "contact": {"name": "王师傅", "phone": "13900000009"}}))
    assert filed.status_code == 201, filed.get_json()
    request = filed.get_json()
    assert request["zone_id"] == g03.id and request["status"] == "offered"
    offers = not_500(v["volunteer-013"].get("/api/v1/me/offers")).get_json()
    assert [o["id"] for o in offers] == [request["id"]] and offers[0]["contact"] is None
    assert offers[0]["offer"]["distance_m"] == pytest.approx(metres(spot, at_gate), abs=0.15)
    assert utc_text(offers[0]["offer"]["deadline"]) == at(day, 7, 45)
    seen_by_liaison = not_500(liaison.get(f"/api/v1/requests/{request['id']}")).get_json()
    assert seen_by_liaison["offer"]["volunteer_id"] == vids["volunteer-013"]
    assert seen_by_liaison["offer"]["distance_m"] == offers[0]["offer"]["distance_m"]
    assert worker.get(f"/api/v1/requests/{request['id']}").get_json()["offer"]["distance_m"] is None
    accepted = not_500(v["volunteer-013"].post(f"/api/v1/requests/{request['id']}/accept", json={}))
    assert accepted.status_code == 200 and accepted.get_json()["status"] == "assigned"
    clock.current = at(day, 7, 55)
    resolved = not_500(v["volunteer-013"].post(f"/api/v1/requests/{request['id']}/resolve", json={
        "note": "引导至东侧临时车位", "lon": spot[0], "lat": spot[1]}))
    assert resolved.status_code == 200 and resolved.get_json()["status"] == "resolved"
    assert utc_text(resolved.get_json()["resolved_at"]) == at(day, 7, 55)

    # 08:40: volunteer-007 checks out from the bus stop, 300 m off: accepted, hours wait for the liaison
    clock.current = at(day, 8, 40)
    bus_stop = offset(*GATE, 0, -380)
    out_007 = not_500(v["volunteer-007"].post(f"/api/v1/shifts/{gate['id']}/check-out", json={
        "lon": bus_stop[0], "lat": bus_stop[1], "accuracy_m": 15}, headers={"Idempotency-Key": key()}))
    assert out_007.status_code == 201, out_007.get_json()
    out_007 = out_007.get_json()
    assert out_007["inside"] is False
    assert out_007["distance_m"] == pytest.approx(metres(bus_stop, GATE) - GATE_RADIUS_M, abs=0.5)
    assert out_007["hours"]["hours"] == pytest.approx(round(99 / 60, 2)) and out_007["hours"]["status"] == "pending"

    # the zone shift: 033 online and inside both ends; 003 checks out from outside the zone
    here = shape_of(session, g03).representative_point()
    clock.current = at(day, 8, 58)
    assert not_500(v["volunteer-033"].post(f"/api/v1/shifts/{zone_shift['id']}/check-in", json={
        "lon": here.x, "lat": here.y, "accuracy_m": 8}, headers={"Idempotency-Key": key()})).status_code == 201
    clock.current = at(day, 9, 5)
    assert not_500(v["volunteer-003"].post(f"/api/v1/shifts/{zone_shift['id']}/check-in", json={
        "lon": here.x, "lat": here.y, "accuracy_m": 8}, headers={"Idempotency-Key": key()})).status_code == 201
    clock.current = at(day, 10, 30)
    south = (here.x, 29.8660)  # in G09, south of G03
    out_003 = not_500(v["volunteer-003"].post(f"/api/v1/shifts/{zone_shift['id']}/check-out", json={
        "lon": south[0], "lat": south[1], "accuracy_m": 8}, headers={"Idempotency-Key": key()})).get_json()
    edge = shape_of(session, g03).exterior
    nearest = edge.interpolate(edge.project(Point(south)))
    assert out_003["inside"] is False
    assert out_003["distance_m"] == pytest.approx(metres(south, (nearest.x, nearest.y)), rel=0.01)
    assert out_003["hours"]["hours"] == 1.42 and out_003["hours"]["status"] == "pending"

    # 023 had no signal all morning: the app uploads at 10:50 (a step out and back in at 10:00:00)
    clock.current = at(day, 10, 50)
    def event(kind, moment):
        return {"shift_id": zone_shift["id"], "kind": kind, "client_time": moment.isoformat(), "lon": here.x,
                "lat": here.y, "crs": "wgs84", "accuracy_m": 10, "idempotency_key": key()}
    offline_events = [event("check_in", at(day, 10)), event("check_out", at(day, 10, 45)), event("check_in", at(day, 9, 2)),
              event("check_out", at(day, 10))]
    upload = not_500(v["volunteer-023"].post("/api/v1/me/check-events", json={"events": offline_events}))
    assert upload.status_code == 200
    results = upload.get_json()["results"]
    assert [r["status"] for r in results] == [201] * 4
    stints = sorted((r["result"]["hours"]["started_at"], r["result"]["hours"]["ended_at"], r["result"]["hours"]["hours"],
                     r["result"]["hours"]["status"]) for r in results if r["result"]["kind"] == "check_out")
    assert [(utc_text(a), utc_text(b), h, st) for a, b, h, st in stints] == [
        (at(day, 9, 2), at(day, 10), 0.97, "approved"), (at(day, 10), at(day, 10, 45), 0.75, "approved")]
    clock.current = at(day, 11)
    out_033 = not_500(v["volunteer-033"].post(f"/api/v1/shifts/{zone_shift['id']}/check-out", json={
        "lon": here.x, "lat": here.y, "accuracy_m": 8}, headers={"Idempotency-Key": key()}))
    assert out_033.status_code == 201 and out_033.get_json()["hours"]["hours"] == 2.0
    assert out_033.get_json()["hours"]["status"] == "approved"

    # volunteer-013 forgot to check out: off duty since 09:00, closed by the evening's tick
    me_013 = not_500(v["volunteer-013"].get("/api/v1/me/volunteer")).get_json()
    assert me_013["on_duty"] is False, me_013
    clock.current = at(day, 11, 5)
    from gridsvc.services.checks import CheckPolicy
    from gridsvc.services.deadlines import enforce_deadlines
    from gridsvc.services.requests import DispatchPolicy
    done = enforce_deadlines(session, now=clock(), checks=CheckPolicy.from_config(app.config),
                             dispatch=DispatchPolicy.from_config(app.config))
    session.commit()
    assert done.closed_check_ins == 1

    # the liaison's review
    queue = not_500(liaison.get("/api/v1/hours")).get_json()
    assert [(i["volunteer_id"], i["hours"], i["flag_reason"]) for i in queue["items"]] == [
        (vids["volunteer-013"], 2.0, "missing_check_out"), (vids["volunteer-007"], 1.65, None),
        (vids["volunteer-003"], 1.42, None)]
    e013, e007, e003 = (i["id"] for i in queue["items"])
    assert queue["items"][1]["check_out"]["distance_m"] == out_007["distance_m"]
    approved = not_500(liaison.post(f"/api/v1/hours/{e007}/approve", json={"note": "核实在岗"})).get_json()
    assert approved["status"] == "approved" and approved["review_note"] == "核实在岗"
    assert utc_text(approved["reviewed_at"]) == at(day, 11, 5)
    declined = not_500(liaison.post(f"/api/v1/hours/{e003}/decline", json={"note": "提前离岗"})).get_json()
    assert declined["status"] == "declined"
    bulk = not_500(liaison.post("/api/v1/hours/review", json={"ids": [e013, e003], "action": "approve"})).get_json()
    assert [(r["id"], r["status"], r["hours_status"]) for r in bulk["results"]] == [
        (e013, 200, "approved"), (e003, 409, "declined")]
    assert not_500(liaison.get("/api/v1/hours")).get_json()["total"] == 0
    totals = not_500(liaison.get(f"/api/v1/hours/totals?from={day.isoformat()}&to={day.isoformat()}")).get_json()
    assert [(i["volunteer_id"], i["hours"], i["entries"]) for i in totals["items"]] == [
        (vids["volunteer-013"], 2.0, 1), (vids["volunteer-033"], 2.0, 1), (vids["volunteer-023"], 1.72, 2),
        (vids["volunteer-007"], 1.65, 1)]
    assert totals["total_hours"] == 7.37

    # the zone map and the roster
    zone_map = not_500(liaison.get(f"/api/v1/zones/{g03.id}/map"))
    layers = sorted({f["properties"]["layer"] for f in zone_map.get_json()["features"]})
    assert zone_map.status_code == 200 and {"zone", "enterprise", "parking"} <= set(layers)
    roster = not_500(liaison.get(f"/api/v1/shifts/{zone_shift['id']}/signups")).get_json()
    assert {i["volunteer_id"] for i in roster["items"]} == {vids[u] for u in ("volunteer-003", "volunteer-023", "volunteer-033")}
    events = not_500(liaison.get(f"/api/v1/shifts/{gate['id']}/check-events?flagged=true")).get_json()
    assert [(e["volunteer_id"], e["reason"], e["distance_m"]) for e in events["items"]] == [
        (vids["volunteer-013"], "outside_window", 0.0), (vids["volunteer-007"], "outside_geofence", refused["distance_m"])]

    # the export of a volunteer of another zone, who served at the gate
    rows = csv_rows(not_500(liaison.get(f"/api/v1/volunteers/{vids['volunteer-007']}/hours.csv")))
    assert rows[1:] == [["魏艳浩", "", "traffic_guidance", day.isoformat(), "07:01:00", "08:40:00", "1.65",
                         "灵峰工业社区 Lingfeng Industrial Community", "approved"]]
    # phones, now that the morning is over and decided
    assert "*" in phone_seen("volunteer-007")
    assert "*" not in phone_seen("volunteer-023")  # home G03

    # the volunteers read their own record
    mine = not_500(v["volunteer-023"].get(f"/api/v1/volunteers/{vids['volunteer-023']}/hours")).get_json()
    assert mine["approved"] == 1.72 and mine["by_month"] == [
        {"key": day.strftime("%Y-%m"), "approved": 1.72, "pending": 0.0, "declined": 0.0}]
    assert mine["by_activity"] == [{"key": "garbage_sorting", "approved": 1.72, "pending": 0.0, "declined": 0.0}]
    again = not_500(v["volunteer-023"].post("/api/v1/me/check-events", json={"events": offline_events})).get_json()
    assert [r["replayed"] for r in again["results"]] == [True] * 4
    mine_013 = not_500(v["volunteer-013"].get(f"/api/v1/volunteers/{vids['volunteer-013']}/hours")).get_json()
    assert [(e["hours"], e["status"], e["flag_reason"]) for e in mine_013["entries"]] == [(2.0, "approved", "missing_check_out")]
    my_shifts = not_500(v["volunteer-013"].get(f"/api/v1/volunteers/{vids['volunteer-013']}/signups"
                                               f"?from={day.isoformat()}T00:00:00")).get_json()
    [item] = my_shifts["items"]
    assert item["on_duty"] is False and utc_text(item["checked_in_at"]) == at(day, 6, 52)
    feed = not_500(v["volunteer-013"].get(f"/api/v1/volunteers/{vids['volunteer-013']}/shifts.ics"))
    [event] = calendar_events(feed.get_data(as_text=True)).values()
    assert event["DTSTART"] == day.strftime("%Y%m%dT070000") and event["STATUS"] == "CONFIRMED"
    assert "*" in phone_seen("volunteer-025")  # waited for a shift that is over
    seen_007 = not_500(liaison.get(f"/api/v1/volunteers/{vids['volunteer-007']}/signups?from={day.isoformat()}T00:00:00")).get_json()
    assert [i["checked_out_at"] for i in seen_007["items"]] == [out_007["at"]]
    profile_007 = not_500(liaison.get(f"/api/v1/volunteers/{vids['volunteer-007']}")).get_json()
    assert profile_007["national_volunteer_id"] is None and profile_007["last_position"] is None
    approved_today = not_500(liaison.get(f"/api/v1/hours?status=approved&from={day.isoformat()}&to={day.isoformat()}"))
    assert sum(i["hours"] for i in approved_today.get_json()["items"]) == pytest.approx(7.37)
    trail = not_500(liaison.get(f"/api/v1/shifts/{zone_shift['id']}/check-events")).get_json()["items"]
    assert [(e["volunteer_id"], e["kind"], e["offline"]) for e in trail if e["volunteer_id"] == vids["volunteer-023"]] == [
        (vids["volunteer-023"], k, True) for k in ("check_in", "check_out", "check_in", "check_out")]
    # 11:05, past the grace: the forgotten check-out can no longer be pressed (refused, recorded, said why)
    late = assert_problem(v["volunteer-013"].post(f"/api/v1/shifts/{gate['id']}/check-out", json={
        "lon": GATE[0], "lat": GATE[1]}, headers={"Idempotency-Key": key()}), 422)
    assert late["reason"] == "outside_window"


def shape_of(session, zone):
    from geoalchemy2.shape import to_shape

    return to_shape(zone.geom)


def day_part_two(ctx):
    pass
