"""Community request and response shapes."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from geo.crs import geodesic_area_m2
from gridsvc.clock import timezone_named
from gridsvc.fields import MIN_DRAWN_AREA_M2, POLYGONAL, GeoJSONGeometry, as_shape
from gridsvc.models import COMMUNITY_KINDS
from gridsvc.schemas.common import Float, Int, NotBlank, PageOut, PageQuery, Trimmed


def _valid_timezone(name: str) -> None:
    # (timezone_named: "localtime", the host's clock whatever it is, was taken as a community's)
    try:
        timezone_named(name)
    except ValueError as exc:
        raise ValidationError(f"Unknown IANA time zone {name[:64]!r}, e.g. Asia/Shanghai.") from exc


# Names are trimmed (schemas.common.Trimmed): " 宁波A\n" was stored as sent, so ?name=宁波A never found it, and a
# name of spaces was taken.
NAME = NotBlank(200)
COUNT = validate.Range(min=0, max=10_000_000)
SHARE = validate.Range(min=0, max=1)
SHARE_HELP = {"description": "share of workers who drive to work, 0..1, where an enterprise gives none of its own "
                             "(parking demand = workers x share); default 0.10", "example": 0.1}


class CommunityCreate(Schema):
    name = Trimmed(required=True, validate=NAME, metadata={"example": "灵峰工业社区 Lingfeng Industrial Community"})
    kind = fields.Str(required=True, validate=validate.OneOf(COMMUNITY_KINDS))
    boundary = GeoJSONGeometry(required=True, kind=POLYGONAL, min_area_m2=MIN_DRAWN_AREA_M2)
    enterprise_count = Int(allow_none=True, validate=COUNT)
    worker_count = Int(allow_none=True, validate=COUNT)
    timezone = fields.Str(load_default="Asia/Shanghai", validate=_valid_timezone)
    car_commuter_share = Float(allow_nan=False, validate=SHARE, metadata=SHARE_HELP)


class CommunityUpdate(Schema):
    name = Trimmed(validate=NAME)
    kind = fields.Str(validate=validate.OneOf(COMMUNITY_KINDS))
    boundary = GeoJSONGeometry(kind=POLYGONAL, min_area_m2=MIN_DRAWN_AREA_M2)
    enterprise_count = Int(allow_none=True, validate=COUNT)
    worker_count = Int(allow_none=True, validate=COUNT)
    timezone = fields.Str(validate=_valid_timezone)
    car_commuter_share = Float(allow_nan=False, validate=SHARE, metadata=SHARE_HELP)


class UserRefOut(Schema):
    id = Int()
    username = fields.Str()
    display_name = fields.Str()


class CommunityOut(Schema):
    id = Int()
    name = fields.Str()
    kind = fields.Str()
    boundary = GeoJSONGeometry()
    area_m2 = fields.Method("_area", metadata={"description": "geodesic area of the boundary"})
    enterprise_count = Int(allow_none=True)
    worker_count = Int(allow_none=True)
    timezone = fields.Str()
    car_commuter_share = Float()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    created_by = fields.Pluck(UserRefOut, "username", allow_none=True)
    updated_by = fields.Pluck(UserRefOut, "username", allow_none=True)

    def _area(self, community) -> float:
        return round(geodesic_area_m2(as_shape(community.boundary)), 1)


class CommunityQuery(PageQuery):
    kind = fields.Str(validate=validate.OneOf(COMMUNITY_KINDS))


class CommunityPageOut(PageOut):
    items = fields.List(fields.Nested(CommunityOut))


class CommunityDeleteQuery(Schema):
    cascade = fields.Bool(load_default=False, metadata={"description": "also delete its zones, enterprises and parking (never its shifts or service requests: while it has any, it stays)"})
