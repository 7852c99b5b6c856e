"""The degree box that lets a GiST index on geometry find points within metres."""
from __future__ import annotations

import random

import pytest
from pyproj import Geod

from geo.crs import WORLD_BOX, degree_box

WGS84 = Geod(ellps="WGS84")


def _holds(box, x: float, y: float) -> bool:
    minx, miny, maxx, maxy = box
    return minx <= x <= maxx and miny <= y <= maxy


@pytest.mark.parametrize("lat", [0.0, 29.87, -45.0, 60.0, 75.0, 85.0])
@pytest.mark.parametrize("metres", [1.0, 300.0, 5_000.0, 50_000.0])
def test_the_degree_box_holds_every_point_within_the_metres(lat, metres):
    """Points exactly ``metres`` away on the spheroid, in 360 directions, all
    fall inside the box; up to 60 degrees of latitude the box is at most 5 %
    wider and taller than needed (nearer the poles the longitudes spread)."""
    lon = 121.77
    box = degree_box(lon, lat, metres)
    lons, lats, _ = WGS84.fwd([lon] * 360, [lat] * 360, list(range(360)), [metres] * 360)
    assert all(_holds(box, x, y) for x, y in zip(lons, lats))
    if abs(lat) <= 60:
        minx, miny, maxx, maxy = box
        assert maxx - minx <= 1.05 * (max(lons) - min(lons))
        assert maxy - miny <= 1.05 * (max(lats) - min(lats))


def test_random_places_and_radii_are_held():
    rng = random.Random(7)
    for _ in range(2000):
        lon, lat, metres = rng.uniform(-170, 170), rng.uniform(-85, 85), rng.uniform(1, 50_000)
        x, y, _ = WGS84.fwd(lon, lat, rng.uniform(0, 360), metres)
        assert _holds(degree_box(lon, lat, metres), x, y)


def test_the_whole_world_near_a_pole_or_the_antimeridian():
    assert degree_box(121.77, 88.9, 20_000) == WORLD_BOX  # reaches 89 deg
    assert degree_box(179.99, 10.0, 5_000) == WORLD_BOX
    assert degree_box(-179.99, 10.0, 5_000) == WORLD_BOX
    minx, miny, maxx, maxy = degree_box(121.77, 29.87, 1_000)
    assert (maxx - minx, maxy - miny) == pytest.approx((0.0209, 0.0183), abs=1e-4)
