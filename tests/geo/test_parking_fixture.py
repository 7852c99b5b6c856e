"""The Lingfeng parking fixture tells DOMAIN.md's parking story, exactly, and is well formed.

Pure: reads the GeoJSON files, no database. The counting rules are the
service's (fixtures/lingfeng/parking_generate.py and gridsvc.services.parking):
demand per enterprise = round(workers x 0.10), halves up; car-usable supply =
car + accessible + ev_charging of each lot, plus 1 per single car, accessible or
EV space; as of a date only features opened on or before it count.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import date
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.testing import assert_geometries_equal

from geo import geodesic_area_m2, geometry_from_geojson, validate_point, validate_polygonal

LINGFENG = Path(__file__).resolve().parents[2] / "fixtures" / "lingfeng"

GAP_2019 = 465
ADDED_2020 = 620
SHARE = 0.10
COMMUNITY_OPERATOR = "灵峰社区 Lingfeng community"
LOT_KEYS = [
    "feature_type", "ref", "name", "operator", "enterprise", "access", "kind", "capacity_car",
    "capacity_accessible", "capacity_ev_charging", "capacity_truck", "capacity_ebike",
    "opening_hours", "fee", "opened_on",
]  # fmt: skip
SPACE_KEYS = ["feature_type", "ref", "space_type", "status", "opened_on"]
CAPACITIES = [k for k in LOT_KEYS if k.startswith("capacity_")]
ACCESS = {"public", "employees", "customers", "private"}
KINDS = {"surface", "multi-storey", "underground", "street_side"}
_DAY = r"(Mo|Tu|We|Th|Fr|Sa|Su)"
OPENING_HOURS = re.compile(rf"24/7|{_DAY}(-{_DAY})? ([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d")
FEE = re.compile(r"no|CNY \d+/(hour|day)")
WINDOW_2020 = ("2020-02-01", "2020-10-31")

# Metres: a transverse Mercator centred on the park (scale error a few parts per billion).
_TO_M = Transformer.from_crs(
    "EPSG:4326", "+proj=tmerc +lat_0=29.87 +lon_0=121.78 +k=1 +ellps=WGS84 +units=m", always_xy=True
)


def metres(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_M.transform(xy[:, 0], xy[:, 1])))


@functools.cache
def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((LINGFENG / name).read_text(encoding="utf-8"))
    return document


def parking() -> dict[str, Any]:
    return load("parking.geojson")


def features() -> list[dict[str, Any]]:
    return parking()["features"]  # type: ignore[no-any-return]


def lots() -> list[dict[str, Any]]:
    return [f for f in features() if f["properties"]["feature_type"] == "lot"]


def spaces() -> list[dict[str, Any]]:
    return [f for f in features() if f["properties"]["feature_type"] == "space"]


def shape(feature: dict[str, Any]) -> shapely.Geometry:
    return geometry_from_geojson(feature["geometry"])


def outline() -> shapely.Geometry:
    return validate_polygonal(geometry_from_geojson(load("community.geojson")["geometry"]))


def zones() -> dict[str, shapely.Geometry]:
    return {
        f["properties"]["code"]: validate_polygonal(geometry_from_geojson(f["geometry"]))
        for f in load("zones.geojson")["features"]
    }


def enterprises() -> list[tuple[str, int, shapely.Point]]:
    return [
        (f["properties"]["name"], f["properties"]["workers"], geometry_from_geojson(f["geometry"]))
        for f in load("enterprises.geojson")["features"]
    ]


def demand_of(workers: int) -> int:
    return math.floor(workers * SHARE + 0.5)  # halves up


def car_usable(properties: dict[str, Any]) -> int:
    if properties["feature_type"] == "space":
        return 1 if properties["space_type"] in ("car", "accessible", "ev_charging") else 0
    return int(
        properties["capacity_car"]
        + properties["capacity_accessible"]
        + properties["capacity_ev_charging"]
    )


def supply(as_of: str | None = None, of: list[dict[str, Any]] | None = None) -> int:
    return sum(
        car_usable(f["properties"])
        for f in (features() if of is None else of)
        if as_of is None or f["properties"]["opened_on"] <= as_of
    )


def zone_of(geom: shapely.Geometry) -> str:
    (code,) = [code for code, zone in zones().items() if zone.contains(geom)]
    return code


@functools.cache
def zone_table() -> dict[str, tuple[int, int, int]]:
    """zone code -> (demand, supply as of 2019-12-31, supply now)."""
    table = {code: [0, 0, 0] for code in zones()}
    for _, workers, point in enterprises():
        table[zone_of(point)][0] += demand_of(workers)
    for f in features():
        row = table[zone_of(shape(f))]
        row[2] += car_usable(f["properties"])
        if f["properties"]["opened_on"] <= "2019-12-31":
            row[1] += car_usable(f["properties"])
    return {code: (d, s19, now) for code, (d, s19, now) in table.items()}


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


# --- the story's numbers ---------------------------------------------------------------


def test_demand_and_summary() -> None:
    demand = sum(demand_of(workers) for _, workers, _ in enterprises())
    assert demand == pytest.approx(2000, abs=20)
    document = parking()
    assert document["type"] == "FeatureCollection"
    assert document["summary"] == {
        "demand": demand,
        "supply_2019_12_31": demand - GAP_2019,
        "added_2020": ADDED_2020,
        "supply_now": demand - GAP_2019 + ADDED_2020,
        "car_commuter_share": SHARE,
    }
    assert ADDED_2020 == pytest.approx(GAP_2019 * 4 / 3, abs=1)  # "one third more than the gap"


def test_supply_2019_and_now_are_exact() -> None:
    demand = parking()["summary"]["demand"]
    assert supply("2019-12-31") == demand - GAP_2019
    assert supply("2020-01-31") == demand - GAP_2019  # nothing opened before February 2020
    assert supply("2020-10-31") == demand - GAP_2019 + ADDED_2020
    assert supply(date.today().isoformat()) == demand + ADDED_2020 - GAP_2019
    assert supply() == demand + 155
    opened_2020 = [f for f in features() if f["properties"]["opened_on"] >= "2020-01-01"]
    assert supply(of=opened_2020) == ADDED_2020


def test_opening_dates() -> None:
    dates = [f["properties"]["opened_on"] for f in features()]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) and date.fromisoformat(d) for d in dates)
    assert min(dates) >= "2008-01-01"
    assert max(dates) <= "2020-10-31"
    for d in dates:
        assert d <= "2019-12-31" or WINDOW_2020[0] <= d <= WINDOW_2020[1]
    lot_dates = [f["properties"]["opened_on"] for f in lots()]
    assert 3 <= sum(d <= "2016-12-31" for d in lot_dates) <= 12  # a handful from the early years
    assert sum(d >= "2020-01-01" for d in lot_dates) >= 8
    space_dates = [f["properties"]["opened_on"] for f in spaces()]
    assert any(d <= "2019-12-31" for d in space_dates)
    assert any(d >= "2020-01-01" for d in space_dates)


# --- properties ------------------------------------------------------------------------


def test_lot_properties() -> None:
    names = {name: workers for name, workers, _ in enterprises()}
    found = lots()
    assert 40 <= len(found) <= 60
    assert [f["properties"]["ref"] for f in found] == [f"LF-P{i:03d}" for i in range(1, len(found) + 1)]
    assert len({f["properties"]["name"] for f in found}) == len(found)
    for f in found:
        p = f["properties"]
        assert list(p) == LOT_KEYS
        assert re.search(r"[\u4e00-\u9fff]", p["name"]) and re.search(r"[A-Za-z]{3}", p["name"])
        if p["enterprise"] is None:
            assert p["operator"] == COMMUNITY_OPERATOR
            assert p["access"] == "public"
        else:
            assert p["enterprise"] in names
            assert p["operator"] == p["enterprise"]
            assert p["access"] in ACCESS - {"public"}
        assert p["access"] in ACCESS and p["kind"] in KINDS
        assert all(type(p[k]) is int and p[k] >= 0 for k in CAPACITIES)
        assert car_usable(p) > 0
        assert OPENING_HOURS.fullmatch(p["opening_hours"]), p["opening_hours"]
        assert FEE.fullmatch(p["fee"]), p["fee"]
    assert {f["properties"]["access"] for f in found} == ACCESS
    assert {f["properties"]["kind"] for f in found} == KINDS


def test_space_properties() -> None:
    found = spaces()
    assert 20 <= len(found) <= 40
    assert [f["properties"]["ref"] for f in found] == [f"LF-S{i:03d}" for i in range(1, len(found) + 1)]
    for f in found:
        p = f["properties"]
        assert list(p) == SPACE_KEYS
        assert p["space_type"] in ("car", "accessible", "ev_charging")
        assert p["status"] in ("free", "occupied")
        assert f["geometry"]["type"] == "Point"
    assert {f["properties"]["status"] for f in found} == {"free", "occupied"}
    assert {f["properties"]["space_type"] for f in found} == {"car", "accessible", "ev_charging"}


def test_capacity_mix() -> None:
    found = lots()
    car = supply()
    accessible = sum(f["properties"]["capacity_accessible"] for f in found) + sum(
        f["properties"]["space_type"] == "accessible" for f in spaces()
    )
    assert 0.02 <= accessible / car <= 0.04
    ev_lots = [f for f in found if f["properties"]["capacity_ev_charging"] > 0]
    assert len(ev_lots) >= 5
    assert all(f["properties"]["opened_on"] >= "2017-01-01" for f in ev_lots)  # newer lots only
    assert any(f["properties"]["opened_on"] >= "2020-01-01" for f in ev_lots)
    truck_lots = [f for f in found if f["properties"]["capacity_truck"] > 0]
    assert 2 <= len(truck_lots) <= 10  # a few
    polygons = [f for f in found if f["geometry"]["type"] == "Polygon"]
    assert sum(f["properties"]["capacity_ebike"] > 0 for f in polygons) > len(polygons) / 2  # many
    assert sum(f["properties"]["capacity_ebike"] for f in found) > 10 * sum(
        f["properties"]["capacity_truck"] for f in found
    )


# --- geometry --------------------------------------------------------------------------


def test_geometries_are_valid_rounded_and_inside_the_park() -> None:
    park = outline()
    for f in features():
        geom = shape(f)
        if geom.geom_type == "Point":
            validate_point(geom)
        else:
            assert geom.geom_type == "Polygon"
            validate_polygonal(geom)
            assert geom.is_valid and not geom.interiors
        coords = shapely.get_coordinates(geom).ravel().tolist()
        assert all(_decimals(v) <= 7 for v in coords), f["properties"]["ref"]
        assert park.contains(geom), f["properties"]["ref"]


def test_each_feature_is_in_one_zone_clear_of_its_edges() -> None:
    zone_map = zones()
    edges_m = metres(shapely.union_all([z.boundary for z in zone_map.values()]))
    for f in features():
        geom = shape(f)
        assert sum(zone.contains(geom) for zone in zone_map.values()) == 1, f["properties"]["ref"]
        assert metres(geom).distance(edges_m) >= 3.0, f["properties"]["ref"]


def test_lot_geometry_matches_kind_and_capacity() -> None:
    for f in lots():
        p, geom = f["properties"], shape(f)
        spaces_ = car_usable(p)
        if p["kind"] == "street_side":
            assert geom.geom_type == "Point"
            assert 5 <= spaces_ <= 20
            assert p["capacity_truck"] == p["capacity_ebike"] == 0
            continue
        assert geom.geom_type == "Polygon"
        area = geodesic_area_m2(geom)
        if p["kind"] == "surface":
            # 25-30 m² per car space (bay and aisle), after 50 m² per truck bay and
            # 1.5 m² per e-bike rack; a little slack for 1 cm rounding of corners.
            per_space = (area - 50 * p["capacity_truck"] - 1.5 * p["capacity_ebike"]) / spaces_
            assert 24.8 <= per_space <= 30.2, (p["ref"], per_space)
        else:  # stacked: more spaces than the footprint would hold on the ground
            assert area / spaces_ < 20, p["ref"]
            assert p["capacity_truck"] == 0
        # a rectangle turned a little: four corners, right angles
        ring = np.array(metres(geom).exterior.coords)[:4]
        sides = np.diff(np.vstack([ring, ring[:1]]), axis=0)
        assert len(geom.exterior.coords) == 5
        for a, b in zip(sides, np.roll(sides, -1, axis=0), strict=True):
            assert abs(np.dot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)) < 1e-3


def test_lots_do_not_overlap() -> None:
    polygons = [(f["properties"]["ref"], shape(f)) for f in lots() if f["geometry"]["type"] == "Polygon"]
    for (ref_a, a), (ref_b, b) in combinations(polygons, 2):
        assert not a.intersects(b), (ref_a, ref_b)


def test_lots_sit_next_to_enterprises_not_on_them() -> None:
    by_name = {name: point for name, _, point in enterprises()}
    points_m = [metres(point) for _, _, point in enterprises()]
    for f in lots():
        p, geom = f["properties"], shape(f)
        geom_m = metres(geom)
        for point_m in points_m:
            assert geom_m.distance(point_m) >= 10.0, p["ref"]  # not on an enterprise's buildings
        if geom.geom_type == "Polygon":
            assert min(geom_m.distance(pm) for pm in points_m) <= 150.0, p["ref"]
        if p["enterprise"] is not None:
            distance = geom_m.distance(metres(by_name[p["enterprise"]]))
            assert 20.0 <= distance <= 150.0, (p["ref"], distance)
            assert zone_of(by_name[p["enterprise"]]) == zone_of(geom)


def test_single_spaces_are_outside_lots() -> None:
    polygons = [metres(shape(f)) for f in lots() if f["geometry"]["type"] == "Polygon"]
    points = [metres(shape(f)) for f in features() if f["geometry"]["type"] == "Point"]
    for point in points:
        assert all(point.distance(polygon) >= 2.0 for polygon in polygons)
    for a, b in combinations(points, 2):
        assert a.distance(b) >= 2.0  # one bay does not sit on another


# --- the picture per zone --------------------------------------------------------------


def test_every_zone_has_at_least_two_lots() -> None:
    counts = {code: 0 for code in zones()}
    for f in lots():
        if f["geometry"]["type"] == "Polygon":
            counts[zone_of(shape(f))] += 1
    assert min(counts.values()) >= 2, counts


def test_zones_differ_and_2020_went_where_parking_was_short() -> None:
    table = zone_table()
    assert sum(d for d, _, _ in table.values()) == parking()["summary"]["demand"]
    short_2019 = {code for code, (d, s19, _) in table.items() if s19 < d}
    short_now = {code for code, (d, _, now) in table.items() if now < d}
    assert len(short_2019) >= 5
    assert 1 <= len(short_now) <= 3  # some zones are short even today ...
    assert sum(now > d for d, _, now in table.values()) >= 6  # ... most have room to spare
    assert short_now <= short_2019
    # All the 2020 spaces went to zones that were short in 2019.
    for f in features():
        if f["properties"]["opened_on"] >= "2020-01-01":
            assert zone_of(shape(f)) in short_2019, f["properties"]["ref"]


def test_2020_lots_are_mostly_next_to_big_plants() -> None:
    big = [metres(point) for _, workers, point in enterprises() if workers >= 300]
    new = [f for f in lots() if f["properties"]["opened_on"] >= "2020-01-01"]
    new = [f for f in new if f["geometry"]["type"] == "Polygon"]
    near_big = [f for f in new if min(metres(shape(f)).distance(b) for b in big) <= 150.0]
    assert supply(of=near_big) >= 0.8 * supply(of=new)


# --- the generator ---------------------------------------------------------------------


def test_file_is_what_the_generator_makes() -> None:
    # Guards against hand edits and against a generator change without regenerating.
    from fixtures.lingfeng.parking_generate import build

    fresh = build()
    on_disk = parking()
    assert list(on_disk) == list(fresh) == ["type", "summary", "features"]
    assert on_disk["summary"] == fresh["summary"]
    assert [f["properties"] for f in on_disk["features"]] == [
        f["properties"] for f in fresh["features"]
    ]
    for old, new in zip(on_disk["features"], fresh["features"], strict=True):
        assert_geometries_equal(
            geometry_from_geojson(old["geometry"]),
            geometry_from_geojson(new["geometry"]),
            tolerance=1e-9,
        )
