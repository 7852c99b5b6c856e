"""Pure geometry for gridsvc: parsing, validation, coordinate systems, grid zones.

Shapely and pyproj in, shapely out. Nothing here knows about Flask, HTTP or the
database, so every function can be tested and benchmarked on its own.
"""

from geo.crs import (
    SUPPORTED_CRS,
    from_wgs84,
    geodesic_area_m2,
    geodesic_distance_m,
    to_wgs84,
)
from geo.grid import Coverage, coverage, split_equal_area
from geo.io import (
    geometry_from_geojson,
    geometry_from_wkb,
    geometry_to_geojson,
    geometry_to_wkb,
)
from geo.validate import GeometryError, validate_lonlat, validate_point, validate_polygonal

__all__ = [
    "SUPPORTED_CRS",
    "Coverage",
    "GeometryError",
    "coverage",
    "from_wgs84",
    "geodesic_area_m2",
    "geodesic_distance_m",
    "geometry_from_geojson",
    "geometry_from_wkb",
    "geometry_to_geojson",
    "geometry_to_wkb",
    "split_equal_area",
    "to_wgs84",
    "validate_lonlat",
    "validate_point",
    "validate_polygonal",
]
