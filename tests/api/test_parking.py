"""Parking: inventory, occupancy, capacity by every selector, gap, import and exports."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import shape
from sqlalchemy import func, select

from gridsvc.models import OccupancyObservation, ParkingLot, ParkingSpace
from tests.helpers import assert_problem, community_body, count, offset, rect, zone_feature

ORIGIN = (120.30, 31.50)  # SW corner of a 1 km x 1 km market: zone W (west half), zone E (east half)


@pytest.fixture()
def admin(login):
    return login("admin")


@pytest.fixture()
def market(admin):
    community = admin.post("/api/v1/communities", json=community_body(boundary=rect(*ORIGIN, 1000, 1000))).get_json()["id"]
    west = admin.post(f"/api/v1/communities/{community}/zones",
                      json=zone_feature("W", rect(*ORIGIN, 500, 1000), liaison="liaison-g01")).get_json()["id"]
    east_edge = rect(*ORIGIN, 500, 1000)["coordinates"][0][1][0]
    east = admin.post(f"/api/v1/communities/{community}/zones",
                      json=zone_feature("E", rect(east_edge, ORIGIN[1], 500, 1000), liaison="liaison-g02")).get_json()["id"]
    return {"community": community, "W": west, "E": east}


def lot(admin, geometry, name="测试停车场", **props):
    body = {"type": "Feature", "geometry": geometry, "properties": {"name": name, **props}}
    response = admin.post("/api/v1/parking/lots", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def point(east_m, north_m, origin=ORIGIN):
    return {"type": "Point", "coordinates": list(offset(*origin, east_m, north_m))}


def space(admin, geometry, **props):
    response = admin.post("/api/v1/parking/spaces", json={"type": "Feature", "geometry": geometry, "properties": props})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def gap_report(admin, community, **query):
    answer = admin.get("/api/v1/parking/gap", query_string={"community_id": community, **query})
    assert answer.status_code == 200, answer.get_json()
    report = answer.get_json()
    return {row["code"]: row for row in report["zones"]}, report["total"]


def supply(admin, zone_id):
    return admin.get(f"/api/v1/parking/capacity?zone_id={zone_id}").get_json()["supply"]["total"]


def test_lot_zone_is_the_one_holding_most_of_it(admin, market):
    straddling = lot(admin, rect(*offset(*ORIGIN, 440, 100), 200, 50), capacity={"car": 40})  # 60 m in W, 140 m in E
    assert straddling["properties"]["zone_id"] == market["E"]
    assert straddling["properties"]["community_id"] == market["community"]
    assert straddling["properties"]["area_m2"] == pytest.approx(10_000, rel=0.02)
    street = lot(admin, point(100, 900), kind="street_side", capacity={"car": 8})
    assert street["properties"]["zone_id"] == market["W"] and street["geometry"]["type"] == "Point"
    assert street["properties"]["capacity"] == {"car": 8, "accessible": 0, "ev_charging": 0, "truck": 0, "ebike": 0}


@pytest.mark.parametrize("geometry, props, field", [
    ({"type": "Polygon", "coordinates": [[[120.30, 31.50], [120.301, 31.501], [120.301, 31.50], [120.30, 31.501], [120.30, 31.50]]]}, {}, "geometry"),
    ({"type": "LineString", "coordinates": [[120.30, 31.50], [120.301, 31.501]]}, {}, "geometry"),
    (None, {"capacity": {"car": -1}}, "properties"),
    (None, {"access": "everyone"}, "properties"),
    (None, {"kind": "helipad"}, "properties"),
    (None, {"capacity": {"bus": 3}}, "properties"),
])
def test_bad_lots_are_422_and_create_nothing(admin, market, session, geometry, props, field):
    before = count(session, ParkingLot)
    body = {"type": "Feature", "geometry": geometry or rect(*offset(*ORIGIN, 50, 50), 20, 20), "properties": {"name": "x", **props}}
    problem = assert_problem(admin.post("/api/v1/parking/lots", json=body), 422)
    assert field in problem["errors"]
    assert count(session, ParkingLot) == before


def test_lot_outside_every_zone_is_422(admin, market):
    far = {"type": "Feature", "geometry": rect(100.0, 10.0, 20, 20), "properties": {"name": "x"}}
    assert "geometry" in assert_problem(admin.post("/api/v1/parking/lots", json=far), 422)["errors"]


def test_who_may_write_parking(login, admin, market):
    body = {"type": "Feature", "geometry": rect(*offset(*ORIGIN, 50, 50), 20, 20), "properties": {"name": "x"}}
    assert login("planner").post("/api/v1/parking/lots", json=body).status_code == 201
    assert_problem(login("liaison-g01").post("/api/v1/parking/lots", json=body), 403)
    assert_problem(login("volunteer-001").post("/api/v1/parking/lots", json=body), 403)


def test_space_statuses_single_and_bulk(login, admin, market, session):
    west_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 3})
    spaces = []
    for i in range(3):
        answer = admin.post("/api/v1/parking/spaces", json={"type": "Feature", "geometry": point(110 + 5 * i, 110),
                                                            "properties": {"lot_id": west_lot["id"], "ref": f"W-{i}"}})
        assert answer.status_code == 201, answer.get_json()
        spaces.append(answer.get_json()["id"])
    liaison = login("liaison-g01")  # liaison of W
    one = liaison.put(f"/api/v1/parking/spaces/{spaces[0]}/status", json={"status": "occupied"})
    assert one.status_code == 200 and one.get_json()["properties"]["status"] == "occupied"
    bulk = liaison.post("/api/v1/parking/spaces/status", json={"updates": [{"id": spaces[1], "status": "reserved"},
                                                                         {"id": spaces[2], "status": "out_of_service"}]})
    assert bulk.get_json()["updated"] == 2
    assert_problem(liaison.post("/api/v1/parking/spaces/status", json={"updates": [{"id": spaces[0], "status": "free"},
                                                                                  {"id": 987654, "status": "free"}]}), 422)
    assert session.get(ParkingSpace, spaces[0]).status == "occupied"  # all or nothing
    twice = assert_problem(liaison.post("/api/v1/parking/spaces/status", json={"updates": [
        {"id": spaces[0], "status": "free"}, {"id": spaces[0], "status": "reserved"}]}), 422)
    assert f"space {spaces[0]} is given more than once" in str(twice["errors"]["updates"])
    assert session.get(ParkingSpace, spaces[0]).status == "occupied"
    assert_problem(liaison.put(f"/api/v1/parking/spaces/{spaces[0]}/status", json={"status": "towed"}), 422)
    east_space = admin.post("/api/v1/parking/spaces", json={"type": "Feature", "geometry": point(800, 500)}).get_json()
    assert_problem(liaison.put(f"/api/v1/parking/spaces/{east_space['id']}/status", json={"status": "occupied"}), 403)
    capacity = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert capacity["occupied"] == 2 and capacity["out_of_service"] == 1 and capacity["free"] == 0
    assert capacity["spaces"] == 3


def test_occupancy_observations_and_daily_series(login, admin, market, clock):
    lot_id = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 50, "ebike": 10})["id"]
    day = clock().astimezone(ZoneInfo("Asia/Shanghai")).replace(hour=0, minute=0, second=0) - timedelta(days=1)
    for hour, occupied in ((2, 5), (8, 30), (8.5, 45), (14, 50), (14.25, 44)):
        observed = day + timedelta(hours=hour)
        answer = admin.post(f"/api/v1/parking/lots/{lot_id}/occupancy",
                            json={"observed_at": observed.isoformat(), "occupied": occupied})
        assert answer.status_code == 201, answer.get_json()
    series = admin.get(f"/api/v1/parking/lots/{lot_id}/occupancy",
                       query_string={"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat(), "bucket": "1h"}).get_json()
    buckets = {b["start"][11:16]: b for b in series["buckets"]}
    assert series["capacity"] == 60
    assert buckets["08:00"]["peak"] == 45 and buckets["08:00"]["mean"] == 37.5 and buckets["08:00"]["samples"] == 2
    assert buckets["14:00"]["peak"] == 50 and buckets["14:00"]["peak_utilisation_pct"] == pytest.approx(83.3)
    whole_day = admin.get(f"/api/v1/parking/lots/{lot_id}/occupancy",
                          query_string={"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat(), "bucket": "1d"}).get_json()
    assert [(b["peak"], b["samples"]) for b in whole_day["buckets"]] == [(50, 5)]


@pytest.mark.parametrize("body, field", [({"occupied": 61}, "occupied"), ({"occupied": -1}, "occupied"),
                                         ({"occupied": 10, "by_type": {"car": 5, "ebike": 4}}, "by_type"),
                                         ({"occupied": 20, "by_type": {"ebike": 20}}, "by_type"),
                                         ({"occupied": 10, "by_type": {"bus": 10}}, "by_type")])
def test_bad_observations_are_422(admin, market, session, clock, body, field):
    lot_id = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 50, "ebike": 10})["id"]
    before = count(session, OccupancyObservation)
    problem = assert_problem(admin.post(f"/api/v1/parking/lots/{lot_id}/occupancy",
                                        json={"observed_at": clock().isoformat(), **body}), 422)
    assert field in problem["errors"]
    assert count(session, OccupancyObservation) == before


def test_a_count_with_an_empty_breakdown_counts_its_cars(admin, market, session, clock):
    """{"by_type": {}} says nothing about types: the count is capped at the car spaces, not read as 0 cars."""
    west = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 60, "ebike": 20})
    answer = admin.post(f"/api/v1/parking/lots/{west['id']}/occupancy",
                        json={"observed_at": clock().isoformat(), "occupied": 70, "by_type": {}})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["by_type"] is None
    # a count stored with {} before it was kept as none reads the same
    east = lot(admin, rect(*offset(*ORIGIN, 700, 100), 40, 40), capacity={"car": 40})
    session.add(OccupancyObservation(lot_id=east["id"], observed_at=clock(), occupied=25, by_type={}))
    session.flush()
    rows, total = gap_report(admin, market["community"])
    assert (rows["W"]["peak_occupancy"], rows["E"]["peak_occupancy"], total["peak_occupancy"]) == (60, 25, 85)


def test_series_and_gap_count_days_in_the_communitys_own_time(admin, clock):
    """A market in Urumqi (UTC+6): its day runs from its own midnight, not Shanghai's (UTC+8)."""
    origin = (87.60, 43.80)
    community = admin.post("/api/v1/communities", json=community_body(boundary=rect(*origin, 1000, 1000),
                                                                     timezone="Asia/Urumqi")).get_json()["id"]
    admin.post(f"/api/v1/communities/{community}/zones", json=zone_feature("U", rect(*origin, 1000, 1000)))
    the_lot = lot(admin, rect(*offset(*origin, 100, 100), 40, 40), capacity={"car": 50})
    midnight = clock().astimezone(ZoneInfo("Asia/Urumqi")).replace(hour=0, minute=0, second=0) - timedelta(days=2)
    for hours, occupied in ((0.5, 10), (23.5, 20)):  # both on the same local day; 23:30 is 01:30 next day in Shanghai
        answer = admin.post(f"/api/v1/parking/lots/{the_lot['id']}/occupancy",
                            json={"observed_at": (midnight + timedelta(hours=hours)).isoformat(), "occupied": occupied})
        assert answer.status_code == 201, answer.get_json()
    series = admin.get(f"/api/v1/parking/lots/{the_lot['id']}/occupancy",
                       query_string={"from": midnight.isoformat(), "to": (midnight + timedelta(days=1)).isoformat(),
                                     "bucket": "1d"}).get_json()
    assert [(b["start"], b["peak"], b["samples"]) for b in series["buckets"]] == [(midnight.isoformat(), 20, 2)]
    rows, _ = gap_report(admin, community, as_of=midnight.date().isoformat())
    assert rows["U"]["peak_occupancy"] == 20  # the day's last count is in the day's window


def test_capacity_by_zone_community_bbox_radius_and_polygon(admin, market, clock):
    a = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 90, "accessible": 4, "ev_charging": 6, "ebike": 30})
    b = lot(admin, rect(*offset(*ORIGIN, 700, 700), 40, 40), capacity={"car": 50, "truck": 10}, opened_on="2024-05-01")
    admin.post("/api/v1/parking/spaces", json={"type": "Feature", "geometry": point(300, 300),
                                               "properties": {"space_type": "accessible", "status": "occupied"}})
    admin.post(f"/api/v1/parking/lots/{a['id']}/occupancy", json={"observed_at": clock().isoformat(), "occupied": 80})

    zone = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert zone["supply"] == {"total": 131, "car_usable": 101, "by_type": {"car": 90, "accessible": 5, "ev_charging": 6, "truck": 0, "ebike": 30}}
    assert zone["lots"] == 1 and zone["occupied"] == 81 and zone["free"] == 50
    assert zone["practical_capacity"] == 111 and zone["utilisation_pct"] == pytest.approx(61.8)

    whole = admin.get(f"/api/v1/parking/capacity?community_id={market['community']}").get_json()
    assert whole["supply"]["total"] == 191 and whole["lots"] == 2
    earlier = admin.get(f"/api/v1/parking/capacity?community_id={market['community']}&as_of=2024-04-30").get_json()
    assert earlier["supply"]["total"] == 131 and earlier["occupied"] is None  # the past has no "now"

    sw, ne = offset(*ORIGIN, 50, 50), offset(*ORIGIN, 350, 350)
    boxed = admin.get(f"/api/v1/parking/capacity?bbox={sw[0]},{sw[1]},{ne[0]},{ne[1]}").get_json()
    assert boxed["lots"] == 1 and boxed["supply"]["total"] == 131

    centre = offset(*ORIGIN, 120, 120)
    near = admin.get(f"/api/v1/parking/capacity?lon={centre[0]}&lat={centre[1]}&radius_m=1000").get_json()
    assert [n["id"] for n in near["nearest_lots"]] == [a["id"], b["id"]]
    assert near["nearest_lots"][0]["distance_m"] == 0
    assert near["nearest_lots"][1]["distance_m"] == pytest.approx(((580 ** 2) * 2) ** 0.5, rel=0.02)

    drawn = admin.post("/api/v1/parking/capacity", json={"geometry": rect(*offset(*ORIGIN, 600, 600), 300, 300)}).get_json()
    assert drawn["lots"] == 1 and drawn["supply"]["by_type"]["truck"] == 10

    table = admin.get(f"/api/v1/parking/capacity?community_id={market['community']}&format=csv")
    rows = list(csv.reader(io.StringIO(table.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["lot_id", "ref", "name"] and rows[1][-1] == "130"
    assert rows[-1][0] == "TOTAL" and sum(int(r[-1]) for r in rows[1:-1]) == int(rows[-1][-1])


def test_capacity_as_of_counts_the_spaces_of_a_lot_opened_by_then(admin, market):
    """A lot opened in 2019 got two more marked spaces in 2021: as of 2020 it had two, like a lone space opened then."""
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 4}, opened_on="2019-01-01")
    for i, opened in enumerate(("2019-01-01", "2019-01-01", "2021-06-01", "2021-06-01")):
        space(admin, point(110 + 5 * i, 110), lot_id=the_lot["id"], opened_on=opened)
    space(admin, point(300, 300), opened_on="2021-06-01")
    past = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}&as_of=2020-01-01").get_json()
    assert (past["lots"], past["spaces"], past["supply"]["total"]) == (1, 2, 4)
    now = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert (now["lots"], now["spaces"], now["supply"]["total"]) == (1, 5, 5)


@pytest.mark.parametrize("query", [
    "", "community_id=1&zone_id=1", "bbox=120.31,31.5,120.30,31.6", "bbox=200,31,201,32", "bbox=1,2,3",
    "lon=120.3&lat=31.5&radius_m=0", "lon=120.3&lat=31.5&radius_m=60000", "lon=120.3&lat=31.5",
    "lon=120.3&lat=31.5&radius_m=10&zone_id=1", "zone_id=1&as_of=yesterday", "lon=120.3&lat=31.5&radius_m=-5",
])
def test_bad_capacity_selectors_are_422(client, query):
    assert_problem(client.get(f"/api/v1/parking/capacity?{query}"), 422)


def test_capacity_of_unknown_zone_is_404_and_bad_polygon_422(client):
    assert_problem(client.get("/api/v1/parking/capacity?zone_id=987654"), 404)
    bowtie = {"type": "Polygon", "coordinates": [[[120.30, 31.50], [120.31, 31.51], [120.31, 31.50], [120.30, 31.51], [120.30, 31.50]]]}
    assert "geometry" in assert_problem(client.post("/api/v1/parking/capacity", json={"geometry": bowtie}), 422)["errors"]


def test_gap_per_zone_with_demand_rules(admin, market, clock):
    community = market["community"]
    admin.patch(f"/api/v1/communities/{community}", json={"worker_count": 1})  # touch nothing relevant
    for name, east_m, workers in (("West Works", 100, 1000), ("East Works", 800, 205)):
        admin.post(f"/api/v1/communities/{community}/enterprises",
                   json={"name": name, "location": {"lon": offset(*ORIGIN, east_m, 500)[0], "lat": offset(*ORIGIN, east_m, 500)[1]},
                         "workers": workers})
    west = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 60, "accessible": 2, "ebike": 50})
    east = lot(admin, rect(*offset(*ORIGIN, 700, 100), 40, 40), capacity={"car": 40, "truck": 30})
    observed = clock().isoformat()
    admin.post(f"/api/v1/parking/lots/{west['id']}/occupancy",
               json={"observed_at": observed, "occupied": 90, "by_type": {"car": 50, "ebike": 40}})
    admin.post(f"/api/v1/parking/lots/{east['id']}/occupancy", json={"observed_at": observed, "occupied": 65})
    report = admin.get(f"/api/v1/parking/gap?community_id={community}").get_json()
    rows = {r["code"]: r for r in report["zones"]}
    # peak occupancy counts cars only: by_type when given, else capped at the car-usable spaces
    assert rows["W"]["peak_occupancy"] == 50 and rows["E"]["peak_occupancy"] == 40
    assert rows["W"] == {**rows["W"], "demand": 100, "supply": 62, "gap": 38, "status": "deficit"}
    assert rows["E"] == {**rows["E"], "demand": 21, "supply": 40, "gap": -19, "status": "surplus"}  # 20.5 rounds up
    assert report["total"] == {**report["total"], "demand": 121, "supply": 102, "gap": 19, "status": "deficit"}

    csv_text = admin.get(f"/api/v1/parking/gap?community_id={community}&format=csv").get_data(as_text=True)
    rows_csv = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))))
    assert rows_csv[0] == ["zone", "name", "supply", "demand", "gap", "status", "peak_occupancy"]
    assert rows_csv[-1][:5] == ["TOTAL", "", "102", "121", "19"]
    geo = admin.get(f"/api/v1/parking/gap?community_id={community}&format=geojson")
    assert geo.mimetype == "application/geo+json"
    collection = json.loads(geo.get_data(as_text=True))
    assert {f["properties"]["code"]: f["properties"]["gap"] for f in collection["features"]} == {"W": 38, "E": -19}
    assert collection["features"][0]["geometry"]["type"] == "Polygon"


# ---------------------------------------------------------------- zones of lots and spaces


def _layer(admin, zone_id, layer):
    return [f["properties"]["id"] for f in admin.get(f"/api/v1/zones/{zone_id}/map").get_json()["features"]
            if f["properties"]["layer"] == layer]


def test_redrawn_zones_take_their_lots_and_spaces_with_them(login, admin, market):
    """The line between W and E moves from 500 m to 300 m east: the lot at 380-420 m and the stall at 350 m go to E."""
    moving = lot(admin, rect(*offset(*ORIGIN, 380, 100), 40, 40), capacity={"car": 30})
    stall = space(admin, point(390, 110), lot_id=moving["id"])
    lone = space(admin, point(350, 600))
    staying = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 5})
    west = rect(*ORIGIN, 300, 1000)
    east = rect(west["coordinates"][0][1][0], ORIGIN[1], 700, 1000)
    for zone, geometry in ((market["W"], west), (market["E"], east)):
        answer = admin.patch(f"/api/v1/zones/{zone}", json={"type": "Feature", "geometry": geometry, "properties": {}})
        assert answer.status_code == 200, answer.get_json()
    assert (supply(admin, market["W"]), supply(admin, market["E"])) == (5, 31)
    rows, total = gap_report(admin, market["community"])
    assert (rows["W"]["supply"], rows["E"]["supply"], total["supply"]) == (5, 31, 36)
    assert admin.get(f"/api/v1/parking/spaces/{stall['id']}").get_json()["properties"]["zone_id"] == market["E"]
    assert admin.get(f"/api/v1/parking/spaces/{lone['id']}").get_json()["properties"]["zone_id"] == market["E"]
    assert (_layer(admin, market["E"], "parking"), _layer(admin, market["W"], "parking")) == ([moving["id"]], [staying["id"]])
    # the liaison of E now answers for the stall, W's no longer does
    assert login("liaison-g02").put(f"/api/v1/parking/spaces/{stall['id']}/status", json={"status": "occupied"}).status_code == 200
    assert_problem(login("liaison-g01").put(f"/api/v1/parking/spaces/{stall['id']}/status", json={"status": "free"}), 403)


def test_a_deleted_zones_supply_stays_in_the_total_until_a_zone_takes_it(admin, market, clock):
    west_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 30})
    counted = admin.post(f"/api/v1/parking/lots/{west_lot['id']}/occupancy", json={"observed_at": clock().isoformat(), "occupied": 12})
    assert counted.status_code == 201, counted.get_json()
    straddling = lot(admin, rect(*offset(*ORIGIN, 400, 300), 160, 40), capacity={"car": 7})  # 100 m in W, 60 m in E
    lot(admin, rect(*offset(*ORIGIN, 700, 100), 40, 40), capacity={"car": 20})
    space(admin, point(200, 700))  # a lone stall in W
    assert straddling["properties"]["zone_id"] == market["W"]
    assert gap_report(admin, market["community"])[1]["supply"] == 58
    assert admin.delete(f"/api/v1/zones/{market['W']}").status_code == 204
    assert admin.get(f"/api/v1/parking/lots/{west_lot['id']}").get_json()["properties"]["zone_id"] is None
    assert admin.get(f"/api/v1/parking/lots/{straddling['id']}").get_json()["properties"]["zone_id"] == market["E"]
    whole = admin.get(f"/api/v1/parking/capacity?community_id={market['community']}").get_json()
    rows, total = gap_report(admin, market["community"])
    assert whole["supply"]["car_usable"] == total["supply"] == 58
    assert (list(rows), rows["E"]["supply"], total["unzoned_supply"]) == (["E"], 27, 31)
    assert (rows["E"]["peak_occupancy"], total["peak_occupancy"]) == (None, 12)
    # a zone drawn over what is left of the west half takes the rest
    redrawn = admin.post(f"/api/v1/communities/{market['community']}/zones", json=zone_feature("W2", rect(*ORIGIN, 400, 1000)))
    assert redrawn.status_code == 201, redrawn.get_json()
    rows, total = gap_report(admin, market["community"])
    assert (rows["W2"]["supply"], total["unzoned_supply"], total["supply"]) == (31, 0, 58)
    assert admin.get(f"/api/v1/parking/lots/{west_lot['id']}").get_json()["properties"]["zone_id"] == redrawn.get_json()["id"]


def test_splitting_a_community_places_its_lots_and_spaces(admin):
    """Lots and stalls placed before a community is split (under a zone since removed) get the zones of the split."""
    community = admin.post("/api/v1/communities", json=community_body(boundary=rect(*ORIGIN, 1000, 1000))).get_json()["id"]
    first = admin.post(f"/api/v1/communities/{community}/zones", json=zone_feature("T", rect(*ORIGIN, 1000, 1000))).get_json()
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 50, 50), capacity={"car": 40})
    in_lot = space(admin, point(120, 120), lot_id=the_lot["id"])
    lone = space(admin, point(900, 900))
    assert admin.delete(f"/api/v1/zones/{first['id']}").status_code == 204
    split = admin.post(f"/api/v1/communities/{community}/zones/split", json={"count": 4, "commit": True})
    assert split.status_code == 200, split.get_json()
    zones = {z["id"]: shape(z["geometry"]) for z in admin.get(f"/api/v1/communities/{community}/zones").get_json()["features"]}
    placed = admin.get(f"/api/v1/parking/lots/{the_lot['id']}").get_json()["properties"]["zone_id"]
    assert zones[placed].covers(shape(the_lot["geometry"]))
    assert admin.get(f"/api/v1/parking/spaces/{in_lot['id']}").get_json()["properties"]["zone_id"] == placed
    lone_zone = admin.get(f"/api/v1/parking/spaces/{lone['id']}").get_json()["properties"]["zone_id"]
    assert zones[lone_zone].covers(shape(lone["geometry"]))
    assert gap_report(admin, community)[1]["unzoned_supply"] == 0


def test_a_lot_moved_to_another_zone_takes_its_spaces(login, admin, market):
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 2})
    stall = space(admin, point(110, 110), lot_id=the_lot["id"])
    moved = admin.patch(f"/api/v1/parking/lots/{the_lot['id']}", json={"geometry": rect(*offset(*ORIGIN, 700, 100), 40, 40)})
    assert moved.get_json()["properties"]["zone_id"] == market["E"]
    assert admin.get(f"/api/v1/parking/spaces/{stall['id']}").get_json()["properties"]["zone_id"] == market["E"]
    assert admin.get(f"/api/v1/parking/capacity?zone_id={market['E']}").get_json()["spaces"] == 1
    assert login("liaison-g02").put(f"/api/v1/parking/spaces/{stall['id']}/status", json={"status": "occupied"}).status_code == 200
    assert_problem(login("liaison-g01").put(f"/api/v1/parking/spaces/{stall['id']}/status", json={"status": "free"}), 403)


def test_a_lot_moved_into_another_community_takes_its_spaces_and_may_not_keep_an_owner_of_the_old(admin, market):
    other_origin = (120.40, 31.50)
    other = admin.post("/api/v1/communities", json=community_body(name="Other", boundary=rect(*other_origin, 500, 500))).get_json()["id"]
    zone = admin.post(f"/api/v1/communities/{other}/zones", json=zone_feature("O", rect(*other_origin, 500, 500))).get_json()["id"]
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 2})
    stall = space(admin, point(110, 110), lot_id=the_lot["id"])
    there = rect(*offset(*other_origin, 100, 100), 40, 40)
    moved = admin.patch(f"/api/v1/parking/lots/{the_lot['id']}", json={"geometry": there}).get_json()
    assert (moved["properties"]["community_id"], moved["properties"]["zone_id"]) == (other, zone)
    stall_now = admin.get(f"/api/v1/parking/spaces/{stall['id']}").get_json()["properties"]
    assert (stall_now["community_id"], stall_now["zone_id"]) == (other, zone)
    owned = lot(admin, rect(*offset(*ORIGIN, 200, 100), 40, 40), name="owned",
                enterprise_id=_enterprise(admin, market["community"], "Owner", 200)["id"])
    refused = admin.patch(f"/api/v1/parking/lots/{owned['id']}", json={"geometry": rect(*offset(*other_origin, 200, 100), 40, 40)})
    assert "enterprise_id" in assert_problem(refused, 422)["errors"]
    assert admin.get(f"/api/v1/parking/lots/{owned['id']}").get_json()["properties"]["zone_id"] == market["W"]


def test_a_space_is_placed_by_its_lot_or_else_where_it_stands(admin, market):
    west_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 3})
    stall = space(admin, point(800, 500), lot_id=west_lot["id"])  # stands in E, belongs to a W lot
    assert stall["properties"]["zone_id"] == market["W"]
    url = f"/api/v1/parking/spaces/{stall['id']}"
    moved = admin.patch(url, json={"geometry": point(820, 500)}).get_json()  # still the W lot's
    assert moved["properties"]["zone_id"] == market["W"]
    alone = admin.patch(url, json={"properties": {"lot_id": None}}).get_json()
    assert (alone["properties"]["lot_id"], alone["properties"]["zone_id"]) == (None, market["E"])
    assert (supply(admin, market["W"]), supply(admin, market["E"])) == (3, 1)  # now a stall of its own in E
    back = admin.patch(url, json={"properties": {"lot_id": west_lot["id"]}}).get_json()
    assert back["properties"]["zone_id"] == market["W"] and supply(admin, market["E"]) == 0


def test_a_space_cannot_be_put_into_a_lot_of_another_community(admin, market, session):
    other_origin = (120.40, 31.50)
    other = admin.post("/api/v1/communities", json=community_body(name="Other", boundary=rect(*other_origin, 500, 500))).get_json()["id"]
    admin.post(f"/api/v1/communities/{other}/zones", json=zone_feature("O", rect(*other_origin, 500, 500)))
    far_lot = lot(admin, rect(*offset(*other_origin, 100, 100), 40, 40), capacity={"car": 10})
    stall = space(admin, point(300, 300))
    refused = {"type": "Feature", "geometry": point(300, 300), "properties": {"lot_id": far_lot["id"]}}
    assert "lot_id" in assert_problem(admin.post("/api/v1/parking/spaces", json=refused), 422)["errors"]
    patched = admin.patch(f"/api/v1/parking/spaces/{stall['id']}", json={"properties": {"lot_id": far_lot["id"]}})
    assert "lot_id" in assert_problem(patched, 422)["errors"]
    session.expire_all()
    assert (session.get(ParkingSpace, stall["id"]).lot_id, supply(admin, market["W"])) == (None, 1)


# ---------------------------------------------------------------- demand


def _enterprise(admin, community, name, east_m, **fields):
    where = offset(*ORIGIN, east_m, 500)
    answer = admin.post(f"/api/v1/communities/{community}/enterprises",
                        json={"name": name, "location": {"lon": where[0], "lat": where[1]}, **fields})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_demand_overrides_set_through_the_api_drive_the_gap(admin, market):
    """README: demand is the enterprise's parking_demand, else workers x its car_commuter_share, else the community's."""
    community = market["community"]
    assert admin.patch(f"/api/v1/communities/{community}", json={"car_commuter_share": 0.2}).status_code == 200
    known = _enterprise(admin, community, "Surveyed Works", 100, workers=1000, parking_demand=300)
    own_share = _enterprise(admin, community, "Shift Works", 200, workers=200, car_commuter_share=0.25)
    _enterprise(admin, community, "Plain Works", 800, workers=100)
    rows, total = gap_report(admin, community)
    assert (rows["W"]["demand"], rows["E"]["demand"], total["demand"]) == (300 + 50, 20, 370)
    url = f"/api/v1/communities/{community}/enterprises/{known['id']}"
    assert admin.patch(url, json={"parking_demand": None}).get_json()["parking_demand"] is None  # back to the share
    assert admin.patch(f"/api/v1/communities/{community}/enterprises/{own_share['id']}",
                       json={"car_commuter_share": None}).status_code == 200
    rows, total = gap_report(admin, community)
    assert (rows["W"]["demand"], total["demand"]) == (200 + 40, 260)


@pytest.mark.parametrize("workers, share, demand", [(100, 0.145, 15), (1000, 0.0145, 15), (205, 0.1, 21), (29, 0.5, 15),
                                                    (100, 0.144, 14)])
def test_demand_is_rounded_half_up(admin, market, workers, share, demand):
    """As a planner rounds: 14.5 cars is 15, whatever binary floating point makes of 100 x 0.145."""
    _enterprise(admin, market["community"], "Works", 100, workers=workers, car_commuter_share=share)
    assert gap_report(admin, market["community"])[1]["demand"] == demand


def _feature(geometry, **properties):
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def test_import_our_fields_and_osm_tags(admin, market, session):
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), feature_type="lot", ref="P1", name="员工停车场",
                 access="employees", capacity_car=80, capacity_accessible=3, opened_on="2020-05-01"),
        _feature(rect(*offset(*ORIGIN, 700, 100), 40, 40), amenity="parking", name="OSM lot", capacity="50",
                 **{"capacity:disabled": "2", "capacity:charging": "8"}, parking="multi-storey", access="customers",
                 fee="yes", start_date="2019"),
        _feature(point(150, 150), feature_type="space", ref="S1", lot_ref="P1", space_type="car"),
        _feature(point(900, 900), amenity="parking_space", parking_space="disabled"),
    ]}
    answer = admin.post("/api/v1/parking/import", json=collection)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json() == {"lots": 2, "spaces": 2, "by_zone": {"W": 2, "E": 2}}
    osm = session.scalar(select(ParkingLot).where(ParkingLot.name == "OSM lot"))
    assert osm.capacity == {"car": 40, "accessible": 2, "ev_charging": 8, "truck": 0, "ebike": 0}
    assert (osm.kind, osm.access, osm.opened_on) == ("multi-storey", "customers", date(2019, 1, 1))
    in_lot = session.scalar(select(ParkingSpace).where(ParkingSpace.ref == "S1"))
    assert in_lot.lot_id == session.scalar(select(ParkingLot.id).where(ParkingLot.ref == "P1"))


def test_import_takes_the_capacity_nested_as_post_lots_does(admin, market, session):
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="nested", capacity={"car": 80, "accessible": 3})]}
    answer = admin.post("/api/v1/parking/import", json=collection)
    assert answer.status_code == 201, answer.get_json()
    imported = session.scalar(select(ParkingLot).where(ParkingLot.name == "nested"))
    assert imported.capacity == {"car": 80, "accessible": 3, "ev_charging": 0, "truck": 0, "ebike": 0}
    assert supply(admin, market["W"]) == 83


@pytest.mark.parametrize("props, field", [
    ({"capacity": {"car": 80}, "capacity_car": 80}, "capacity"),  # which one?
    ({"capacity": {"car": -1}}, "capacity"), ({"capacity": {"bus": 3}}, "capacity"), ({"capacity": "50"}, "capacity"),
])
def test_import_refuses_a_capacity_given_twice_or_wrong(admin, market, session, props, field):
    before = count(session, ParkingLot)
    collection = {"type": "FeatureCollection", "features": [_feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="x", **props)]}
    problem = assert_problem(admin.post("/api/v1/parking/import", json=collection), 422, "import-failed")
    assert field in problem["errors"][0]["errors"]
    assert count(session, ParkingLot) == before


def test_import_places_a_space_in_its_lot_by_id(admin, market, session):
    """lot_id, as POST /parking/spaces takes it: the space marks a stall of the lot, it adds no supply."""
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 10})
    collection = {"type": "FeatureCollection", "features": [
        _feature(point(110, 110), feature_type="space", lot_id=the_lot["id"], ref="SP-1")]}
    answer = admin.post("/api/v1/parking/import", json=collection)
    assert answer.status_code == 201, answer.get_json()
    imported = session.scalar(select(ParkingSpace).where(ParkingSpace.ref == "SP-1"))
    assert (imported.lot_id, imported.zone_id) == (the_lot["id"], market["W"])
    capacity = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert (capacity["supply"]["total"], capacity["spaces"]) == (10, 1)


def test_import_refuses_a_lot_id_of_another_community_or_with_a_lot_ref(admin, market, session, lingfeng):
    far_lot = session.scalar(select(ParkingLot.id).where(ParkingLot.community_id == lingfeng.id).limit(1))
    near_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), name="near", ref="P9", capacity={"car": 10})
    before = count(session, ParkingSpace)
    collection = {"type": "FeatureCollection", "features": [
        _feature(point(110, 110), feature_type="space", lot_id=far_lot),
        _feature(point(120, 110), feature_type="space", lot_id=987654),
        _feature(point(130, 110), feature_type="space", lot_id=near_lot["id"], lot_ref="P9")]}
    problem = assert_problem(admin.post("/api/v1/parking/import", json=collection), 422, "import-failed")
    assert [(e["index"], list(e["errors"])) for e in problem["errors"]] == [(0, ["lot_id"]), (1, ["lot_id"]), (2, ["lot_id"])]
    assert count(session, ParkingSpace) == before


def test_osm_capacity_is_the_total_of_which_hgv_is_a_part(admin, market, session):
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 700, 100), 40, 40), amenity="parking", name="HGV lot", capacity="50",
                 **{"capacity:hgv": "10", "capacity:disabled": "2"})]}
    answer = admin.post("/api/v1/parking/import", json=collection)
    assert answer.status_code == 201, answer.get_json()
    imported = session.scalar(select(ParkingLot).where(ParkingLot.name == "HGV lot"))
    assert imported.capacity == {"car": 38, "accessible": 2, "ev_charging": 0, "truck": 10, "ebike": 0}
    assert supply(admin, market["E"]) == 50
    too_many = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 700, 300), 40, 40), amenity="parking", capacity="10",
                 **{"capacity:hgv": "6", "capacity:charging": "5"})]}
    problem = assert_problem(admin.post("/api/v1/parking/import", json=too_many), 422, "import-failed")
    assert "capacity" in problem["errors"][0]["errors"]


def test_import_with_one_bad_feature_imports_nothing_and_names_it(admin, market, session):
    before = (count(session, ParkingLot), count(session, ParkingSpace))
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="good one", capacity_car=10),
        _feature(rect(*offset(*ORIGIN, 200, 100), 40, 40), name="bad one", capacity_car=-4),
        _feature(rect(100.0, 10.0, 20, 20), name="nowhere"),
        _feature(point(150, 150), feature_type="space", lot_ref="missing"),
        _feature(rect(*offset(*ORIGIN, 300, 100), 40, 40), amenity="restaurant"),
    ]}
    problem = assert_problem(admin.post("/api/v1/parking/import", json=collection), 422, "import-failed")
    assert [e["index"] for e in problem["errors"]] == [1, 2, 3, 4]
    assert "capacity_car" in problem["errors"][0]["errors"] and problem["errors"][0]["feature"] == "bad one"
    assert "lot_ref" in problem["errors"][2]["errors"]
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == before
    assert_problem(admin.post("/api/v1/parking/import", json={"type": "Feature"}), 422)
    assert_problem(admin.post("/api/v1/parking/import", data="{oops", content_type="application/json"), 400)


@pytest.mark.parametrize("props, field", [
    # a list or an object where text belongs (these were 500s)
    ({"name": "x", "enterprise": ["灵峰科技"]}, "enterprise"), ({"feature_type": "space", "lot_ref": {"ref": "P1"}}, "lot_ref"),
    ({"amenity": "parking_space", "parking_space": ["disabled"]}, "parking_space"),
    ({"amenity": "parking", "access": {"x": 1}}, "access"), ({"amenity": "parking", "parking": ["surface"]}, "parking"),
    ({"amenity": "parking", "operator": ["a", "b"]}, "operator"), ({"amenity": "parking", "name": ["n"]}, "name"),
    # OSM tags held to our fields' bounds (a 1,000-character ref or name was a 500 on writing)
    ({"amenity": "parking", "ref": "r" * 1000}, "ref"), ({"amenity": "parking", "name": "n" * 1000}, "name"),
    ({"amenity": "parking", "operator": "o" * 1000}, "operator"),
])
def test_import_refuses_text_fields_of_the_wrong_type_or_length(admin, market, session, props, field):
    before = count(session, ParkingLot), count(session, ParkingSpace)
    shape = point(150, 150) if "space" in str(props) else rect(*offset(*ORIGIN, 100, 100), 40, 40)
    for dry_run in ("true", "false"):
        problem = assert_problem(admin.post(f"/api/v1/parking/import?dry_run={dry_run}",
                                            json={"type": "FeatureCollection", "features": [_feature(shape, **props)]}),
                                 422, "import-failed")
        assert field in problem["errors"][0]["errors"], problem
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == before


def test_import_dry_run_writes_nothing(admin, market, session):
    before = count(session, ParkingLot)
    collection = {"type": "FeatureCollection", "features": [_feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="x")]}
    assert admin.post("/api/v1/parking/import?dry_run=true", json=collection).get_json()["lots"] == 1
    assert count(session, ParkingLot) == before


def test_lingfeng_620_space_story(client, lingfeng):
    before = client.get(f"/api/v1/parking/gap?community_id={lingfeng.id}&as_of=2019-12-31").get_json()["total"]
    today = client.get(f"/api/v1/parking/gap?community_id={lingfeng.id}").get_json()["total"]
    assert before["status"] == "deficit" and before["gap"] == pytest.approx(465, abs=10)
    assert today["status"] == "surplus" and today["gap"] == pytest.approx(-155, abs=10)
    added = today["supply"] - before["supply"]
    assert added == 620 and added == pytest.approx(before["gap"] * 4 / 3, rel=0.02)  # one third more than the gap


def test_lingfeng_occupancy_over_a_day(client, lingfeng, session, clock):
    lot_id = session.scalar(select(ParkingLot.id).where(ParkingLot.community_id == lingfeng.id,
                                                        ParkingLot.access == "employees").order_by(ParkingLot.id))
    newest = session.scalar(select(func.max(OccupancyObservation.observed_at)).where(OccupancyObservation.lot_id == lot_id))
    # The demo counts run from yesterday's local midnight: the day is Asia/Shanghai's,
    # whatever zone the database hands the timestamp back in (UTC's date differs before 08:00).
    local = newest.astimezone(ZoneInfo(lingfeng.timezone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    series = client.get(f"/api/v1/parking/lots/{lot_id}/occupancy",
                        query_string={"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat(),
                                      "bucket": "1h"}).get_json()
    assert len(series["buckets"]) == 24 and all(b["samples"] == 4 for b in series["buckets"])
