"""Schemas shared by several resources: paging and point input."""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import Schema, fields, post_load, validate

from geo.crs import SUPPORTED_CRS, to_wgs84

MAX_PAGE = 1000


class PageQuery(Schema):
    limit = fields.Int(load_default=100, validate=validate.Range(1, MAX_PAGE),
                       metadata={"description": f"page size, 1..{MAX_PAGE}"})
    offset = fields.Int(load_default=0, validate=validate.Range(min=0))


class PageOut(Schema):
    total = fields.Int(metadata={"description": "how many matched in all"})
    limit = fields.Int()
    offset = fields.Int()


@dataclass(frozen=True)
class GeoPoint:
    """A point converted to WGS-84, remembering what the client sent."""

    lon: float
    lat: float
    input_lon: float
    input_lat: float
    input_crs: str

    def as_dict(self) -> dict:
        return {"lon": round(self.lon, 8), "lat": round(self.lat, 8), "crs": "wgs84"}

    def input_dict(self) -> dict:
        return {"lon": self.input_lon, "lat": self.input_lat, "crs": self.input_crs}


class PointIn(Schema):
    """``{lon, lat, crs}``: GCJ-02 (AMap, Tencent, WeChat) and BD-09 (Baidu) are converted to WGS-84."""

    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    crs = fields.Str(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                     metadata={"description": "coordinate system the point was measured in"})

    @post_load
    def to_wgs84(self, data: dict, **_kwargs) -> GeoPoint:
        lon, lat = to_wgs84(data["lon"], data["lat"], data["crs"])
        return GeoPoint(lon=lon, lat=lat, input_lon=data["lon"], input_lat=data["lat"], input_crs=data["crs"])


class PointOut(Schema):
    lon = fields.Float()
    lat = fields.Float()
    crs = fields.Str()
