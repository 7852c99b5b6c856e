"""Equal-area splitting and coverage checks."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import shapely
from shapely.testing import assert_geometries_equal

from geo import Coverage, GeometryError, coverage, geodesic_area_m2, split_equal_area

# A U-shaped park near Lingfeng: a notch bites into it from the north.
CONCAVE = shapely.Polygon(
    [
        (121.760, 29.860),
        (121.800, 29.858),
        (121.802, 29.880),
        (121.786, 29.881),
        (121.785, 29.868),
        (121.776, 29.867),
        (121.774, 29.879),
        (121.761, 29.878),
        (121.760, 29.860),
    ]
)
# Two separate parts of different size; the larger one has a pond (a hole).
MULTI = shapely.MultiPolygon(
    [
        shapely.Polygon(
            [
                (121.700, 29.800),
                (121.730, 29.802),
                (121.728, 29.825),
                (121.712, 29.830),
                (121.699, 29.818),
                (121.700, 29.800),
            ],
            [[(121.710, 29.810), (121.716, 29.810), (121.716, 29.815), (121.710, 29.810)]],
        ),
        shapely.Polygon(
            [
                (121.740, 29.805),
                (121.752, 29.806),
                (121.751, 29.815),
                (121.741, 29.814),
                (121.740, 29.805),
            ]
        ),
    ]
)
SHAPES = {"concave": CONCAVE, "multipolygon": MULTI}
COUNTS = [1, 2, 3, 7, 10, 37]


@functools.cache
def zones_of(shape: str, count: int) -> tuple[shapely.Geometry, ...]:
    return tuple(split_equal_area(SHAPES[shape], count))


def test_test_shapes_are_valid_and_concave() -> None:
    assert CONCAVE.is_valid and MULTI.is_valid
    assert CONCAVE.area < 0.9 * CONCAVE.convex_hull.area


cases = pytest.mark.parametrize("shape, count", list(itertools.product(SHAPES, COUNTS)))


@cases
def test_split_gives_count_valid_polygonal_zones(shape: str, count: int) -> None:
    zones = zones_of(shape, count)
    assert len(zones) == count
    for zone in zones:
        assert zone.geom_type in ("Polygon", "MultiPolygon")
        assert zone.is_valid and not zone.is_empty
        assert not shapely.has_z(zone)


@cases
def test_split_areas_are_equal_on_the_ground(shape: str, count: int) -> None:
    areas = [geodesic_area_m2(zone) for zone in zones_of(shape, count)]
    # Required: <= 1.10. The search is exact to 1e-10; what is left is the
    # difference between straight and geodesic edges, ~1e-5 at this size.
    assert max(areas) / min(areas) <= 1.001
    # Not exact: a cut point on a long outline edge lies on the straight lon/lat
    # segment, which geodesic areas see as a kink of a few centimetres.
    assert sum(areas) == pytest.approx(geodesic_area_m2(SHAPES[shape]), rel=1e-4)


@cases
def test_split_tiles_the_boundary_exactly(shape: str, count: int) -> None:
    boundary, zones = SHAPES[shape], zones_of(shape, count)
    union = shapely.coverage_union_all(np.array(zones, dtype=object))
    assert geodesic_area_m2(shapely.symmetric_difference(union, boundary, grid_size=1e-11)) < 1e-4
    report = coverage(boundary, dict(enumerate(zones)))
    assert report.gaps == [] and report.overlaps == [] and report.outside == []
    assert report.covered_share > 0.999999


@cases
def test_split_zones_do_not_overlap(shape: str, count: int) -> None:
    zones = zones_of(shape, count)
    for a, b in itertools.combinations(zones, 2):
        assert geodesic_area_m2(shapely.intersection(a, b, grid_size=1e-11)) < 1e-6


@cases
def test_split_is_a_clean_coverage(shape: str, count: int) -> None:
    # Neighbours share the very same vertices along common edges (no T-junctions),
    # which is what GEOS/PostGIS coverage validation demands.
    assert shapely.coverage_is_valid(np.array(zones_of(shape, count), dtype=object))


@cases
def test_split_keeps_every_boundary_vertex_exactly(shape: str, count: int) -> None:
    boundary_vertices = set(map(tuple, shapely.get_coordinates(SHAPES[shape]).tolist()))
    zone_vertices = set(
        map(tuple, shapely.get_coordinates(np.array(zones_of(shape, count), dtype=object)).tolist())
    )
    assert boundary_vertices <= zone_vertices


def test_split_into_one_is_the_boundary() -> None:
    (zone,) = split_equal_area(CONCAVE, 1)
    assert_geometries_equal(zone, CONCAVE, normalize=True)


def test_split_is_deterministic() -> None:
    first = [shapely.to_wkb(z) for z in split_equal_area(CONCAVE, 23)]
    second = [shapely.to_wkb(z) for z in split_equal_area(CONCAVE, 23)]
    assert first == second


def test_concave_zones_stay_connected() -> None:
    # The U's arms would tempt a naive cut into zones of two separate parts.
    assert all(zone.geom_type == "Polygon" for zone in zones_of("concave", 10))


def _ground_aspect(zone: shapely.Geometry) -> float:
    minx, miny, maxx, maxy = zone.bounds
    width = (maxx - minx) * math.cos(math.radians((miny + maxy) / 2))
    height = maxy - miny
    return float(max(width, height) / min(width, height))


def test_zones_are_compact_on_the_ground() -> None:
    # 0.02 deg of longitude at 30 N is about as long on the ground as 0.0173 deg of latitude.
    square = shapely.box(121.77, 29.86, 121.79, 29.86 + 0.02 * math.cos(math.radians(29.87)))
    zones = split_equal_area(square, 16)
    assert max(_ground_aspect(z) for z in zones) < 1.1  # a 4 x 4 grid of near-squares


def test_zones_come_in_reading_order() -> None:
    # A wide strip: 8 zones become 2 rows of 4.
    strip = shapely.box(121.70, 29.86, 121.74, 29.87)
    zones = split_equal_area(strip, 8)
    centres = [z.centroid for z in zones]
    north, south = centres[:4], centres[4:]
    assert min(c.y for c in north) > max(c.y for c in south)
    for row in (north, south):
        xs = [c.x for c in row]
        assert xs == sorted(xs)


@pytest.mark.parametrize("count", [0, -1, 1001, 2.0, True, "10", None])
def test_bad_counts_are_refused(count: object) -> None:
    with pytest.raises(ValueError, match="count must be an integer from 1 to 1000"):
        split_equal_area(CONCAVE, count)  # type: ignore[arg-type]


def test_bad_boundaries_are_refused() -> None:
    with pytest.raises(GeometryError, match="got Point"):
        split_equal_area(shapely.Point(121.78, 29.87), 3)
    bow_tie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    with pytest.raises(GeometryError, match="Self-intersection"):
        split_equal_area(bow_tie, 3)


# --- coverage -----------------------------------------------------------------------

BOUNDARY = shapely.box(121.77, 29.86, 121.79, 29.88)
WEST = shapely.box(121.77, 29.86, 121.78, 29.88)
EAST = shapely.box(121.78, 29.86, 121.79, 29.88)


def test_perfect_tiling_has_nothing_to_report() -> None:
    report = coverage(BOUNDARY, {"W": WEST, "E": EAST})
    assert isinstance(report, Coverage)
    assert report.community_area_m2 == pytest.approx(geodesic_area_m2(BOUNDARY))
    assert report.covered_area_m2 == pytest.approx(report.community_area_m2)
    assert report.covered_share == pytest.approx(1.0)
    assert (report.gaps, report.overlaps, report.outside) == ([], [], [])


def test_gap_is_found_with_its_area() -> None:
    notch = shapely.box(121.785, 29.87, 121.79, 29.875)
    report = coverage(BOUNDARY, {"W": WEST, "E": EAST.difference(notch)})
    assert len(report.gaps) == 1
    polygon, area = report.gaps[0]
    assert area == pytest.approx(geodesic_area_m2(notch), rel=0.01)
    assert_geometries_equal(polygon, notch, normalize=True, tolerance=1e-9)
    assert report.covered_share == pytest.approx(1 - area / report.community_area_m2)
    assert report.overlaps == [] and report.outside == []


def test_overlap_pair_is_found_with_its_area() -> None:
    wide_west = shapely.box(121.77, 29.86, 121.782, 29.88)
    strip = shapely.box(121.78, 29.86, 121.782, 29.88)
    report = coverage(BOUNDARY, {"W": wide_west, "E": EAST})
    assert len(report.overlaps) == 1
    first, second, area = report.overlaps[0]
    assert (first, second) == ("W", "E")  # in the mapping's order
    assert area == pytest.approx(geodesic_area_m2(strip), rel=0.01)
    assert report.gaps == [] and report.outside == []
    assert report.covered_share == pytest.approx(1.0)


def test_zone_outside_is_found_with_its_area() -> None:
    overhang = shapely.box(121.79, 29.86, 121.795, 29.88)
    report = coverage(BOUNDARY, {"W": WEST, "E": shapely.box(121.78, 29.86, 121.795, 29.88)})
    assert len(report.outside) == 1
    key, area = report.outside[0]
    assert key == "E"
    assert area == pytest.approx(geodesic_area_m2(overhang), rel=0.01)
    assert report.covered_share == pytest.approx(1.0)


def test_all_problems_at_once() -> None:
    zones = {
        1: shapely.box(121.77, 29.86, 121.781, 29.88),  # overlaps 2
        2: shapely.box(121.78, 29.86, 121.79, 29.87),  # leaves the north-east empty
        3: shapely.box(121.785, 29.87, 121.8, 29.88),  # hangs out east
    }
    report = coverage(BOUNDARY, zones)
    assert [(a, b) for a, b, _ in report.overlaps] == [(1, 2)]
    assert [key for key, _ in report.outside] == [3]
    gap = shapely.box(121.781, 29.87, 121.785, 29.88)
    assert len(report.gaps) == 1
    assert report.gaps[0][1] == pytest.approx(geodesic_area_m2(gap), rel=0.01)


def test_slivers_below_the_threshold_are_ignored() -> None:
    # A protrusion of about 3e-4 m² (2 cm by 3 cm): noise by default.
    tip = shapely.Polygon([(121.79, 29.87), (121.7900003, 29.8700001), (121.79, 29.8700002)])
    east = shapely.union(EAST, tip)
    assert coverage(BOUNDARY, {"W": WEST, "E": east}).outside == []
    report = coverage(BOUNDARY, {"W": WEST, "E": east}, min_area_m2=1e-5)
    assert len(report.outside) == 1
    assert report.outside[0][1] == pytest.approx(geodesic_area_m2(tip), rel=0.05)


def test_no_zones_is_one_big_gap() -> None:
    report: Coverage[str] = coverage(BOUNDARY, {})
    assert report.covered_area_m2 == 0 and report.covered_share == 0
    assert len(report.gaps) == 1
    assert report.gaps[0][1] == pytest.approx(report.community_area_m2)


def test_gaps_are_listed_largest_first() -> None:
    small = shapely.box(121.77, 29.86, 121.771, 29.861)
    large = shapely.box(121.785, 29.875, 121.79, 29.88)
    zones = {"W": WEST.difference(small), "E": EAST.difference(large)}
    areas = [area for _, area in coverage(BOUNDARY, zones).gaps]
    assert len(areas) == 2 and areas[0] > areas[1]


def test_zero_threshold_lists_no_empty_pieces() -> None:
    zones = dict(enumerate(zones_of("concave", 10)))
    report = coverage(CONCAVE, zones, min_area_m2=0)
    assert report.covered_share == pytest.approx(1.0, abs=1e-12)
    assert all(area > 0 for _, area in report.gaps)
    assert all(area > 0 for *_, area in report.overlaps)
    assert all(area > 0 for _, area in report.outside)
