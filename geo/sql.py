"""PostGIS expression builders: they build SQLAlchemy expressions, never execute.

Everything is stored in EPSG:4326; metric answers go through ``geography``
so that distances and areas are metres on the WGS-84 spheroid, never degrees.
"""
from __future__ import annotations

from typing import Any

from geoalchemy2 import Geography
from geoalchemy2.shape import from_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import cast, func
from sqlalchemy.sql.elements import ColumnElement

SRID = 4326


def literal_geometry(geom: BaseGeometry) -> Any:
    """A bound EPSG:4326 geometry parameter from a shapely geometry."""
    return from_shape(geom, srid=SRID)


def point(lon: float, lat: float) -> ColumnElement:
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)


def geography(expr: Any) -> ColumnElement:
    return cast(expr, Geography)


def area_m2(expr: Any) -> ColumnElement:
    """Area on the spheroid in square metres."""
    return func.ST_Area(geography(expr))


def distance_m(a: Any, b: Any) -> ColumnElement:
    """Geodesic distance in metres."""
    return func.ST_Distance(geography(a), geography(b))


def buffered_m(expr: Any, metres: float) -> ColumnElement:
    """``expr`` grown by ``metres`` on the ground, back as a 4326 geometry."""
    return cast(func.ST_Buffer(geography(expr), metres), _geometry_type())


def interiors_intersect(a: Any, b: Any) -> ColumnElement:
    """True when the interiors share an area (touching edges do not count)."""
    return func.ST_Relate(a, b, "2********")


def _geometry_type():
    from geoalchemy2 import Geometry

    return Geometry(srid=SRID)
