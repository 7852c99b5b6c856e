"""GeoJSON and WKB to and from shapely geometries.

The GeoJSON reader is strict on purpose: it is the front door for geometries
drawn by users and sent by phones, and anything it lets through ends up in the
database. Shapely itself is lenient (it closes open rings, coerces strings to
numbers, accepts NaN), so the raw coordinates are checked here first and every
problem comes out as a :class:`~geo.validate.GeometryError`, never as a
``TypeError`` or a GEOS exception. Results are always 2D: an altitude, which
RFC 7946 allows as a third number, is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geo.validate import GeometryError, _is_number

__all__ = [
    "geometry_from_geojson",
    "geometry_from_wkb",
    "geometry_to_geojson",
    "geometry_to_wkb",
]

Position = tuple[float, ...]

# RFC 7946 says to avoid nested GeometryCollections; a small cap keeps hostile
# input from recursing without bound.
_MAX_COLLECTION_DEPTH = 4


def _kind(value: object) -> str:
    """Describe a value in JSON words for error messages, without echoing it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    if _is_number(value):
        return "a number"
    return type(value).__name__


def _position(value: object) -> Position:
    """A position: 2 or 3 finite numbers, returned as floats (altitude kept for now)."""
    if not isinstance(value, (list, tuple)):
        raise GeometryError(f"a position must be an array of 2 or 3 numbers, got {_kind(value)}")
    if not 2 <= len(value) <= 3:
        raise GeometryError(f"a position must have 2 or 3 numbers, got {len(value)}")
    numbers = []
    for item in value:
        if not _is_number(item):
            raise GeometryError(f"a coordinate must be a number, got {_kind(item)}")
        try:
            number = float(item)
        except OverflowError:  # an int too large for a float
            number = math.inf
        if not math.isfinite(number):
            raise GeometryError(f"a coordinate must be finite, got {number}")
        numbers.append(number)
    return tuple(numbers)


def _array(value: object, what: str) -> list[Any] | tuple[Any, ...]:
    """A non-empty JSON array (list or tuple) of ``what``."""
    if not isinstance(value, (list, tuple)):
        raise GeometryError(f"{what} must be an array, got {_kind(value)}")
    if not value:
        raise GeometryError(f"{what} must not be empty")
    return value


def _xy(positions: list[Position]) -> list[tuple[float, float]]:
    return [(p[0], p[1]) for p in positions]


def _line_positions(value: object, what: str = "LineString coordinates") -> list[Position]:
    positions = [_position(p) for p in _array(value, what)]
    if len(positions) < 2:
        raise GeometryError(
            f"a LineString has {len(positions)} position; it needs at least 2",
            _xy(positions)[0],
        )
    return positions


def _ring(value: object) -> list[tuple[float, float]]:
    """A linear ring: at least 4 positions, explicitly closed (shapely would close it silently)."""
    positions = [_position(p) for p in _array(value, "a polygon ring")]
    xy = _xy(positions)
    if len(positions) < 4:
        raise GeometryError(
            f"ring has {len(positions)} positions; a closed ring needs at least 4", xy[0]
        )
    if positions[0] != positions[-1]:
        raise GeometryError("ring is not closed: its first and last positions differ", xy[0])
    return xy


def _polygon(value: object) -> shapely.Polygon:
    rings = [_ring(r) for r in _array(value, "Polygon coordinates")]
    return shapely.Polygon(rings[0], rings[1:])


def _point(value: object) -> shapely.Point:
    return shapely.Point(_xy([_position(value)])[0])


def _multi_point(value: object) -> shapely.MultiPoint:
    return shapely.MultiPoint(_xy([_position(p) for p in _array(value, "MultiPoint coordinates")]))


def _line_string(value: object) -> shapely.LineString:
    return shapely.LineString(_xy(_line_positions(value)))


def _multi_line_string(value: object) -> shapely.MultiLineString:
    lines = _array(value, "MultiLineString coordinates")
    return shapely.MultiLineString([_xy(_line_positions(line)) for line in lines])


def _multi_polygon(value: object) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([_polygon(p) for p in _array(value, "MultiPolygon coordinates")])


_BUILDERS: dict[str, Callable[[object], BaseGeometry]] = {
    "Point": _point,
    "MultiPoint": _multi_point,
    "LineString": _line_string,
    "MultiLineString": _multi_line_string,
    "Polygon": _polygon,
    "MultiPolygon": _multi_polygon,
}


def _parse(obj: object, depth: int) -> BaseGeometry:
    if not isinstance(obj, Mapping):
        raise GeometryError(f"expected a GeoJSON geometry object, got {_kind(obj)}")
    if "type" not in obj:
        raise GeometryError('a GeoJSON geometry needs a "type"')
    gtype = obj["type"]
    if gtype == "GeometryCollection":
        if depth >= _MAX_COLLECTION_DEPTH:
            raise GeometryError("GeometryCollections are nested too deeply")
        members = _array(obj.get("geometries"), 'GeometryCollection "geometries"')
        return shapely.GeometryCollection([_parse(m, depth + 1) for m in members])
    if gtype in ("Feature", "FeatureCollection"):
        raise GeometryError(f"expected a GeoJSON geometry, got a {gtype}")
    builder = _BUILDERS.get(gtype) if isinstance(gtype, str) else None
    if builder is None:
        shown = repr(gtype) if isinstance(gtype, str) and len(gtype) <= 40 else _kind(gtype)
        raise GeometryError(f"unknown GeoJSON geometry type {shown}")
    if "coordinates" not in obj:
        raise GeometryError(f'a {gtype} needs "coordinates"')
    return builder(obj["coordinates"])


def geometry_from_geojson(obj: object) -> BaseGeometry:
    """Parse an RFC 7946 GeoJSON geometry object into a 2D shapely geometry.

    Only the structure is checked here (types, nesting, numbers, ring closure);
    use :func:`geo.validate.validate_polygonal` for ranges and GEOS validity.

    Raises
    ------
    GeometryError
        For anything that is not a well-formed geometry object, whatever it is.

    Examples
    --------
    >>> geometry_from_geojson({"type": "Point", "coordinates": [121.78, 29.87, 5]}).wkt
    'POINT (121.78 29.87)'
    """
    try:
        return _parse(obj, depth=0)
    except GeometryError:
        raise
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        # The checks above should leave shapely nothing to object to; this is a
        # backstop so callers can rely on a single exception type.
        raise GeometryError("not a valid GeoJSON geometry") from exc


def _coordinates(geom: BaseGeometry) -> Any:
    if geom.is_empty:
        return []
    if isinstance(geom, shapely.Point):
        return [geom.x, geom.y]
    if isinstance(geom, (shapely.LineString, shapely.LinearRing)):
        return shapely.get_coordinates(geom).tolist()
    if isinstance(geom, shapely.Polygon):
        return [_coordinates(geom.exterior), *(_coordinates(r) for r in geom.interiors)]
    # MultiPoint, MultiLineString, MultiPolygon
    return [_coordinates(part) for part in geom.geoms]


def geometry_to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """Write a shapely geometry as a 2D GeoJSON geometry dict (lists, not tuples).

    Polygon rings are written with the RFC 7946 right-hand rule (exterior
    counter-clockwise, holes clockwise), which the RFC requires of writers.
    """
    if isinstance(geom, shapely.GeometryCollection) and not isinstance(
        geom, (shapely.MultiPoint, shapely.MultiLineString, shapely.MultiPolygon)
    ):
        return {
            "type": "GeometryCollection",
            "geometries": [geometry_to_geojson(g) for g in geom.geoms],
        }
    if isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
        geom = shapely.orient_polygons(geom, exterior_cw=False)
    gtype = "LineString" if isinstance(geom, shapely.LinearRing) else geom.geom_type
    return {"type": gtype, "coordinates": _coordinates(geom)}


def geometry_from_wkb(data: bytes | bytearray | memoryview | str) -> BaseGeometry:
    """Read WKB or EWKB, as bytes or as a hex string (what PostGIS returns); result is 2D.

    ``memoryview`` is accepted because that is how psycopg2 hands over bytea.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, (bytes, str)):
        raise GeometryError(f"expected WKB bytes or a hex string, got {type(data).__name__}")
    try:
        geom = shapely.from_wkb(data)
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise GeometryError("not valid WKB") from exc
    if geom is None:
        raise GeometryError("not valid WKB")
    return shapely.force_2d(geom) if shapely.has_z(geom) else geom


def geometry_to_wkb(geom: BaseGeometry) -> bytes:
    """Write 2D WKB (little-endian, no SRID: the column type carries EPSG:4326)."""
    return bytes(shapely.to_wkb(geom, output_dimension=2, include_srid=False))
