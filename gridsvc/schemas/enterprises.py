"""Enterprise shapes; the location is a point input ``{lon, lat, crs}``."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridsvc.fields import as_shape
from gridsvc.schemas.common import Float, Int, PageOut, PageQuery, PointIn, Trimmed
from gridsvc.schemas.communities import NAME, UserRefOut

WORKERS = validate.Range(min=0, max=1_000_000)
DEMAND = validate.Range(min=0, max=1_000_000)
SHARE = validate.Range(min=0, max=1)
DEMAND_HELP = {"description": "car spaces the enterprise needs, when known; null: workers x car_commuter_share"}
SHARE_HELP = {"description": "share of its workers who drive to work, 0..1; null: the community's", "example": 0.15}


class EnterpriseCreate(Schema):
    name = Trimmed(required=True, validate=NAME, metadata={"example": "宁波灵峰精密机械有限公司"})
    location = fields.Nested(PointIn, required=True)
    workers = Int(load_default=0, validate=WORKERS)
    parking_demand = Int(allow_none=True, validate=DEMAND, metadata=DEMAND_HELP)
    car_commuter_share = Float(allow_none=True, allow_nan=False, validate=SHARE, metadata=SHARE_HELP)


class EnterpriseUpdate(Schema):
    name = Trimmed(validate=NAME)
    location = fields.Nested(PointIn)
    workers = Int(validate=WORKERS)
    parking_demand = Int(allow_none=True, validate=DEMAND, metadata=DEMAND_HELP)
    car_commuter_share = Float(allow_none=True, allow_nan=False, validate=SHARE, metadata=SHARE_HELP)


class ZoneRefOut(Schema):
    id = Int()
    code = fields.Str()
    name = fields.Str()


class EnterpriseOut(Schema):
    id = Int()
    community_id = Int()
    name = fields.Str()
    workers = Int()
    parking_demand = Int(allow_none=True)
    car_commuter_share = Float(allow_none=True)
    location = fields.Method("_location", metadata={"description": "WGS-84 {lon, lat}"})
    zone = fields.Nested(ZoneRefOut, allow_none=True, metadata={"description": "the zone holding the location"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    created_by = fields.Pluck(UserRefOut, "username", allow_none=True)
    updated_by = fields.Pluck(UserRefOut, "username", allow_none=True)

    def _location(self, enterprise) -> dict:
        point = as_shape(enterprise.location)
        return {"lon": point.x, "lat": point.y, "crs": "wgs84"}


class EnterpriseQuery(PageQuery):
    zone_id = Int(metadata={"description": "only enterprises in this zone"})


class EnterprisePageOut(PageOut):
    items = fields.List(fields.Nested(EnterpriseOut))
