"""Validation: ranges, types, and GEOS invalidity reported with its location."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest
import shapely

from geo import (
    GeometryError,
    geometry_from_geojson,
    validate_lonlat,
    validate_point,
    validate_polygonal,
)

BOX = shapely.box(121.77, 29.86, 121.79, 29.88)


def test_geometry_error_is_a_value_error_with_reason_and_location() -> None:
    error = GeometryError("Self-intersection", (121.781, 29.872))
    assert isinstance(error, ValueError)
    assert error.reason == "Self-intersection"
    assert error.location == (121.781, 29.872)
    assert str(error) == "Self-intersection at (121.781, 29.872)"


def test_geometry_error_without_location_is_just_the_reason() -> None:
    assert str(GeometryError("Polygon is empty")) == "Polygon is empty"


def test_geometry_error_formats_long_coordinates_compactly() -> None:
    assert str(GeometryError("x", (121.78000000001, -0.5))) == "x at (121.78, -0.5)"


def test_geometry_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(GeometryError("Self-intersection", (1.0, 2.0))))
    assert (error.reason, error.location) == ("Self-intersection", (1.0, 2.0))


@pytest.mark.parametrize("lon, lat", [(0, 0), (180, 90), (-180, -90), (121.78, 29.87), (1, 2.5)])
def test_lonlat_in_range(lon: float, lat: float) -> None:
    validate_lonlat(lon, lat)


@pytest.mark.parametrize(
    "lon, lat, words",
    [
        (200, 29.87, "longitude 200 is outside [-180, 180]"),
        (-180.0001, 0, "longitude -180.0001 is outside"),
        (121.78, 91, "latitude 91 is outside [-90, 90]"),
        (121.78, -90.5, "latitude -90.5 is outside"),
        (math.nan, 0, "longitude must be finite"),
        (0, math.inf, "latitude must be finite"),
        (True, 0, "longitude must be a number"),
        ("121.78", 0, "longitude must be a number"),
        (None, 0, "longitude must be a number"),
    ],
)
def test_lonlat_out_of_range_names_the_value(lon: Any, lat: Any, words: str) -> None:
    with pytest.raises(GeometryError, match=words.replace("[", r"\[").replace("]", r"\]")):
        validate_lonlat(lon, lat)


def test_valid_polygon_is_returned_unchanged() -> None:
    assert validate_polygonal(BOX) is BOX
    multi = shapely.MultiPolygon([BOX, shapely.box(121.8, 29.9, 121.81, 29.91)])
    assert validate_polygonal(multi) is multi


def test_3d_polygon_comes_back_2d() -> None:
    polygon = shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 0, 1)])
    assert not shapely.has_z(validate_polygonal(polygon))


def test_bow_tie_reports_self_intersection_and_where() -> None:
    bow_tie = geometry_from_geojson(
        {
            "type": "Polygon",
            "coordinates": [
                [
                    [121.77, 29.86],
                    [121.79, 29.88],
                    [121.79, 29.86],
                    [121.77, 29.88],
                    [121.77, 29.86],
                ]
            ],
        }
    )
    with pytest.raises(GeometryError) as info:
        validate_polygonal(bow_tie)
    assert info.value.reason == "Self-intersection"
    assert info.value.location is not None
    assert info.value.location == pytest.approx((121.78, 29.87), abs=1e-9)
    assert str(info.value) == "Self-intersection at (121.78, 29.87)"


def test_hole_outside_shell_is_reported() -> None:
    polygon = shapely.Polygon(
        BOX.exterior.coords, [[(121.9, 29.9), (121.91, 29.9), (121.91, 29.91), (121.9, 29.9)]]
    )
    with pytest.raises(GeometryError) as info:
        validate_polygonal(polygon)
    assert info.value.reason == "Hole lies outside shell"
    assert info.value.location is not None


def test_overlapping_multipolygon_parts_are_invalid() -> None:
    multi = shapely.MultiPolygon([BOX, shapely.box(121.78, 29.87, 121.8, 29.89)])
    with pytest.raises(GeometryError) as info:
        validate_polygonal(multi)
    assert info.value.location is not None


def test_longitude_200_is_reported_with_its_position() -> None:
    polygon = shapely.Polygon([(121, 29), (200, 29), (121, 30), (121, 29)])
    with pytest.raises(GeometryError) as info:
        validate_polygonal(polygon)
    assert "longitude 200" in info.value.reason
    assert info.value.location == (200.0, 29.0)


def test_latitude_out_of_range_in_a_hole_is_found() -> None:
    polygon = shapely.Polygon(
        [(0, 80), (10, 80), (10, 89), (0, 89), (0, 80)], [[(1, 81), (2, 81), (2, 95), (1, 81)]]
    )
    with pytest.raises(GeometryError, match="latitude 95"):
        validate_polygonal(polygon)


@pytest.mark.parametrize(
    "geom, name",
    [
        (shapely.Point(121.78, 29.87), "Point"),
        (shapely.LineString([(0, 0), (1, 1)]), "LineString"),
        (shapely.GeometryCollection([BOX]), "GeometryCollection"),
        ({"type": "Polygon"}, "dict"),
        (None, "NoneType"),
    ],
)
def test_wrong_type_is_named(geom: Any, name: str) -> None:
    with pytest.raises(GeometryError) as info:
        validate_polygonal(geom)
    assert info.value.reason == f"expected a Polygon or MultiPolygon, got {name}"


@pytest.mark.parametrize("geom", [shapely.Polygon(), shapely.MultiPolygon()])
def test_empty_polygonal_is_rejected(geom: shapely.Geometry) -> None:
    with pytest.raises(GeometryError, match="empty"):
        validate_polygonal(geom)


def test_point_validation() -> None:
    point = shapely.Point(121.78, 29.87)
    assert validate_point(point) is point
    assert not shapely.has_z(validate_point(shapely.Point(1, 2, 3)))
    with pytest.raises(GeometryError, match="longitude 200"):
        validate_point(shapely.Point(200, 0))
    with pytest.raises(GeometryError, match="expected a Point, got Polygon"):
        validate_point(BOX)
    with pytest.raises(GeometryError, match="empty"):
        validate_point(shapely.Point())
