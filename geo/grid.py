"""Grid zones: split a community into zones of equal area, and check a zoning.

A community (社区) is managed as N grid zones (网格), each with a liaison.
:func:`split_equal_area` proposes such a zoning; :func:`coverage` tells how
well any zoning, proposed or hand-drawn, tiles its community.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, TypeVar

import numpy as np
import shapely
import shapely.ops
from shapely.geometry.base import BaseGeometry

from geo.crs import geodesic_area_m2
from geo.validate import validate_polygonal

__all__ = ["Coverage", "coverage", "split_equal_area"]

K = TypeVar("K", bound=Hashable)
Polygonal: TypeAlias = shapely.Polygon | shapely.MultiPolygon

MAX_ZONES = 1000

# Overlays in coverage() snap to this grid (degrees; about 1 micrometre). Zones
# cut from a boundary have vertices that lie on the boundary's edges only to
# within floating-point rounding; GEOS's floating overlay can then fail and
# fall back to a snapping noder that moves vertices by millimetres, inventing
# slivers of a square metre or more. Snap-rounding to a fixed grid is robust
# and its error (area ~ edge length x 1e-6 m) stays far below min_area_m2.
_OVERLAY_GRID_DEG = 1e-11

# --- an equal-area plane for measuring while searching -----------------------
#
# The cut search below measures thousands of candidate pieces, and pyproj's
# geodesic area costs about 75 us a call against 7 us for a planar clip and
# area. So pieces are measured in Lambert's cylindrical equal-area projection
# of the WGS-84 ellipsoid, where planar area *is* ellipsoidal area:
#     X = a * lon,   Y = (a / 2) * q(lat)      (lon, lat in radians)
# with q the authalic function below. X depends only on lon and Y only on lat,
# so a cut along a meridian or a parallel in lon/lat is a straight vertical or
# horizontal cut in the plane too. Only measurements use the plane: the zones
# themselves are always cut in the original lon/lat coordinates.

_A = 6378137.0  # WGS-84 semi-major axis, m
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_E = math.sqrt(_E2)


def _authalic_q(lat_deg: np.ndarray | float) -> np.ndarray:
    s = np.sin(np.radians(lat_deg))
    return (1 - _E2) * (s / (1 - _E2 * s * s) - np.log((1 - _E * s) / (1 + _E * s)) / (2 * _E))


def _plane_x(lon_deg: np.ndarray | float) -> np.ndarray:
    return _A * np.radians(lon_deg)


def _plane_y(lat_deg: np.ndarray | float) -> np.ndarray:
    return _A / 2 * _authalic_q(lat_deg)


def _to_plane(coords: np.ndarray) -> np.ndarray:
    return np.column_stack([_plane_x(coords[:, 0]), _plane_y(coords[:, 1])])


# --- splitting ----------------------------------------------------------------

# Bisection on the cut position stops when the lower side's area is this close
# (relative to the piece) to its target, or when the position stops moving.
_AREA_TOLERANCE = 1e-10
_MAX_SEARCH_STEPS = 64


def _cut_across_longer_side(geom: BaseGeometry) -> int:
    """0 to cut along a meridian (piece is wider than tall on the ground), 1 along a parallel."""
    minx, miny, maxx, maxy = geom.bounds
    width = (maxx - minx) * math.cos(math.radians((miny + maxy) / 2))
    return 0 if width >= maxy - miny else 1


def _cut_position(geom: BaseGeometry, axis: int, fraction: float) -> float:
    """The lon (axis 0) or lat (axis 1) below which lies ``fraction`` of the area."""
    plane = shapely.transform(geom, _to_plane)
    pminx, pminy, pmaxx, pmaxy = plane.bounds
    target = fraction * plane.area
    lo, hi = float(geom.bounds[axis]), float(geom.bounds[axis + 2])
    to_plane = _plane_x if axis == 0 else _plane_y
    for _ in range(_MAX_SEARCH_STEPS):
        mid = (lo + hi) / 2
        if mid in (lo, hi):  # no float left between them
            break
        edge = float(to_plane(mid))
        if axis == 0:
            below = shapely.clip_by_rect(plane, pminx - 1, pminy - 1, edge, pmaxy + 1).area
        else:
            below = shapely.clip_by_rect(plane, pminx - 1, pminy - 1, pmaxx + 1, edge).area
        if abs(below - target) <= _AREA_TOLERANCE * plane.area:
            return mid
        if below < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _join(parts: list[shapely.Polygon]) -> Polygonal:
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _split_at(geom: Polygonal, axis: int, at: float) -> tuple[Polygonal, Polygonal]:
    """Cut ``geom`` along the meridian/parallel ``at``; return (west or south, east or north).

    ``shapely.ops.split`` nodes the boundary with the cut line and polygonizes,
    so both sides get the very same vertices along the cut and every original
    vertex is kept as it was. A concave piece can fall into several parts;
    each goes to the side its interior point lies on.
    """
    minx, miny, maxx, maxy = geom.bounds
    pad = max(maxx - minx, maxy - miny)  # any margin works; the line must cross the bbox
    if axis == 0:
        line = shapely.LineString([(at, miny - pad), (at, maxy + pad)])
    else:
        line = shapely.LineString([(minx - pad, at), (maxx + pad, at)])
    lower: list[shapely.Polygon] = []
    upper: list[shapely.Polygon] = []
    for part in shapely.ops.split(geom, line).geoms:
        side = lower if part.representative_point().coords[0][axis] < at else upper
        side.append(part)
    return _join(lower), _join(upper)


def _part_count(geom: BaseGeometry) -> int:
    return int(shapely.get_num_geometries(geom))


def _best_cut(geom: Polygonal, count: int) -> tuple[Polygonal, int, Polygonal, int]:
    """Cut a piece meant for ``count`` zones in two; return (lower, its count, upper, its count).

    The preferred cut crosses the longer side of the piece with floor(n/2)
    zones below. In a concave piece that cut can strand a lobe: a side with
    more separate parts than zones must end up with a zone in disconnected
    parts, and a liaison should not look after two separate places. So the
    other count split and then the other axis are tried too, and the first
    cut that strands nothing and adds at most one part wins; failing that,
    the one that strands least.
    """
    preferred = _cut_across_longer_side(geom)
    lower_counts = sorted({count // 2, count - count // 2})
    allowed_parts = _part_count(geom) + 1  # one piece in, two pieces out
    best: tuple[tuple[int, int], tuple[Polygonal, int, Polygonal, int]] | None = None
    for axis in (preferred, 1 - preferred):
        for lower_count in lower_counts:
            upper_count = count - lower_count
            at = _cut_position(geom, axis, lower_count / count)
            lower, upper = _split_at(geom, axis, at)
            cut = (lower, lower_count, upper, upper_count)
            lower_parts, upper_parts = _part_count(lower), _part_count(upper)
            parts = lower_parts + upper_parts
            stranded = max(0, lower_parts - lower_count) + max(0, upper_parts - upper_count)
            if stranded == 0 and parts <= allowed_parts:
                return cut
            if best is None or (stranded, parts) < best[0]:
                best = ((stranded, parts), cut)
    assert best is not None
    return best[1]


def _bisect(geom: Polygonal, count: int, out: list[Polygonal]) -> None:
    """Recursive bisection until each piece is one zone; appends zones to ``out``."""
    if count == 1:
        out.append(geom)
        return
    lower, lower_count, upper, upper_count = _best_cut(geom, count)
    _bisect(lower, lower_count, out)
    _bisect(upper, upper_count, out)


def _node_coverage(pieces: list[Polygonal]) -> list[Polygonal]:
    """Give neighbours identical vertices along every shared edge.

    Each cut only adds vertices to the piece it cuts, so where a later cut
    meets an earlier one the neighbour across the earlier cut lacks the new
    vertex (a "T-junction"). Coverage tools (JTS/GEOS CoverageValidator,
    PostGIS ST_CoverageInvalidEdges) require matching vertices, so all edges
    are noded together, re-polygonized, and each face returned to the piece
    that contains it.
    """
    array = np.array(pieces, dtype=object)
    edges = shapely.union_all(shapely.boundary(array))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    tree = shapely.STRtree(array)
    face_index, piece_index = tree.query(shapely.point_on_surface(faces), predicate="within")
    owned: list[list[shapely.Polygon]] = [[] for _ in pieces]
    for f, p in zip(face_index.tolist(), piece_index.tolist(), strict=True):
        owned[p].append(faces[f])
    # A piece without faces cannot happen for pieces of positive area; keep
    # the piece as it was rather than lose it.
    return [_join(parts) if parts else piece for parts, piece in zip(owned, pieces, strict=True)]


def _reading_order(pieces: list[Polygonal]) -> list[Polygonal]:
    """Order zones like text: rows from north to south, each row from west to east.

    Zones from a bisection do not sit on a strict grid, so rows are formed
    greedily: the remaining zone with the northernmost centre leads a row,
    and every remaining zone whose north-south extent overlaps the leader's
    by at least half of the shorter of the two joins it. Within a row, zones
    go by the longitude of their centre.
    """
    array = np.array(pieces, dtype=object)
    centres = shapely.get_coordinates(shapely.centroid(array))
    bounds = shapely.bounds(array)  # minx, miny, maxx, maxy per zone
    bottoms, tops = bounds[:, 1], bounds[:, 3]

    def same_row(i: int, leader: int) -> bool:
        overlap = min(tops[i], tops[leader]) - max(bottoms[i], bottoms[leader])
        shorter = min(tops[i] - bottoms[i], tops[leader] - bottoms[leader])
        return bool(overlap >= shorter / 2)

    remaining = sorted(range(len(pieces)), key=lambda i: (-centres[i][1], centres[i][0]))
    order: list[int] = []
    while remaining:
        leader = remaining[0]
        row = [i for i in remaining if same_row(i, leader)]
        order.extend(sorted(row, key=lambda i: (centres[i][0], -centres[i][1])))
        remaining = [i for i in remaining if i not in row]
    return [pieces[i] for i in order]


def split_equal_area(boundary: BaseGeometry, count: int) -> list[Polygonal]:
    """Divide a (Multi)Polygon in lon/lat into ``count`` compact zones of equal area.

    Recursive bisection: a piece meant for n zones is cut along a meridian or
    a parallel, across the longer side of its bounding box measured on the
    ground, so that floor(n/2)/n of its area lies west/south of the cut. The
    cut position is found by bisection search on area. Areas are ellipsoidal,
    so zones are equal on the ground, not in degrees: largest/smallest is
    typically within 1.0001 (the residue is the difference between straight
    lon/lat edges and the geodesic edges ``geodesic_area_m2`` assumes, which
    grows with the square of the edge length).

    The zones tile the boundary exactly: the boundary's own vertices are kept
    unchanged, and neighbours share identical vertices along common edges.
    They come in reading order (rows north to south, each west to east), and
    the result is deterministic.

    A zone is a MultiPolygon when the boundary forces it: a MultiPolygon
    boundary with more parts than zones, or, rarely, a deeply concave outline
    where no cut along a meridian or parallel keeps every zone in one piece
    (about 0.5 % of zones in a notched 1,000-zone town).

    Parameters
    ----------
    boundary:
        A valid Polygon or MultiPolygon in lon/lat degrees.
    count:
        Number of zones, 1 to 1000.

    Raises
    ------
    GeometryError
        If ``boundary`` is not a valid (Multi)Polygon.
    ValueError
        If ``count`` is out of range.

    Examples
    --------
    >>> zones = split_equal_area(shapely.box(121.77, 29.86, 121.79, 29.88), 4)
    >>> len(zones), all(z.is_valid for z in zones)
    (4, True)
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ZONES:
        raise ValueError(f"count must be an integer from 1 to {MAX_ZONES}, got {count!r}")
    boundary = validate_polygonal(boundary)
    pieces: list[Polygonal] = []
    _bisect(boundary, count, pieces)
    if count > 1:
        pieces = _node_coverage(pieces)
    return _reading_order(pieces)


# --- coverage -----------------------------------------------------------------


@dataclass
class Coverage(Generic[K]):
    """How a set of zones covers a community. Areas are in m² on the WGS-84 ellipsoid.

    Only pieces of at least ``min_area_m2`` are listed in ``gaps``,
    ``overlaps`` and ``outside``; smaller ones are floating-point noise.
    Pieces of zero area are never listed, whatever the threshold.
    """

    community_area_m2: float
    covered_area_m2: float  # the community less every uncovered piece, slivers included
    covered_share: float  # covered / community, 0..1
    gaps: list[tuple[shapely.Polygon, float]] = field(default_factory=list)  # largest first
    overlaps: list[tuple[K, K, float]] = field(default_factory=list)  # in zone order
    outside: list[tuple[K, float]] = field(default_factory=list)  # in zone order


def coverage(
    boundary: BaseGeometry,
    zones: Mapping[K, BaseGeometry],
    *,
    min_area_m2: float = 0.01,
) -> Coverage[K]:
    """Measure how well ``zones`` tile ``boundary``: gaps, overlapping pairs, parts outside.

    All geometries must be valid (see :func:`geo.validate.validate_polygonal`).
    Overlap candidates come from an STRtree and a cheap interior-intersects
    test, so only truly overlapping pairs pay for an intersection.

    Examples
    --------
    >>> b = shapely.box(121.77, 29.86, 121.79, 29.88)
    >>> report = coverage(b, {"G01": shapely.box(121.77, 29.86, 121.78, 29.88)})
    >>> round(report.covered_share, 3), len(report.gaps)
    (0.5, 1)
    """
    keys = list(zones)
    geoms = np.array([zones[k] for k in keys], dtype=object)
    community_area = geodesic_area_m2(boundary)
    shapely.prepare(boundary)

    grid = _OVERLAY_GRID_DEG
    union = shapely.union_all(geoms, grid_size=grid) if len(geoms) else shapely.Polygon()
    # Covered = community minus what no zone covers. Measuring the union's
    # area instead would count the kinks where cuts meet long outline edges
    # (straight in lon/lat, not geodesic) as a shortfall of ~1e-7.
    gaps = []
    uncovered_area = 0.0
    for part in shapely.get_parts(shapely.difference(boundary, union, grid_size=grid)):
        area = geodesic_area_m2(part)
        uncovered_area += area
        if area > 0 and area >= min_area_m2:
            gaps.append((part, area))
    gaps.sort(key=lambda gap: -gap[1])
    covered_area = max(0.0, community_area - uncovered_area)
    share = covered_area / community_area if community_area > 0 else 0.0

    overlaps: list[tuple[K, K, float]] = []
    if len(geoms) > 1:
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        # Interiors meet ("T" in the first cell of the DE-9IM matrix): more than touching.
        inner = shapely.relate_pattern(geoms[left], geoms[right], "T********")
        pairs = sorted(zip(left[inner].tolist(), right[inner].tolist(), strict=True))
        for i, j in pairs:
            area = geodesic_area_m2(shapely.intersection(geoms[i], geoms[j], grid_size=grid))
            if area > 0 and area >= min_area_m2:
                overlaps.append((keys[i], keys[j], area))

    outside: list[tuple[K, float]] = []
    if len(geoms):
        inside = shapely.covered_by(geoms, boundary)
        for i in np.flatnonzero(~inside).tolist():
            area = geodesic_area_m2(shapely.difference(geoms[i], boundary, grid_size=grid))
            if area > 0 and area >= min_area_m2:
                outside.append((keys[i], area))

    return Coverage(
        community_area_m2=community_area,
        covered_area_m2=covered_area,
        covered_share=share,
        gaps=gaps,
        overlaps=overlaps,
        outside=outside,
    )
