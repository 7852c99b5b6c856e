"""marshmallow fields for GeoJSON geometries (shapely inside)."""
from __future__ import annotations

from typing import Any

from geoalchemy2 import WKBElement
from geoalchemy2.shape import to_shape
from marshmallow import ValidationError, fields
from shapely.geometry.base import BaseGeometry

from geo.crs import geodesic_area_m2
from geo.io import geometry_from_geojson, geometry_to_geojson
from geo.validate import GeometryError, validate_point, validate_polygonal

POLYGONAL = "polygonal"
POINT = "point"
# The least a community or zone drawn on a map may enclose: a ring of a few billionths of a degree passes every
# validity test, and a split of it into zones cannot be made.
MIN_DRAWN_AREA_M2 = 1.0


def as_shape(value: Any) -> BaseGeometry:
    """A shapely geometry from what the ORM holds (WKBElement) or shapely itself."""
    return to_shape(value) if isinstance(value, WKBElement) else value


class GeoJSONGeometry(fields.Field):
    """A GeoJSON (RFC 7946) geometry object, loaded into a validated shapely geometry.

    ``kind="polygonal"`` accepts Polygon and MultiPolygon only; ``kind="point"``
    a Point. Invalid geometries fail with the GEOS reason and where it is.
    """

    def __init__(self, *, kind: str | None = None, min_area_m2: float | None = None, **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata", {})
        metadata.setdefault("description", "GeoJSON geometry (RFC 7946), lon/lat WGS-84")
        if kind == POLYGONAL:
            metadata.setdefault("example", {"type": "Polygon", "coordinates": [[[121.77, 29.86], [121.79, 29.86], [121.79, 29.88], [121.77, 29.86]]]})
        super().__init__(metadata=metadata, **kwargs)
        self.kind = kind
        self.min_area_m2 = min_area_m2

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return geometry_to_geojson(as_shape(value))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> BaseGeometry:
        try:
            geom = geometry_from_geojson(value)
            if self.kind == POLYGONAL:
                validate_polygonal(geom)
                if self.min_area_m2 is not None:
                    area = geodesic_area_m2(geom)
                    if area < self.min_area_m2:
                        raise GeometryError(f"it encloses {area:.3g} m², less than {self.min_area_m2:g} m²: a slip "
                                            "of the pen, not an area")
            elif self.kind == POINT:
                validate_point(geom)
        except GeometryError as exc:
            raise ValidationError(f"Invalid geometry: {exc}") from exc
        return geom
