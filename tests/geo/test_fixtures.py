"""The Lingfeng demo files and the town generator hold the numbers DOMAIN.md asks for."""

from __future__ import annotations

import functools
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.testing import assert_geometries_equal

from fixtures.lingfeng.generate import build
from fixtures.town import generate_town
from geo import (
    coverage,
    geodesic_area_m2,
    geometry_from_geojson,
    validate_point,
    validate_polygonal,
)

LINGFENG = Path(__file__).resolve().parents[2] / "fixtures" / "lingfeng"
ORDINALS = "一二三四五六七八九十"


@functools.cache
def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((LINGFENG / name).read_text(encoding="utf-8"))
    return document


def community() -> shapely.Polygon:
    return validate_polygonal(geometry_from_geojson(load("community.geojson")["geometry"]))


def zones() -> dict[str, shapely.Geometry]:
    return {
        f["properties"]["code"]: validate_polygonal(geometry_from_geojson(f["geometry"]))
        for f in load("zones.geojson")["features"]
    }


def enterprises() -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = load("enterprises.geojson")["features"]
    return features


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def test_community_feature() -> None:
    feature = load("community.geojson")
    assert feature["type"] == "Feature"
    workers = sum(e["properties"]["workers"] for e in enterprises())
    assert feature["properties"] == {
        "name": "灵峰工业社区 Lingfeng Industrial Community",
        "kind": "industrial_park",
        "enterprise_count": 78,
        "worker_count": workers,
        "timezone": "Asia/Shanghai",
    }


def test_community_outline_is_plausible() -> None:
    outline = community()
    assert outline.geom_type == "Polygon"
    assert geodesic_area_m2(outline) == pytest.approx(2.7e6, rel=0.02)
    assert 12 <= len(outline.exterior.coords) - 1 <= 20
    assert outline.area < 0.97 * outline.convex_hull.area  # irregular, with bites out of it
    centre = outline.centroid
    assert abs(centre.x - 121.78) < 0.01 and abs(centre.y - 29.87) < 0.01
    assert all(_decimals(v) <= 7 for v in shapely.get_coordinates(outline).ravel().tolist())


def test_zone_properties() -> None:
    features = load("zones.geojson")["features"]
    assert load("zones.geojson")["type"] == "FeatureCollection"
    assert [f["properties"]["code"] for f in features] == [f"G{i:02d}" for i in range(1, 11)]
    for i, feature in enumerate(features, start=1):
        properties = feature["properties"]
        assert properties["name"] == f"第{ORDINALS[i - 1]}网格 G{i:02d}"
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", properties["liaison"])
    assert len({f["properties"]["liaison"] for f in features}) == 10


def test_zones_tile_the_community_exactly() -> None:
    report = coverage(community(), zones())
    assert report.covered_share > 0.9999
    assert report.gaps == [] and report.overlaps == [] and report.outside == []
    assert shapely.coverage_is_valid(np.array(list(zones().values()), dtype=object))


def test_zones_have_equal_area() -> None:
    areas = [geodesic_area_m2(z) for z in zones().values()]
    assert max(areas) / min(areas) <= 1.01


def test_zones_match_a_fresh_split_of_the_outline() -> None:
    from geo import split_equal_area

    for expected, actual in zip(split_equal_area(community(), 10), zones().values(), strict=True):
        assert_geometries_equal(actual, expected, normalize=True)


def test_enterprise_properties() -> None:
    features = enterprises()
    assert load("enterprises.geojson")["type"] == "FeatureCollection"
    assert len(features) == 78
    names = [f["properties"]["name"] for f in features]
    assert len(set(names)) == 78
    assert all(re.fullmatch(r"宁波[\u4e00-\u9fff]+有限公司", n) for n in names)
    workers = [f["properties"]["workers"] for f in features]
    assert all(type(w) is int and w > 0 for w in workers)
    assert sum(workers) == pytest.approx(20_000, rel=0.03)


def test_enterprise_sizes_are_skewed() -> None:
    workers = sorted((f["properties"]["workers"] for f in enterprises()), reverse=True)
    assert workers[0] > 5 * statistics.median(workers)
    assert sum(workers[:8]) > 0.3 * sum(workers)  # the largest tenth employ a third or more
    assert sum(w < 100 for w in workers) > 20  # and there are many small workshops


def test_enterprises_sit_inside_one_zone_clear_of_edges() -> None:
    outline, zone_map = community(), zones()
    to_metres = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    edges = shapely.union_all([z.boundary for z in zone_map.values()])
    edges_m = shapely.transform(
        edges, lambda xy: np.column_stack(to_metres.transform(xy[:, 0], xy[:, 1]))
    )
    for feature in enterprises():
        point = validate_point(geometry_from_geojson(feature["geometry"]))
        assert all(_decimals(v) <= 7 for v in (point.x, point.y))
        assert outline.contains(point)
        assert sum(z.contains(point) for z in zone_map.values()) == 1
        point_m = shapely.Point(*to_metres.transform(point.x, point.y))
        assert edges_m.distance(point_m) >= 10.0


def test_files_are_what_the_generator_makes() -> None:
    # Guards against hand edits and against a generator change without regenerating.
    for name, document in build().items():
        on_disk = load(name)
        features = on_disk.get("features", [on_disk])
        fresh = document.get("features", [document])
        assert [f["properties"] for f in features] == [f["properties"] for f in fresh]
        for old, new in zip(features, fresh, strict=True):
            assert_geometries_equal(
                geometry_from_geojson(old["geometry"]),
                geometry_from_geojson(new["geometry"]),
                tolerance=1e-9,
            )


# --- the large town -------------------------------------------------------------------


@functools.cache
def town() -> tuple[shapely.Polygon, list[tuple[str, shapely.Geometry]]]:
    return generate_town()


def test_town_has_a_thousand_coded_zones() -> None:
    boundary, zone_list = town()
    assert geodesic_area_m2(boundary) == pytest.approx(60e6, rel=0.01)
    assert [code for code, _ in zone_list] == [f"T{i:04d}" for i in range(1, 1001)]


def test_town_zones_tile_it() -> None:
    boundary, zone_list = town()
    report = coverage(boundary, dict(zone_list))
    assert report.covered_share > 0.9999
    assert report.gaps == [] and report.overlaps == [] and report.outside == []
    areas = [geodesic_area_m2(zone) for _, zone in zone_list]
    assert max(areas) / min(areas) <= 1.01


def test_town_parameters_are_honoured() -> None:
    boundary, zone_list = generate_town(12, seed=5, center=(121.0, 28.0), area_km2=5.0)
    assert len(zone_list) == 12
    assert geodesic_area_m2(boundary) == pytest.approx(5e6, rel=0.01)
    assert boundary.centroid.distance(shapely.Point(121.0, 28.0)) < 0.02
    again, _ = generate_town(12, seed=5, center=(121.0, 28.0), area_km2=5.0)
    assert_geometries_equal(boundary, again)
    other, _ = generate_town(12, seed=6, center=(121.0, 28.0), area_km2=5.0)
    assert not other.equals(boundary)
