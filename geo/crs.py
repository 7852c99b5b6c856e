"""Coordinate systems used by phones in China, and measurements on the ellipsoid.

Map SDKs in China do not report WGS-84. AMap, Tencent and WeChat use GCJ-02,
an obfuscated datum that shifts positions by a few hundred metres; Baidu uses
BD-09, a further shift on top of GCJ-02. We store WGS-84, so inputs are
converted with :func:`to_wgs84` and can be shown on Chinese base maps again with
:func:`from_wgs84`.

The forward formulas (WGS-84 -> GCJ-02 -> BD-09) are those of ``prcoords``
(Mingye Wang, CC0), written out here on plain floats: prcoords wraps every
step in a namedtuple, and a GCJ-02 check-in runs the forward map four times
(the inverse), which cost it 31 µs, a tenth of check-in's Python. The tests
hold them to prcoords' own results, digit for digit. The inverse has no
closed form; prcoords' own iterative inverse stops at about 1e-5 degrees of
residual, which leaves errors of up to about a centimetre, so we iterate the
forward functions ourselves to a residual of 1e-12 degrees (well under a
millimetre).

Outside mainland China's bounding box GCJ-02 is defined as WGS-84 (the map
SDKs do the same); BD-09's own shift still applies there, as in prcoords.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry, BaseMultipartGeometry

from geo.validate import validate_lonlat

__all__ = [
    "SUPPORTED_CRS",
    "from_wgs84",
    "geodesic_area_m2",
    "geodesic_distance_m",
    "to_wgs84",
]

SUPPORTED_CRS: Final = ("wgs84", "gcj02", "bd09")

_WGS84 = Geod(ellps="WGS84")

# Inverse iteration: stop when the forward image is within this many degrees of
# the target (1e-10 deg is about 0.01 mm); the map is a small
# perturbation of a translation, so each step gains two to three digits and
# 4 steps are normal. The cap only guards against non-convergence.
_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_STEPS = 50

LonLat = tuple[float, float]


# GCJ-02's ellipsoid (Krasovsky 1940) and BD-09's constant offsets, as prcoords has them.
_GCJ_A: Final = 6378245
_GCJ_EE: Final = 0.00669342162296594323
_BD_DLAT: Final = 0.0060
_BD_DLON: Final = 0.0065


def _in_china(lon: float, lat: float) -> bool:
    """Inside the box where GCJ-02 applies (prcoords' ``sanity_in_china_p``)."""
    return 0.8293 <= lat <= 55.8271 and 72.004 <= lon <= 137.8347


def _gcj_shifted(lon: float, lat: float) -> LonLat:
    """GCJ-02's shift, wherever the position is (inside China's box it is GCJ-02).

    prcoords' ``wgs_gcj`` term for term (the same operations in the same
    order, so the same floats); the box is checked by the callers so that the
    forward and inverse directions share one rule."""
    x, y = lon - 105, lat - 35
    # distortions in metres along the meridian and the parallel
    sin_6x, sin_2x = math.sin(x * 6 * math.pi), math.sin(x * 2 * math.pi)
    dlat_m = (-100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + (
        2 * sin_6x + 2 * sin_2x + 2 * math.sin(y * math.pi) + 4 * math.sin(y / 3 * math.pi)
        + 16 * math.sin(y / 12 * math.pi) + 32 * math.sin(y / 30 * math.pi)) * 20 / 3)
    dlon_m = (300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + (
        2 * sin_6x + 2 * sin_2x + 2 * math.sin(x * math.pi) + 4 * math.sin(x / 3 * math.pi)
        + 15 * math.sin(x / 12 * math.pi) + 30 * math.sin(x / 30 * math.pi)) * 20 / 3)
    rad_lat = math.radians(lat)
    magic = 1 - _GCJ_EE * math.pow(math.sin(rad_lat), 2)
    lat_deg_arclen = math.radians((_GCJ_A * (1 - _GCJ_EE)) / math.pow(magic, 1.5))
    lon_deg_arclen = math.radians(_GCJ_A * math.cos(rad_lat) / math.sqrt(magic))
    return lon + (dlon_m / lon_deg_arclen), lat + (dlat_m / lat_deg_arclen)


def _wgs_to_gcj(lon: float, lat: float) -> LonLat:
    return _gcj_shifted(lon, lat) if _in_china(lon, lat) else (lon, lat)


def _gcj_to_bd(lon: float, lat: float) -> LonLat:
    """BD-09 from GCJ-02 (prcoords' ``gcj_bd``)."""
    x, y = lon, lat
    r = math.sqrt(x * x + y * y) + 0.00002 * math.sin(math.radians(y) * 3000)
    theta = math.atan2(y, x) + 0.000003 * math.cos(math.radians(x) * 3000)
    return r * math.cos(theta) + _BD_DLON, r * math.sin(theta) + _BD_DLAT


def _wgs_to_bd(lon: float, lat: float) -> LonLat:
    return _gcj_to_bd(*_wgs_to_gcj(lon, lat))


_FORWARD: Final[dict[str, Callable[[float, float], LonLat]]] = {
    "wgs84": lambda lon, lat: (lon, lat),
    "gcj02": _wgs_to_gcj,
    "bd09": _wgs_to_bd,
}

# Each forward map is smooth on either side of the edge of China's box and
# jumps across it (GCJ-02's shift applies inside only): its two sides, for
# the inverse near the edge.
_SIDES: Final[dict[str, tuple[Callable[[float, float], LonLat], Callable[[float, float], LonLat]]]] = {
    "gcj02": (_gcj_shifted, lambda lon, lat: (lon, lat)),
    "bd09": (lambda lon, lat: _gcj_to_bd(*_gcj_shifted(lon, lat)), _gcj_to_bd),
}


def _check_crs(crs: str) -> None:
    if crs not in SUPPORTED_CRS:
        raise ValueError(f"unknown crs {crs!r}; expected one of {', '.join(SUPPORTED_CRS)}")


def _invert(forward: Callable[[float, float], LonLat], lon: float, lat: float) -> tuple[float, float, bool]:
    """Solve ``forward(x) == (lon, lat)`` by fixed-point iteration x <- x - (forward(x) - target);
    the solution and whether the iteration converged.

    The GCJ/BD shifts vary slowly with position (their derivative is about
    1e-3), so the iteration contracts fast from the starting guess ``target``.
    """
    x, y = lon, lat
    for _ in range(_INVERSE_MAX_STEPS):
        fx, fy = forward(x, y)
        dx, dy = fx - lon, fy - lat
        x, y = x - dx, y - dy
        if abs(dx) < _INVERSE_TOLERANCE_DEG and abs(dy) < _INVERSE_TOLERANCE_DEG:
            return x, y, True
    return x, y, False


def _miss(forward: Callable[[float, float], LonLat], x: float, y: float, lon: float, lat: float) -> float:
    """How far ``forward(x, y)`` lands from (lon, lat), in degrees."""
    fx, fy = forward(x, y)
    return max(abs(fx - lon), abs(fy - lat))


def _inverse(crs: str, lon: float, lat: float) -> LonLat:
    """The WGS-84 position that ``crs`` reports as (lon, lat).

    Near the edge of China's box the iteration over the whole forward map can
    bounce across the edge and stop about 200 m off, though a position maps
    there exactly (BD-09 at 0.835 N, say). Then each side of the edge is
    solved on its own, and a solution that lies on its own side is the
    answer. Some reported positions have no WGS-84 position at all (the jump
    leaves a gap a few hundred metres wide): the nearest miss is taken.
    """
    forward = _FORWARD[crs]
    x, y, converged = _invert(forward, lon, lat)
    if converged:
        return x, y
    inside_map, outside_map = _SIDES[crs]
    inside, outside = _invert(inside_map, lon, lat)[:2], _invert(outside_map, lon, lat)[:2]
    if _in_china(*inside):
        return inside
    if not _in_china(*outside):
        return outside
    return min((x, y), inside, outside, key=lambda candidate: _miss(forward, *candidate, lon, lat))


def _in_range(lon: float, lat: float) -> LonLat:
    """A position within WGS-84's ranges. BD-09's shift (a few hundred metres
    east and north) applies everywhere, so a BD-09 position at the
    antimeridian or a pole converts to a longitude past -180 or a latitude
    past -90, which is no WGS-84 position: the longitude goes round the
    world, the latitude stops at the pole."""
    if not -180.0 <= lon <= 180.0:
        lon = (lon + 180.0) % 360.0 - 180.0
    return lon, min(max(lat, -90.0), 90.0)


def to_wgs84(lon: float, lat: float, crs: str) -> LonLat:
    """Convert a position reported in ``crs`` (``"wgs84"``, ``"gcj02"``, ``"bd09"``) to WGS-84.

    Raises ``ValueError`` for an unknown crs and
    :class:`~geo.validate.GeometryError` (a ``ValueError``) for a position
    outside lon/lat ranges.

    Examples
    --------
    >>> gcj = from_wgs84(121.78, 29.87, "gcj02")  # about 490 m away
    >>> [round(v, 9) for v in to_wgs84(*gcj, "gcj02")]
    [121.78, 29.87]
    """
    _check_crs(crs)
    validate_lonlat(lon, lat)
    if crs == "wgs84":
        return float(lon), float(lat)
    return _in_range(*_inverse(crs, float(lon), float(lat)))


def from_wgs84(lon: float, lat: float, crs: str) -> LonLat:
    """Convert a WGS-84 position to ``crs`` (e.g. to place it on an AMap or Baidu map)."""
    _check_crs(crs)
    validate_lonlat(lon, lat)
    return _FORWARD[crs](float(lon), float(lat))


def geodesic_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance in metres along the WGS-84 ellipsoid (Karney's geodesic, via pyproj)."""
    _, _, distance = _WGS84.inv(lon1, lat1, lon2, lat2)
    return float(distance)


def _ring_area_m2(ring: shapely.LinearRing) -> float:
    lons, lats = ring.xy
    area, _ = _WGS84.polygon_area_perimeter(lons, lats)
    return abs(area)


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area in square metres on the WGS-84 ellipsoid of the polygons in ``geom``.

    Edges are taken as geodesics, as PostGIS ``geography`` does. Rings are
    measured one by one and holes subtracted whatever their orientation:
    pyproj's ``geometry_area_perimeter`` sums signed ring areas, so a hole
    wound like its shell would be *added*, and a MultiPolygon with mixed
    orientations would cancel out. Points and lines have no area: 0. In a
    GeometryCollection only the polygons count.
    """
    total = 0.0
    for part in shapely.get_parts(geom):
        if isinstance(part, shapely.Polygon) and not part.is_empty:
            total += _ring_area_m2(part.exterior)
            total -= sum(_ring_area_m2(hole) for hole in part.interiors)
        elif isinstance(part, BaseMultipartGeometry):  # a multi-part inside a collection
            total += geodesic_area_m2(part)
    return total


WORLD_BOX = (-180.0, -90.0, 180.0, 90.0)


def degree_box(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)``: the lon/lat box around (lon, lat) that
    holds every point within ``metres`` on the WGS-84 spheroid, with a 1 %
    margin, for a GiST index on a 4326 geometry to find the candidates.
    Near a pole or across the antimeridian, where no such box is simple,
    the whole world: the index does not help there, but nothing is lost.

    A degree of latitude is at least 110,574 m (at the equator); a degree of
    longitude at least 111,319.49 m x cos(latitude), taken at the highest
    latitude the circle reaches.
    """
    dlat = 1.01 * metres / 110_574.0
    highest = abs(lat) + dlat
    if highest >= 89.0:
        return WORLD_BOX
    dlon = 1.01 * metres / (111_319.49 * math.cos(math.radians(highest)))
    if abs(lon) + dlon >= 180.0:
        return WORLD_BOX
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
