"""GeoJSON and WKB reading/writing: strict input, 2D output, one exception type."""

from __future__ import annotations

import contextlib
import json
import math
import random
from typing import Any

import pytest
import shapely
from shapely.testing import assert_geometries_equal

from geo import (
    GeometryError,
    geometry_from_geojson,
    geometry_from_wkb,
    geometry_to_geojson,
    geometry_to_wkb,
)

SQUARE = [[121.77, 29.86], [121.79, 29.86], [121.79, 29.88], [121.77, 29.88], [121.77, 29.86]]
HOLE = [[121.775, 29.865], [121.775, 29.87], [121.78, 29.87], [121.78, 29.865], [121.775, 29.865]]

VALID: dict[str, dict[str, Any]] = {
    "Point": {"type": "Point", "coordinates": [121.78, 29.87]},
    "MultiPoint": {"type": "MultiPoint", "coordinates": [[121.78, 29.87], [121.79, 29.88]]},
    "LineString": {"type": "LineString", "coordinates": [[121.78, 29.87], [121.79, 29.88]]},
    "MultiLineString": {
        "type": "MultiLineString",
        "coordinates": [[[121.78, 29.87], [121.79, 29.88]], [[121.7, 29.8], [121.71, 29.8]]],
    },
    "Polygon": {"type": "Polygon", "coordinates": [SQUARE, HOLE]},
    "MultiPolygon": {
        "type": "MultiPolygon",
        "coordinates": [
            [SQUARE],
            [[[121.8, 29.9], [121.81, 29.9], [121.81, 29.91], [121.8, 29.9]]],
        ],
    },
    "GeometryCollection": {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Point", "coordinates": [121.78, 29.87]},
            {"type": "Polygon", "coordinates": [SQUARE]},
        ],
    },
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_geometry_type_parses(name: str) -> None:
    geom = geometry_from_geojson(VALID[name])
    assert geom.geom_type == name
    assert geom.is_valid
    assert not shapely.has_z(geom)


@pytest.mark.parametrize("name", sorted(VALID))
def test_round_trip_through_geojson(name: str) -> None:
    geom = geometry_from_geojson(VALID[name])
    written = geometry_to_geojson(geom)
    assert written["type"] == name
    json.dumps(written)  # plain JSON types only
    assert_geometries_equal(geometry_from_geojson(written), geom, normalize=True)


def test_polygon_structure_is_kept() -> None:
    polygon = geometry_from_geojson(VALID["Polygon"])
    assert len(polygon.interiors) == 1
    assert polygon.area == pytest.approx(0.02 * 0.02 - 0.005 * 0.005)


def test_altitude_is_dropped() -> None:
    point = geometry_from_geojson({"type": "Point", "coordinates": [121.78, 29.87, 12.5]})
    assert not shapely.has_z(point)
    assert (point.x, point.y) == (121.78, 29.87)
    ring3d = [[x, y, 3.0] for x, y in SQUARE]
    polygon = geometry_from_geojson({"type": "Polygon", "coordinates": [ring3d]})
    assert not shapely.has_z(polygon)
    assert geometry_to_geojson(polygon)["coordinates"][0][0] == [121.77, 29.86]


def test_integers_are_numbers() -> None:
    point = geometry_from_geojson({"type": "Point", "coordinates": [121, 29]})
    assert (point.x, point.y) == (121.0, 29.0)


def test_tuples_are_accepted_like_lists() -> None:
    geom = geometry_from_geojson({"type": "LineString", "coordinates": ((1, 2), (3, 4))})
    assert geom.geom_type == "LineString"


def test_written_geojson_uses_lists_and_is_2d() -> None:
    polygon = shapely.Polygon([(0, 0, 5), (1, 0, 5), (1, 1, 5), (0, 0, 5)])
    written = geometry_to_geojson(polygon)
    ring = written["coordinates"][0]
    assert type(written["coordinates"]) is list and type(ring) is list
    assert all(type(position) is list and len(position) == 2 for position in ring)
    assert all(type(value) is float for position in ring for value in position)


def test_written_polygons_follow_the_right_hand_rule() -> None:
    # RFC 7946 3.1.6: exterior counter-clockwise, holes clockwise.
    clockwise = shapely.Polygon(
        [(0, 0), (0, 4), (4, 4), (4, 0), (0, 0)], [[(1, 1), (2, 1), (2, 2), (1, 2), (1, 1)]]
    )
    written = geometry_to_geojson(clockwise)
    exterior, hole = (shapely.LinearRing(r) for r in written["coordinates"])
    assert exterior.is_ccw
    assert not hole.is_ccw


def test_written_point_and_empty() -> None:
    assert geometry_to_geojson(shapely.Point(1.5, 2)) == {
        "type": "Point",
        "coordinates": [1.5, 2.0],
    }
    assert geometry_to_geojson(shapely.Polygon()) == {"type": "Polygon", "coordinates": []}


def test_linear_ring_is_written_as_linestring() -> None:
    written = geometry_to_geojson(shapely.LinearRing([(0, 0), (1, 0), (1, 1)]))
    assert written["type"] == "LineString"
    assert written["coordinates"][0] == written["coordinates"][-1]


# --- rejected input -------------------------------------------------------------


def _polygon(*rings: Any) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


REJECTED: dict[str, Any] = {
    "not a dict: list": [1, 2],
    "not a dict: string": '{"type": "Point", "coordinates": [1, 2]}',
    "not a dict: None": None,
    "not a dict: number": 5,
    "missing type": {"coordinates": [1, 2]},
    "type is null": {"type": None, "coordinates": [1, 2]},
    "type is a number": {"type": 7, "coordinates": [1, 2]},
    "unknown type": {"type": "Circle", "coordinates": [1, 2]},
    "wrong case type": {"type": "polygon", "coordinates": [SQUARE]},
    "a Feature": {"type": "Feature", "geometry": VALID["Point"], "properties": {}},
    "a FeatureCollection": {"type": "FeatureCollection", "features": []},
    "missing coordinates": {"type": "Point"},
    "coordinates null": {"type": "Polygon", "coordinates": None},
    "point too nested": {"type": "Point", "coordinates": [[1, 2]]},
    "point flat string": {"type": "Point", "coordinates": "1,2"},
    "polygon not nested enough": {"type": "Polygon", "coordinates": SQUARE},
    "polygon nested too deep": {"type": "Polygon", "coordinates": [[SQUARE]]},
    "multipolygon not nested enough": {"type": "MultiPolygon", "coordinates": [SQUARE]},
    "line of numbers": {"type": "LineString", "coordinates": [1, 2, 3, 4]},
    "string coordinate": {"type": "Point", "coordinates": ["121.78", "29.87"]},
    "bool coordinate": {"type": "Point", "coordinates": [True, False]},
    "bool in ring": _polygon([[0, 0], [1, 0], [1, True], [0, 0]]),
    "null coordinate": {"type": "Point", "coordinates": [None, 29.87]},
    "object as position": {"type": "Point", "coordinates": {"lon": 1, "lat": 2}},
    "NaN": {"type": "Point", "coordinates": [math.nan, 29.87]},
    "Infinity": {"type": "Point", "coordinates": [121.78, math.inf]},
    "-Infinity in ring": _polygon([[0, 0], [1, 0], [-math.inf, 1], [0, 0]]),
    "int too large for a float": {"type": "Point", "coordinates": [10**400, 1]},
    "one number": {"type": "Point", "coordinates": [121.78]},
    "four numbers": {"type": "Point", "coordinates": [121.78, 29.87, 1, 2]},
    "no numbers": {"type": "Point", "coordinates": []},
    "empty polygon": {"type": "Polygon", "coordinates": []},
    "empty ring": _polygon([]),
    "empty multipolygon": {"type": "MultiPolygon", "coordinates": []},
    "empty multipoint": {"type": "MultiPoint", "coordinates": []},
    "empty linestring": {"type": "LineString", "coordinates": []},
    "one-point linestring": {"type": "LineString", "coordinates": [[1, 2]]},
    "empty multilinestring": {"type": "MultiLineString", "coordinates": []},
    "ring of 3 positions": _polygon([[0, 0], [1, 0], [0, 0]]),
    "unclosed ring": _polygon([[0, 0], [1, 0], [1, 1], [0, 1]]),
    "unclosed hole": _polygon(SQUARE, HOLE[:-1]),
    "ring closed only in 2D": _polygon([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 9]]),
    "collection without geometries": {"type": "GeometryCollection"},
    "collection with empty geometries": {"type": "GeometryCollection", "geometries": []},
    "collection with junk member": {"type": "GeometryCollection", "geometries": [5]},
    "collection with bad member": {
        "type": "GeometryCollection",
        "geometries": [VALID["Point"], _polygon([[0, 0], [1, 0], [0, 0]])],
    },
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_junk_is_rejected_with_geometry_error(name: str) -> None:
    with pytest.raises(GeometryError) as info:
        geometry_from_geojson(REJECTED[name])
    assert str(info.value)  # always a readable message


def test_three_point_ring_says_why_and_where() -> None:
    with pytest.raises(GeometryError) as info:
        geometry_from_geojson(_polygon([[121.78, 29.87], [121.79, 29.87], [121.78, 29.87]]))
    assert info.value.reason == "ring has 3 positions; a closed ring needs at least 4"
    assert info.value.location == (121.78, 29.87)
    assert str(info.value).endswith("at (121.78, 29.87)")


def test_unclosed_ring_is_not_silently_closed() -> None:
    # shapely.Polygon() would close this ring without a word.
    with pytest.raises(GeometryError) as info:
        geometry_from_geojson(_polygon(SQUARE[:-1]))
    assert "not closed" in info.value.reason
    assert info.value.location == (121.77, 29.86)


def test_bool_message_names_json_value() -> None:
    with pytest.raises(GeometryError, match="got true"):
        geometry_from_geojson({"type": "Point", "coordinates": [True, 1]})


def test_deeply_nested_collections_are_refused_not_recursed() -> None:
    geom: dict[str, Any] = VALID["Point"]
    for _ in range(10_000):
        geom = {"type": "GeometryCollection", "geometries": [geom]}
    with pytest.raises(GeometryError, match="nested too deeply"):
        geometry_from_geojson(geom)


def test_shallow_nested_collection_is_fine() -> None:
    inner = VALID["GeometryCollection"]
    geom = geometry_from_geojson({"type": "GeometryCollection", "geometries": [inner]})
    assert geom.geom_type == "GeometryCollection"


def test_dict_subclasses_and_extra_members_are_accepted() -> None:
    from collections import OrderedDict

    obj = OrderedDict(type="Point", coordinates=[1, 2], bbox=[1, 2, 1, 2], crs="ignored")
    assert geometry_from_geojson(obj).wkt == "POINT (1 2)"


def _mutations(value: Any, rng: random.Random) -> Any:
    """Replace one random leaf or list of a valid document with junk."""
    junk: list[Any] = [
        None,
        True,
        False,
        "x",
        "",
        [],
        {},
        [[]],
        math.nan,
        math.inf,
        -1e308,
        2**70,
        [1],
        [1, 2, 3, 4],
    ]
    if isinstance(value, dict):
        value = dict(value)
        key = rng.choice(sorted(value))
        value[key] = rng.choice(junk) if rng.random() < 0.3 else _mutations(value[key], rng)
        return value
    if isinstance(value, list) and value:
        value = list(value)
        i = rng.randrange(len(value))
        value[i] = rng.choice(junk) if rng.random() < 0.3 else _mutations(value[i], rng)
        if rng.random() < 0.1:
            del value[rng.randrange(len(value))]
        return value
    return rng.choice(junk)


def test_fuzzed_documents_only_ever_raise_geometry_error() -> None:
    rng = random.Random(7)
    names = sorted(VALID)
    for _ in range(3000):
        doc = _mutations(VALID[rng.choice(names)], rng)
        with contextlib.suppress(GeometryError):  # anything else fails the test
            geometry_from_geojson(doc)


# --- WKB --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALID))
def test_wkb_round_trip(name: str) -> None:
    geom = geometry_from_geojson(VALID[name])
    data = geometry_to_wkb(geom)
    assert isinstance(data, bytes)
    assert_geometries_equal(geometry_from_wkb(data), geom)


def test_wkb_accepts_hex_memoryview_and_ewkb() -> None:
    point = shapely.Point(121.78, 29.87)
    assert_geometries_equal(geometry_from_wkb(shapely.to_wkb(point, hex=True)), point)
    assert_geometries_equal(geometry_from_wkb(memoryview(geometry_to_wkb(point))), point)
    assert_geometries_equal(geometry_from_wkb(bytearray(geometry_to_wkb(point))), point)
    ewkb = shapely.to_wkb(shapely.set_srid(point, 4326), include_srid=True, hex=True)
    assert_geometries_equal(geometry_from_wkb(ewkb), point)


def test_wkb_is_2d_both_ways() -> None:
    point3d = shapely.Point(121.78, 29.87, 10)
    assert not shapely.has_z(geometry_from_wkb(shapely.to_wkb(point3d)))
    assert not shapely.has_z(shapely.from_wkb(geometry_to_wkb(point3d)))


@pytest.mark.parametrize("data", [b"", b"\x01\x02", "zz", "0101", None, 42, [1, 2]])
def test_bad_wkb_is_rejected(data: Any) -> None:
    with pytest.raises(GeometryError):
        geometry_from_wkb(data)
