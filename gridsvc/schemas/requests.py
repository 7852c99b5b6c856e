"""Service list and request shapes."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from geo.crs import SUPPORTED_CRS

from gridsvc.schemas.accounts import PHONE, Phone
from gridsvc.schemas.common import AwareDateTime, Float, Int, NotBlank, PageOut, PageQuery, PointOut, PositionIn, Trimmed, geopoint
from gridsvc.schemas.parking import BBox


class AttributeValueOut(Schema):
    key = fields.Str()
    name = fields.Str()


class AttributeOut(Schema):
    code = fields.Str()
    datatype = fields.Str(metadata={"description": "string | text | number | datetime | singlevaluelist | multivaluelist"})
    required = fields.Bool()
    description = fields.Str()
    values = fields.List(fields.Nested(AttributeValueOut))
    # (beyond Open311's attribute definition, for a number: what a value must be, so a client can check it)
    integer = fields.Bool(metadata={"description": "number: a whole number"})
    minimum = fields.Float(metadata={"description": "number: the least value taken"})
    maximum = fields.Float(metadata={"description": "number: the greatest value taken"})


class ServiceOut(Schema):
    code = fields.Str()
    name_zh = fields.Str()
    name_en = fields.Str()
    group = fields.Str()
    description = fields.Str(allow_none=True)
    required_skill = fields.Str(allow_none=True)
    department = fields.Pluck("DepartmentCodeOut", "code", allow_none=True)
    sla_minutes = Int(metadata={"description": "first response within"})
    attributes = fields.Method("_attributes", metadata={"description": "Open311-style attribute definitions"})

    def _attributes(self, service) -> list[dict]:
        # every member present (a dict without "values" would otherwise expose dict.values)
        defaults = {"datatype": "string", "required": False, "description": "", "values": []}
        return AttributeOut(many=True).dump([{**defaults, **a} for a in service.attributes])


class DepartmentCodeOut(Schema):
    code = fields.Str()


class Contact(Schema):
    """How to reach the requester (Open311's first_name, last_name, email and phone, or a name and WeChat ID)."""
    name = fields.Str(validate=validate.Length(1, 100))
    first_name = fields.Str(validate=validate.Length(1, 100))
    last_name = fields.Str(validate=validate.Length(1, 100))
    phone = Phone(validate=PHONE)
    email = fields.Email(validate=validate.Length(max=254))
    wechat = fields.Str(validate=validate.Length(1, 64))


CONTACT_SEEN_BY = ("shown to whoever handles the request (the zone's liaison, the volunteer it was given to, the "
                   "department it was passed to, admins) and to the requester; null for others")


class RequestCreate(PositionIn):
    service_code = fields.Str(required=True, metadata={"example": "parking"})
    description = Trimmed(required=True, validate=NotBlank(4000))
    attributes = fields.Dict(keys=fields.Str(), load_default=dict)
    media_urls = fields.List(fields.Url(schemes={"http", "https"}), load_default=list, validate=validate.Length(max=10))
    contact = fields.Nested(Contact, allow_none=True, metadata={"description": "how to reach you: " + CONTACT_SEEN_BY})


class OfferOut(Schema):
    volunteer_id = Int()
    distance_m = Float(allow_none=True, metadata={
        "description": "how far the volunteer is from the request: for those who may see the volunteer's position "
                       "(the volunteer, the liaisons of the zones they work in, admins); null for others"})
    offered_at = fields.DateTime()
    deadline = fields.DateTime()


class RequestOut(Schema):
    id = Int()
    community_id = Int()
    zone_id = Int()
    zone_note = fields.Str(allow_none=True)
    service_code = fields.Str()
    description = fields.Str()
    location = fields.Nested(PointOut)
    attributes = fields.Dict()
    media_urls = fields.List(fields.Str())
    status = fields.Str()
    volunteer_id = Int(allow_none=True)
    liaison_id = Int(allow_none=True)
    department_id = Int(allow_none=True)
    claimed_by_id = Int(allow_none=True)
    offer = fields.Nested(OfferOut, allow_none=True, metadata={"description": "the pending offer, if any"})
    refusals = Int()
    possible_duplicates = fields.List(Int())
    requester_id = Int(allow_none=True)
    created_at = fields.DateTime()
    sla_due_at = fields.DateTime()
    first_response_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    rating = Int(allow_none=True)
    feedback = fields.Str(allow_none=True)
    contact = fields.Nested(Contact, allow_none=True, metadata={"description": "the requester's, " + CONTACT_SEEN_BY})


class RequestPageOut(PageOut):
    items = fields.List(fields.Nested(RequestOut))


class RequestQuery(PageQuery):
    status = fields.Str()
    service_code = fields.Str()
    zone_id = Int()
    community_id = Int()
    assignee = Int(metadata={"description": "volunteer id"})
    bbox = BBox()
    start = AwareDateTime(data_key="from")
    end = AwareDateTime(data_key="to")


class ActionIn(Schema):
    """An action's note and, optionally, where it was done: ``lon`` and ``lat`` together, in ``crs``."""

    note = fields.Str(allow_none=True, validate=validate.Length(max=2000))
    volunteer_id = Int(metadata={"description": "reassign: the volunteer to give it to"})
    lon = Float(allow_nan=False, validate=validate.Range(-180, 180), metadata={"description": "where: with lat"})
    lat = Float(allow_nan=False, validate=validate.Range(-90, 90), metadata={"description": "where: with lon"})
    crs = fields.Str(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                     metadata={"description": "coordinate system the point was measured in (a phone's GCJ-02 ...)"})

    @validates_schema
    def _whole_position(self, data, **_kwargs) -> None:
        # half a position is a client's mistake: saying so beats recording the action without where it was done
        if ("lon" in data) != ("lat" in data):
            raise ValidationError("lon and lat go together: send both, or neither", "lat" if "lon" in data else "lon")

    @post_load
    def _to_wgs84(self, data: dict, **_kwargs) -> dict:
        """The position as ``point`` (a GeoPoint in WGS-84), as every point input loads."""
        crs = data.pop("crs")
        if "lon" in data:
            data["point"] = geopoint(data.pop("lon"), data.pop("lat"), crs)
        return data


class RateIn(Schema):
    rating = Int(required=True, validate=validate.Range(1, 5))
    comment = fields.Str(allow_none=True, validate=validate.Length(max=2000))


class EventOut(Schema):
    id = Int()
    action = fields.Str()
    actor_id = Int(allow_none=True)
    system = fields.Bool()
    from_status = fields.Str(allow_none=True)
    to_status = fields.Str(allow_none=True)
    note = fields.Str(allow_none=True)
    where = fields.Nested(PointOut, allow_none=True)
    at = fields.DateTime()


class CandidatesQuery(Schema):
    lon = Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    crs = fields.Str(load_default="wgs84", validate=validate.OneOf(("wgs84", "gcj02", "bd09")))
    skill = fields.Str()
    limit = Int(load_default=10, validate=validate.Range(1, 100))


class CandidateOut(Schema):
    volunteer_id = Int()
    distance_m = Float()


class StatsQuery(Schema):
    community_id = Int(required=True)
    start = AwareDateTime(data_key="from")
    end = AwareDateTime(data_key="to")


class StatsOut(Schema):
    community_id = Int()
    start = fields.Str(data_key="from", attribute="from", allow_none=True)
    end = fields.Str(data_key="to", attribute="to", allow_none=True)
    total = Int()
    by_status = fields.Dict(keys=fields.Str(), values=Int())
    by_service = fields.Dict(keys=fields.Str(), values=Int())
    by_zone = fields.Dict(keys=fields.Str(), values=Int())
    median_first_response_min = Float(allow_none=True)
    median_resolution_min = Float(allow_none=True)
    within_sla_share = Float(allow_none=True, metadata={"description": "first responses within the SLA, 0..1"})
    mean_rating = Float(allow_none=True)
    ratings = Int()


class BatchQuery(Schema):
    community_id = Int(required=True)


class PairOut(Schema):
    request_id = Int()
    volunteer_id = Int()
    distance_m = Float(allow_none=True, metadata={"description": "null for a volunteer you may not locate "
                                                                        "(a liaison: one who works in none of your zones)"})


class BatchOut(Schema):
    requests = Int(metadata={"description": "open unassigned requests considered"})
    offered = Int()
    unassigned = fields.List(Int(), metadata={"description": "no eligible volunteer: with the liaison"})
    total_distance_m = Float(allow_none=True, metadata={
        "description": "the optimal assignment's total; null unless you may locate every volunteer considered"})
    greedy_total_distance_m = Float(allow_none=True, metadata={
        "description": "nearest-first, for comparison; null as total_distance_m"})
    greedy_offered = Int()
    pairs = fields.List(fields.Nested(PairOut))
