"""Parking shapes: lots and spaces travel as GeoJSON Features; import parsing (our fields or OSM tags)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema
from shapely.geometry.base import BaseGeometry

from geo.crs import geodesic_area_m2, geodesic_distance_m
from geo.validate import GeometryError, validate_point, validate_polygonal
from gridsvc.fields import GeoJSONGeometry, as_shape
from gridsvc.models import PARKING_ACCESS, PARKING_KINDS, SPACE_STATUSES, SPACE_TYPES
from gridsvc.schemas.common import BBOX_PATTERN, AwareDateTime, Date, Float, Int, NotBlank, PageQuery, Trimmed

COUNT = validate.Range(min=0, max=100_000)
# the largest radius a capacity query takes (50 km: a district, not a province)
MAX_RADIUS_M = 50_000
LOT_GEOMETRIES = ("Point", "Polygon", "MultiPolygon")
SPACE_GEOMETRIES = ("Point", "Polygon")
# How far across (corner to corner of its lon/lat box) a lot or a single space
# may reach. Why: a slip in the coordinates (a digit dropped, lon and lat of one
# vertex swapped) made a "lot" hundreds of kilometres wide, and every capacity
# by box, radius or drawn area in the region counted its spaces. The largest
# car parks are well under a kilometre; a truck bay is about 20 m long.
MAX_LOT_EXTENT_M = 5_000
MAX_SPACE_EXTENT_M = 50


class LotGeometry(GeoJSONGeometry):
    def __init__(self, allowed=LOT_GEOMETRIES, max_extent_m=MAX_LOT_EXTENT_M, **kwargs):
        super().__init__(**kwargs)
        self.allowed = allowed
        self.max_extent_m = max_extent_m

    def _deserialize(self, value, attr, data, **kwargs) -> BaseGeometry:
        geom = super()._deserialize(value, attr, data, **kwargs)
        if geom.geom_type not in self.allowed:
            raise ValidationError(f"Invalid geometry: expected {' or '.join(self.allowed)}, got {geom.geom_type}")
        try:
            validate_point(geom) if geom.geom_type == "Point" else validate_polygonal(geom)
        except GeometryError as exc:
            raise ValidationError(f"Invalid geometry: {exc}") from exc
        extent = geodesic_distance_m(*geom.bounds)
        if extent > self.max_extent_m:
            raise ValidationError(f"Invalid geometry: it reaches {extent:,.0f} m across, more than the "
                                  f"{self.max_extent_m:,} m allowed (check the coordinates)")
        return geom


class Capacity(Schema):
    car = Int(load_default=0, validate=COUNT)
    accessible = Int(load_default=0, validate=COUNT)
    ev_charging = Int(load_default=0, validate=COUNT)
    truck = Int(load_default=0, validate=COUNT)
    ebike = Int(load_default=0, validate=COUNT)


class LotProperties(Schema):
    name = Trimmed(required=True, validate=NotBlank(200))
    ref = fields.Str(allow_none=True, validate=validate.Length(1, 64))
    operator = fields.Str(allow_none=True, validate=validate.Length(max=200))
    enterprise_id = Int(allow_none=True)
    access = fields.Str(load_default="public", validate=validate.OneOf(PARKING_ACCESS))
    kind = fields.Str(load_default="surface", validate=validate.OneOf(PARKING_KINDS))
    capacity = fields.Nested(Capacity, load_default=lambda: Capacity().load({}))
    opening_hours = fields.Str(allow_none=True, validate=validate.Length(max=200), metadata={"example": "24/7"})
    fee = fields.Str(allow_none=True, validate=validate.Length(max=100), metadata={"example": "no"})
    opened_on = Date(allow_none=True, metadata={"description": "when it came into use"})


class LotPropertiesUpdate(Schema):
    name = Trimmed(validate=NotBlank(200))
    ref = fields.Str(allow_none=True, validate=validate.Length(1, 64))
    operator = fields.Str(allow_none=True, validate=validate.Length(max=200))
    enterprise_id = Int(allow_none=True)
    access = fields.Str(validate=validate.OneOf(PARKING_ACCESS))
    kind = fields.Str(validate=validate.OneOf(PARKING_KINDS))
    capacity = fields.Dict(keys=fields.Str(validate=validate.OneOf(SPACE_TYPES)), values=Int(validate=COUNT))
    opening_hours = fields.Str(allow_none=True, validate=validate.Length(max=200))
    fee = fields.Str(allow_none=True, validate=validate.Length(max=100))
    opened_on = Date(allow_none=True)


FEATURE = validate.Equal("Feature", error="Must be 'Feature'.")


class LotCreate(Schema):
    type = fields.Str(required=True, validate=FEATURE)
    geometry = LotGeometry(required=True)
    properties = fields.Nested(LotProperties, required=True)


class LotUpdate(Schema):
    type = fields.Str(validate=FEATURE)
    geometry = LotGeometry()
    properties = fields.Nested(LotPropertiesUpdate)


class LotPropertiesOut(Schema):
    id = Int()
    community_id = Int()
    zone_id = Int(allow_none=True)
    enterprise_id = Int(allow_none=True)
    ref = fields.Str(allow_none=True)
    name = fields.Str()
    operator = fields.Str(allow_none=True)
    access = fields.Str()
    kind = fields.Str()
    capacity = fields.Dict()
    capacity_total = Int()
    opening_hours = fields.Str(allow_none=True)
    fee = fields.Str(allow_none=True)
    opened_on = Date(allow_none=True)
    area_m2 = fields.Method("_area", allow_none=True)
    updated_at = fields.DateTime()

    def _area(self, lot) -> float | None:
        shape = as_shape(lot.geom)
        return None if shape.geom_type == "Point" else round(geodesic_area_m2(shape), 1)


class LotOut(Schema):
    type = fields.Constant("Feature")
    id = Int()
    geometry = GeoJSONGeometry()
    properties = fields.Nested(LotPropertiesOut)


class FeatureCollectionOut(Schema):
    type = fields.Constant("FeatureCollection")
    numberMatched = Int(data_key="numberMatched")
    numberReturned = Int(data_key="numberReturned")


class LotCollectionOut(FeatureCollectionOut):
    features = fields.List(fields.Nested(LotOut))


def feature(obj) -> dict:
    return {"id": obj.id, "geometry": obj.geom, "properties": obj}


def collection(page) -> dict:
    return {"numberMatched": page.total, "numberReturned": len(page.items), "features": [feature(o) for o in page.items]}


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    if not re.fullmatch(BBOX_PATTERN, text):
        raise ValidationError("use minLon,minLat,maxLon,maxLat, e.g. 121.77,29.86,121.80,29.88")
    minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise ValidationError("lon must be within [-180, 180] and lat within [-90, 90]")
    if minx > maxx or miny > maxy:
        raise ValidationError("min must not be greater than max")
    return minx, miny, maxx, maxy


class BBox(fields.Str):
    """minLon,minLat,maxLon,maxLat in WGS-84 degrees."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"description": "minLon,minLat,maxLon,maxLat (WGS-84 degrees)", "pattern": BBOX_PATTERN,
                    "example": "121.77,29.86,121.80,29.88", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return parse_bbox(super()._deserialize(value, attr, data, **kwargs))


class LotQuery(PageQuery):
    community_id = Int()
    zone_id = Int()
    enterprise_id = Int()
    access = fields.Str(validate=validate.OneOf(PARKING_ACCESS))
    kind = fields.Str(validate=validate.OneOf(PARKING_KINDS))
    bbox = BBox()


class SpaceProperties(Schema):
    lot_id = Int(allow_none=True)
    ref = fields.Str(allow_none=True, validate=validate.Length(1, 64))
    lot_ref = fields.Str(allow_none=True, validate=validate.Length(1, 64), metadata={"description": "the space's lot"})
    space_type = fields.Str(load_default="car", validate=validate.OneOf(SPACE_TYPES))
    status = fields.Str(load_default="free", validate=validate.OneOf(SPACE_STATUSES))
    opened_on = Date(allow_none=True)


class SpacePropertiesUpdate(Schema):
    lot_id = Int(allow_none=True)
    ref = fields.Str(allow_none=True, validate=validate.Length(1, 64))
    space_type = fields.Str(validate=validate.OneOf(SPACE_TYPES))
    status = fields.Str(validate=validate.OneOf(SPACE_STATUSES))
    opened_on = Date(allow_none=True)


class SpaceCreate(Schema):
    type = fields.Str(required=True, validate=FEATURE)
    geometry = LotGeometry(required=True, allowed=SPACE_GEOMETRIES, max_extent_m=MAX_SPACE_EXTENT_M)
    properties = fields.Nested(SpaceProperties, load_default=lambda: SpaceProperties().load({}))


class SpaceUpdate(Schema):
    type = fields.Str(validate=FEATURE)
    geometry = LotGeometry(allowed=SPACE_GEOMETRIES, max_extent_m=MAX_SPACE_EXTENT_M)
    properties = fields.Nested(SpacePropertiesUpdate)


class StatusIn(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(SPACE_STATUSES))


class StatusUpdate(StatusIn):
    id = Int(required=True)


class BulkStatusIn(Schema):
    updates = fields.List(fields.Nested(StatusUpdate), required=True, validate=validate.Length(1, 5000))

    @validates_schema
    def _each_space_once(self, data, **_kwargs) -> None:
        # A space given twice (a sensor batch that repeats itself) was counted twice in "updated", and which
        # of two different statuses stood depended on the order: the sender must say which one it means.
        seen, twice = set(), []
        for update in data.get("updates", []):
            if update["id"] in seen and update["id"] not in twice:
                twice.append(update["id"])
            seen.add(update["id"])
        if twice:
            raise ValidationError([f"space {space_id} is given more than once" for space_id in twice[:20]], "updates")


class SpacePropertiesOut(Schema):
    id = Int()
    community_id = Int()
    zone_id = Int(allow_none=True)
    lot_id = Int(allow_none=True)
    ref = fields.Str(allow_none=True)
    space_type = fields.Str()
    status = fields.Str()
    status_updated_at = fields.DateTime()
    opened_on = Date(allow_none=True)


class SpaceOut(Schema):
    type = fields.Constant("Feature")
    id = Int()
    geometry = GeoJSONGeometry()
    properties = fields.Nested(SpacePropertiesOut)


class SpaceCollectionOut(FeatureCollectionOut):
    features = fields.List(fields.Nested(SpaceOut))


class SpaceQuery(PageQuery):
    community_id = Int()
    zone_id = Int()
    lot_id = Int()
    status = fields.Str(validate=validate.OneOf(SPACE_STATUSES))
    space_type = fields.Str(validate=validate.OneOf(SPACE_TYPES))
    bbox = BBox()


class BulkStatusOut(Schema):
    updated = Int()
    items = fields.List(fields.Nested(SpacePropertiesOut))


class ObservationIn(Schema):
    observed_at = AwareDateTime(required=True)
    occupied = Int(required=True, validate=COUNT)
    by_type = fields.Dict(keys=fields.Str(validate=validate.OneOf(SPACE_TYPES)), values=Int(validate=COUNT),
                          allow_none=True)
    note = fields.Str(allow_none=True, validate=validate.Length(max=500))


class ObservationOut(Schema):
    id = Int()
    lot_id = Int()
    observed_at = fields.DateTime()
    occupied = Int()
    by_type = fields.Dict(allow_none=True)


class SeriesQuery(Schema):
    start = AwareDateTime(data_key="from", required=True)
    end = AwareDateTime(data_key="to", required=True)
    bucket = fields.Str(load_default="1h", validate=validate.OneOf(("15min", "1h", "1d")))

    @validates_schema
    def _range(self, data, **_kwargs) -> None:
        if "start" in data and "end" in data:
            if data["end"] <= data["start"]:
                raise ValidationError("'to' must be after 'from'", "to")
            if (data["end"] - data["start"]).days > 366:
                raise ValidationError("at most 366 days", "to")


class BucketOut(Schema):
    start = fields.DateTime()
    peak = Int()
    mean = Float()
    samples = Int()
    peak_utilisation_pct = Float()


class SeriesOut(Schema):
    lot_id = Int()
    bucket = fields.Str()
    capacity = Int()
    buckets = fields.List(fields.Nested(BucketOut))


class CapacityQuery(Schema):
    """Exactly one selector: community_id, zone_id, bbox, or lon+lat+radius_m."""

    community_id = Int()
    zone_id = Int()
    bbox = BBox()
    lon = Float(allow_nan=False, validate=validate.Range(-180, 180))
    lat = Float(allow_nan=False, validate=validate.Range(-90, 90))
    crs = fields.Str(load_default="wgs84", validate=validate.OneOf(("wgs84", "gcj02", "bd09")))
    # (apispec writes the range's minimum, not that it is excluded: OpenAPI 3.0 says so with a flag)
    radius_m = Float(allow_nan=False, validate=validate.Range(min=0, min_inclusive=False, max=MAX_RADIUS_M),
                     metadata={"exclusiveMinimum": True})
    as_of = Date()
    format = fields.Str(load_default="json", validate=validate.OneOf(("json", "csv")))

    @validates_schema
    def _one_selector(self, data, **_kwargs) -> None:
        point = [k for k in ("lon", "lat", "radius_m") if k in data]
        if point and len(point) != 3:
            raise ValidationError("lon, lat and radius_m go together", "radius_m")
        chosen = [k for k in ("community_id", "zone_id", "bbox") if k in data] + (["lon+lat+radius_m"] if point else [])
        if len(chosen) != 1:
            raise ValidationError(f"give exactly one of community_id, zone_id, bbox, lon+lat+radius_m "
                                  f"(got {', '.join(chosen) or 'none'})", "_selector")


class CapacityPolygonIn(Schema):
    geometry = GeoJSONGeometry(required=True, kind="polygonal", metadata={"description": "the area drawn on the map"})
    as_of = Date()


class GapQuery(Schema):
    community_id = Int(required=True)
    as_of = Date()
    format = fields.Str(load_default="json", validate=validate.OneOf(("json", "csv", "geojson")))


# ---------------------------------------------------------------- import

OSM_ACCESS = {"yes": "public", "public": "public", "permissive": "public", "customers": "customers",
              "destination": "customers", "employees": "employees", "private": "private", "permit": "private",
              "no": "private", "residents": "private"}
OSM_KIND = {"surface": "surface", "multi-storey": "multi-storey", "underground": "underground", "rooftop": "multi-storey",
            "street_side": "street_side", "lane": "street_side", "on_kerb": "street_side", "half_on_kerb": "street_side",
            "layby": "street_side", "sheds": "surface", "carports": "surface", "garage_boxes": "surface"}
OSM_SPACE_TYPE = {"disabled": "accessible", "charging": "ev_charging"}


@dataclass
class ImportItem:
    """One parsed feature, ready for the service to place and create."""

    index: int
    feature_type: str  # lot | space
    geometry: BaseGeometry
    fields: dict[str, Any]
    ref: str | None = None
    enterprise: str | None = None  # name of the owning enterprise
    lot_ref: str | None = None  # a space's lot, by ref
    lot_id: int | None = None  # or by id (a lot already stored)
    label: str = ""


@dataclass
class ImportReport:
    items: list[ImportItem] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _osm_int(tags: dict, key: str, errors: dict) -> int:
    value = tags.get(key)
    if value in (None, "", "no"):
        return 0
    if value == "yes":  # present but not counted: nothing to add
        return 0
    if not re.fullmatch(r"\d{1,6}", str(value).strip()):
        errors[key] = [f"not a whole number: {value!r}"]
        return 0
    return int(str(value).strip())


def _osm_date(value: str | None, errors: dict) -> date | None:
    if not value:
        return None
    text = str(value).strip()
    for pattern, fill in ((r"\d{4}-\d{2}-\d{2}", ""), (r"\d{4}-\d{2}", "-01"), (r"\d{4}", "-01-01")):
        if re.fullmatch(pattern, text):
            try:
                return date.fromisoformat(text + fill)
            except ValueError:
                break
    errors["start_date"] = [f"not a date: {value!r}"]
    return None


# The OSM tags read; their values are text in OSM (an export may write an id or a count as a number).
OSM_TAGS = ("name", "name:zh", "name:en", "ref", "@id", "id", "operator", "access", "parking", "parking_space",
            "opening_hours", "fee", "start_date", "capacity", "capacity:disabled", "capacity:charging", "capacity:hgv",
            "enterprise", "lot_ref")


def _not_a_tag_value(value: Any) -> bool:
    return value is not None and (isinstance(value, bool) or not isinstance(value, (str, int)))


def _from_osm(tags: dict) -> tuple[str, dict[str, Any], dict[str, list[str]]]:
    """Map OpenStreetMap's parking tags onto the fields of an import (loaded
    then by the same schema as ours, with its bounds). OSM's capacity is the
    total; capacity:disabled, capacity:charging and capacity:hgv are parts of it."""
    feature_type = "space" if tags.get("amenity") == "parking_space" else "lot"
    errors = {key: ["must be text, as OSM tag values are"] for key in OSM_TAGS if _not_a_tag_value(tags.get(key))}
    if errors:
        return feature_type, {}, errors
    ref = tags.get("ref") or tags.get("@id") or tags.get("id")
    opened_on = _osm_date(tags.get("start_date"), errors)
    common = {"ref": str(ref) if ref else None, "opened_on": opened_on.isoformat() if opened_on else None}
    if feature_type == "space":
        return "space", {**common, "space_type": OSM_SPACE_TYPE.get(tags.get("parking_space", ""), "car"),
                         "status": "free", "lot_ref": tags.get("lot_ref")}, errors
    total = _osm_int(tags, "capacity", errors)
    accessible = _osm_int(tags, "capacity:disabled", errors)
    charging = _osm_int(tags, "capacity:charging", errors)
    trucks = _osm_int(tags, "capacity:hgv", errors)
    if accessible + charging + trucks > total:
        errors["capacity"] = [f"capacity {total} (the total) is less than its parts: capacity:disabled + "
                              f"capacity:charging + capacity:hgv = {accessible + charging + trucks}"]
    return "lot", {
        **common,
        "name": tags.get("name") or tags.get("name:zh") or tags.get("name:en") or "停车场 Car park",
        "operator": tags.get("operator"),
        "access": OSM_ACCESS.get(tags.get("access", "yes"), "public"),
        "kind": OSM_KIND.get(tags.get("parking", "surface"), "surface"),
        "capacity_car": max(0, total - accessible - charging - trucks), "capacity_accessible": accessible,
        "capacity_ev_charging": charging, "capacity_truck": trucks, "capacity_ebike": 0,
        "opening_hours": tags.get("opening_hours"), "fee": tags.get("fee"), "enterprise": tags.get("enterprise"),
    }, errors


class _ImportLot(Schema):
    """A lot of an import: capacity as flat ``capacity_<type>`` columns (what a
    spreadsheet or a shapefile can hold) or nested, as POST /parking/lots takes it."""

    class Meta:
        unknown = EXCLUDE  # feature_type and OSM-style extras

    name = fields.Str(required=True, validate=validate.Length(1, 200))
    enterprise = fields.Str(allow_none=True, validate=validate.Length(1, 200),
                            metadata={"description": "the owning enterprise, by name"})
    ref = fields.Str(allow_none=True, validate=validate.Length(1, 64))
    operator = fields.Str(allow_none=True, validate=validate.Length(max=200))
    access = fields.Str(load_default="public", validate=validate.OneOf(PARKING_ACCESS))
    kind = fields.Str(load_default="surface", validate=validate.OneOf(PARKING_KINDS))
    capacity_car = Int(load_default=0, validate=COUNT)
    capacity_accessible = Int(load_default=0, validate=COUNT)
    capacity_ev_charging = Int(load_default=0, validate=COUNT)
    capacity_truck = Int(load_default=0, validate=COUNT)
    capacity_ebike = Int(load_default=0, validate=COUNT)
    capacity = fields.Nested(Capacity, metadata={"description": "or the capacity by type, nested"})
    opening_hours = fields.Str(allow_none=True, validate=validate.Length(max=200))
    fee = fields.Str(allow_none=True, validate=validate.Length(max=100))
    opened_on = Date(allow_none=True)

    @pre_load
    def _one_form_of_capacity(self, data, **_kwargs) -> Any:
        flat = sorted(k for k in data if k.startswith("capacity_")) if isinstance(data, dict) else []
        if flat and "capacity" in data:
            raise ValidationError(f"give the capacity nested or as {', '.join(flat)}, not both", "capacity")
        return data

    @post_load
    def _nest(self, data, **_kwargs) -> dict:
        flat = {t: data.pop(f"capacity_{t}") for t in SPACE_TYPES}
        data["capacity"] = data.get("capacity") or flat
        return data


class _ImportSpace(Schema):
    class Meta:
        unknown = EXCLUDE

    ref = fields.Str(allow_none=True, validate=validate.Length(1, 64))
    lot_ref = fields.Str(allow_none=True, validate=validate.Length(1, 64), metadata={"description": "the space's lot"})
    lot_id = Int(allow_none=True, metadata={"description": "or its lot by id, as POST /parking/spaces takes it"})
    space_type = fields.Str(load_default="car", validate=validate.OneOf(SPACE_TYPES))
    status = fields.Str(load_default="free", validate=validate.OneOf(SPACE_STATUSES))
    opened_on = Date(allow_none=True)

    @validates_schema
    def _one_lot(self, data, **_kwargs) -> None:
        if data.get("lot_ref") is not None and data.get("lot_id") is not None:
            raise ValidationError("give the space's lot by lot_ref or by lot_id, not both", "lot_id")


def parse_import(collection: Any) -> ImportReport:
    """Validate every feature of an import; nothing is written here."""
    report = ImportReport()
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection" \
            or not isinstance(collection.get("features"), list):
        report.errors.append({"index": None, "errors": {"_schema": ["expected a GeoJSON FeatureCollection"]}})
        return report
    for index, raw in enumerate(collection["features"]):
        errors: dict[str, Any] = {}
        props = raw.get("properties") if isinstance(raw, dict) else None
        props = props if isinstance(props, dict) else {}
        label = str(props.get("ref") or props.get("name") or f"feature {index}")[:80]
        if not isinstance(raw, dict) or raw.get("type") != "Feature":
            report.errors.append({"index": index, "feature": label, "errors": {"type": ["must be 'Feature'"]}})
            continue
        osm = "amenity" in props
        if osm and props["amenity"] not in ("parking", "parking_space"):
            report.errors.append({"index": index, "feature": label,
                                  "errors": {"amenity": [f"not parking: {props['amenity']!r}"]}})
            continue
        if osm:
            feature_type, given, errors = _from_osm(props)
        else:
            feature_type, given = props.get("feature_type", "lot"), props
            if feature_type not in ("lot", "space"):
                report.errors.append({"index": index, "feature": label,
                                      "errors": {"feature_type": ["must be 'lot' or 'space'"]}})
                continue
        values: dict[str, Any] = {}
        if not errors:
            try:
                values = (_ImportLot if feature_type == "lot" else _ImportSpace)().load(given)
            except ValidationError as exc:
                errors.update(exc.messages)
        try:
            kind = {"allowed": LOT_GEOMETRIES} if feature_type == "lot" else \
                {"allowed": SPACE_GEOMETRIES, "max_extent_m": MAX_SPACE_EXTENT_M}
            geometry = LotGeometry(**kind).deserialize(raw.get("geometry"))
        except ValidationError as exc:
            errors["geometry"] = exc.messages
            geometry = None
        if errors:
            report.errors.append({"index": index, "feature": label, "errors": errors})
            continue
        enterprise, lot_ref, lot_id = values.pop("enterprise", None), values.pop("lot_ref", None), values.pop("lot_id", None)
        report.items.append(ImportItem(index=index, feature_type=feature_type, geometry=geometry, fields=values,
                                       ref=values.get("ref"), enterprise=enterprise, lot_ref=lot_ref, lot_id=lot_id,
                                       label=label))
    return report


class ImportResultOut(Schema):
    lots = Int()
    spaces = Int()
    by_zone = fields.Dict(metadata={"description": "zone code -> features placed there (`?`: in no zone); for a "
                                                   "file spanning several communities, `community_id:code`"})


class ImportQuery(Schema):
    dry_run = fields.Bool(load_default=False, metadata={"description": "validate and place, write nothing"})



# ---------------------------------------------------------------- capacity and gap answers (documentation)
# The views write these answers themselves (JSON, or CSV/GeoJSON by ?format=); the schemas only describe them
# in the OpenAPI document, so a generated client knows the fields.


class SupplyOut(Schema):
    total = fields.Int()
    car_usable = fields.Int(metadata={"description": "car + accessible + ev_charging"})
    by_type = fields.Dict(keys=fields.Str(), values=fields.Int(), metadata={"description": "spaces by type"})


class NearestLotOut(Schema):
    id = fields.Int()
    name = fields.Str()
    zone_id = fields.Int(allow_none=True)
    access = fields.Str()
    distance_m = Float(metadata={"description": "metres to the lot's nearest edge, on the spheroid"})
    capacity = fields.Dict(keys=fields.Str(), values=fields.Int())


class CapacityReportOut(Schema):
    selector = fields.Dict(metadata={"description": "the area asked for, as sent"})
    as_of = fields.Str(metadata={"description": "the day (YYYY-MM-DD) the supply is of"})
    lots = fields.Int()
    spaces = fields.Int(metadata={"description": "marked spaces, in lots or single"})
    supply = fields.Nested(SupplyOut)
    practical_capacity = fields.Int(metadata={"description": "85 % of the supply"})
    occupied = fields.Int(allow_none=True, metadata={"description": "today only (null for another day)"})
    free = fields.Int(allow_none=True, metadata={"description": "of the supply whose occupancy is known"})
    out_of_service = fields.Int(allow_none=True)
    unknown = fields.Int(allow_none=True, metadata={"description": "supply of lots with no count of the last day "
                                                                   "and no marked spaces"})
    utilisation_pct = Float(allow_none=True, metadata={"description": "occupied / known supply, in %"})
    nearest_lots = fields.List(fields.Nested(NearestLotOut), metadata={"description": "with a radius only"})


class GapZoneOut(Schema):
    zone_id = fields.Int()
    code = fields.Str()
    name = fields.Str()
    supply = fields.Int(metadata={"description": "car-usable spaces"})
    demand = fields.Int()
    gap = fields.Int(metadata={"description": "demand - supply"})
    status = fields.Str(metadata={"description": "deficit, surplus or ok"})
    peak_occupancy = fields.Int(allow_none=True, metadata={"description": "the 30 days' peak, if counted"})


class GapTotalOut(Schema):
    supply = fields.Int()
    demand = fields.Int()
    gap = fields.Int()
    status = fields.Str()
    peak_occupancy = fields.Int(allow_none=True, metadata={"description": "none where nothing was counted"})
    unzoned_supply = fields.Int(metadata={"description": "in no zone (its zone deleted); included above"})
    unzoned_demand = fields.Int()
    unzoned_peak_occupancy = fields.Int(allow_none=True)


class GapReportOut(Schema):
    community_id = fields.Int()
    as_of = fields.Str()
    car_commuter_share = Float()
    zones = fields.List(fields.Nested(GapZoneOut))
    total = fields.Nested(GapTotalOut)
