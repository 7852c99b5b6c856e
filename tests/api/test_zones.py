"""Grid zones: the 10-grid rules, coverage, split and locate, on real PostGIS."""
from __future__ import annotations

import threading

import pytest
from shapely.geometry import shape

from geo.crs import from_wgs84, geodesic_distance_m
from gridsvc.models import Zone
from tests.helpers import assert_problem, client_as, community_body, count, offset, rect, zone_feature

ORIGIN = (120.30, 31.50)  # SW corner of the 1 km x 1 km test market


@pytest.fixture()
def client(admin_client):
    """These tests are about the data rules, so they act as an admin (access is tested in test_access*)."""
    return admin_client


@pytest.fixture()
def market(client) -> int:
    response = client.post("/api/v1/communities", json=community_body(boundary=rect(*ORIGIN, 1000, 1000)))
    return response.get_json()["id"]


def _post_zone(client, community_id, feature):
    return client.post(f"/api/v1/communities/{community_id}/zones", json=feature)


def test_lingfeng_has_ten_zones_that_tile_it(client, lingfeng):
    body = client.get(f"/api/v1/communities/{lingfeng.id}/zones").get_json()
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 10
    assert [f["properties"]["code"] for f in body["features"]] == [f"G{i:02d}" for i in range(1, 11)]
    assert all(f["properties"]["liaison"] for f in body["features"])
    coverage = client.get(f"/api/v1/communities/{lingfeng.id}/coverage").get_json()
    assert coverage["zone_count"] == 10
    assert coverage["covered_share"] >= 0.9999
    assert coverage["gaps"]["features"] == [] and coverage["overlaps"] == [] and coverage["outside"] == []
    assert coverage["zones_without_liaison"] == []
    areas = [f["properties"]["area_m2"] for f in body["features"]]
    assert sum(areas) == pytest.approx(coverage["community_area_m2"], rel=1e-4)


def test_zone_create_get_update_delete(client, market):
    created = _post_zone(client, market, zone_feature("G01", rect(*ORIGIN, 500, 1000), name="西区", liaison="liaison-g01"))
    assert created.status_code == 201, created.get_json()
    feature = created.get_json()
    assert feature["type"] == "Feature"
    assert feature["properties"]["code"] == "G01" and feature["properties"]["liaison"]["username"] == "liaison-g01"
    assert feature["properties"]["created_by"] == "admin" and feature["properties"]["updated_by"] == "admin"
    assert feature["properties"]["area_m2"] == pytest.approx(500_000, rel=0.01)
    zone_id = feature["id"]

    assert client.get(f"/api/v1/zones/{zone_id}").get_json()["geometry"] == feature["geometry"]
    patched = client.patch(f"/api/v1/zones/{zone_id}", json={"properties": {"liaison": "liaison-g02", "name": "West"}}).get_json()
    assert patched["properties"]["liaison"]["username"] == "liaison-g02" and patched["properties"]["name"] == "West"
    smaller = client.patch(f"/api/v1/zones/{zone_id}", json={"geometry": rect(*ORIGIN, 250, 1000)}).get_json()
    assert smaller["properties"]["area_m2"] == pytest.approx(250_000, rel=0.01)

    assert client.delete(f"/api/v1/zones/{zone_id}").status_code == 204
    assert_problem(client.get(f"/api/v1/zones/{zone_id}"), 404)


def test_zones_sharing_an_edge_are_fine(client, market):
    assert _post_zone(client, market, zone_feature("G01", rect(*ORIGIN, 500, 1000))).status_code == 201
    east = offset(*ORIGIN, 500, 0)
    west_edge = rect(*ORIGIN, 500, 1000)["coordinates"][0][1][0]
    east_zone = rect(west_edge, ORIGIN[1], 500, 1000)
    assert east[0] == pytest.approx(west_edge)
    response = _post_zone(client, market, zone_feature("G02", east_zone))
    assert response.status_code == 201, response.get_json()


def test_overlap_is_409_naming_the_zone_and_area(client, session, market):
    _post_zone(client, market, zone_feature("G01", rect(*ORIGIN, 500, 1000), name="西区"))
    before = count(session, Zone)
    overlapping = rect(*offset(*ORIGIN, 400, 0), 300, 1000)  # 100 m x 1000 m inside G01
    body = assert_problem(_post_zone(client, market, zone_feature("G02", overlapping)), 409, "zone-overlap")
    assert "G01" in body["detail"] and "西区" in body["detail"]
    assert body["overlaps"][0]["code"] == "G01"
    assert body["overlaps"][0]["area_m2"] == pytest.approx(100_000, rel=0.02)
    assert count(session, Zone) == before


def test_zone_outside_its_community_is_422(client, session, market):
    before = count(session, Zone)
    sticking_out = rect(*offset(*ORIGIN, 900, 0), 200, 500)  # 100 m x 500 m outside
    body = assert_problem(_post_zone(client, market, zone_feature("G01", sticking_out)), 422, "outside-community")
    assert body["outside_area_m2"] == pytest.approx(50_000, rel=0.02)
    assert count(session, Zone) == before


def test_zone_within_one_metre_tolerance_is_accepted(client, market):
    just_over = rect(*offset(*ORIGIN, 500, 0), 500.5, 1000)  # 0.5 m past the east edge
    assert _post_zone(client, market, zone_feature("G01", just_over)).status_code == 201


def test_duplicate_code_is_409(client, market):
    _post_zone(client, market, zone_feature("G01", rect(*ORIGIN, 200, 200)))
    body = assert_problem(_post_zone(client, market, zone_feature("G01", rect(*offset(*ORIGIN, 500, 500), 200, 200))),
                          409, "duplicate-code")
    assert "G01" in body["detail"]


def test_a_code_that_differs_only_in_case_is_taken(client, market):
    """"g01" beside "G01" was a second zone: the same grid zone to the people who say it, two on every list and
    every export. It is the same code now (409 naming the zone that has it); the code is kept as typed."""
    assert _post_zone(client, market, zone_feature("g01", rect(*ORIGIN, 200, 200))).status_code == 201
    body = assert_problem(_post_zone(client, market, zone_feature("G01", rect(*offset(*ORIGIN, 500, 500), 200, 200))),
                          409, "duplicate-code")
    assert "g01" in body["detail"], body
    assert [z["properties"]["code"] for z in client.get(f"/api/v1/communities/{market}/zones").get_json()["features"]] \
        == ["g01"]


@pytest.mark.parametrize("feature, field", [
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [120.3, 31.5]}, "properties": {"code": "G1", "name": "x"}}, "geometry"),
    ({"type": "Feature", "geometry": rect(*ORIGIN, 10, 10), "properties": {"name": "x"}}, "properties"),
    ({"type": "Feature", "geometry": rect(*ORIGIN, 10, 10), "properties": {"code": "G 1!", "name": "x"}}, "properties"),
    ({"type": "Polygon", "geometry": rect(*ORIGIN, 10, 10), "properties": {"code": "G1", "name": "x"}}, "type"),
    ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[120.30, 31.50], [120.301, 31.501], [120.301, 31.50],
                                                                          [120.30, 31.501], [120.30, 31.50]]]},
      "properties": {"code": "G1", "name": "x"}}, "geometry"),
])
def test_bad_zone_features_are_422(client, session, market, feature, field):
    before = count(session, Zone)
    body = assert_problem(_post_zone(client, market, feature), 422)
    assert field in body["errors"]
    assert count(session, Zone) == before


def test_bad_zone_update_changes_nothing(client, market):
    zone_id = _post_zone(client, market, zone_feature("G01", rect(*ORIGIN, 500, 500))).get_json()["id"]
    other = _post_zone(client, market, zone_feature("G02", rect(*offset(*ORIGIN, 600, 0), 300, 300))).get_json()["id"]
    before = client.get(f"/api/v1/zones/{zone_id}").get_json()
    assert_problem(client.patch(f"/api/v1/zones/{zone_id}", json={"geometry": rect(*ORIGIN, 800, 400)}), 409)
    assert_problem(client.patch(f"/api/v1/zones/{zone_id}", json={"geometry": rect(*ORIGIN, 1500, 400)}), 422)
    assert_problem(client.patch(f"/api/v1/zones/{zone_id}", json={"properties": {"code": "X9"}}), 422)
    assert client.get(f"/api/v1/zones/{zone_id}").get_json() == before
    assert other != zone_id


def test_coverage_reports_gaps_overlap_free_and_missing_liaisons(client, market):
    _post_zone(client, market, zone_feature("G01", rect(*ORIGIN, 500, 1000), liaison="liaison-g01"))
    _post_zone(client, market, zone_feature("G02", rect(*offset(*ORIGIN, 500, 0), 250, 1000)))
    body = client.get(f"/api/v1/communities/{market}/coverage").get_json()
    assert body["zone_count"] == 2
    assert body["covered_share"] == pytest.approx(0.75, abs=0.005)
    assert body["gap_area_m2"] == pytest.approx(250_000, rel=0.01)
    assert len(body["gaps"]["features"]) == 1
    gap = shape(body["gaps"]["features"][0]["geometry"])
    assert gap.representative_point().x > offset(*ORIGIN, 750, 0)[0] - 1e-6
    assert [z["code"] for z in body["zones_without_liaison"]] == ["G02"]
    assert body["overlaps"] == []


def test_split_proposes_ten_near_equal_zones_without_saving(client, session, market):
    before = count(session, Zone)
    body = client.post(f"/api/v1/communities/{market}/zones/split", json={"count": 10}).get_json()
    assert body["type"] == "FeatureCollection" and body["committed"] is False
    assert [f["properties"]["code"] for f in body["features"]] == [f"G{i:02d}" for i in range(1, 11)]
    areas = [f["properties"]["area_m2"] for f in body["features"]]
    assert max(areas) / min(areas) <= 1.10
    assert body["area_ratio"] <= 1.10
    assert sum(areas) == pytest.approx(1_000_000, rel=0.01)
    assert count(session, Zone) == before


def test_split_commit_saves_a_full_tiling_once(client, market):
    saved = client.post(f"/api/v1/communities/{market}/zones/split", json={"count": 10, "commit": True}).get_json()
    assert saved["committed"] is True
    zones = client.get(f"/api/v1/communities/{market}/zones").get_json()
    assert zones["numberMatched"] == 10
    coverage = client.get(f"/api/v1/communities/{market}/coverage").get_json()
    assert coverage["covered_share"] >= 0.9999 and coverage["overlaps"] == [] and coverage["gaps"]["features"] == []
    assert len(coverage["zones_without_liaison"]) == 10
    again = assert_problem(client.post(f"/api/v1/communities/{market}/zones/split", json={"count": 10, "commit": True}), 409)
    assert "10 zone" in again["detail"]


@pytest.mark.parametrize("count_value", [0, -1, 1001, "ten", None])
def test_split_bad_count_is_422(client, market, count_value):
    assert_problem(client.post(f"/api/v1/communities/{market}/zones/split", json={"count": count_value}), 422)


def _zone_center(client, lingfeng, code):
    zones = client.get(f"/api/v1/communities/{lingfeng.id}/zones").get_json()["features"]
    feature = next(f for f in zones if f["properties"]["code"] == code)
    point = shape(feature["geometry"]).representative_point()
    return feature["id"], point.x, point.y


def test_locate_wgs84(client, lingfeng):
    zone_id, lon, lat = _zone_center(client, lingfeng, "G03")
    body = client.get(f"/api/v1/zones/locate?lon={lon}&lat={lat}").get_json()
    assert body["zone"]["id"] == zone_id and body["zone"]["code"] == "G03"
    assert body["community"]["id"] == lingfeng.id
    assert body["point"]["crs"] == "wgs84"
    assert body["point"]["lon"] == pytest.approx(lon) and body["point"]["lat"] == pytest.approx(lat)


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_locate_converts_chinese_phone_coordinates(client, lingfeng, crs):
    zone_id, lon, lat = _zone_center(client, lingfeng, "G07")
    phone_lon, phone_lat = from_wgs84(lon, lat, crs)
    assert geodesic_distance_m(lon, lat, phone_lon, phone_lat) > 100  # the offset is real
    body = client.get(f"/api/v1/zones/locate?lon={phone_lon}&lat={phone_lat}&crs={crs}").get_json()
    assert body["zone"]["code"] == "G07"
    assert body["input"] == {"lon": phone_lon, "lat": phone_lat, "crs": crs}
    assert geodesic_distance_m(body["point"]["lon"], body["point"]["lat"], lon, lat) < 1.0


def test_locate_outside_every_zone_is_404(client):
    body = assert_problem(client.get("/api/v1/zones/locate?lon=100.0&lat=10.0"), 404)
    assert "100.0" in body["detail"]


@pytest.mark.parametrize("query", ["lon=200&lat=29.87", "lon=121.78", "lon=abc&lat=1", "lon=121.78&lat=29.87&crs=utm",
                                   "lon=nan&lat=29.87", "lon=inf&lat=29.87"])
def test_locate_bad_query_is_422(client, query):
    assert_problem(client.get(f"/api/v1/zones/locate?{query}"), 422)


def test_unknown_zone_is_404(client):
    assert_problem(client.get("/api/v1/zones/987654"), 404)
    assert_problem(client.patch("/api/v1/zones/987654", json={"properties": {"name": "x"}}), 404)
    assert_problem(client.delete("/api/v1/zones/987654"), 404)


def test_racing_overlapping_zones_never_both_win(committed_app):
    """Two liaisons draw overlapping zones at the same moment: exactly one is saved."""
    client = client_as(committed_app, "admin")
    community = client.post("/api/v1/communities", json=community_body(name="Race Market")).get_json()["id"]
    try:
        results: list[int] = []
        barrier = threading.Barrier(2)

        def draw(code: str, east_m: float) -> None:
            local = client_as(committed_app, "planner")
            barrier.wait()
            results.append(_post_zone(local, community, zone_feature(code, rect(*offset(*ORIGIN, east_m, 0), 600, 600))).status_code)

        threads = [threading.Thread(target=draw, args=("G01", 0)), threading.Thread(target=draw, args=("G02", 300))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [201, 409]
        assert client.get(f"/api/v1/communities/{community}/zones").get_json()["numberMatched"] == 1
    finally:
        client.delete(f"/api/v1/communities/{community}?cascade=true")


# ---------------------------------------------------------------- found in review (each failed before its fix)


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["volunteer"]}])
def test_coverage_lists_a_zone_whose_liaison_can_no_longer_act(login, lingfeng, session, change):
    """The liaison left (account disabled, or the role removed): dispatch treats G05 as without a liaison,
    and so does coverage now (it said every zone had one)."""
    from sqlalchemy import select

    from gridsvc.models import User

    admin = login("admin")
    uid = session.scalar(select(User.id).where(User.username == "liaison-g05"))
    assert admin.patch(f"/api/v1/users/{uid}", json=change).status_code == 200
    coverage = admin.get(f"/api/v1/communities/{lingfeng.id}/coverage").get_json()
    assert [z["code"] for z in coverage["zones_without_liaison"]] == ["G05"]


@pytest.mark.parametrize("code", ["G05", "G02"])
def test_a_zone_sent_back_as_published_is_not_an_overlap(login, session, code):
    """The API publishes coordinates to 7 decimals (about 1 cm); a zone edited from the feed and sent back was
    refused as overlapping its neighbour by a square metre or two along the shared edge."""
    from shapely.geometry import shape as to_shape

    from tests.api.volunteer_helpers import zone_of

    admin = login("admin")
    zone = zone_of(session, code)
    published = admin.get(f"/api/v1/zones/{zone.id}/map").get_json()
    [geometry] = [f["geometry"] for f in published["features"] if f["properties"]["layer"] == "zone"]
    answer = admin.patch(f"/api/v1/zones/{zone.id}", json={"geometry": geometry})
    assert answer.status_code == 200, answer.get_json()
    coverage = admin.get(f"/api/v1/communities/{zone.community_id}/coverage").get_json()
    assert coverage["overlaps"] == []  # put back on its neighbours' edges, not overlapping them
    saved = to_shape(admin.get(f"/api/v1/zones/{zone.id}").get_json()["geometry"])
    assert saved.hausdorff_distance(to_shape(geometry)) < 3e-7  # no vertex moved more than about 3 cm
    # a real overlap is still refused: a 10 m strip of a neighbour taken in
    zones = admin.get(f"/api/v1/communities/{zone.community_id}/zones").get_json()["features"]
    mine = to_shape(geometry)
    neighbour = next(to_shape(f["geometry"]) for f in zones
                     if f["properties"]["code"] != code and to_shape(f["geometry"]).distance(mine) < 1e-6)
    grown = mine.union(neighbour.intersection(mine.buffer(0.0001)))
    problem = assert_problem(admin.patch(f"/api/v1/zones/{zone.id}", json={"geometry": grown.__geo_interface__}), 409)
    assert problem["overlaps"][0]["area_m2"] > 100


def test_a_polygon_with_a_half_globe_edge_is_refused(client, market):
    """An edge spanning 180° of longitude has no meaning on the globe: PostGIS's geography failed (a 500), and a
    community with one made every later zone write a 500."""
    antipodal = {"type": "Polygon", "coordinates": [[[0, 0], [180, 0], [180, 1], [0, 1], [0, 0]]]}
    problem = assert_problem(client.post(f"/api/v1/communities/{market}/zones", json=zone_feature("G09", antipodal)), 422)
    assert "180" in problem["detail"]
    assert_problem(client.post("/api/v1/communities", json=community_body(boundary=antipodal)), 422)
