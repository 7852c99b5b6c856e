"""Grid zones of a community: CRUD, coverage, equal-area split and locate."""
from __future__ import annotations

import hashlib
import json

from flask import Response, request, url_for
from flask.views import MethodView

from gridsvc import auth, clock
from gridsvc.api import Blueprint
from gridsvc.db import current_session
from gridsvc.resources.actors import actor
from gridsvc.schemas.common import PointIn
from gridsvc.schemas.zones import (CoverageOut, LocateOut, SplitIn, SplitOut, ZoneCollectionOut, ZoneCreate, ZoneMapOut,
                                   ZoneOut, ZoneUpdate, zone_collection, zone_feature)
from gridsvc.services import maps
from gridsvc.services import zones as service

blp = Blueprint("zones", __name__, description="Grid zones (网格) that tile a community")


@blp.route("/communities/<int:community_id>/zones")
class CommunityZones(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, ZoneCollectionOut)
    def get(self, community_id):
        """The community's zones as a GeoJSON FeatureCollection"""
        return zone_collection(service.list_zones(current_session(), community_id))

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(ZoneCreate)
    @blp.response(201, ZoneOut)
    def post(self, feature, community_id):
        """Add a zone (a GeoJSON Feature) inside the community, overlapping no other zone"""
        session = current_session()
        zone = service.create_zone(session, community_id, geometry=feature["geometry"], **feature["properties"])
        session.commit()
        return zone_feature(zone), {"Location": url_for("zones.ZoneItem", zone_id=zone.id)}


@blp.route("/communities/<int:community_id>/coverage")
class CommunityCoverage(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, CoverageOut)
    def get(self, community_id):
        """How well the zones tile the community: gaps, overlaps, zones without a liaison"""
        report = service.coverage_report(current_session(), community_id)
        return coverage_body(report)


@blp.route("/communities/<int:community_id>/zones/split")
class CommunitySplit(MethodView):
    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.arguments(SplitIn)
    @blp.response(200, SplitOut)
    def post(self, data, community_id):
        """Propose N compact zones of near-equal area (commit=true saves them)"""
        session = current_session()
        if data["commit"]:
            proposals = service.commit_split(session, community_id, data["count"])
            session.commit()
        else:
            proposals = service.propose_split(session, community_id, data["count"])
        areas = [p.area_m2 for p in proposals]
        return {
            "committed": data["commit"], "count": len(proposals),
            "area_ratio": round(max(areas) / min(areas), 4),
            "features": [{"geometry": p.geometry, "properties": {"code": p.code, "name": p.name, "area_m2": round(p.area_m2, 1)}}
                         for p in proposals],
        }


@blp.route("/zones/locate")
class ZoneLocate(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.arguments(PointIn, location="query")
    @blp.response(200, LocateOut)
    @blp.alt_response(404, description="No zone holds the point")
    def get(self, point):
        """The zone and community containing a point (GCJ-02 and BD-09 are converted to WGS-84 first)"""
        located = service.locate(current_session(), point.lon, point.lat)
        return {"zone": located, "community": located, "point": point.as_dict(), "input": point.input_dict()}


@blp.route("/zones/<int:zone_id>")
class ZoneItem(MethodView):
    @auth.access(auth.PUBLIC)
    @blp.response(200, ZoneOut)
    def get(self, zone_id):
        """Get one zone as a GeoJSON Feature"""
        return zone_feature(service.get_zone(current_session(), zone_id))

    @auth.access(auth.ZONE_EDITORS)
    @blp.arguments(ZoneUpdate)
    @blp.response(200, ZoneOut)
    def patch(self, feature, zone_id):
        """Change a zone's geometry, name or liaison (a zone's own liaison: name and liaison only)"""
        session = current_session()
        changes = dict(feature.get("properties", {}))
        if "geometry" in feature:
            changes["geometry"] = feature["geometry"]
        principal = auth.current_principal()
        if not principal.has_any(("admin", "planner")):
            service.get_zone(session, zone_id)  # an unknown zone is a 404 for a liaison too, not "not yours"
            auth.require(principal.is_liaison_of(zone_id), "A liaison may change only the zones they are liaison of.")
            auth.require("geometry" not in changes, "A liaison may change a zone's name and liaison, not its geometry.")
        zone = service.update_zone(session, zone_id, changes)
        session.commit()
        return zone_feature(zone)

    @auth.access(auth.ADMIN_OR_PLANNER)
    @blp.response(204)
    def delete(self, zone_id):
        """Delete a zone; its enterprises fall to whichever zone now holds them

        Refused (409) while the zone has shifts or service requests: they carry volunteers' hours and the needs
        raised there. Redraw the zone instead.
        """
        session = current_session()
        service.delete_zone(session, zone_id)
        session.commit()


@blp.route("/zones/<int:zone_id>/map")
class ZoneMap(MethodView):
    @auth.access(auth.PUBLIC_MORE_WITH_TOKEN)
    @blp.response(200, ZoneMapOut)
    @blp.alt_response(304, description="Unchanged since the ETag sent in If-None-Match")
    def get(self, zone_id):
        """The zone's map as one FeatureCollection: zone, enterprises, parking lots (capacity, utilisation),
        volunteers on duty (positions only for the zone's liaison and admins) and the open requests you may see"""
        principal = auth.current_principal()
        body = maps.zone_map(current_session(), zone_id, actor=actor(), now=clock.now(),
                             sees_positions=auth.may_manage_zone(principal, zone_id))
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        # the answer depends on who asks: the caller is part of the tag, and caches must not share it
        etag = hashlib.sha256(payload + str(principal.user_id).encode()).hexdigest()[:32]
        headers = {"ETag": f'"{etag}"', "Cache-Control": "private, no-cache", "Vary": "Authorization"}
        if request.if_none_match.contains_weak(etag):  # If-None-Match compares weakly (RFC 9110 13.1.2)
            return Response(status=304, headers=headers)
        return Response(payload, content_type="application/json", headers=headers)


def _zone_ref(zone) -> dict:
    return {"id": zone.id, "code": zone.code, "name": zone.name}


def coverage_body(report: service.CoverageReport) -> dict:
    by_id = {z.id: z for z in report.zones}
    cov = report.coverage
    return {
        "community_id": report.community.id,
        "zone_count": len(report.zones),
        "community_area_m2": round(cov.community_area_m2, 1),
        "covered_area_m2": round(cov.covered_area_m2, 1),
        "covered_share": round(cov.covered_share, 6),
        "gap_area_m2": round(sum(area for _, area in cov.gaps), 2),
        "gaps": {"features": [{"geometry": g, "properties": {"area_m2": round(a, 2)}} for g, a in cov.gaps]},
        "overlaps": [{"zones": [_zone_ref(by_id[a]), _zone_ref(by_id[b])], "area_m2": round(area, 2)}
                     for a, b, area in cov.overlaps],
        "outside": [{"zone": _zone_ref(by_id[z]), "area_m2": round(area, 2)} for z, area in cov.outside],
        "zones_without_liaison": [_zone_ref(z) for z in report.without_liaison],
    }
