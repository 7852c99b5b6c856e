"""/api/v1/parking: inventory, occupancy, capacity and the supply/demand gap, for planners."""
from __future__ import annotations

import codecs
import json

from flask import Response, request, url_for
from flask.views import MethodView

from gridsvc import auth, clock
from gridsvc.api import Blueprint, refuse_unstorable_text, strict_json_loads
from gridsvc.csvexport import csv_response
from gridsvc.db import current_session, without_transaction
from gridsvc.errors import MalformedJson
from gridsvc.fields import as_shape
from geo.io import geometry_to_geojson
from gridsvc.schemas.common import geopoint
from gridsvc.schemas.parking import (BulkStatusIn, BulkStatusOut, CapacityPolygonIn, CapacityQuery, CapacityReportOut,
                                     GapQuery, GapReportOut,
                                     ImportQuery, ImportResultOut, LotCollectionOut, LotCreate, LotOut, LotQuery,
                                     LotUpdate, ObservationIn, ObservationOut, SeriesOut, SeriesQuery,
                                     SpaceCollectionOut, SpaceCreate, SpaceOut, SpaceQuery, SpaceUpdate, StatusIn,
                                     collection, feature, parse_import)
from gridsvc.services import parking as service
from gridsvc.services.parking_import import import_parking

blp = Blueprint("parking", __name__, description="Parking inventory, occupancy, capacity and gap (停车)")

STATUS_KEEPERS = auth.roles("admin", "planner", "liaison", name="status-keepers")


def _require_status_keeper(zone_id: int | None) -> None:
    principal = auth.current_principal()
    auth.require(principal.has_any(("admin", "planner")) or (zone_id is not None and principal.is_liaison_of(zone_id)),
                 "A liaison may update only the parking of their own zones.")


@blp.route("/parking/lots")
class Lots(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(LotQuery, location="query")
    @blp.response(200, LotCollectionOut)
    def get(self, query):
        """Parking lots as a GeoJSON FeatureCollection (filter by community, zone, enterprise, access, kind, bbox)"""
        return collection(service.list_lots(current_session(), **query))

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(LotCreate)
    @blp.response(201, LotOut)
    def post(self, data):
        """Add a lot (Polygon or Point); its community and zone come from where it is"""
        session = current_session()
        lot = service.create_lot(session, geometry=data["geometry"], **data["properties"])
        session.commit()
        return feature(lot), {"Location": url_for("parking.LotItem", lot_id=lot.id)}


@blp.route("/parking/lots/<int:lot_id>")
class LotItem(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, LotOut)
    def get(self, lot_id):
        """One lot"""
        return feature(service.get_lot(current_session(), lot_id))

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(LotUpdate)
    @blp.response(200, LotOut)
    def patch(self, data, lot_id):
        """Change a lot; capacity takes only the types it names"""
        session = current_session()
        changes = dict(data.get("properties", {}))
        if "geometry" in data:
            changes["geometry"] = data["geometry"]
        lot = service.update_lot(session, lot_id, changes)
        session.commit()
        return feature(lot)

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.response(204)
    def delete(self, lot_id):
        """Delete a lot, its spaces and observations"""
        session = current_session()
        service.delete_lot(session, lot_id)
        session.commit()


@blp.route("/parking/lots/<int:lot_id>/occupancy")
class LotOccupancy(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(SeriesQuery, location="query")
    @blp.response(200, SeriesOut)
    def get(self, query, lot_id):
        """Occupancy over time: peak and mean per 15min, 1h or 1d bucket (community time)"""
        session = current_session()
        lot = service.get_lot(session, lot_id)
        buckets = service.occupancy_series(session, lot_id, start=query["start"], end=query["end"],
                                           bucket=query["bucket"])
        return {"lot_id": lot_id, "bucket": query["bucket"], "capacity": lot.capacity_total, "buckets": buckets}

    @auth.access(STATUS_KEEPERS)
    @blp.arguments(ObservationIn)
    @blp.response(201, ObservationOut)
    def post(self, data, lot_id):
        """Record how many vehicles a lot holds (counters, wardens; also the zone's liaison)"""
        session = current_session()
        _require_status_keeper(service.get_lot(session, lot_id).zone_id)
        observation = service.add_observation(session, lot_id, now=clock.now(), **data)
        session.commit()
        return observation


@blp.route("/parking/spaces")
class Spaces(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(SpaceQuery, location="query")
    @blp.response(200, SpaceCollectionOut)
    def get(self, query):
        """Single spaces as a GeoJSON FeatureCollection (filter by community, zone, lot, status, type, bbox)"""
        return collection(service.list_spaces(current_session(), **query))

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(SpaceCreate)
    @blp.response(201, SpaceOut)
    def post(self, data):
        """Add a space (Point or Polygon), in a lot or on its own"""
        session = current_session()
        space = service.create_space(session, geometry=data["geometry"], now=clock.now(), **data["properties"])
        session.commit()
        return feature(space), {"Location": url_for("parking.SpaceItem", space_id=space.id)}


@blp.route("/parking/spaces/status")
class SpacesStatus(MethodView):
    @auth.access(STATUS_KEEPERS)
    @blp.arguments(BulkStatusIn)
    @blp.response(200, BulkStatusOut)
    def post(self, data):
        """Bulk status update from sensors or wardens: all or nothing"""
        session = current_session()
        updates = [(u["id"], u["status"]) for u in data["updates"]]
        for space in service.spaces_by_id(session, [i for i, _ in updates]).values():
            _require_status_keeper(space.zone_id)
        spaces = service.set_statuses(session, updates, now=clock.now())
        session.commit()
        return {"updated": len(spaces), "items": spaces}


@blp.route("/parking/spaces/<int:space_id>")
class SpaceItem(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, SpaceOut)
    def get(self, space_id):
        """One space"""
        return feature(service.get_space(current_session(), space_id))

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(SpaceUpdate)
    @blp.response(200, SpaceOut)
    def patch(self, data, space_id):
        """Change a space"""
        session = current_session()
        changes = dict(data.get("properties", {}))
        if "geometry" in data:
            changes["geometry"] = data["geometry"]
        space = service.update_space(session, space_id, changes, now=clock.now())
        session.commit()
        return feature(space)

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.response(204)
    def delete(self, space_id):
        """Delete a space"""
        session = current_session()
        service.delete_space(session, space_id)
        session.commit()


@blp.route("/parking/spaces/<int:space_id>/status")
class SpaceStatus(MethodView):
    @auth.access(STATUS_KEEPERS)
    @blp.arguments(StatusIn)
    @blp.response(200, SpaceOut)
    def put(self, data, space_id):
        """Set one space's status (free, occupied, reserved, out_of_service); also the zone's liaison"""
        session = current_session()
        _require_status_keeper(service.get_space(session, space_id).zone_id)
        space = service.set_statuses(session, [(space_id, data["status"])], now=clock.now())[0]
        session.commit()
        return feature(space)


@blp.route("/parking/import")
class Import(MethodView):
    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(ImportQuery, location="query")
    @blp.response(201, ImportResultOut)
    @blp.alt_response(422, description="Nothing imported; `errors` lists each wrong feature by index")
    @blp.alt_response(415, description="The body is not sent as application/json (or application/geo+json)")
    # The body is read by hand (a byte order mark allowed, each wrong feature reported by index): described here.
    @blp.doc(requestBody={"required": True, "description": "A GeoJSON FeatureCollection: lots (Polygon, or Point with "
                                                           "a capacity) and spaces (Point), our fields or OSM tags",
                          "content": {"application/json": {"schema": {"type": "object"}},
                                      "application/geo+json": {"schema": {"type": "object"}}}})
    def post(self, query):
        """Import a GeoJSON FeatureCollection of lots and spaces (our fields or OSM tags): all or nothing"""
        data = request.get_data(cache=True)
        # A UTF-8 byte order mark, as Windows tools (Notepad, Excel's exports) write it,
        # is not part of the JSON: RFC 8259 lets a parser ignore it, and refusing it
        # turned away files that open everywhere else.
        data = data.removeprefix(codecs.BOM_UTF8)
        try:
            body = strict_json_loads(data or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedJson(f"Malformed JSON: {exc}") from exc
        refuse_unstorable_text(body)
        report = parse_import(body)
        session = current_session()
        result = import_parking(session, report.items, parse_errors=report.errors, now=clock.now(),
                                dry_run=query["dry_run"])
        if not query["dry_run"]:
            session.commit()
        return {"lots": result.lots, "spaces": result.spaces, "by_zone": result.by_zone}


def _selector(query: dict) -> service.Selector:
    echo = {k: v for k, v in query.items() if k in ("community_id", "zone_id", "bbox", "lon", "lat", "crs", "radius_m")}
    if "community_id" in query:
        return service.Selector("community", community_id=query["community_id"], echo=echo)
    if "zone_id" in query:
        return service.Selector("zone", zone_id=query["zone_id"], echo=echo)
    if "bbox" in query:
        return service.Selector("bbox", bbox=query["bbox"], echo=echo)
    point = geopoint(query["lon"], query["lat"], query["crs"])
    echo["point"] = point.as_dict()
    return service.Selector("radius", point=(point.lon, point.lat), radius_m=query["radius_m"], echo=echo)


def _capacity_csv(answer: dict, selector: service.Selector) -> Response:
    session = current_session()
    lots = service.lots_in(session, selector, as_of=answer["as_of"])
    columns = ["lot_id", "ref", "name", "zone_id", "access", "kind", "opened_on", "car", "accessible",
               "ev_charging", "truck", "ebike", "total"]
    types = ("car", "accessible", "ev_charging", "truck", "ebike")
    rows = [[lot.id, lot.ref or "", lot.name, lot.zone_id or "", lot.access, lot.kind,
             lot.opened_on.isoformat() if lot.opened_on else "", *(lot.capacity[t] for t in types), lot.capacity_total]
            for lot in lots]
    # Spaces of no lot (stalls along a street) count in the supply too: a row per zone, and a TOTAL row equal to
    # the JSON's supply, so the column adds up to what the planner was told.
    for zone_id, by_type in service.lone_spaces_in(current_session(), selector, as_of=answer["as_of"]):
        rows.append(["", "", "single spaces", zone_id or "", "", "", "", *(by_type[t] for t in types),
                     sum(by_type.values())])
    supply = answer["supply"]
    rows.append(["TOTAL", "", "", "", "", "", "", *(supply["by_type"][t] for t in types), supply["total"]])
    return csv_response(columns, rows, "parking-capacity.csv")


@blp.route("/parking/capacity")
class Capacity(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(CapacityQuery, location="query")
    @blp.response(200)
    @blp.doc(responses={"200": {"description": "The figures; with format=csv, a row per lot and a TOTAL",
                                "content": {"application/json": {"schema": CapacityReportOut},
                                            "text/csv": {"schema": {"type": "string"}}}}})
    def get(self, query):
        """Supply, occupancy and practical capacity for a community, zone, bbox or radius (format=csv: per lot)"""
        selector = _selector(query)
        session = current_session()
        if query["format"] != "csv" and selector.kind != "radius":
            without_transaction(session)  # one statement answers (a radius adds its nearest lots)
        # an area (a box, a circle, a drawn polygon) may span communities: its "today" is the default clock's
        answer = service.capacity(session, selector, as_of=query.get("as_of"), now=clock.now(),
                                  tz=clock.default_timezone())
        if query["format"] == "csv":
            return _capacity_csv(answer, selector)
        return answer

    @auth.access(auth.PUBLIC)
    @blp.arguments(CapacityPolygonIn)
    @blp.response(200)
    @blp.doc(responses={"200": {"description": "The figures",
                                "content": {"application/json": {"schema": CapacityReportOut}}}})
    def post(self, data):
        """The same for an area drawn on the map (a GeoJSON Polygon or MultiPolygon)"""
        selector = service.Selector("polygon", polygon=data["geometry"],
                                    echo={"polygon": geometry_to_geojson(data["geometry"])})
        session = current_session()
        without_transaction(session)  # one statement answers
        return service.capacity(session, selector, as_of=data.get("as_of"), now=clock.now(),
                                tz=clock.default_timezone())


GAP_COLUMNS = ["zone", "name", "supply", "demand", "gap", "status", "peak_occupancy"]


@blp.route("/parking/gap")
class Gap(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(GapQuery, location="query")
    @blp.response(200)
    @blp.doc(responses={"200": {"description": "Per zone and in total; format=csv a row per zone and a TOTAL, "
                                               "format=geojson the zones as features with these properties",
                                "content": {"application/json": {"schema": GapReportOut},
                                            "text/csv": {"schema": {"type": "string"}},
                                            "application/geo+json": {"schema": {"type": "object"}}}}})
    def get(self, query):
        """Supply against demand per zone and for the community (format=csv or geojson to export)"""
        report = service.gap(current_session(), query["community_id"], as_of=query.get("as_of"), now=clock.now())
        if query["format"] == "csv":
            rows = [[row["code"], row["name"], row["supply"], row["demand"], row["gap"], row["status"],
                     "" if row["peak_occupancy"] is None else row["peak_occupancy"]] for row in report["zones"]]
            t = report["total"]
            unzoned = (t["unzoned_supply"], t["unzoned_demand"], t["unzoned_peak_occupancy"])
            if unzoned != (0, 0, None):
                # What lies in no zone (its zone deleted) is in the TOTAL: shown as a row of its own,
                # the column sums in a spreadsheet come to the TOTAL.
                supply, demand, peak = unzoned
                rows.append(["(no zone)", "in no zone", supply, demand, demand - supply,
                             service.gap_status(demand - supply, demand), "" if peak is None else peak])
            rows.append(["TOTAL", "", t["supply"], t["demand"], t["gap"], t["status"],
                         "" if t["peak_occupancy"] is None else t["peak_occupancy"]])
            return csv_response(GAP_COLUMNS, rows, f"parking-gap-{report['as_of']}.csv")
        rows = report.pop("zones")
        if query["format"] == "geojson":
            features = [{"type": "Feature", "id": r["zone_id"], "geometry": geometry_to_geojson(as_shape(r["geometry"])),
                         "properties": {k: v for k, v in r.items() if k != "geometry"}} for r in rows]
            body = {"type": "FeatureCollection", **report, "features": features}
            return Response(json.dumps(body, ensure_ascii=False), mimetype="application/geo+json")
        report["zones"] = [{k: v for k, v in r.items() if k != "geometry"} for r in rows]
        return report
