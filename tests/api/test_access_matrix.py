"""Every route in the OpenAPI document, against four callers.

The table below is the access policy written out by hand. A route that is
added without a line here fails ``test_every_route_is_in_the_matrix``; a
view that declares no rule stops the app from starting at all.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gridsvc.auth import views_without_rules
from gridsvc.models import Enterprise, User, Zone

# rule per operation: public | signed-in | refresh | admin | admin+planner | zone-editors
MATRIX = {
    ("GET", "/api/v1/health"): "public",
    ("GET", "/api/v1/health/live"): "public",
    ("POST", "/api/v1/auth/token"): "public",
    ("POST", "/api/v1/auth/refresh"): "refresh",
    ("POST", "/api/v1/auth/logout"): "signed-in",
    ("GET", "/api/v1/me"): "signed-in",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("GET", "/api/v1/users/{user_id}"): "signed-in",
    ("PATCH", "/api/v1/users/{user_id}"): "admin",
    ("GET", "/api/v1/communities"): "public",
    ("POST", "/api/v1/communities"): "admin",
    ("GET", "/api/v1/communities/{community_id}"): "public",
    ("PATCH", "/api/v1/communities/{community_id}"): "admin",
    ("DELETE", "/api/v1/communities/{community_id}"): "admin",
    ("GET", "/api/v1/communities/{community_id}/zones"): "public",
    ("POST", "/api/v1/communities/{community_id}/zones"): "admin+planner",
    ("GET", "/api/v1/communities/{community_id}/coverage"): "public",
    ("POST", "/api/v1/communities/{community_id}/zones/split"): "admin+planner",
    ("GET", "/api/v1/zones/locate"): "public",
    ("GET", "/api/v1/zones/{zone_id}"): "public",
    ("GET", "/api/v1/zones/{zone_id}/map"): "public-more-with-token",  # personal layers only for whom they concern
    ("PATCH", "/api/v1/zones/{zone_id}"): "zone-editors",
    ("DELETE", "/api/v1/zones/{zone_id}"): "admin+planner",
    ("GET", "/api/v1/communities/{community_id}/enterprises"): "public",
    ("POST", "/api/v1/communities/{community_id}/enterprises"): "admin",
    ("GET", "/api/v1/communities/{community_id}/enterprises/{enterprise_id}"): "public",
    ("PATCH", "/api/v1/communities/{community_id}/enterprises/{enterprise_id}"): "admin",
    ("DELETE", "/api/v1/communities/{community_id}/enterprises/{enterprise_id}"): "admin",
    ("GET", "/api/v1/skills"): "public",
    ("POST", "/api/v1/skills"): "admin",
    ("PATCH", "/api/v1/skills/{code}"): "admin",
    ("DELETE", "/api/v1/skills/{code}"): "admin",
    ("GET", "/api/v1/volunteers"): "volunteer-searchers",
    ("POST", "/api/v1/volunteers"): "signed-in",
    ("GET", "/api/v1/volunteers/{volunteer_id}"): "signed-in",
    ("PATCH", "/api/v1/volunteers/{volunteer_id}"): "volunteer-private",  # the volunteer or an admin
    ("GET", "/api/v1/volunteers/{volunteer_id}/signups"): "volunteer-private",
    ("GET", "/api/v1/volunteers/{volunteer_id}/hours"): "volunteer-private",
    ("GET", "/api/v1/volunteers/{volunteer_id}/hours.csv"): "volunteer-private",
    ("GET", "/api/v1/volunteers/{volunteer_id}/shifts.ics"): "calendar",
    ("GET", "/api/v1/me/volunteer"): "signed-in",
    ("POST", "/api/v1/me/location"): "volunteer-role",
    ("GET", "/api/v1/me/locations"): "signed-in",  # (404 without a profile; kept positions outlive the role)
    ("POST", "/api/v1/me/check-events"): "volunteer-role",
    ("GET", "/api/v1/shifts"): "signed-in",
    ("POST", "/api/v1/shifts"): "shift-managers",
    ("POST", "/api/v1/shifts/series"): "shift-managers",
    ("DELETE", "/api/v1/shifts/series/{series_id}"): "shift-managers",
    ("GET", "/api/v1/shifts/{shift_id}"): "signed-in",
    ("PATCH", "/api/v1/shifts/{shift_id}"): "shift-managers",
    ("DELETE", "/api/v1/shifts/{shift_id}"): "shift-managers",
    ("GET", "/api/v1/shifts/{shift_id}/signups"): "shift-managers",
    ("POST", "/api/v1/shifts/{shift_id}/signups"): "own-volunteer",
    ("DELETE", "/api/v1/shifts/{shift_id}/signups/{volunteer_id}"): "volunteer-private",
    ("GET", "/api/v1/shifts/{shift_id}/check-events"): "shift-managers",
    ("POST", "/api/v1/shifts/{shift_id}/check-in"): "volunteer-role",
    ("POST", "/api/v1/shifts/{shift_id}/check-out"): "volunteer-role",
    ("GET", "/api/v1/hours"): "shift-managers",
    ("GET", "/api/v1/hours/totals"): "shift-managers",
    ("POST", "/api/v1/hours/{hours_id}/approve"): "shift-managers",
    ("POST", "/api/v1/hours/{hours_id}/decline"): "shift-managers",
    ("POST", "/api/v1/hours/review"): "bulk-review",
    ("GET", "/api/v1/parking/lots"): "public",
    ("POST", "/api/v1/parking/lots"): "admin+planner",
    ("GET", "/api/v1/parking/lots/{lot_id}"): "public",
    ("PATCH", "/api/v1/parking/lots/{lot_id}"): "admin+planner",
    ("DELETE", "/api/v1/parking/lots/{lot_id}"): "admin+planner",
    ("GET", "/api/v1/parking/lots/{lot_id}/occupancy"): "public",
    ("POST", "/api/v1/parking/lots/{lot_id}/occupancy"): "status-keepers",
    ("GET", "/api/v1/parking/spaces"): "public",
    ("POST", "/api/v1/parking/spaces"): "admin+planner",
    ("GET", "/api/v1/parking/spaces/{space_id}"): "public",
    ("PATCH", "/api/v1/parking/spaces/{space_id}"): "admin+planner",
    ("DELETE", "/api/v1/parking/spaces/{space_id}"): "admin+planner",
    ("PUT", "/api/v1/parking/spaces/{space_id}/status"): "status-keepers",
    ("POST", "/api/v1/parking/spaces/status"): "status-keepers",
    ("POST", "/api/v1/parking/import"): "admin+planner",
    ("GET", "/api/v1/parking/capacity"): "public",
    ("POST", "/api/v1/parking/capacity"): "public",
    ("GET", "/api/v1/parking/gap"): "public",
    ("GET", "/api/v1/services"): "public",
    ("GET", "/api/v1/services/{code}"): "public",
    ("GET", "/api/v1/requests"): "request-readers",
    ("GET", "/api/v1/requests/stats"): "volunteer-searchers",
    ("POST", "/api/v1/requests"): "filers",
    ("GET", "/api/v1/requests/{request_id}"): "request-readers-scoped",
    ("GET", "/api/v1/requests/{request_id}/events"): "request-readers-scoped",
    ("POST", "/api/v1/requests/{request_id}/rate"): "requester-only",
    ("GET", "/api/v1/me/offers"): "volunteer-role",
    ("GET", "/api/v1/me/tasks"): "volunteer-role",
    ("GET", "/api/v1/dispatch/candidates"): "dispatchers",
    ("POST", "/api/v1/dispatch/batch"): "dispatchers",
    **{("POST", f"/api/v1/requests/{{request_id}}/{action}"): "request-action"
       for action in ("accept", "decline", "hand_back", "start", "resolve", "close", "reopen", "escalate", "claim",
                      "reassign", "withdraw", "comment")},
}

# The target of every zone-scoped route is Lingfeng's G01 (a G01 shift, and
# volunteer-001 whose home zone is G01); the liaison caller is G02's, so
# "their zone" never applies to it.
CALLERS = ("anonymous", "volunteer-001", "liaison-g02", "admin")
DENIED = {
    "public": {},
    "public-more-with-token": {},
    "signed-in": {"anonymous": 401},
    "refresh": {"anonymous": 401, "volunteer-001": 401, "liaison-g02": 401, "admin": 401},  # access tokens cannot refresh
    "admin": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    "admin+planner": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    "zone-editors": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    "volunteer-searchers": {"anonymous": 401, "volunteer-001": 403},
    "shift-managers": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    # needs the volunteer role itself: an admin is not a volunteer
    "volunteer-role": {"anonymous": 401, "liaison-g02": 403, "admin": 403},
    # signs up the caller's own volunteer profile (the body names nobody else)
    "own-volunteer": {"anonymous": 401, "liaison-g02": 403, "admin": 403},
    # the volunteer, a liaison of a zone they work in, an admin
    "volunteer-private": {"anonymous": 401, "liaison-g02": 403},
    # a bearer token of someone who may see the volunteer, or the feed's key (none sent here)
    "calendar": {"anonymous": 401, "liaison-g02": 403},
    # the role gate refuses outright; the zone scope is judged per entry (see below)
    "bulk-review": {"anonymous": 401, "volunteer-001": 403},
    # admins, planners, and the liaison of the lot's zone (the target is in G01)
    "status-keepers": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    # requests: the target is a request a worker filed in G01, with the liaison of G01
    "request-readers": {"anonymous": 401},
    "filers": {"anonymous": 401, "volunteer-001": 403},
    "request-readers-scoped": {"anonymous": 401, "volunteer-001": 404, "liaison-g02": 404},  # not theirs: no such request
    "requester-only": {"anonymous": 401, "volunteer-001": 404, "liaison-g02": 404, "admin": 403},
    "dispatchers": {"anonymous": 401, "volunteer-001": 403},
    # callers who cannot see the request learn nothing (404); for an admin the state decides (409 or 200)
    "request-action": {"anonymous": 401, "volunteer-001": 404, "liaison-g02": 404},
}

# Bodies that get past validation, so that a zone-scope refusal can show.
BODIES = {
    ("POST", "/api/v1/shifts"): lambda ids: {
        "title": "matrix", "activity": "traffic_guidance", "zone_id": ids["zone_id"], "capacity": 1,
        "starts_at": "2030-01-07T07:30:00+08:00", "ends_at": "2030-01-07T09:00:00+08:00"},
    ("POST", "/api/v1/shifts/series"): lambda ids: {
        "title": "matrix", "activity": "traffic_guidance", "zone_id": ids["zone_id"], "capacity": 1, "weekdays": [1],
        "start_time": "07:30", "end_time": "09:00", "from_date": "2030-01-07", "until_date": "2030-01-14"},
    ("POST", "/api/v1/hours/review"): lambda ids: {"ids": [ids["hours_id"]], "action": "approve"},
    ("POST", "/api/v1/parking/lots/{lot_id}/occupancy"): lambda ids: {"observed_at": "2026-01-05T08:00:00+08:00",
                                                                       "occupied": 1},
    ("PUT", "/api/v1/parking/spaces/{space_id}/status"): lambda ids: {"status": "occupied"},
    ("POST", "/api/v1/requests/{request_id}/rate"): lambda ids: {"rating": 4},
    ("POST", "/api/v1/parking/spaces/status"): lambda ids: {"updates": [{"id": ids["space_id"], "status": "occupied"}]},
}


def _operations(client):
    spec = client.get("/api/openapi.json").get_json()
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")}


def test_every_route_is_in_the_matrix(client):
    assert _operations(client) == set(MATRIX)


def test_no_view_lacks_a_rule(app):
    assert views_without_rules(app) == []


def test_openapi_says_which_routes_need_a_token(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for (method, path), rule in MATRIX.items():
        operation = spec["paths"][path][method.lower()]
        assert bool(operation.get("security")) == (rule != "public"), (method, path)
        assert "Access:" in operation.get("description", "")
    # the access line is added to a view's own description, not in its place
    series = spec["paths"]["/api/v1/shifts/series/{series_id}"]["delete"]
    assert series["summary"] == "Cancel the rest of a recurring series"
    assert "already over are left out" in series["description"] and series["description"].endswith("admin, liaison.")


@pytest.fixture()
def ids(session, lingfeng, clock) -> dict:
    """Concrete targets in G01, including an hours entry waiting for review."""
    from datetime import timedelta

    from gridsvc.models import CheckEvent, ServiceHours, Volunteer
    from gridsvc.services.shifts import create_shift

    zone_id = session.scalar(select(Zone.id).where(Zone.community_id == lingfeng.id, Zone.code == "G01"))
    volunteer = session.scalar(select(Volunteer).join(User, User.id == Volunteer.user_id).where(User.username == "volunteer-001"))
    shift = create_shift(session, zone_id=zone_id, title="matrix", activity="traffic_guidance", capacity=3,
                         starts_at=clock() + timedelta(days=1), ends_at=clock() + timedelta(days=1, hours=2),
                         series_id="matrix-series")
    past = create_shift(session, zone_id=zone_id, title="past", activity="traffic_guidance", capacity=3,
                        starts_at=clock() - timedelta(hours=3), ends_at=clock() - timedelta(hours=2))
    check_in = CheckEvent(shift_id=past.id, volunteer_id=volunteer.id, kind="check_in", effective_at=past.starts_at,
                          position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87, input_crs="wgs84",
                          inside=True, distance_m=0, accepted=True, status_code=201, response={})
    session.add(check_in)
    session.flush()
    hours = ServiceHours(volunteer_id=volunteer.id, shift_id=past.id, check_in_id=check_in.id, started_at=past.starts_at,
                         ended_at=past.ends_at, hours=1, status="pending")
    session.add(hours)
    session.flush()
    from gridsvc.models import ParkingLot, ParkingSpace

    lot = ParkingLot(community_id=lingfeng.id, zone_id=zone_id, name="matrix lot", capacity_car=5,
                     geom="SRID=4326;POINT(121.78 29.87)")
    session.add(lot)
    session.flush()
    space = ParkingSpace(community_id=lingfeng.id, zone_id=zone_id, lot_id=lot.id, geom="SRID=4326;POINT(121.78 29.87)")
    session.add(space)
    session.flush()
    from gridsvc.models import ServiceRequest

    request = ServiceRequest(community_id=lingfeng.id, zone_id=zone_id, service_code="other", description="matrix",
                             location="SRID=4326;POINT(121.78 29.87)", status="resolved",
                             requester_id=session.scalar(select(User.id).where(User.username == "worker-001")),
                             liaison_id=session.scalar(select(User.id).where(User.username == "liaison-g01")),
                             sla_due_at=clock())
    session.add(request)
    session.flush()
    session.commit()
    return {
        "community_id": lingfeng.id,
        "zone_id": zone_id,
        "enterprise_id": session.scalar(select(Enterprise.id).where(Enterprise.community_id == lingfeng.id).limit(1)),
        "user_id": session.scalar(select(User.id).where(User.username == "volunteer-001")),
        "volunteer_id": volunteer.id,
        "shift_id": shift.id,
        "series_id": shift.series_id,
        "hours_id": hours.id,
        "lot_id": lot.id,
        "space_id": space.id,
        "request_id": request.id,
        "code": "parking",
    }


def _url(path: str, ids: dict) -> str:
    url = path.format(**ids)
    if path.endswith("/locate"):
        url += "?lon=121.78&lat=29.87"
    elif path.endswith("/parking/gap"):
        url += f"?community_id={ids['community_id']}"
    elif path.endswith("/parking/capacity"):
        url += f"?zone_id={ids['zone_id']}"
    elif path.endswith("/requests/stats"):
        url += f"?community_id={ids['community_id']}"
    elif path.endswith("/dispatch/batch"):
        url += f"?community_id={ids['community_id']}"
    elif path in ("/api/v1/hours", "/api/v1/hours/totals"):  # a liaison of another zone asking for this one
        url += f"?zone_id={ids['zone_id']}"
    elif path.endswith("/dispatch/candidates"):
        url += "?lon=121.78&lat=29.87"
    return url


@pytest.mark.parametrize("operation", sorted(MATRIX), ids=lambda op: f"{op[0]} {op[1]}")
def test_route_against_each_caller(app, login, ids, operation):
    method, path = operation
    rule = MATRIX[operation]
    url = _url(path, ids)
    body = BODIES[operation](ids) if operation in BODIES else {}
    for caller in CALLERS:  # admin last: its call may change or delete the target
        client = app.test_client() if caller == "anonymous" else login(caller)
        kwargs = {"json": body} if method in ("POST", "PATCH", "PUT") else {}
        response = client.open(url, method=method, **kwargs)
        expected = DENIED[rule].get(caller)
        assert response.status_code < 500, (caller, method, url, response.get_json())
        if expected:
            assert response.status_code == expected, (caller, method, url, response.get_json())
            assert response.mimetype == "application/problem+json"
        else:
            assert response.status_code not in (401, 403), (caller, method, url, response.get_json())


def test_bulk_review_refuses_entries_outside_the_liaisons_zones(login, ids):
    answer = login("liaison-g02").post("/api/v1/hours/review", json={"ids": [ids["hours_id"]], "action": "approve"})
    assert answer.get_json()["results"] == [{"id": ids["hours_id"], "status": 403,
                                             "detail": "Only admins and the liaison of the shift's zone may do this."}]
    done = login("liaison-g01").post("/api/v1/hours/review", json={"ids": [ids["hours_id"]], "action": "approve"})
    assert done.get_json()["results"][0]["hours_status"] == "approved"
