"""Checks that a geometry is fit to store: type, coordinate ranges, GEOS validity.

Every failure is a :class:`GeometryError` carrying a human ``reason`` and, when
known, the ``location`` of the problem, so that an API can tell a user *where*
their drawing is broken (the way PostGIS ``ST_IsValidDetail`` does), not just
that it is.
"""

from __future__ import annotations

import math
import re

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = [
    "GeometryError",
    "validate_lonlat",
    "validate_point",
    "validate_polygonal",
]


class GeometryError(ValueError):
    """A geometry that cannot be accepted.

    Attributes
    ----------
    reason:
        What is wrong, in words, e.g. ``"Self-intersection"``.
    location:
        ``(lon, lat)`` of the problem when it is known, else ``None``.

    Examples
    --------
    >>> str(GeometryError("Self-intersection", (121.781, 29.872)))
    'Self-intersection at (121.781, 29.872)'
    """

    def __init__(self, reason: str, location: tuple[float, float] | None = None) -> None:
        self.reason = reason
        self.location = location
        super().__init__(self.__str__())

    def __reduce__(self) -> tuple[type[GeometryError], tuple[str, tuple[float, float] | None]]:
        # Keep reason and location through pickling (e.g. multiprocessing workers).
        return (type(self), (self.reason, self.location))

    def __str__(self) -> str:
        if self.location is None:
            return self.reason
        lon, lat = self.location
        return f"{self.reason} at ({_fmt(lon)}, {_fmt(lat)})"


def _fmt(value: float) -> str:
    """Format a coordinate compactly: at most 7 decimals (about 1 cm), no trailing zeros."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.7f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _is_number(value: object) -> bool:
    # bool is a subclass of int; a JSON ``true`` is never a coordinate.
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def validate_lonlat(lon: float, lat: float) -> None:
    """Check that ``(lon, lat)`` is a finite WGS-84 position.

    Raises
    ------
    GeometryError
        Naming the bad value, e.g. ``"longitude 200 is outside [-180, 180]"``.
    """
    for name, value in (("longitude", lon), ("latitude", lat)):
        if not _is_number(value):
            raise GeometryError(f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise GeometryError(f"{name} must be finite, got {value}")
    location = (float(lon), float(lat))
    if not -180.0 <= lon <= 180.0:
        raise GeometryError(f"longitude {_fmt(lon)} is outside [-180, 180]", location)
    if not -90.0 <= lat <= 90.0:
        raise GeometryError(f"latitude {_fmt(lat)} is outside [-90, 90]", location)


def _validate_coordinates(geom: BaseGeometry) -> None:
    """Check every vertex's range in one vectorised pass; report the first bad one."""
    coords = shapely.get_coordinates(geom)
    bad = ~(
        np.isfinite(coords).all(axis=1)
        & (np.abs(coords[:, 0]) <= 180.0)
        & (np.abs(coords[:, 1]) <= 90.0)
    )
    if bad.any():
        lon, lat = coords[int(np.argmax(bad))]
        validate_lonlat(float(lon), float(lat))  # raises with the precise message


# GEOS reports e.g. "Self-intersection[121.78 29.87]"; the bracket holds the location.
_REASON = re.compile(r"^(?P<reason>.*?)\s*\[(?P<x>\S+) (?P<y>\S+)\]$")


def _geos_invalidity(geom: BaseGeometry) -> GeometryError | None:
    """Translate GEOS's validity verdict into a GeometryError, or None when valid."""
    if shapely.is_valid(geom):
        return None
    text = str(shapely.is_valid_reason(geom))
    match = _REASON.match(text)
    if match is None:
        return GeometryError(text or "invalid geometry")
    try:
        location: tuple[float, float] | None = (float(match["x"]), float(match["y"]))
    except ValueError:
        location = None
    return GeometryError(match["reason"], location)


def _type_name(geom: object) -> str:
    return geom.geom_type if isinstance(geom, BaseGeometry) else type(geom).__name__


def validate_polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Check that ``geom`` is a non-empty, valid (Multi)Polygon in lon/lat.

    Returns the geometry itself (dropped to 2D if it carried Z), so it can be
    used inline: ``boundary = validate_polygonal(geometry_from_geojson(obj))``.

    Raises
    ------
    GeometryError
        For a wrong type ("expected a Polygon or MultiPolygon, got Point"), an
        empty geometry, a position out of range, or a GEOS invalidity such as
        "Self-intersection" with its location.
    """
    if not isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
        raise GeometryError(f"expected a Polygon or MultiPolygon, got {_type_name(geom)}")
    if geom.is_empty:
        raise GeometryError(f"{geom.geom_type} is empty")
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)
    _validate_coordinates(geom)
    _refuse_half_globe_edges(geom)
    error = _geos_invalidity(geom)
    if error is not None:
        raise error
    return geom


# An edge this long in longitude has no single meaning on the globe: PostGIS's
# geography (areas and distances in metres) takes 180° as an antipodal error
# and more as the short way round, across the antimeridian.
MAX_EDGE_LON_SPAN = 180.0


def _refuse_half_globe_edges(geom: BaseGeometry) -> None:
    polygons = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
    for polygon in polygons:
        for ring in (polygon.exterior, *polygon.interiors):
            lons = shapely.get_coordinates(ring)[:, 0]
            spans = np.abs(np.diff(lons))
            if spans.size and spans.max() >= MAX_EDGE_LON_SPAN:
                at = int(np.argmax(spans))
                raise GeometryError(f"an edge spans {spans[at]:g}° of longitude (from {lons[at]:g} to {lons[at + 1]:g}); "
                                    f"edges must span less than {MAX_EDGE_LON_SPAN:g}°: add vertices along it")


def validate_point(geom: BaseGeometry) -> shapely.Point:
    """Check that ``geom`` is a non-empty Point with a valid lon/lat; return it (2D)."""
    if not isinstance(geom, shapely.Point):
        raise GeometryError(f"expected a Point, got {_type_name(geom)}")
    if geom.is_empty:
        raise GeometryError("Point is empty")
    validate_lonlat(geom.x, geom.y)
    return shapely.force_2d(geom) if shapely.has_z(geom) else geom
