"""Enterprises live in the zone holding their location, kept current as zones change."""
from __future__ import annotations

import pytest

from geo.crs import from_wgs84, geodesic_distance_m
from gridsvc.models import Enterprise
from tests.helpers import assert_problem, community_body, count, offset, rect, zone_feature

ORIGIN = (120.30, 31.50)


@pytest.fixture()
def client(admin_client):
    """These tests are about the data rules, so they act as an admin (access is tested in test_access*)."""
    return admin_client


@pytest.fixture()
def market(client) -> int:
    return client.post("/api/v1/communities", json=community_body(boundary=rect(*ORIGIN, 1000, 1000))).get_json()["id"]


def _point(east_m: float, north_m: float, crs: str = "wgs84") -> dict:
    lon, lat = offset(*ORIGIN, east_m, north_m)
    if crs != "wgs84":
        lon, lat = from_wgs84(lon, lat, crs)
    return {"lon": lon, "lat": lat, "crs": crs}


def test_lingfeng_enterprises_are_all_zoned(client, lingfeng):
    page = client.get(f"/api/v1/communities/{lingfeng.id}/enterprises?limit=1000").get_json()
    assert page["total"] == 78 and len(page["items"]) == 78
    assert all(e["zone"] and e["zone"]["code"].startswith("G") for e in page["items"])
    assert 19_000 <= sum(e["workers"] for e in page["items"]) <= 21_000
    g01 = next(e["zone"]["id"] for e in page["items"] if e["zone"]["code"] == "G01")
    in_g01 = client.get(f"/api/v1/communities/{lingfeng.id}/enterprises?zone_id={g01}&limit=1000").get_json()
    assert 0 < in_g01["total"] < 78 and all(e["zone"]["code"] == "G01" for e in in_g01["items"])
    # a zone id that is no zone of this park lists nothing for a reason: it is said, not an empty page
    unknown = assert_problem(client.get(f"/api/v1/communities/{lingfeng.id}/enterprises?zone_id=987654"), 422)
    assert "zone_id" in unknown["errors"]


def test_create_places_enterprise_in_its_zone(client, market):
    west = client.post(f"/api/v1/communities/{market}/zones", json=zone_feature("W", rect(*ORIGIN, 500, 1000))).get_json()
    response = client.post(f"/api/v1/communities/{market}/enterprises",
                           json={"name": "宁波测试机械有限公司", "location": _point(100, 100), "workers": 250})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["zone"]["id"] == west["id"] and body["zone"]["code"] == "W"
    assert body["workers"] == 250 and body["location"]["crs"] == "wgs84"


def test_gcj02_location_is_stored_as_wgs84(client, market):
    truth = _point(300, 300)
    body = client.post(f"/api/v1/communities/{market}/enterprises",
                       json={"name": "A", "location": _point(300, 300, "gcj02")}).get_json()
    stored = body["location"]
    assert geodesic_distance_m(stored["lon"], stored["lat"], truth["lon"], truth["lat"]) < 1.0


def test_zone_changes_reassign_enterprises(client, market):
    enterprise = client.post(f"/api/v1/communities/{market}/enterprises",
                             json={"name": "A", "location": _point(700, 500)}).get_json()
    assert enterprise["zone"] is None
    url = f"/api/v1/communities/{market}/enterprises/{enterprise['id']}"
    east = client.post(f"/api/v1/communities/{market}/zones", json=zone_feature("E", rect(*offset(*ORIGIN, 500, 0), 500, 1000))).get_json()
    assert client.get(url).get_json()["zone"]["code"] == "E"
    client.patch(f"/api/v1/zones/{east['id']}", json={"geometry": rect(*offset(*ORIGIN, 800, 0), 200, 1000)})
    assert client.get(url).get_json()["zone"] is None
    client.delete(f"/api/v1/zones/{east['id']}")
    client.post(f"/api/v1/communities/{market}/zones/split", json={"count": 4, "commit": True})
    assert client.get(url).get_json()["zone"]["code"].startswith("G")


def test_update_and_delete(client, market):
    created = client.post(f"/api/v1/communities/{market}/enterprises", json={"name": "A", "location": _point(10, 10)}).get_json()
    url = f"/api/v1/communities/{market}/enterprises/{created['id']}"
    moved = client.patch(url, json={"workers": 12, "location": _point(990, 990)}).get_json()
    assert moved["workers"] == 12 and moved["location"]["lon"] > created["location"]["lon"]
    assert client.delete(url).status_code == 204
    assert_problem(client.get(url), 404)


def test_parking_demand_and_car_commuter_share_are_set_and_cleared(client, market):
    """The two overrides of an enterprise's parking demand; null means "derive it" (workers x the community's share)."""
    created = client.post(f"/api/v1/communities/{market}/enterprises",
                          json={"name": "A", "location": _point(10, 10), "workers": 400, "parking_demand": 120})
    assert created.status_code == 201, created.get_json()
    assert (created.get_json()["parking_demand"], created.get_json()["car_commuter_share"]) == (120, None)
    url = f"/api/v1/communities/{market}/enterprises/{created.get_json()['id']}"
    changed = client.patch(url, json={"parking_demand": None, "car_commuter_share": 0.35}).get_json()
    assert (changed["parking_demand"], changed["car_commuter_share"]) == (None, 0.35)
    assert client.get(url).get_json()["car_commuter_share"] == 0.35
    cleared = client.patch(url, json={"car_commuter_share": None}).get_json()
    assert (cleared["parking_demand"], cleared["car_commuter_share"], cleared["workers"]) == (None, None, 400)


@pytest.mark.parametrize("change", [{"parking_demand": -1}, {"parking_demand": 2.5}, {"parking_demand": 10**9},
                                    {"car_commuter_share": -0.1}, {"car_commuter_share": 1.5},
                                    {"car_commuter_share": "NaN"}, {"car_commuter_share": "a lot"}])
def test_bad_demand_overrides_are_422_and_change_nothing(client, market, change):
    created = client.post(f"/api/v1/communities/{market}/enterprises",
                          json={"name": "A", "location": _point(10, 10), "parking_demand": 5}).get_json()
    url = f"/api/v1/communities/{market}/enterprises/{created['id']}"
    assert list(assert_problem(client.patch(url, json=change), 422)["errors"]) == list(change)
    assert_problem(client.post(f"/api/v1/communities/{market}/enterprises",
                               json={"name": "B", "location": _point(10, 10), **change}), 422)
    assert client.get(url).get_json() == created


def test_enterprise_outside_community_is_422(client, session, market):
    before = count(session, Enterprise)
    body = assert_problem(client.post(f"/api/v1/communities/{market}/enterprises",
                                      json={"name": "Far", "location": _point(1500, 500)}), 422, "outside-community")
    assert body["distance_m"] == pytest.approx(500, rel=0.02)
    assert count(session, Enterprise) == before


@pytest.mark.parametrize("body", [
    {"name": "", "location": {"lon": 120.3, "lat": 31.5}},
    {"name": "A", "location": {"lon": 200, "lat": 31.5}},
    {"name": "A", "location": {"lon": 120.3}},
    {"name": "A", "location": {"lon": 120.3, "lat": 31.5, "crs": "epsg:3857"}},
    {"name": "A", "location": {"lon": 120.3, "lat": 31.5}, "workers": -1},
    {"name": "A", "location": [120.3, 31.5]},
])
def test_bad_enterprise_is_422(client, session, market, body):
    before = count(session, Enterprise)
    assert_problem(client.post(f"/api/v1/communities/{market}/enterprises", json=body), 422)
    assert count(session, Enterprise) == before


def test_enterprise_of_another_community_is_404(client, market, lingfeng):
    other = client.get(f"/api/v1/communities/{lingfeng.id}/enterprises?limit=1").get_json()["items"][0]
    assert_problem(client.get(f"/api/v1/communities/{market}/enterprises/{other['id']}"), 404)
