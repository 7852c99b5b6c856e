"""/api/v1/communities against real PostGIS, bad inputs included."""
from __future__ import annotations

import pytest

from gridsvc.models import Community
from tests.helpers import assert_problem, community_body, count, rect, zone_feature


@pytest.fixture()
def client(admin_client):
    """These tests are about the data rules, so they act as an admin (access is tested in test_access*)."""
    return admin_client


def test_lingfeng_is_listed_with_its_numbers(client):
    body = client.get("/api/v1/communities").get_json()
    assert body["total"] >= 1
    lingfeng = next(c for c in body["items"] if "Lingfeng" in c["name"])
    assert lingfeng["kind"] == "industrial_park"
    assert lingfeng["enterprise_count"] == 78
    assert 19_000 <= lingfeng["worker_count"] <= 21_000
    assert lingfeng["area_m2"] == pytest.approx(2.7e6, rel=0.03)
    assert lingfeng["timezone"] == "Asia/Shanghai"
    assert lingfeng["boundary"]["type"] in ("Polygon", "MultiPolygon")


def test_create_get_update_delete(client, session):
    created = client.post("/api/v1/communities", json=community_body())
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["name"] == "测试市场 Test Market" and body["kind"] == "market"
    assert body["area_m2"] == pytest.approx(1_000_000, rel=0.01)  # a 1 km square
    assert body["timezone"] == "Asia/Shanghai"
    assert body["created_at"].endswith("+00:00") or "+" in body["created_at"]
    cid = body["id"]

    fetched = client.get(f"/api/v1/communities/{cid}").get_json()
    assert fetched["boundary"] == body["boundary"]

    patched = client.patch(f"/api/v1/communities/{cid}", json={"worker_count": 450, "kind": "town"}).get_json()
    assert patched["worker_count"] == 450 and patched["kind"] == "town" and patched["name"] == body["name"]

    assert client.delete(f"/api/v1/communities/{cid}").status_code == 204
    assert_problem(client.get(f"/api/v1/communities/{cid}"), 404)


def test_list_paginates_and_filters(client):
    for i in range(3):
        client.post("/api/v1/communities", json=community_body(name=f"Market {i}"))
    page = client.get("/api/v1/communities?kind=market&limit=2&offset=0").get_json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    rest = client.get("/api/v1/communities?kind=market&limit=2&offset=2").get_json()
    assert [c["name"] for c in rest["items"]] == ["Market 2"]


def test_multipolygon_boundary(client):
    a = rect(120.30, 31.50, 500, 500)["coordinates"]
    b = rect(120.32, 31.50, 500, 500)["coordinates"]
    body = client.post("/api/v1/communities", json=community_body(boundary={"type": "MultiPolygon", "coordinates": [a, b]})).get_json()
    assert body["boundary"]["type"] == "MultiPolygon"
    assert body["area_m2"] == pytest.approx(500_000, rel=0.01)


# a name longer than a file name may be was a 500 (ZoneInfo's OSError)
@pytest.mark.parametrize("name", ["Mars/Olympus", "x" * 5000, "../../etc/passwd"])
def test_unknown_timezone_is_422(client, name):
    body = assert_problem(client.post("/api/v1/communities", json=community_body(timezone=name)), 422)
    assert "timezone" in body["errors"]


BAD_BOUNDARIES = {
    "ring of 3 points": ({"type": "Polygon", "coordinates": [[[120.3, 31.5], [120.31, 31.5], [120.3, 31.5]]]}, "4"),
    "unclosed ring": ({"type": "Polygon", "coordinates": [[[120.3, 31.5], [120.31, 31.5], [120.31, 31.51], [120.3, 31.51]]]}, "closed"),
    "bow-tie": ({"type": "Polygon", "coordinates": [[[120.30, 31.50], [120.31, 31.51], [120.31, 31.50], [120.30, 31.51], [120.30, 31.50]]]},
                "Self-intersection"),
    "lon 200": ({"type": "Polygon", "coordinates": [[[200, 31.5], [200.01, 31.5], [200.01, 31.51], [200, 31.5]]]}, "200"),
    "a Point": ({"type": "Point", "coordinates": [120.3, 31.5]}, "Point"),
    "string coordinates": ({"type": "Polygon", "coordinates": "120,31"}, ""),
    "no type": ({"coordinates": []}, ""),
    "not an object": ("POLYGON((0 0,1 0,1 1,0 0))", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_BOUNDARIES))
def test_bad_boundary_is_422_and_changes_nothing(client, session, case):
    geometry, must_mention = BAD_BOUNDARIES[case]
    before = count(session, Community)
    body = assert_problem(client.post("/api/v1/communities", json=community_body(boundary=geometry)), 422)
    assert "boundary" in body["errors"]
    assert must_mention in body["errors"]["boundary"][0]
    assert count(session, Community) == before


def test_bow_tie_names_where(client):
    geometry = BAD_BOUNDARIES["bow-tie"][0]
    message = client.post("/api/v1/communities", json=community_body(boundary=geometry)).get_json()["errors"]["boundary"][0]
    assert "120.305" in message and "31.505" in message  # the crossing point


def test_bad_patch_changes_nothing(client, lingfeng):
    before = client.get(f"/api/v1/communities/{lingfeng.id}").get_json()
    assert_problem(client.patch(f"/api/v1/communities/{lingfeng.id}", json={"worker_count": -5}), 422)
    assert_problem(client.patch(f"/api/v1/communities/{lingfeng.id}", json={"worker_count": "many"}), 422)
    assert_problem(client.patch(f"/api/v1/communities/{lingfeng.id}", json={"colour": "red"}), 422)
    assert client.get(f"/api/v1/communities/{lingfeng.id}").get_json() == before


def test_car_commuter_share_defaults_to_a_tenth_and_can_be_set(client):
    created = client.post("/api/v1/communities", json=community_body()).get_json()
    assert created["car_commuter_share"] == 0.1
    own = client.post("/api/v1/communities", json=community_body(name="Drivers' park", car_commuter_share=0.3)).get_json()
    assert own["car_commuter_share"] == 0.3
    patched = client.patch(f"/api/v1/communities/{created['id']}", json={"car_commuter_share": 0.25}).get_json()
    assert patched["car_commuter_share"] == 0.25


@pytest.mark.parametrize("share", [-0.01, 1.01, None, "NaN", "most"])
def test_bad_car_commuter_share_is_422(client, lingfeng, share):
    before = client.get(f"/api/v1/communities/{lingfeng.id}").get_json()
    problem = assert_problem(client.patch(f"/api/v1/communities/{lingfeng.id}", json={"car_commuter_share": share}), 422)
    assert "car_commuter_share" in problem["errors"]
    assert "car_commuter_share" in assert_problem(
        client.post("/api/v1/communities", json=community_body(car_commuter_share=share)), 422)["errors"]
    assert client.get(f"/api/v1/communities/{lingfeng.id}").get_json() == before


def test_unknown_community_is_404(client):
    assert_problem(client.get("/api/v1/communities/987654"), 404, "not-found")
    assert_problem(client.patch("/api/v1/communities/987654", json={"name": "x"}), 404)
    assert_problem(client.delete("/api/v1/communities/987654"), 404)
    assert_problem(client.get("/api/v1/communities/987654/zones"), 404)
    assert_problem(client.post("/api/v1/communities/987654/zones", json=zone_feature("G01", rect(120.3, 31.5, 10, 10))), 404)


def test_delete_with_zones_needs_cascade(client, session):
    cid = client.post("/api/v1/communities", json=community_body()).get_json()["id"]
    zone = client.post(f"/api/v1/communities/{cid}/zones", json=zone_feature("G01", rect(120.301, 31.501, 200, 200)))
    assert zone.status_code == 201, zone.get_json()
    body = assert_problem(client.delete(f"/api/v1/communities/{cid}"), 409, "has-dependents")
    assert (body["zones"], body["enterprises"]) == (1, 0)
    assert client.delete(f"/api/v1/communities/{cid}?cascade=true").status_code == 204
    assert_problem(client.get(f"/api/v1/communities/{cid}/zones"), 404)


def test_a_community_with_shifts_stays_even_with_cascade(client, lingfeng):
    """Lingfeng's shifts hold volunteers' sign-ups and hours: cascade does not take them."""
    body = assert_problem(client.delete(f"/api/v1/communities/{lingfeng.id}"), 409, "has-dependents")
    assert body["zones"] == 10 and body["enterprises"] == 78
    body = assert_problem(client.delete(f"/api/v1/communities/{lingfeng.id}?cascade=true"), 409, "has-dependents")
    assert body["shifts"] > 0 and "cascade" in body["detail"]
    assert len(client.get(f"/api/v1/communities/{lingfeng.id}/zones").get_json()["features"]) == 10


def test_boundary_shrink_that_drops_zones_is_409(client, lingfeng):
    tiny = rect(121.78, 29.87, 50, 50)
    body = assert_problem(client.patch(f"/api/v1/communities/{lingfeng.id}", json={"boundary": tiny}), 409)
    assert "G0" in body["detail"]
    after = client.get(f"/api/v1/communities/{lingfeng.id}").get_json()
    assert after["area_m2"] == pytest.approx(2.7e6, rel=0.03)
