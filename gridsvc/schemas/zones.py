"""Zone shapes: zones travel as GeoJSON Features."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from geo.crs import geodesic_area_m2
from geo.grid import MAX_ZONES
from gridsvc.fields import MIN_DRAWN_AREA_M2, POLYGONAL, GeoJSONGeometry, as_shape
from gridsvc.schemas.common import Float, Int, JsonBool, PointOut, Trimmed, WholeText
from gridsvc.schemas.communities import NAME

CODE = WholeText(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$", error="Use a short code such as G01 (letters, digits, - and _).")
FEATURE = validate.Equal("Feature", error="Must be 'Feature'.")


class ZonePropertiesCreate(Schema):
    code = fields.Str(required=True, validate=CODE, metadata={"example": "G01"})
    name = Trimmed(required=True, validate=NAME, metadata={"example": "第一网格 G01"})
    liaison = fields.Str(allow_none=True, validate=validate.Length(1, 64),
                         metadata={"description": "username of the zone's liaison (联络员), an account with the liaison role",
                                   "example": "liaison-g01"})


class ZonePropertiesUpdate(Schema):
    name = Trimmed(validate=NAME)
    liaison = fields.Str(allow_none=True, validate=validate.Length(1, 64),
                         metadata={"description": "username of the new liaison, or null"})


class ZoneCreate(Schema):
    """A GeoJSON Feature: a Polygon or MultiPolygon and the zone's properties."""

    type = fields.Str(required=True, validate=FEATURE)
    geometry = GeoJSONGeometry(required=True, kind=POLYGONAL, min_area_m2=MIN_DRAWN_AREA_M2)
    properties = fields.Nested(ZonePropertiesCreate, required=True)


class ZoneUpdate(Schema):
    """Part of a GeoJSON Feature: a new geometry, new properties, or both."""

    type = fields.Str(validate=FEATURE)
    geometry = GeoJSONGeometry(kind=POLYGONAL, min_area_m2=MIN_DRAWN_AREA_M2)
    properties = fields.Nested(ZonePropertiesUpdate)


class LiaisonOut(Schema):
    id = Int()
    username = fields.Str()
    display_name = fields.Str()


class ZonePropertiesOut(Schema):
    id = Int()
    community_id = Int()
    code = fields.Str()
    name = fields.Str()
    liaison = fields.Nested(LiaisonOut, allow_none=True)
    area_m2 = fields.Method("_area")
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    created_by = fields.Pluck(LiaisonOut, "username", allow_none=True)
    updated_by = fields.Pluck(LiaisonOut, "username", allow_none=True)

    def _area(self, zone) -> float:
        return round(geodesic_area_m2(as_shape(zone.geom)), 1)


class ZoneOut(Schema):
    type = fields.Constant("Feature")
    id = Int()
    geometry = GeoJSONGeometry()
    properties = fields.Nested(ZonePropertiesOut)


class ZoneCollectionOut(Schema):
    type = fields.Constant("FeatureCollection")
    numberMatched = Int(data_key="numberMatched")
    numberReturned = Int(data_key="numberReturned")
    features = fields.List(fields.Nested(ZoneOut))


def zone_feature(zone) -> dict:
    return {"id": zone.id, "geometry": zone.geom, "properties": zone}


def zone_collection(zones) -> dict:
    features = [zone_feature(z) for z in zones]
    return {"numberMatched": len(features), "numberReturned": len(features), "features": features}


class SplitIn(Schema):
    count = Int(required=True, validate=validate.Range(1, MAX_ZONES), metadata={"example": 10})
    commit = JsonBool(load_default=False, metadata={"description": "save the proposal as the community's zones"})


class ProposalPropertiesOut(Schema):
    code = fields.Str()
    name = fields.Str()
    area_m2 = Float()


class ProposalFeatureOut(Schema):
    type = fields.Constant("Feature")
    geometry = GeoJSONGeometry()
    properties = fields.Nested(ProposalPropertiesOut)


class SplitOut(Schema):
    type = fields.Constant("FeatureCollection")
    committed = fields.Bool()
    count = Int()
    area_ratio = Float(metadata={"description": "largest / smallest zone area"})
    features = fields.List(fields.Nested(ProposalFeatureOut))


class CoverageZoneRef(Schema):
    id = Int()
    code = fields.Str()
    name = fields.Str()


class OverlapOut(Schema):
    zones = fields.List(fields.Nested(CoverageZoneRef))
    area_m2 = Float()


class OutsideOut(Schema):
    zone = fields.Nested(CoverageZoneRef)
    area_m2 = Float()


class GapPropertiesOut(Schema):
    area_m2 = Float()


class GapFeatureOut(Schema):
    type = fields.Constant("Feature")
    geometry = GeoJSONGeometry()
    properties = fields.Nested(GapPropertiesOut)


class GapCollectionOut(Schema):
    type = fields.Constant("FeatureCollection")
    features = fields.List(fields.Nested(GapFeatureOut))


class CoverageOut(Schema):
    community_id = Int()
    zone_count = Int()
    community_area_m2 = Float()
    covered_area_m2 = Float()
    covered_share = Float(metadata={"description": "0..1, share of the community inside some zone"})
    gap_area_m2 = Float()
    gaps = fields.Nested(GapCollectionOut)
    overlaps = fields.List(fields.Nested(OverlapOut))
    outside = fields.List(fields.Nested(OutsideOut), metadata={"description": "zones sticking out of the community"})
    zones_without_liaison = fields.List(fields.Nested(CoverageZoneRef))


class LocatedZoneOut(Schema):
    id = Int(attribute="zone_id")
    code = fields.Str(attribute="zone_code")
    name = fields.Str(attribute="zone_name")
    liaison = fields.Str(attribute="liaison_name", allow_none=True, metadata={"description": "the liaison's name"})
    area_m2 = Float(attribute="zone_area_m2")


class LocatedCommunityOut(Schema):
    id = Int(attribute="community_id")
    name = fields.Str(attribute="community_name")
    kind = fields.Str(attribute="community_kind")


class LocateOut(Schema):
    zone = fields.Nested(LocatedZoneOut)
    community = fields.Nested(LocatedCommunityOut)
    point = fields.Nested(PointOut, metadata={"description": "the WGS-84 point that was located"})
    input = fields.Nested(PointOut, metadata={"description": "the point as sent"})


class ZoneMapFeatureOut(Schema):
    type = fields.Constant("Feature")
    id = fields.Str(metadata={"description": "layer.id, unique in the collection", "example": "parking.12"})
    geometry = fields.Dict(metadata={"description": "GeoJSON geometry (WGS-84)"})
    properties = fields.Dict(metadata={"description": "`layer` (zone, enterprise, parking, volunteer, request), "
                                                      "`id`, and the layer's own properties; parking lots carry "
                                                      "`capacity`, `occupied` and `utilisation` (0..1, null if unknown)"})


class ZoneMapOut(Schema):
    type = fields.Constant("FeatureCollection")
    zone = fields.Dict(metadata={"description": "id, code and name of the zone"})
    volunteers_on_duty = Int(metadata={"description": "volunteers on duty in the zone now (positions are "
                                                             "features only for the zone's liaison and admins)"})
    features = fields.List(fields.Nested(ZoneMapFeatureOut))
