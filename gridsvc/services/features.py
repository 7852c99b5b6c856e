"""The public feature collections (OGC API - Features) and their queries.

A collection is a table with an integer id, a geometry in EPSG:4326 and a
fixed set of published columns; nothing personal is ever one (volunteers,
requests and accounts are not here). A page of features is built by
PostgreSQL as GeoJSON text in one statement with its ``numberMatched``, so
Python never decodes and re-encodes a hundred geometries per request; an
unfiltered count comes from ``row_count`` (exact, kept by triggers) instead
of a ``count(*)`` over a million spaces.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridsvc.db import Base, fetch_prepared
from gridsvc.models import PARKING_ACCESS, PARKING_KINDS, SPACE_STATUSES, SPACE_TYPES, COMMUNITY_KINDS

COORDINATE_DECIMALS = 7  # about 1 cm: finer than any phone or survey we store
EXTENT_TTL_S = 60.0


@dataclass(frozen=True)
class Prop:
    """A published column: its name in the feature, its SQL and its type."""

    name: str
    sql: str
    type: str  # "integer" | "string" | "number" | "date"
    filter: bool = False  # a declared query parameter of /items
    enum: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    table: str
    geometry: str
    props: tuple[Prop, ...]
    temporal: str | None = None  # a date column: features in use from that day (NULL: since before records)
    geometry_type: str = "geometry"

    @property
    def filters(self) -> dict[str, Prop]:
        return {p.name: p for p in self.props if p.filter}

    def feature_sql(self, alias: str = "t") -> str:
        """The expression of one GeoJSON Feature as json."""
        properties = ", ".join(f"'{p.name}', {p.sql.format(t=alias)}" for p in self.props)
        return (f"json_build_object('type', 'Feature', 'id', {alias}.id, "
                f"'geometry', ST_AsGeoJSON({alias}.{self.geometry}, {COORDINATE_DECIMALS})::json, "
                f"'properties', json_build_object({properties}))")


def may_be_null(collection: Collection, prop: Prop) -> bool:
    """Whether a property can be null in a feature: its column's NOT NULL, as
    the models declare it (an expression of NOT NULL columns never is)."""
    column = re.fullmatch(r"\{t\}\.(\w+)", prop.sql)
    return column is not None and Base.metadata.tables[collection.table].c[column[1]].nullable


def capacity_total_sql(lot: str) -> str:
    """SQL: all the spaces of the lot ``lot`` (every type), as ``ParkingLot.capacity_total``."""
    return "(" + " + ".join(f"{lot}.capacity_{t}" for t in SPACE_TYPES) + ")"


COLLECTIONS: dict[str, Collection] = {c.id: c for c in (
    Collection(
        "communities", "Communities", "Industrial parks, markets and towns run as communities (社区).",
        "community", "boundary", (
            Prop("name", "{t}.name", "string", filter=True),
            Prop("kind", "{t}.kind", "string", filter=True, enum=COMMUNITY_KINDS),
            Prop("enterprise_count", "{t}.enterprise_count", "integer"),
            Prop("worker_count", "{t}.worker_count", "integer"),
            Prop("timezone", "{t}.timezone", "string"),
        ), geometry_type="polygon"),
    Collection(
        "zones", "Grid zones", "The grid zones (网格) that tile each community.",
        "zone", "geom", (
            Prop("community_id", "{t}.community_id", "integer", filter=True),
            Prop("code", "{t}.code", "string", filter=True),
            Prop("name", "{t}.name", "string"),
            Prop("area_m2", "round(ST_Area({t}.geom::geography)::numeric, 1)", "number",
                 description="area on the WGS-84 spheroid, square metres"),
        ), geometry_type="polygon"),
    Collection(
        "enterprises", "Enterprises", "Enterprises of each community, at their main entrance.",
        "enterprise", "location", (
            Prop("community_id", "{t}.community_id", "integer", filter=True),
            Prop("zone_id", "{t}.zone_id", "integer", filter=True),
            Prop("name", "{t}.name", "string", filter=True),
            Prop("workers", "{t}.workers", "integer"),
            Prop("parking_demand", "{t}.parking_demand", "integer",
                 description="car spaces the enterprise needs, when known (else derived from workers)"),
        ), geometry_type="point"),
    Collection(
        "parking-lots", "Parking lots", "Parking lots (停车场) with their capacity by space type.",
        "parking_lot", "geom", (
            Prop("community_id", "{t}.community_id", "integer", filter=True),
            Prop("zone_id", "{t}.zone_id", "integer", filter=True),
            Prop("enterprise_id", "{t}.enterprise_id", "integer", filter=True),
            Prop("ref", "{t}.ref", "string", filter=True),
            Prop("name", "{t}.name", "string"),
            Prop("operator", "{t}.operator", "string"),
            Prop("access", "{t}.access", "string", filter=True, enum=PARKING_ACCESS),
            Prop("kind", "{t}.kind", "string", filter=True, enum=PARKING_KINDS),
            Prop("capacity", capacity_total_sql("{t}"), "integer", description="all spaces"),
            *(Prop(f"capacity_{s}", f"{{t}}.capacity_{s}", "integer") for s in SPACE_TYPES),
            Prop("opening_hours", "{t}.opening_hours", "string"),
            Prop("fee", "{t}.fee", "string"),
            Prop("opened_on", "{t}.opened_on", "date", description="null: in use since before records began"),
        ), temporal="opened_on"),
    Collection(
        "parking-spaces", "Parking spaces", "Individual parking spaces (车位) with their live status.",
        "parking_space", "geom", (
            Prop("community_id", "{t}.community_id", "integer", filter=True),
            Prop("zone_id", "{t}.zone_id", "integer", filter=True),
            Prop("lot_id", "{t}.lot_id", "integer", filter=True),
            Prop("ref", "{t}.ref", "string", filter=True),
            Prop("space_type", "{t}.space_type", "string", filter=True, enum=SPACE_TYPES),
            Prop("status", "{t}.status", "string", filter=True, enum=SPACE_STATUSES),
            Prop("opened_on", "{t}.opened_on", "date", description="null: in use since before records began"),
        ), temporal="opened_on"),
)}


# ---------------------------------------------------------------- query


@dataclass(frozen=True)
class ItemQuery:
    """What /items was asked, already validated."""

    bboxes: tuple[tuple[float, float, float, float], ...] = ()  # two when the box crosses the antimeridian
    start: date | None = None  # the datetime interval; None = open
    end: date | None = None
    temporal: bool = False  # a datetime was given
    on_day: date | None = None  # or a single day (datetime=DATE): what was in use on it
    equals: tuple[tuple[str, Any], ...] = ()  # declared property filters
    limit: int = 10
    offset: int = 0

    @property
    def filtered(self) -> bool:
        return bool(self.bboxes or self.temporal or self.equals)


def _where(collection: Collection, query: ItemQuery, params: dict[str, Any]) -> str:
    clauses = []
    if query.bboxes:
        boxes = []
        for i, box in enumerate(query.bboxes):
            params.update({f"minx{i}": box[0], f"miny{i}": box[1], f"maxx{i}": box[2], f"maxy{i}": box[3]})
            # in the stored SRID, so the GiST index answers
            boxes.append(f"t.{collection.geometry} && ST_MakeEnvelope(%(minx{i})s, %(miny{i})s, %(maxx{i})s, %(maxy{i})s, 4326)"
                         f" AND ST_Intersects(t.{collection.geometry}, ST_MakeEnvelope(%(minx{i})s, %(miny{i})s, "
                         f"%(maxx{i})s, %(maxy{i})s, 4326))")
        clauses.append("(" + " OR ".join(f"({b})" for b in boxes) + ")")
    if query.temporal and collection.temporal:
        column = f"t.{collection.temporal}"
        # A NULL day means "since before records began": it is in use from the
        # beginning of time, so it lies in an interval only when that is open at the start.
        if query.on_day is not None:
            # In use on the day: opened by then, and features stay in use (an interval a/b
            # selects what opened within it; a/a, what opened that very day).
            params["day"] = query.on_day
            clauses.append(f"({column} IS NULL OR {column} <= %(day)s)")
        else:
            if query.start is not None:
                params["start"] = query.start
                clauses.append(f"{column} >= %(start)s")
            if query.end is not None:
                params["end"] = query.end
                clauses.append(f"({column} IS NULL OR {column} <= %(end)s)" if query.start is None
                               else f"{column} <= %(end)s")
    props = collection.filters
    for i, (name, value) in enumerate(query.equals):
        params[f"p{i}"] = value
        clauses.append(f"{props[name].sql.format(t='t')} = %(p{i})s")
    return " AND ".join(clauses) if clauses else "TRUE"


def items(session: Session, collection: Collection, query: ItemQuery) -> tuple[int, int, str]:
    """(numberMatched, numberReturned, the features as a JSON array text)."""
    params: dict[str, Any] = {"limit": query.limit, "offset": query.offset, "table": collection.table}
    where = _where(collection, query, params)
    if query.filtered:
        matched = f"(SELECT count(*) FROM {collection.table} t WHERE {where})"
    else:
        matched = "(SELECT n FROM row_count WHERE table_name = %(table)s)"
    sql = (f"WITH page AS (SELECT t.* FROM {collection.table} t WHERE {where} ORDER BY t.id "
           f"LIMIT %(limit)s OFFSET %(offset)s) "
           f"SELECT {matched}, (SELECT count(*) FROM page), "
           f"(SELECT coalesce(string_agg(({collection.feature_sql('page')})::text, ',' ORDER BY page.id), '') FROM page)")
    matched_n, returned, features = fetch_prepared(session, sql, params)
    return int(matched_n or 0), int(returned), "[" + features + "]"


def item(session: Session, collection: Collection, feature_id: int) -> str | None:
    """One feature as GeoJSON text, or None."""
    sql = f"SELECT ({collection.feature_sql('t')})::text FROM {collection.table} t WHERE t.id = %(id)s"
    row = fetch_prepared(session, sql, {"id": feature_id})
    return row[0] if row else None


# ---------------------------------------------------------------- extents

_extent_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def forget_extents() -> None:
    _extent_cache.clear()


def extent(session: Session, collection: Collection) -> dict[str, Any]:
    """The collection's CRS84 bounding box (and time span since the first opening;
    features stay in use, so it is open at the end). A full scan of a million
    spaces, so it is kept for a minute per process."""
    key = (str(session.connection().engine.url), collection.id)
    cached = _extent_cache.get(key)
    if cached and time.monotonic() - cached[0] < EXTENT_TTL_S:
        return cached[1]
    columns = "ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
    sql = f"SELECT {columns} FROM (SELECT ST_Extent({collection.geometry}) AS e FROM {collection.table}) s"
    row = session.execute(text(sql)).one()
    spatial = [round(v, 7) for v in row] if row[0] is not None else [-180.0, -90.0, 180.0, 90.0]
    result: dict[str, Any] = {"spatial": {"bbox": [spatial], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
    if collection.temporal:
        first, undated = session.execute(text(
            f"SELECT min({collection.temporal}), bool_or({collection.temporal} IS NULL) FROM {collection.table}")).one()
        start = None if undated or first is None else first.isoformat() + "T00:00:00Z"
        result["temporal"] = {"interval": [[start, None]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    _extent_cache[key] = (time.monotonic(), result)
    return result
