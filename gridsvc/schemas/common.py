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
        return geopoint(data["lon"], data["lat"], data["crs"])


def geopoint(lon: float, lat: float, crs: str) -> GeoPoint:
    wgs_lon, wgs_lat = to_wgs84(lon, lat, crs)
    return GeoPoint(lon=wgs_lon, lat=wgs_lat, input_lon=lon, input_lat=lat, input_crs=crs)


class PositionIn(PointIn):
    """A point plus more fields: loads to a dict whose ``point`` is the GeoPoint."""

    @post_load
    def to_wgs84(self, data: dict, **_kwargs) -> dict:
        point = geopoint(data.pop("lon"), data.pop("lat"), data.pop("crs"))
        return {**data, "point": point}


class PointOut(Schema):
    lon = fields.Float()
    lat = fields.Float()
    crs = fields.Str()
