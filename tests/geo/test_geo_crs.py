"""GCJ-02 / BD-09 conversion accuracy and size, and measurements on the ellipsoid."""

from __future__ import annotations

import math
import warnings

import prcoords
import pytest
import shapely

from geo import (
    SUPPORTED_CRS,
    GeometryError,
    from_wgs84,
    geodesic_area_m2,
    geodesic_distance_m,
    to_wgs84,
)

PLACES = {
    "Lingfeng, Ningbo": (121.78, 29.87),
    "Beijing": (116.3975, 39.9087),
    "Shenzhen": (114.0579, 22.5431),
    "Urumqi": (87.6168, 43.8256),
    "Liushi, Yueqing": (120.95, 28.05),
}
# A few points around the park, so the test is not one lucky spot.
AROUND_LINGFENG = [(121.78 + dx / 100, 29.87 + dy / 100) for dx in (-3, 0, 3) for dy in (-3, 0, 3)]
POINTS = list(PLACES.values()) + AROUND_LINGFENG
CHINESE_CRS = ("gcj02", "bd09")

# The target is "better than 1 m"; the implementation iterates to ~1e-7 m, so
# a millimetre bound still leaves a wide margin while catching a sloppy inverse.
ROUND_TRIP_TOLERANCE_M = 0.001


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return geodesic_distance_m(a[0], a[1], b[0], b[1])


def test_supported_crs() -> None:
    assert SUPPORTED_CRS == ("wgs84", "gcj02", "bd09")


@pytest.mark.parametrize("crs", CHINESE_CRS)
@pytest.mark.parametrize("point", POINTS)
def test_to_then_from_round_trip(point: tuple[float, float], crs: str) -> None:
    back = from_wgs84(*to_wgs84(*point, crs), crs)
    assert _metres(point, back) < ROUND_TRIP_TOLERANCE_M


@pytest.mark.parametrize("crs", CHINESE_CRS)
@pytest.mark.parametrize("point", POINTS)
def test_from_then_to_round_trip(point: tuple[float, float], crs: str) -> None:
    back = to_wgs84(*from_wgs84(*point, crs), crs)
    assert _metres(point, back) < ROUND_TRIP_TOLERANCE_M


def test_wgs84_is_identity() -> None:
    assert to_wgs84(121.78, 29.87, "wgs84") == (121.78, 29.87)
    assert from_wgs84(121.78, 29.87, "wgs84") == (121.78, 29.87)


def test_gcj02_offset_in_ningbo_is_hundreds_of_metres() -> None:
    # Fails if conversion ever silently becomes a no-op (or mixes up lat/lon).
    wgs = PLACES["Lingfeng, Ningbo"]
    offset = _metres(wgs, from_wgs84(*wgs, "gcj02"))
    assert 100 < offset < 1000
    assert 100 < _metres(wgs, to_wgs84(*wgs, "gcj02")) < 1000


def test_bd09_sits_further_off_than_gcj02() -> None:
    wgs = PLACES["Lingfeng, Ningbo"]
    gcj = from_wgs84(*wgs, "gcj02")
    bd = from_wgs84(*wgs, "bd09")
    assert 500 < _metres(wgs, bd) < 2000
    assert 100 < _metres(gcj, bd) < 2000


def test_gcj02_shifts_east_and_south_around_ningbo() -> None:
    # Pins the direction as well as the size, so a swapped (lat, lon) order shows.
    lon, lat = from_wgs84(121.78, 29.87, "gcj02")
    assert lon - 121.78 == pytest.approx(0.00424, abs=0.0002)
    assert lat - 29.87 == pytest.approx(-0.00246, abs=0.0002)


# A grid over China's box and around it, corners and all (lon, lat).
GRID = [(lon / 4, lat / 4) for lon in range(4 * 70, 4 * 140, 7) for lat in range(0, 4 * 58, 5)]


def test_forward_formulas_are_prcoords_digit_for_digit() -> None:
    # geo.crs writes prcoords' formulas out on plain floats (for speed): the same floats, to the last bit.
    for lon, lat in GRID:
        reference = (prcoords.wgs_gcj(prcoords.Coords(lat, lon), check_china=False)
                     if prcoords.sanity_in_china_p(prcoords.Coords(lat, lon)) else prcoords.Coords(lat, lon))
        assert from_wgs84(lon, lat, "gcj02") == (reference.lon, reference.lat), (lon, lat)
        reference = prcoords.gcj_bd(reference)
        assert from_wgs84(lon, lat, "bd09") == (reference.lon, reference.lat), (lon, lat)


def test_agrees_with_prcoords_reference_inverse() -> None:
    # prcoords' own iterative inverse is good to about a centimetre.
    for lon, lat in PLACES.values():
        ours = to_wgs84(lon, lat, "gcj02")
        theirs = prcoords.gcj_wgs_bored(prcoords.Coords(lat, lon))
        assert _metres(ours, (theirs.lon, theirs.lat)) < 0.05
        ours = to_wgs84(lon, lat, "bd09")
        theirs = prcoords.bd_wgs_bored(prcoords.Coords(lat, lon))
        assert _metres(ours, (theirs.lon, theirs.lat)) < 0.05


def test_outside_china_gcj02_is_wgs84_without_warnings() -> None:
    tokyo = (139.6917, 35.6895)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_wgs84(*tokyo, "gcj02") == tokyo
        assert to_wgs84(*tokyo, "gcj02") == tokyo
        # BD-09's own shift still applies, and still round-trips.
        back = to_wgs84(*from_wgs84(*tokyo, "bd09"), "bd09")
    assert _metres(tokyo, back) < ROUND_TRIP_TOLERANCE_M


@pytest.mark.parametrize("crs", ["WGS84", "epsg:4326", "", "gcj-02"])
def test_unknown_crs_is_a_value_error(crs: str) -> None:
    with pytest.raises(ValueError, match="unknown crs"):
        to_wgs84(121.78, 29.87, crs)
    with pytest.raises(ValueError, match="unknown crs"):
        from_wgs84(121.78, 29.87, crs)


def test_out_of_range_input_is_a_geometry_error() -> None:
    with pytest.raises(GeometryError, match="longitude 200"):
        to_wgs84(200, 29.87, "gcj02")
    with pytest.raises(GeometryError, match="finite"):
        from_wgs84(121.78, math.nan, "bd09")


def test_one_degree_of_latitude_at_the_equator() -> None:
    assert geodesic_distance_m(0, 0, 0, 1) == pytest.approx(110_574.4, abs=0.5)


def test_one_degree_of_longitude_at_the_equator() -> None:
    # 2 * pi * a / 360 with a = 6,378,137 m.
    assert geodesic_distance_m(0, 0, 1, 0) == pytest.approx(111_319.49, abs=0.01)


def test_distance_is_symmetric_and_zero_at_a_point() -> None:
    assert geodesic_distance_m(121.78, 29.87, 121.78, 29.87) == 0
    d1 = geodesic_distance_m(121.78, 29.87, 121.79, 29.88)
    d2 = geodesic_distance_m(121.79, 29.88, 121.78, 29.87)
    assert d1 == pytest.approx(d2) and 1400 < d1 < 1500


def _authalic_cell_area(lat1: float, lat2: float, dlon: float) -> float:
    """Area of a lon/lat cell on the WGS-84 ellipsoid, closed form (edges along parallels)."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    e = math.sqrt(e2)

    def q(lat: float) -> float:
        s = math.sin(math.radians(lat))
        return (1 - e2) * (s / (1 - e2 * s * s) - math.log((1 - e * s) / (1 + e * s)) / (2 * e))

    return a * a / 2 * math.radians(dlon) * (q(lat2) - q(lat1))


def test_area_of_a_small_cell_matches_closed_form() -> None:
    cell = shapely.box(121.77, 29.86, 121.79, 29.88)
    # Geodesic and parallel edges differ by a sliver of ~1e-7 of the area here.
    assert geodesic_area_m2(cell) == pytest.approx(
        _authalic_cell_area(29.86, 29.88, 0.02), rel=1e-6
    )


def test_area_ignores_ring_orientation_and_subtracts_holes() -> None:
    ccw = shapely.box(121.77, 29.86, 121.79, 29.88)
    cw = shapely.orient_polygons(ccw, exterior_cw=True)
    assert geodesic_area_m2(cw) == pytest.approx(geodesic_area_m2(ccw))
    other = shapely.box(121.8, 29.86, 121.82, 29.88)
    mixed = shapely.MultiPolygon([cw, shapely.orient_polygons(other)])
    assert geodesic_area_m2(mixed) == pytest.approx(geodesic_area_m2(ccw) + geodesic_area_m2(other))
    holed = shapely.Polygon(
        ccw.exterior.coords, [shapely.box(121.775, 29.865, 121.78, 29.87).exterior.coords]
    )
    expected = geodesic_area_m2(ccw) - geodesic_area_m2(shapely.box(121.775, 29.865, 121.78, 29.87))
    assert geodesic_area_m2(holed) == pytest.approx(expected)


def test_area_of_non_polygonal_is_zero_and_collections_count_polygons() -> None:
    box = shapely.box(121.77, 29.86, 121.79, 29.88)
    assert geodesic_area_m2(shapely.Point(121.78, 29.87)) == 0
    assert geodesic_area_m2(shapely.LineString([(0, 0), (1, 1)])) == 0
    assert geodesic_area_m2(shapely.Polygon()) == 0
    collection = shapely.GeometryCollection([box, shapely.Point(0, 0), shapely.MultiPolygon([box])])
    assert geodesic_area_m2(collection) == pytest.approx(2 * geodesic_area_m2(box))
