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
    ("PATCH", "/api/v1/zones/{zone_id}"): "zone-editors",
    ("DELETE", "/api/v1/zones/{zone_id}"): "admin+planner",
    ("GET", "/api/v1/communities/{community_id}/enterprises"): "public",
    ("POST", "/api/v1/communities/{community_id}/enterprises"): "admin",
    ("GET", "/api/v1/communities/{community_id}/enterprises/{enterprise_id}"): "public",
    ("PATCH", "/api/v1/communities/{community_id}/enterprises/{enterprise_id}"): "admin",
    ("DELETE", "/api/v1/communities/{community_id}/enterprises/{enterprise_id}"): "admin",
}

# The target of every zone-scoped route is Lingfeng's G01; the liaison caller
# is G02's, so "their zone" never applies to it.
CALLERS = ("anonymous", "volunteer-001", "liaison-g02", "admin")
DENIED = {
    "public": {},
    "signed-in": {"anonymous": 401},
    "refresh": {"anonymous": 401, "volunteer-001": 401, "liaison-g02": 401, "admin": 401},  # access tokens cannot refresh
    "admin": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    "admin+planner": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
    "zone-editors": {"anonymous": 401, "volunteer-001": 403, "liaison-g02": 403},
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


def _url(path: str, session, lingfeng) -> str:
    ids = {
        "community_id": lingfeng.id,
        "zone_id": session.scalar(select(Zone.id).where(Zone.community_id == lingfeng.id, Zone.code == "G01")),
        "enterprise_id": session.scalar(select(Enterprise.id).where(Enterprise.community_id == lingfeng.id).limit(1)),
        "user_id": session.scalar(select(User.id).where(User.username == "volunteer-001")),
    }
    url = path.format(**ids)
    return url + ("?lon=121.78&lat=29.87" if path.endswith("/locate") else "")


@pytest.mark.parametrize("operation", sorted(MATRIX), ids=lambda op: f"{op[0]} {op[1]}")
def test_route_against_each_caller(app, login, session, lingfeng, operation):
    method, path = operation
    rule = MATRIX[operation]
    url = _url(path, session, lingfeng)
    for caller in CALLERS:  # admin last: its call may change or delete the target
        client = app.test_client() if caller == "anonymous" else login(caller)
        kwargs = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
        response = client.open(url, method=method, **kwargs)
        expected = DENIED[rule].get(caller)
        assert response.status_code < 500, (caller, method, url, response.get_json())
        if expected:
            assert response.status_code == expected, (caller, method, url, response.get_json())
            assert response.mimetype == "application/problem+json"
        else:
            assert response.status_code not in (401, 403), (caller, method, url, response.get_json())
