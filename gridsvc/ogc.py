"""OGC API - Features, Part 1 (Core, GeoJSON, OpenAPI 3.0) at ``/ogc``.

For GIS tools (QGIS, GDAL's OAPIF driver, OWSLib): the public collections of
``gridsvc.services.features`` with bbox, limit/offset paging, declared
property filters and ``datetime`` where a collection has time. Its own
OpenAPI 3.0 document (every parameter inline) lives at ``/ogc/api``; these
routes are not part of the main API's document. Errors are problem+json,
as everywhere else (OGC API - Common recommends RFC 7807).
"""
from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any, Iterable
from urllib.parse import urlencode

from flask import Blueprint, Response, request, url_for

from gridsvc import auth, clock
from gridsvc.api import reject_unknown_parameters
from gridsvc.clock import DATE_FORM, parse_date_time
from gridsvc.db import current_session, without_transaction
from gridsvc.errors import BadRequest, NotFound
from gridsvc.schemas.common import INT_MAX, parse_decimal, parse_whole, time_problem
from gridsvc.services import features as service
from gridsvc.services.features import COLLECTIONS, Collection, ItemQuery

blp = Blueprint("ogc", __name__, url_prefix="/ogc")

GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_NAMES = (CRS84, "https://www.opengis.net/def/crs/OGC/1.3/CRS84", "[OGC:CRS84]")  # URI, and Part 2's safe CURIE
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
CONTENT_CRS = {"Content-Crs": f"<{CRS84}>"}  # Part 2's header: the coordinates are lon/lat WGS-84
DEFAULT_LIMIT, MAX_LIMIT = 10, 10_000
FORMATS = ("json", "geojson")  # the values of ?f=


# ---------------------------------------------------------------- plumbing


def _json(body: Any, content_type: str = JSON, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type=content_type)


def _root() -> str:
    # url_root, not host_url: served under a path prefix (SCRIPT_NAME, a proxy's /gridsvc), links keep it
    return request.url_root.rstrip("/") + blp.url_prefix


def _check_params(allowed: Iterable[str]) -> None:
    """An undeclared parameter is a 400 (OGC /req/core/query-param-unknown), as is one given twice."""
    reject_unknown_parameters({*allowed, "f"})  # and one given more than once
    fmt = request.args.get("f")
    if fmt is not None and fmt not in FORMATS:
        raise BadRequest(f"f={fmt} is not offered; use f=json.", errors={"f": [f"one of {', '.join(FORMATS)}"]})


def _feature_type() -> str:
    """GeoJSON's own type unless the client accepts plain JSON only."""
    accepted = {value.lower() for value, quality in request.accept_mimetypes if quality > 0}
    if JSON in accepted and not accepted & {GEOJSON, "*/*", "application/*"}:
        return JSON
    return GEOJSON


def _collection(collection_id: str) -> Collection:
    collection = COLLECTIONS.get(collection_id)
    if collection is None:
        raise NotFound(f"There is no collection {collection_id!r}; see /ogc/collections.")
    return collection


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


# ---------------------------------------------------------------- parameters


def _bbox(raw: str) -> tuple[tuple[float, float, float, float], ...]:
    try:
        numbers = [parse_decimal(v) for v in raw.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) == 6:  # with heights: ours are 2D, so the heights are ignored
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise BadRequest("bbox must be four numbers: min lon, min lat, max lon, max lat (CRS84).",
                         errors={"bbox": ["four comma-separated numbers"]})
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise BadRequest("bbox is out of range: longitudes within ±180, latitudes within ±90.",
                         errors={"bbox": ["out of range"]})
    if miny > maxy:
        raise BadRequest("bbox has its minimum latitude above its maximum.", errors={"bbox": ["min lat > max lat"]})
    if minx > maxx:  # crosses the antimeridian (OGC allows it): two boxes
        return (minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy)
    return ((minx, miny, maxx, maxy),)


def _instant(raw: str) -> date | None:
    if raw in ("", ".."):
        return None
    try:
        instant: date = date.fromisoformat(raw) if DATE_FORM.fullmatch(raw) else parse_date_time(raw)
    except ValueError:
        raise BadRequest(f"datetime {raw!r} is not an RFC 3339 date or date-time.",
                         errors={"datetime": ["a date, a date-time or an interval a/b with .. for an open end"]}) from None
    problem = time_problem(instant)
    if problem:
        raise BadRequest(f"datetime {raw!r}: {problem}", errors={"datetime": [problem]})
    if isinstance(instant, datetime):
        if instant.tzinfo is not None:
            # opened_on is a day on the parks' clock: the same instant written as +08:00 or as Z is the same day
            instant = instant.astimezone(clock.default_timezone())
        return instant.date()
    return instant


def _datetime(raw: str) -> tuple[date | None, date | None, date | None]:
    """(start, end) of an interval a/b, or the single day of an instant: (None, None, day)."""
    if "/" in raw:
        first, _, last = raw.partition("/")
        start, end = _instant(first), _instant(last)
        if start and end and start > end:
            raise BadRequest("The datetime interval ends before it starts.", errors={"datetime": ["start after end"]})
        return start, end, None
    if raw in ("", ".."):
        raise BadRequest("datetime needs a date or an interval.", errors={"datetime": ["empty"]})
    return None, None, _instant(raw)


def _integer(name: str, raw: str, minimum: int) -> int:
    try:
        value = parse_whole(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer.", errors={name: ["not an integer"]}) from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}.", errors={name: [f"below {minimum}"]})
    if value > INT_MAX:  # ids and counts are PostgreSQL integers
        raise BadRequest(f"{name} must be at most {INT_MAX}.", errors={name: [f"above {INT_MAX}"]})
    return value


def _crs(name: str) -> None:
    """``crs`` and ``bbox-crs`` (OGC API - Features Part 2): the collections list CRS84 as their only
    CRS (``crs``, ``storageCrs``), so a client that reads that list may name it; any other is a 400
    (/req/crs/fc-crs-valid-value, /req/crs/fc-bbox-crs-valid-value)."""
    value = request.args.get(name)
    if value is not None and value not in CRS84_NAMES:
        raise BadRequest(f"{name}={value} is not offered; features are in {CRS84} only.",
                         errors={name: [f"only {CRS84}"]})


def _item_query(collection: Collection) -> ItemQuery:
    filters = collection.filters
    allowed = {"bbox", "bbox-crs", "crs", "limit", "offset", *filters, *(["datetime"] if collection.temporal else [])}
    _check_params(allowed)
    _crs("crs")
    _crs("bbox-crs")
    args = request.args
    # Above the maximum is served as the maximum (OGC /per/core/limit-override).
    limit = min(_integer("limit", args["limit"], 1), MAX_LIMIT) if "limit" in args else DEFAULT_LIMIT
    offset = _integer("offset", args["offset"], 0) if "offset" in args else 0
    start = end = on_day = None
    if "datetime" in args:
        start, end, on_day = _datetime(args["datetime"])
    equals = []
    for name, prop in filters.items():
        if name not in args:
            continue
        raw = args[name]
        if prop.type == "integer":
            value: Any = _integer(name, raw, -2**31)
        else:
            value = raw
            if prop.enum and raw not in prop.enum:
                raise BadRequest(f"{name} must be one of {', '.join(prop.enum)}.",
                                 errors={name: [f"one of {', '.join(prop.enum)}"]})
        equals.append((name, value))
    return ItemQuery(bboxes=_bbox(args["bbox"]) if "bbox" in args else (), start=start, end=end, on_day=on_day,
                     temporal="datetime" in args, equals=tuple(equals), limit=limit, offset=offset)


# ---------------------------------------------------------------- resources


@blp.route("/")
@blp.route("")
@auth.access(auth.PUBLIC)
def landing():
    _check_params(())
    root = _root()
    return _json({
        "title": "gridsvc: grid zones and parking",
        "description": "Communities, grid zones, enterprises, parking lots and parking spaces "
                       "as OGC API - Features collections (GeoJSON, CRS84).",
        "links": [
            _link(root + "/", "self", JSON, "this document"),
            _link(root + "/api", "service-desc", OPENAPI, "the API definition (OpenAPI 3.0)"),
            _link(root + "/api.html", "service-doc", "text/html", "the API documentation"),
            _link(root + "/conformance", "conformance", JSON, "conformance classes implemented"),
            _link(root + "/collections", "data", JSON, "the feature collections"),
        ],
    })


@blp.route("/conformance")
@auth.access(auth.PUBLIC)
def conformance():
    _check_params(())
    return _json({"conformsTo": CONFORMANCE})


def _collection_body(collection: Collection) -> dict[str, Any]:
    root = _root()
    return {
        "id": collection.id, "title": collection.title, "description": collection.description,
        "itemType": "feature", "crs": [CRS84], "storageCrs": CRS84,
        "extent": service.extent(current_session(), collection),
        "links": [
            _link(f"{root}/collections/{collection.id}", "self", JSON, "this collection"),
            _link(f"{root}/collections/{collection.id}/items", "items", GEOJSON, "its features"),
        ],
    }


@blp.route("/collections")
@auth.access(auth.PUBLIC)
def collections():
    _check_params(())
    return _json({
        "links": [_link(_root() + "/collections", "self", JSON, "this document")],
        "collections": [_collection_body(c) for c in COLLECTIONS.values()],
    })


@blp.route("/collections/<collection_id>")
@auth.access(auth.PUBLIC)
def collection(collection_id: str):
    _check_params(())
    return _json(_collection_body(_collection(collection_id)))


@blp.route("/collections/<collection_id>/items")
@auth.access(auth.PUBLIC)
def items(collection_id: str):
    collection = _collection(collection_id)
    query = _item_query(collection)
    session = current_session()
    without_transaction(session)  # one statement answers
    matched, returned, features = service.items(session, collection, query)
    here = f"{_root()}/collections/{collection.id}/items"
    content_type = _feature_type()

    def page(offset: int) -> str:
        args = dict(request.args)
        args["offset"] = str(offset)
        args["limit"] = str(query.limit)
        return here + "?" + urlencode(args)

    links = [_link(here + ("?" + urlencode(request.args) if request.args else ""), "self", content_type, "this page"),
             _link(f"{_root()}/collections/{collection.id}", "collection", JSON, "the collection")]
    if query.offset + returned < matched:
        links.append(_link(page(query.offset + query.limit), "next", content_type, "the next page"))
    if query.offset > 0:
        links.append(_link(page(max(0, query.offset - query.limit)), "prev", content_type, "the previous page"))
    stamp = clock.now().isoformat(timespec="seconds")
    head = json.dumps({"type": "FeatureCollection", "numberMatched": matched, "numberReturned": returned,
                       "timeStamp": stamp, "links": links}, ensure_ascii=False)
    # the features are GeoJSON text straight from PostgreSQL: splice, do not re-encode
    return Response(head[:-1] + ', "features": ' + features + "}", content_type=content_type,
                    headers=CONTENT_CRS)


@blp.route("/collections/<collection_id>/items/<feature_id>")
@auth.access(auth.PUBLIC)
def item(collection_id: str, feature_id: str):
    collection = _collection(collection_id)
    _check_params(("crs",))  # as on /items, so a client that sets crs for a layer can fetch one of its features
    _crs("crs")
    if not (feature_id.isascii() and feature_id.isdigit()) or int(feature_id) > INT_MAX:  # ids are PostgreSQL integers
        raise NotFound(f"There is no feature {feature_id!r} in {collection.id}.")
    session = current_session()
    without_transaction(session)  # one statement answers
    feature = service.item(session, collection, int(feature_id))
    if feature is None:
        raise NotFound(f"There is no feature {feature_id} in {collection.id}.")
    root = _root()
    content_type = _feature_type()
    links = json.dumps([
        _link(f"{root}/collections/{collection.id}/items/{feature_id}", "self", content_type, "this feature"),
        _link(f"{root}/collections/{collection.id}", "collection", JSON, "the collection"),
    ])
    return Response(feature[:-1] + ', "links": ' + links + "}", content_type=content_type, headers=CONTENT_CRS)


# ---------------------------------------------------------------- the API definition


@blp.route("/api")
@auth.access(auth.PUBLIC)
def api_definition():
    _check_params(())
    return _json(openapi_document(_root()), content_type=OPENAPI)


@blp.route("/api.html")
@auth.access(auth.PUBLIC)
def api_documentation():
    """Swagger UI (vendored under /static) over the OGC document."""
    _check_params(())
    static = url_for("static", filename="swagger-ui/")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gridsvc OGC API - Features</title>
<link rel="stylesheet" href="{static}swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{static}swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{_root()}/api", dom_id: "#swagger-ui"}});</script>
</body></html>"""
    return Response(page, content_type="text/html; charset=utf-8")


def _param(name: str, description: str, schema: dict[str, Any], *, location: str = "query", required: bool = False,
           style: str | None = None, explode: bool | None = None) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": location, "description": description, "required": required,
                             "schema": schema}
    if style:
        param["style"] = style
    if explode is not None:
        param["explode"] = explode
    return param


def _json_response(description: str, media: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "object"}}}}


PROBLEM = {"description": "A problem document (RFC 7807)",
           "content": {"application/problem+json": {"schema": {"type": "object"}}}}
CRS84_ONLY = {"type": "string", "format": "uri", "enum": [CRS84], "default": CRS84}
CRS_PARAM = _param("crs", "The CRS of the features' coordinates; only CRS84 is offered.", CRS84_ONLY,
                   style="form", explode=False)
F_PARAM = _param("f", "The format; only JSON (GeoJSON for features) is offered.",
                 {"type": "string", "enum": list(FORMATS), "default": "json"}, style="form", explode=False)


def _items_parameters(collection: Collection) -> list[dict[str, Any]]:
    params = [
        _param("bbox", "Only features that intersect the box: min lon, min lat, max lon, max lat (CRS84).",
               {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
               style="form", explode=False),
        _param("bbox-crs", "The CRS of bbox; only CRS84 is offered.", CRS84_ONLY, style="form", explode=False),
        CRS_PARAM,
        _param("limit", "At most this many features in the page.",
               {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               style="form", explode=False),
        _param("offset", "Skip this many features (the next/prev links carry it).",
               {"type": "integer", "minimum": 0, "default": 0}, style="form", explode=False),
    ]
    if collection.temporal:
        params.append(_param(
            "datetime", f"Features in use on a day or opened within an interval (by {collection.temporal}; "
                        "a feature without a date has been in use since before records began). "
                        "A date, a date-time or an interval a/b with .. for an open end.",
            {"type": "string"}, style="form", explode=False))
    for prop in collection.filters.values():
        schema: dict[str, Any] = {"type": prop.type}
        if prop.enum:
            schema["enum"] = list(prop.enum)
        params.append(_param(prop.name, f"Only features whose {prop.name} equals this value.", schema,
                             style="form", explode=False))
    params.append(F_PARAM)
    return params


def openapi_document(root: str) -> dict[str, Any]:
    """OpenAPI 3.0 with every parameter inline (no $ref), as GDAL and OWSLib read it."""
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "parameters": [F_PARAM],
                      "responses": {"200": _json_response("Links to the API definition, conformance and data"),
                                    "400": PROBLEM}}},
        "/conformance": {"get": {"summary": "Conformance classes", "operationId": "getConformance",
                                 "parameters": [F_PARAM],
                                 "responses": {"200": _json_response("The conformance classes implemented"), "400": PROBLEM}}},
        "/api": {"get": {"summary": "This document", "operationId": "getApi", "parameters": [F_PARAM],
                         "responses": {"200": _json_response("The API definition", OPENAPI), "400": PROBLEM}}},
        "/collections": {"get": {"summary": "The feature collections", "operationId": "getCollections",
                                 "parameters": [F_PARAM],
                                 "responses": {"200": _json_response("The collections and their extents"), "400": PROBLEM}}},
    }
    for c in COLLECTIONS.values():
        properties = {p.name: {"type": p.type if p.type != "date" else "string",
                               **({"format": "date"} if p.type == "date" else {}),
                               **({"nullable": True} if service.may_be_null(c, p) else {}),
                               **({"description": p.description} if p.description else {})} for p in c.props}
        feature_schema = {"type": "object", "required": ["type", "geometry", "properties"], "properties": {
            "type": {"type": "string", "enum": ["Feature"]}, "id": {"type": "integer"},
            "geometry": {"type": "object"}, "properties": {"type": "object", "properties": properties}}}
        paths[f"/collections/{c.id}"] = {"get": {
            "summary": f"{c.title}: the collection", "operationId": f"describe-{c.id}", "parameters": [F_PARAM],
            "responses": {"200": _json_response("The collection's description and extent"), "400": PROBLEM,
                          "404": PROBLEM}}}
        paths[f"/collections/{c.id}/items"] = {"get": {
            "summary": f"{c.title}: features", "description": c.description, "operationId": f"get-{c.id}-items",
            "parameters": _items_parameters(c),
            "responses": {
                "200": {"description": "A page of features (GeoJSON FeatureCollection)", "content": {GEOJSON: {
                    "schema": {"type": "object", "properties": {
                        "type": {"type": "string", "enum": ["FeatureCollection"]},
                        "features": {"type": "array", "items": feature_schema},
                        "numberMatched": {"type": "integer"}, "numberReturned": {"type": "integer"},
                        "links": {"type": "array", "items": {"type": "object"}}}}}}},
                "400": PROBLEM}}}
        paths[f"/collections/{c.id}/items/{{featureId}}"] = {"get": {
            "summary": f"{c.title}: one feature", "operationId": f"get-{c.id}-item",
            "parameters": [_param("featureId", "The feature's id.", {"type": "integer", "minimum": 0, "maximum": INT_MAX},
                                  location="path", required=True), F_PARAM],
            "responses": {"200": {"description": "The feature", "content": {GEOJSON: {"schema": feature_schema}}},
                          "400": PROBLEM, "404": PROBLEM}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "gridsvc OGC API - Features", "version": "1.0.0",
                 "description": "Grid zones, enterprises and parking of industrial-park communities.",
                 "license": {"name": "Apache-2.0"}},
        "servers": [{"url": root}],
        "paths": paths,
    }
