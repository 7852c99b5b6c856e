"""The degree radius that lets a GiST index on geometry find points within metres."""
from __future__ import annotations

import math
import random

import pytest
from pyproj import Geod

from geo.sql import degrees_enclosing

WGS84 = Geod(ellps="WGS84")


@pytest.mark.parametrize("lat", [0.0, 29.87, -45.0, 60.0, 75.0, 85.0])
@pytest.mark.parametrize("metres", [1.0, 300.0, 5_000.0, 50_000.0])
def test_the_degree_circle_holds_every_point_within_the_metres(lat, metres):
    """Points exactly ``metres`` away on the spheroid, in 360 directions, all
    fall inside the planar circle; up to 60 degrees of latitude the circle is
    at most 5 % wider than needed (nearer the poles the longitudes spread)."""
    lon = 121.77
    degrees = degrees_enclosing(lon, lat, metres)
    lons, lats, _ = WGS84.fwd([lon] * 360, [lat] * 360, list(range(360)), [metres] * 360)
    farthest = max(math.hypot(x - lon, y - lat) for x, y in zip(lons, lats))
    assert farthest <= degrees
    if abs(lat) <= 60:
        assert degrees <= farthest * 1.05


def test_random_places_and_radii_are_held():
    rng = random.Random(7)
    for _ in range(2000):
        lon, lat, metres = rng.uniform(-170, 170), rng.uniform(-85, 85), rng.uniform(1, 50_000)
        degrees = degrees_enclosing(lon, lat, metres)
        if degrees is None:
            continue
        x, y, _ = WGS84.fwd(lon, lat, rng.uniform(0, 360), metres)
        assert math.hypot(x - lon, y - lat) <= degrees


def test_no_degree_circle_near_a_pole_or_the_antimeridian():
    assert degrees_enclosing(121.77, 88.9, 20_000) is None  # reaches 89 deg
    assert degrees_enclosing(179.99, 10.0, 5_000) is None
    assert degrees_enclosing(-179.99, 10.0, 5_000) is None
    assert degrees_enclosing(121.77, 29.87, 1_000) == pytest.approx(0.0104, abs=1e-4)
