"""Service requests: intake, dispatch to the nearest volunteer, liaison, department pool, lifecycle and races."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gridsvc.models import (RequestOffer, ServiceRequest, Shift, Signup, Skill, User, Volunteer, VolunteerPosition,
                            Zone)
from gridsvc.services.accounts import create_user
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import assert_problem, client_as, offset


def put_on_duty(session, username: str, lon: float, lat: float, shift_id: int, skill: str = "traffic_parking") -> int:
    """Arrange a volunteer signed up for and checked in to ``shift_id`` at (lon, lat) with ``skill``."""
    volunteer = session.scalar(select(Volunteer).join(User, User.id == Volunteer.user_id).where(User.username == username))
    if skill not in volunteer.skill_codes:
        volunteer.skills = [*volunteer.skills, session.get(Skill, skill)]
    session.add(Signup(shift_id=shift_id, volunteer_id=volunteer.id, status="confirmed"))  # check-in needs one
    volunteer.on_duty_shift_id = shift_id
    volunteer.last_position = f"SRID=4326;POINT({lon} {lat})"
    volunteer.last_position_at = func.now()
    session.flush()
    return volunteer.id


def open_shift(session, zone_id: int, now) -> int:
    zone = session.get(Zone, zone_id)
    shift = Shift(community_id=zone.community_id, zone_id=zone_id, title="on call", activity="traffic_guidance",
                  starts_at=now - timedelta(minutes=30), ends_at=now + timedelta(hours=3), capacity=50)
    session.add(shift)
    session.flush()
    return shift.id


@pytest.fixture()
def g03(login, session, clock):
    """A spot in G03 with three traffic volunteers on duty at 120 m, 400 m and 900 m."""
    zone = zone_of(session, "G03")
    here = zone_center(login("admin"), zone.id)
    shift_id = open_shift(session, zone.id, clock())
    ids = {}
    for username, metres in (("volunteer-013", 120), ("volunteer-019", 400), ("volunteer-025", 900)):
        ids[username] = put_on_duty(session, username, *offset(*here, metres, 0), shift_id)
    session.commit()
    return {"zone": zone, "here": here, "volunteers": ids, "shift_id": shift_id}


def file(client, here, service="parking", **extra):
    body = {"service_code": service, "description": "北门找不到车位", "lon": here[0], "lat": here[1],
            "attributes": {"problem": "no_space"} if service == "parking" else {}, **extra}
    return client.post("/api/v1/requests", json=body)


def account_id(session, username: str) -> int:
    return session.scalar(select(User.id).where(User.username == username))


def test_parking_request_goes_to_the_nearest_on_duty_volunteer(login, g03):
    answer = file(login("worker-001"), g03["here"])
    assert answer.status_code == 201, answer.get_json()
    request = answer.get_json()
    assert request["zone_id"] == g03["zone"].id and request["status"] == "offered"
    assert request["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-013"]
    seen = login("liaison-g03").get(f"/api/v1/requests/{request['id']}").get_json()  # the volunteer works in G03
    assert seen["offer"]["distance_m"] == pytest.approx(120, abs=2)
    offers = login("volunteer-013").get("/api/v1/me/offers").get_json()
    assert [o["id"] for o in offers] == [request["id"]]
    trail = login("liaison-g03").get(f"/api/v1/requests/{request['id']}/events").get_json()
    assert [(e["action"], e["to_status"]) for e in trail] == [("file", "new"), ("offer", "offered")]


def test_the_requester_is_not_told_how_far_the_volunteer_is(login, g03):
    """A volunteer's position is theirs, their zones' liaisons' and admins': the requester chooses where the
    request is, so its distance to the volunteer, from a few filings, would locate them."""
    worker = login("worker-001")
    filed = file(worker, g03["here"]).get_json()
    assert filed["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-013"]
    assert filed["offer"]["distance_m"] is None
    assert worker.get(f"/api/v1/requests/{filed['id']}").get_json()["offer"]["distance_m"] is None
    assert [r["offer"]["distance_m"] for r in worker.get("/api/v1/requests").get_json()["items"]] == [None]
    for username in ("worker-001", "liaison-g03"):  # the offer's note says to whom, not how far, to anyone
        note = login(username).get(f"/api/v1/requests/{filed['id']}/events").get_json()[-1]["note"]
        assert note == f"offered to volunteer {g03['volunteers']['volunteer-013']}", username
    for username in ("volunteer-013", "liaison-g03", "admin"):
        offer = login(username).get(f"/api/v1/requests/{filed['id']}").get_json()["offer"]
        assert offer["distance_m"] == pytest.approx(120, abs=2), username
    assert login("volunteer-013").get("/api/v1/me/offers").get_json()[0]["offer"]["distance_m"] == pytest.approx(120, abs=2)


def test_where_a_volunteer_was_is_not_shown_to_the_requester(login, g03):
    worker = login("worker-001")
    filed = file(worker, g03["here"]).get_json()
    volunteer = login("volunteer-013")
    assert volunteer.post(f"/api/v1/requests/{filed['id']}/accept", json={}).status_code == 200
    at = offset(*g03["here"], 30, 0)
    assert volunteer.post(f"/api/v1/requests/{filed['id']}/start", json={"lon": at[0], "lat": at[1]}).status_code == 200
    for username in ("volunteer-013", "liaison-g03", "admin"):
        where = login(username).get(f"/api/v1/requests/{filed['id']}/events").get_json()[-1]["where"]
        assert (where["lon"], where["lat"]) == pytest.approx(at), username
    trail = worker.get(f"/api/v1/requests/{filed['id']}/events").get_json()
    assert [e["action"] for e in trail] == ["file", "offer", "accept", "start"] and trail[-1]["where"] is None
    assert trail[0]["where"]["lon"] == pytest.approx(g03["here"][0])  # the request's own place stays


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["worker"]}], ids=["disabled", "role-removed"])
def test_a_volunteer_who_may_no_longer_volunteer_gets_no_offer(login, g03, session, change):
    admin = login("admin")
    assert admin.patch(f"/api/v1/users/{account_id(session, 'volunteer-013')}", json=change).status_code == 200
    filed = file(login("worker-001"), g03["here"]).get_json()
    assert filed["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-019"]  # the next nearest
    ranked = admin.get("/api/v1/dispatch/candidates", query_string={
        "lon": g03["here"][0], "lat": g03["here"][1], "skill": "traffic_parking"}).get_json()
    assert [c["volunteer_id"] for c in ranked] == [g03["volunteers"]["volunteer-025"]]  # 019 has the offer now


def test_a_need_is_not_offered_back_to_the_volunteer_who_raised_it(login, g03, session):
    """Worker volunteers raise needs too (DOMAIN: the volunteers are the park's workers); standing where they
    file, they are always the nearest on duty: neither filing nor a decline offers it to them."""
    me = account_id(session, "volunteer-013")
    assert login("admin").patch(f"/api/v1/users/{me}", json={"roles": ["volunteer", "worker"]}).status_code == 200
    filed = file(login("volunteer-013"), offset(*g03["here"], 120, 0)).get_json()  # where volunteer-013 stands
    assert filed["requester_id"] == me
    assert filed["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-019"]
    assert login("volunteer-013").get("/api/v1/me/offers").get_json() == []
    moved = login("volunteer-019").post(f"/api/v1/requests/{filed['id']}/decline", json={}).get_json()
    assert moved["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-025"]
    moved = login("volunteer-025").post(f"/api/v1/requests/{filed['id']}/decline", json={}).get_json()
    assert moved["status"] == "with_liaison" and moved["offer"] is None


def test_candidates_are_ranked_with_distance(login, g03):
    ranked = login("liaison-g03").get("/api/v1/dispatch/candidates", query_string={
        "lon": g03["here"][0], "lat": g03["here"][1], "skill": "traffic_parking"}).get_json()
    assert [c["volunteer_id"] for c in ranked] == list(g03["volunteers"].values())
    assert [c["distance_m"] for c in ranked] == pytest.approx([120, 400, 900], rel=0.01)  # the helper is approximate
    assert_problem(login("volunteer-001").get("/api/v1/dispatch/candidates", query_string={"lon": 121.78, "lat": 29.87}), 403)


def test_a_liaison_ranks_only_the_volunteers_they_may_locate(login, session, clock):
    """The ranking is a search by position (distances from a point of one's choosing locate whoever is in it):
    as the volunteer search, an admin ranks everyone, a liaison the volunteers who work in their zones."""
    g10 = zone_of(session, "G10")
    there = zone_center(login("admin"), g10.id)
    stranger = put_on_duty(session, "volunteer-010", *there, open_shift(session, g10.id, clock()))  # G10 only
    session.commit()
    probe = {"lon": offset(*there, 250, 0)[0], "lat": there[1]}

    def ranked(username):
        answer = login(username).get("/api/v1/dispatch/candidates", query_string=probe)
        assert answer.status_code == 200, answer.get_json()
        return [c["volunteer_id"] for c in answer.get_json()]

    assert login("liaison-g01").get(f"/api/v1/volunteers/{stranger}").get_json()["last_position"] is None
    assert stranger not in ranked("liaison-g01")
    assert stranger in ranked("liaison-g10") and stranger in ranked("admin")


def test_the_nearest_on_the_ground_wins_though_the_index_orders_by_degrees(login, session, clock):
    """A degree east is shorter than a degree north (at 30 N, 96 km against 111 km): twelve volunteers at
    91-99 m north and south come before one at 90 m east in the KNN index, yet the east one is nearest."""
    zone = zone_of(session, "G05")
    here = zone_center(login("admin"), zone.id)
    shift_id = open_shift(session, zone.id, clock())
    for i in range(12):
        metres = 91 + (i % 9)
        put_on_duty(session, f"volunteer-{30 + i:03d}", *offset(*here, 0, metres if i % 2 else -metres), shift_id)
    east = put_on_duty(session, "volunteer-045", *offset(*here, 90, 0), shift_id)
    session.commit()
    ranked = login("admin").get("/api/v1/dispatch/candidates", query_string={
        "lon": here[0], "lat": here[1], "skill": "traffic_parking", "limit": 1}).get_json()
    assert [c["volunteer_id"] for c in ranked] == [east]
    assert ranked[0]["distance_m"] == pytest.approx(90, abs=1)
    request = file(login("worker-001"), here).get_json()
    assert request["offer"]["volunteer_id"] == east


def test_decline_passes_it_on_and_three_refusals_reach_the_liaison(login, g03, session):
    request = file(login("worker-001"), g03["here"]).get_json()
    for username in ("volunteer-013", "volunteer-019", "volunteer-025"):
        answer = login(username).post(f"/api/v1/requests/{request['id']}/decline", json={"note": "在忙"})
        assert answer.status_code == 200, answer.get_json()
    final = answer.get_json()
    assert final["status"] == "with_liaison" and final["refusals"] == 3
    liaison = session.scalar(select(User.id).where(User.username == "liaison-g03"))
    assert final["liaison_id"] == liaison


def test_an_unanswered_offer_expires_and_moves_on(login, g03, clock):
    request = file(login("worker-001"), g03["here"]).get_json()
    clock.advance(minutes=6)
    too_late = assert_problem(login("volunteer-013").post(f"/api/v1/requests/{request['id']}/accept", json={}), 409)
    assert too_late["state"] == "expired" and "expired" in too_late["detail"]
    moved = login("liaison-g03").get(f"/api/v1/requests/{request['id']}").get_json()
    assert moved["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-019"] and moved["refusals"] == 1
    trail = [e["action"] for e in login("liaison-g03").get(f"/api/v1/requests/{request['id']}/events").get_json()]
    assert trail == ["file", "offer", "expire", "offer"]


def test_full_lifecycle_with_rating_and_reopen(login, g03):
    worker = login("worker-002")
    request = file(worker, g03["here"]).get_json()
    volunteer = login("volunteer-013")
    accepted = volunteer.post(f"/api/v1/requests/{request['id']}/accept", json={}).get_json()
    assert accepted["status"] == "assigned" and accepted["first_response_at"]
    assert [t["id"] for t in volunteer.get("/api/v1/me/tasks").get_json()] == [request["id"]]
    assert volunteer.post(f"/api/v1/requests/{request['id']}/start", json={"lon": g03["here"][0], "lat": g03["here"][1]}).get_json()["status"] == "in_progress"
    assert volunteer.post(f"/api/v1/requests/{request['id']}/resolve", json={"note": "已引导到南侧停车场"}).get_json()["status"] == "resolved"
    rated = worker.post(f"/api/v1/requests/{request['id']}/rate", json={"rating": 5, "comment": "很快"}).get_json()
    assert rated["rating"] == 5
    assert worker.post(f"/api/v1/requests/{request['id']}/close", json={}).get_json()["status"] == "closed"
    reopened = worker.post(f"/api/v1/requests/{request['id']}/reopen", json={"note": "又满了"}).get_json()
    assert reopened["status"] == "offered"  # volunteer-013 is free again and still the nearest
    trail = [e["action"] for e in login("liaison-g03").get(f"/api/v1/requests/{request['id']}/events").get_json()]
    assert trail[:8] == ["file", "offer", "accept", "start", "resolve", "rate", "close", "reopen"]
    start_event = login("liaison-g03").get(f"/api/v1/requests/{request['id']}/events").get_json()[3]
    assert start_event["where"]["lon"] == pytest.approx(g03["here"][0])


def test_an_actions_position_may_come_from_a_chinese_phone(login, g03):
    """Point inputs are {lon, lat, crs} (DESIGN, README): the app's positions are GCJ-02 (AMap, WeChat)."""
    from geo.crs import from_wgs84

    filed = file(login("worker-001"), g03["here"]).get_json()
    volunteer = login("volunteer-013")
    assert volunteer.post(f"/api/v1/requests/{filed['id']}/accept", json={}).status_code == 200
    at = offset(*g03["here"], 30, 0)
    lon, lat = from_wgs84(*at, "gcj02")
    started = volunteer.post(f"/api/v1/requests/{filed['id']}/start", json={"lon": lon, "lat": lat, "crs": "gcj02"})
    assert started.status_code == 200, started.get_json()
    where = login("liaison-g03").get(f"/api/v1/requests/{filed['id']}/events").get_json()[-1]["where"]
    assert where["crs"] == "wgs84" and (where["lon"], where["lat"]) == pytest.approx(at, abs=1e-6)
    assert_problem(volunteer.post(f"/api/v1/requests/{filed['id']}/comment",
                                  json={"lon": lon, "lat": lat, "crs": "mercator"}), 422)


@pytest.mark.parametrize("half, missing", [({"lon": 121.78}, "lat"), ({"lat": 29.87}, "lon")])
def test_half_a_position_is_refused_not_dropped(login, g03, half, missing):
    filed = file(login("worker-001"), g03["here"]).get_json()
    liaison = login("liaison-g03")
    before = liaison.get(f"/api/v1/requests/{filed['id']}/events").get_json()
    problem = assert_problem(liaison.post(f"/api/v1/requests/{filed['id']}/comment", json={"note": "到了", **half}), 422)
    assert missing in problem["errors"], problem
    assert liaison.get(f"/api/v1/requests/{filed['id']}/events").get_json() == before


def test_wrong_state_is_409_naming_both(login, g03):
    request = file(login("worker-001"), g03["here"]).get_json()
    body = assert_problem(login("worker-001").post(f"/api/v1/requests/{request['id']}/close", json={}), 409, "request-state")
    assert body["action"] == "close" and body["state"] == "offered" and "offered" in body["detail"]


def test_escalate_and_claim_by_the_right_department(login, g03):
    request = file(login("worker-001"), g03["here"]).get_json()
    assert_problem(login("liaison-g02").post(f"/api/v1/requests/{request['id']}/escalate", json={}), 404)  # not theirs
    escalated = login("liaison-g03").post(f"/api/v1/requests/{request['id']}/escalate", json={"note": "需要交通部门"}).get_json()
    assert escalated["status"] == "escalated" and escalated["offer"] is None
    pool = login("dept-traffic").get("/api/v1/requests?status=escalated").get_json()
    assert request["id"] in [r["id"] for r in pool["items"]]
    assert_problem(login("dept-housing").post(f"/api/v1/requests/{request['id']}/claim", json={}), 404)  # not their pool
    claimed = login("dept-traffic").post(f"/api/v1/requests/{request['id']}/claim", json={}).get_json()
    assert claimed["status"] == "claimed" and claimed["department_id"]
    assert_problem(login("dept-traffic").post(f"/api/v1/requests/{request['id']}/claim", json={}), 409)


def test_no_volunteer_goes_to_the_liaison_and_a_zone_without_one_to_the_nearest(login, session, clock):
    g07 = zone_of(session, "G07")
    here = zone_center(login("admin"), g07.id)
    first = file(login("worker-003"), here, service="housing").get_json()
    assert first["status"] == "with_liaison"
    assert first["liaison_id"] == session.scalar(select(User.id).where(User.username == "liaison-g07"))
    login("admin").patch(f"/api/v1/zones/{g07.id}", json={"properties": {"liaison": None}})
    second = file(login("worker-003"), offset(*here, 10, 10), service="housing").get_json()
    assert second["liaison_id"] is not None and second["liaison_id"] != first["liaison_id"]
    trail = login("admin").get(f"/api/v1/requests/{second['id']}/events").get_json()
    assert "no liaison" in trail[-1]["note"] and "nearest zone" in trail[-1]["note"]
    assert second["possible_duplicates"] == [first["id"]]


# The south-east corner of G07: G09 is across the street, G03 700 m north; all of G07's neighbours touch it.
G07_SOUTH_EAST = (121.7787, 29.8630)


def test_a_zone_without_liaison_falls_back_to_the_zone_nearest_the_request(login, session):
    """Zone to zone, every neighbour is 0 m away and the lowest id won wherever the request was."""
    g07 = zone_of(session, "G07")
    assert login("admin").patch(f"/api/v1/zones/{g07.id}", json={"properties": {"liaison": None}}).status_code == 200
    filed = file(login("worker-003"), G07_SOUTH_EAST, service="housing").get_json()
    assert filed["zone_id"] == g07.id and filed["status"] == "with_liaison", filed
    assert filed["liaison_id"] == account_id(session, "liaison-g09")
    note = login("admin").get(f"/api/v1/requests/{filed['id']}/events").get_json()[-1]["note"]
    assert note == "no volunteer available; zone G07 has no liaison; the liaison of G09, the nearest zone, has it"


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["worker"]}], ids=["disabled", "role-removed"])
def test_a_liaison_who_may_no_longer_act_is_not_given_requests(login, session, change):
    """The zones still name them; the request goes on as for a zone without a liaison, to the nearest zone
    whose liaison may act."""
    g07 = zone_of(session, "G07")
    admin = login("admin")
    assert admin.patch(f"/api/v1/users/{account_id(session, 'liaison-g07')}", json=change).status_code == 200
    filed = file(login("worker-003"), G07_SOUTH_EAST, service="housing").get_json()
    assert filed["zone_id"] == g07.id and filed["status"] == "with_liaison"
    assert filed["liaison_id"] == account_id(session, "liaison-g09")
    assert admin.patch(f"/api/v1/users/{account_id(session, 'liaison-g09')}", json=change).status_code == 200
    again = file(login("worker-004"), G07_SOUTH_EAST, service="housing").get_json()
    assert again["liaison_id"] == account_id(session, "liaison-g06")  # the next nearest


def test_the_nearest_zones_liaison_can_see_and_act_on_what_they_were_given(login, session):
    g07 = zone_of(session, "G07")
    assert login("admin").patch(f"/api/v1/zones/{g07.id}", json={"properties": {"liaison": None}}).status_code == 200
    contact = {"name": "王师傅", "phone": "13900000009"}
    worker = login("worker-003")
    filed = file(worker, G07_SOUTH_EAST, service="housing", contact=contact).get_json()
    assert filed["liaison_id"] == account_id(session, "liaison-g09")
    holder = login("liaison-g09")
    assert filed["id"] in [r["id"] for r in holder.get("/api/v1/requests").get_json()["items"]]
    seen = holder.get(f"/api/v1/requests/{filed['id']}")
    assert seen.status_code == 200, seen.get_json()
    assert seen.get_json()["contact"] == contact  # whoever handles it may reach the requester
    assert holder.get(f"/api/v1/requests/{filed['id']}/events").status_code == 200
    started = holder.post(f"/api/v1/requests/{filed['id']}/start", json={"note": "我来处理"})
    assert started.status_code == 200 and started.get_json()["status"] == "in_progress", started.get_json()
    escalated = holder.post(f"/api/v1/requests/{filed['id']}/escalate", json={})  # as the zone's liaison would
    assert escalated.status_code == 200 and escalated.get_json()["status"] == "escalated", escalated.get_json()
    assert_problem(login("liaison-g02").get(f"/api/v1/requests/{filed['id']}"), 404)  # others' still not theirs


def test_a_request_offered_again_is_no_longer_the_liaisons(login, session, clock):
    """A liaison holds a request while it is with them; offered to a volunteer again (reopened), it is nobody's
    until accepted, and a liaison of another zone it was handed to no longer reaches it."""
    g07 = zone_of(session, "G07")
    assert login("admin").patch(f"/api/v1/zones/{g07.id}", json={"properties": {"liaison": None}}).status_code == 200
    worker = login("worker-003")
    filed = file(worker, G07_SOUTH_EAST).get_json()  # nobody on duty yet
    assert filed["status"] == "with_liaison" and filed["liaison_id"] == account_id(session, "liaison-g09")
    holder = login("liaison-g09")
    assert holder.post(f"/api/v1/requests/{filed['id']}/resolve", json={}).status_code == 200
    put_on_duty(session, "volunteer-007", *offset(*G07_SOUTH_EAST, -50, 50), open_shift(session, g07.id, clock()))
    session.commit()
    reopened = worker.post(f"/api/v1/requests/{filed['id']}/reopen", json={"note": "又满了"}).get_json()
    assert reopened["status"] == "offered" and reopened["liaison_id"] is None, reopened
    assert_problem(holder.get(f"/api/v1/requests/{filed['id']}"), 404)


def test_a_point_just_outside_every_zone_goes_to_the_nearest(login, session):
    boundary = login("admin").get(f"/api/v1/communities/{zone_of(session, 'G01').community_id}").get_json()["boundary"]
    from shapely.geometry import shape

    outline = shape(boundary)
    minx, miny, maxx, maxy = outline.bounds
    north = (outline.centroid.x, maxy)
    near = file(login("worker-004"), offset(*north, 0, 80), service="other").get_json()  # 80 m north of the park
    assert near["zone_note"] and "nearest" in near["zone_note"]
    far = file(login("worker-004"), offset(*north, 0, 800), service="other")
    assert_problem(far, 422)


@pytest.mark.parametrize("change, field", [
    ({"service_code": "juggling"}, "service_code"), ({"attributes": {}}, "attributes"),
    ({"attributes": {"problem": "aliens"}}, "attributes"), ({"attributes": {"problem": "no_space", "colour": "red"}}, "attributes"),
    ({"lon": 200}, "lon"), ({"description": ""}, "description"), ({"media_urls": ["ftp://x"]}, "media_urls"),
    ({"contact": {"name": "王" * 101}}, "contact"), ({"contact": {"phone": "call me"}}, "contact"),
    ({"contact": {"email": "not-an-address"}}, "contact"), ({"contact": {"notes": "x" * 100_000}}, "contact"),
    ({"contact": "13900000009"}, "contact"),
    # a list or an object where a list key is expected (these were 500s)
    ({"attributes": {"problem": ["no_space"]}}, "attributes"), ({"attributes": {"problem": {"key": "no_space"}}}, "attributes"),
    ({"attributes": {"problem": "no_space", "plate": "浙B" + "1" * 200}}, "attributes"),
])
def test_bad_requests_are_422_and_file_nothing(login, g03, session, change, field):
    before = session.scalar(select(func.count()).select_from(ServiceRequest))
    body = {"service_code": "parking", "description": "x", "lon": g03["here"][0], "lat": g03["here"][1],
            "attributes": {"problem": "no_space"}, **change}
    problem = assert_problem(login("worker-001").post("/api/v1/requests", json=body), 422)
    assert field in problem["errors"], problem
    assert session.scalar(select(func.count()).select_from(ServiceRequest)) == before


def test_who_sees_what(login, g03):
    mine = file(login("worker-005"), g03["here"]).get_json()
    assert [r["id"] for r in login("worker-005").get("/api/v1/requests").get_json()["items"]] == [mine["id"]]
    assert login("worker-006").get("/api/v1/requests").get_json()["total"] == 0
    assert_problem(login("worker-006").get(f"/api/v1/requests/{mine['id']}"), 404)
    assert login("volunteer-013").get(f"/api/v1/requests/{mine['id']}").status_code == 200  # offered to them
    assert_problem(login("volunteer-019").get(f"/api/v1/requests/{mine['id']}"), 404)
    assert login("liaison-g03").get(f"/api/v1/requests/{mine['id']}").status_code == 200
    assert_problem(login("liaison-g04").get(f"/api/v1/requests/{mine['id']}"), 404)
    assert login("admin").get(f"/api/v1/requests/{mine['id']}").status_code == 200
    assert_problem(login("planner").get("/api/v1/requests"), 403)


def test_the_requesters_contact_reaches_only_whom_handles_it(login, g03):
    contact = {"name": "王师傅", "phone": "13900000009", "wechat": "wang_sf"}
    filed = file(login("worker-005"), g03["here"], contact=contact).get_json()
    assert filed["contact"] == contact  # the requester sees their own

    def seen_by(username):
        answer = login(username).get(f"/api/v1/requests/{filed['id']}")
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["contact"]

    # offered, not yet taken: the volunteer decides without the requester's phone number
    assert seen_by("volunteer-013") is None
    assert [o["contact"] for o in login("volunteer-013").get("/api/v1/me/offers").get_json()] == [None]
    assert seen_by("liaison-g03") == contact and seen_by("admin") == contact
    taken = login("volunteer-013").post(f"/api/v1/requests/{filed['id']}/accept", json={})
    assert taken.status_code == 200 and taken.get_json()["contact"] == contact
    assert seen_by("volunteer-013") == contact


def test_twenty_requests_at_once_next_to_one_volunteer_with_cap_one(committed_app, engine, clock):
    """Real concurrent connections: the nearest volunteer gets exactly one offer; the rest go to the next."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        zone = zone_of(session, "G08")
        here = zone_center(client_as(committed_app, "admin"), zone.id)
        shift_id = open_shift(session, zone.id, clock())
        names = [f"volunteer-{i:03d}" for i in range(30, 55)]
        volunteer_ids = [put_on_duty(session, name, *offset(*here, 20 + 30 * n, 0), shift_id)
                         for n, name in enumerate(names)]
        session.commit()
    nearest = volunteer_ids[0]
    created: list[int] = []
    try:
        barrier = threading.Barrier(20)

        def one(i):
            client = client_as(committed_app, f"worker-{1 + i % 10:03d}")
            barrier.wait()
            answer = file(client, offset(*here, 0, i), description=f"race {i}")
            created.append(answer.get_json()["id"])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(created) == 20
        with engine.connect() as conn:
            per_volunteer = dict(conn.execute(select(RequestOffer.volunteer_id, func.count())
                                              .where(RequestOffer.request_id.in_(created), RequestOffer.outcome == "pending")
                                              .group_by(RequestOffer.volunteer_id)).all())
        assert per_volunteer.get(nearest) == 1
        assert max(per_volunteer.values()) == 1 and sum(per_volunteer.values()) == 20
    finally:
        with engine.begin() as conn:
            conn.execute(ServiceRequest.__table__.delete().where(ServiceRequest.id.in_(created)))
            conn.execute(Volunteer.__table__.update().where(Volunteer.id.in_(volunteer_ids))
                         .values(on_duty_shift_id=None, last_position=None, last_position_at=None))
            conn.execute(VolunteerPosition.__table__.delete().where(VolunteerPosition.volunteer_id.in_(volunteer_ids)))
            conn.execute(Shift.__table__.delete().where(Shift.id == shift_id))


def test_two_department_members_claiming_at_once_one_wins(committed_app, engine, clock):
    from sqlalchemy.orm import Session

    from gridsvc.passwords import hash_password

    with Session(engine) as session:
        create_user(session, username="dept-traffic-2", password="", password_hash=hash_password("x" * 10),
                    display_name="交通二", roles=["department"], departments=["traffic"])
        zone_id = zone_of(session, "G09").id
        session.commit()
    here = zone_center(client_as(committed_app, "admin"), zone_id)
    request_id = None
    try:
        request_id = file(client_as(committed_app, "worker-007"), here).get_json()["id"]
        assert client_as(committed_app, "liaison-g09").post(f"/api/v1/requests/{request_id}/escalate", json={}).status_code == 200
        results: list[int] = []
        barrier = threading.Barrier(2)

        def claim(username):
            client = client_as(committed_app, username)
            barrier.wait()
            results.append(client.post(f"/api/v1/requests/{request_id}/claim", json={}).status_code)

        threads = [threading.Thread(target=claim, args=(u,)) for u in ("dept-traffic", "dept-traffic-2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 409]
    finally:
        with engine.begin() as conn:
            if request_id:
                conn.execute(ServiceRequest.__table__.delete().where(ServiceRequest.id == request_id))
            conn.execute(User.__table__.delete().where(User.username == "dept-traffic-2"))


def test_service_list_is_public(client):
    services = client.get("/api/v1/services").get_json()
    assert {s["code"] for s in services} >= {"parking", "housing", "commute", "schooling", "medical", "culture_sports",
                                             "reopening_inspection", "epidemic_prevention", "labour_dispute", "other"}
    parking = client.get("/api/v1/services/parking").get_json()
    assert parking["required_skill"] == "traffic_parking" and parking["department"] == "traffic"
    assert parking["attributes"][1]["datatype"] == "singlevaluelist"
    assert_problem(client.get("/api/v1/services/nope"), 404)




def test_figures_time_to_first_response_sla_and_rating(login, g03, clock):
    worker = login("worker-008")
    fast = file(worker, g03["here"]).get_json()
    clock.advance(minutes=4)
    login("volunteer-013").post(f"/api/v1/requests/{fast['id']}/accept", json={})
    clock.advance(minutes=20)
    login("volunteer-013").post(f"/api/v1/requests/{fast['id']}/resolve", json={})
    worker.post(f"/api/v1/requests/{fast['id']}/rate", json={"rating": 4})
    slow = file(worker, offset(*g03["here"], 100, 0), service="housing").get_json()  # to the liaison, SLA 240 min
    clock.advance(hours=5)
    login("liaison-g03").post(f"/api/v1/requests/{slow['id']}/start", json={})
    figures = login("liaison-g03").get(f"/api/v1/requests/stats?community_id={g03['zone'].community_id}").get_json()
    assert figures["by_service"]["parking"] >= 1 and figures["by_zone"]["G03"] >= 2
    assert figures["within_sla_share"] is not None and figures["mean_rating"] == 4.0
    mine = login("admin").get(f"/api/v1/requests/stats?community_id={g03['zone'].community_id}"
                              f"&from={(clock() - timedelta(hours=6)).isoformat().replace('+', '%2B')}").get_json()
    assert mine["total"] == 2 and mine["within_sla_share"] == 0.5
    # fast: answered 4 min after filing; slow: filed 24 min in, answered 5 h later (times on the service's clock)
    assert mine["median_first_response_min"] == pytest.approx((4 + 300) / 2, abs=0.5)
    assert mine["median_resolution_min"] == pytest.approx(24, abs=0.5)
    assert_problem(login("worker-008").get(f"/api/v1/requests/stats?community_id={g03['zone'].community_id}"), 403)


def offers_a_batch_swaps(login, session, clock):
    """G06's middle: volunteer-031 on duty 10 m east, volunteer-037 25 m west; worker-003 files a request there
    (offered to the near one, greedy) and one 20 m east (left with the far one, 45 m): the least total
    distance swaps them. (zone, near, far, first, second)"""
    zone = zone_of(session, "G06")
    here = zone_center(login("admin"), zone.id)
    shift_id = open_shift(session, zone.id, clock())
    near = put_on_duty(session, "volunteer-031", *offset(*here, 10, 0), shift_id)
    far = put_on_duty(session, "volunteer-037", *offset(*here, -25, 0), shift_id)
    session.commit()
    worker = login("worker-003")
    first = file(worker, here).get_json()
    second = file(worker, offset(*here, 20, 0)).get_json()
    assert first["offer"]["volunteer_id"] == near and second["offer"]["volunteer_id"] == far
    return zone, near, far, first, second


def test_batch_finds_the_least_total_distance_where_greedy_does_not(login, session, clock):
    zone, near, far, first, second = offers_a_batch_swaps(login, session, clock)
    worker = login("worker-003")
    result = login("liaison-g06").post(f"/api/v1/dispatch/batch?community_id={zone.community_id}").get_json()
    assert result["requests"] == 2 and result["offered"] == 2
    assert result["greedy_total_distance_m"] == pytest.approx(55, rel=0.02)
    assert result["total_distance_m"] == pytest.approx(35, rel=0.02)
    assigned = {p["request_id"]: p["volunteer_id"] for p in result["pairs"]}
    assert assigned == {first["id"]: far, second["id"]: near}
    assert login("volunteer-031").get("/api/v1/me/offers").get_json()[0]["id"] == second["id"]
    # batch dispatch's notes say to whom, not how far (the requester reads them too)
    notes = [e["note"] or "" for e in worker.get(f"/api/v1/requests/{first['id']}/events").get_json()]
    assert notes[-1] == f"batch: offered to volunteer {far}"
    assert_problem(login("liaison-g01").post("/api/v1/dispatch/batch?community_id=987654"), 404)
    assert_problem(login("volunteer-031").post(f"/api/v1/dispatch/batch?community_id={zone.community_id}"), 403)


def test_batch_tells_a_liaison_no_distance_of_a_volunteer_they_may_not_locate(login, session, clock):
    """README, Who sees what: a volunteer's positions are for the volunteer, the liaison of a zone they work in
    and admins; /dispatch/candidates ranks for a liaison only their zones' volunteers. The batch answered any
    liaison of the community with the distance from each open request, one they filed where they chose, to a
    volunteer of another zone (and sums of such distances)."""
    g10 = zone_of(session, "G10")
    there = zone_center(login("admin"), g10.id)
    stranger = put_on_duty(session, "volunteer-010", *there, open_shift(session, g10.id, clock()))  # works in G10
    session.commit()
    spy = login("liaison-g01")
    probe = offset(*there, 250, 0)
    assert file(spy, probe).get_json()["offer"]["distance_m"] is None  # the single dispatch hides it too
    result = spy.post(f"/api/v1/dispatch/batch?community_id={g10.community_id}").get_json()
    # (since session 12, a liaison's batch plans their zones' requests only: their own filing in G10 is not one)
    assert not [p for p in result["pairs"] if p["volunteer_id"] == stranger]
    # G10's liaison, and an admin, get every figure
    again = login("liaison-g10").post(f"/api/v1/dispatch/batch?community_id={g10.community_id}").get_json()
    [pair] = [p for p in again["pairs"] if p["volunteer_id"] == stranger]
    assert pair["distance_m"] == pytest.approx(250, abs=2) and again["total_distance_m"] == pytest.approx(250, abs=2)


def test_batch_leaves_the_liaison_what_ran_out_of_refusals_and_never_offers_a_need_back(login, g03, session, clock):
    """Batch dispatch re-plans the open requests, but a request that reached the liaison after its three
    refusals stays theirs, and a worker who volunteers is never offered their own need (found in review)."""
    exhausted = file(login("worker-001"), g03["here"]).get_json()
    for username in ("volunteer-013", "volunteer-019", "volunteer-025"):
        login(username).post(f"/api/v1/requests/{exhausted['id']}/decline", json={"note": "在忙"})
    fresh = put_on_duty(session, "volunteer-031", *offset(*g03["here"], 50, 0), open_shift(session, g03["zone"].id, clock()))
    session.commit()
    me = account_id(session, "volunteer-013")
    assert login("admin").patch(f"/api/v1/users/{me}", json={"roles": ["volunteer", "worker"]}).status_code == 200
    own = file(login("volunteer-013"), offset(*g03["here"], 120, 0)).get_json()  # where volunteer-013 stands
    result = login("liaison-g03").post(f"/api/v1/dispatch/batch?community_id={g03['zone'].community_id}").get_json()
    pairs = {p["request_id"]: p["volunteer_id"] for p in result["pairs"]}
    assert exhausted["id"] not in pairs  # volunteer-031, never asked, would have been offered it
    assert pairs[own["id"]] in {fresh, g03["volunteers"]["volunteer-025"]}  # not volunteer-013 (0 m), nor 019 (asked)
    kept = login("liaison-g03").get(f"/api/v1/requests/{exhausted['id']}").get_json()
    assert kept["status"] == "with_liaison" and kept["liaison_id"] == account_id(session, "liaison-g03")
