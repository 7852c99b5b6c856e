"""A liaison's map of one zone: everything on it as one GeoJSON FeatureCollection.

Layers (``properties.layer``): the zone, its enterprises, its parking lots
with capacity and how full they are now, volunteers on duty in it, and its
open requests. Personal data follows the API's rules: volunteers' positions
only for the zone's liaison and admins (others get how many are on duty),
and requests only as far as the caller may see them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.db import fetch_prepared
from gridsvc.errors import NotFound
from gridsvc.models import OPEN_STATUSES, ServiceRequest, Zone
from gridsvc.services import requests as requests_service
from gridsvc.services.features import COORDINATE_DECIMALS, capacity_total_sql
from gridsvc.services.parking import FRESH_OBSERVATION


def lot_occupancy_sql(lot: str) -> str:
    """A lateral row (capacity, occupied) for the lot ``lot`` now: its latest
    observation of the last day, else its spaces marked occupied or reserved
    (the lot's trigger-kept tally), else unknown (NULL) when it has neither.
    Needs %(now)s and %(fresh_after)s."""
    # The lot row carries its latest observation; only when that one is dated
    # after "now" (a clock ahead) is the history searched for the latest before.
    return f"""
        SELECT {capacity_total_sql(lot)} AS capacity,
               coalesce(CASE WHEN {lot}.observed_at IS NULL THEN NULL
                             WHEN {lot}.observed_at <= %(now)s
                             THEN CASE WHEN {lot}.observed_at > %(fresh_after)s THEN {lot}.observed_occupied END
                             ELSE (SELECT ob.occupied FROM occupancy_observation ob
                                   WHERE ob.lot_id = {lot}.id AND ob.observed_at > %(fresh_after)s
                                     AND ob.observed_at <= %(now)s
                                   ORDER BY ob.observed_at DESC LIMIT 1) END,
                        CASE WHEN {lot}.spaces_on_record > 0 THEN {lot}.spaces_occupied END)
               AS occupied"""


def _geometry(column: str) -> str:
    return f"ST_AsGeoJSON({column}, {COORDINATE_DECIMALS})::json"


def _rows(session: Session, sql: str, params: dict[str, Any]) -> list[tuple]:
    return fetch_prepared(session, sql, params, many=True)


def _feature(layer: str, feature_id: Any, geometry: Any, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": f"{layer}.{feature_id}", "geometry": geometry,
            "properties": {"layer": layer, "id": feature_id, **properties}}


def zone_map(session: Session, zone_id: int, *, actor: requests_service.Actor, sees_positions: bool,
             now: datetime) -> dict[str, Any]:
    zone = session.get(Zone, zone_id)
    if zone is None:
        raise NotFound(f"Zone {zone_id} does not exist.")
    params = {"zone": zone_id, "now": now, "fresh_after": now - FRESH_OBSERVATION}
    features = []
    for zid, code, name, community_id, area, geometry in _rows(session, f"""
            SELECT id, code, name, community_id, round(ST_Area(geom::geography)::numeric, 1), {_geometry('geom')}
            FROM zone WHERE id = %(zone)s""", params):
        features.append(_feature("zone", zid, geometry, code=code, name=name, community_id=community_id,
                                 area_m2=float(area)))
    for eid, name, workers, demand, geometry in _rows(session, f"""
            SELECT id, name, workers, parking_demand, {_geometry('location')}
            FROM enterprise WHERE zone_id = %(zone)s ORDER BY id""", params):
        features.append(_feature("enterprise", eid, geometry, name=name, workers=workers, parking_demand=demand))
    for lid, name, ref, access, kind, capacity, occupied, geometry in _rows(session, f"""
            SELECT l.id, l.name, l.ref, l.access, l.kind, o.capacity, o.occupied, {_geometry('l.geom')}
            FROM parking_lot l CROSS JOIN LATERAL ({lot_occupancy_sql('l')}) o
            WHERE l.zone_id = %(zone)s ORDER BY l.id""", params):
        utilisation = round(occupied / capacity, 3) if occupied is not None and capacity else None
        features.append(_feature("parking", lid, geometry, name=name, ref=ref, access=access, kind=kind,
                                 capacity=capacity, occupied=occupied, utilisation=utilisation))
    on_duty = _rows(session, f"""
            SELECT v.id, v.real_name, v.team, s.id, s.title, v.last_position_at, v.last_accuracy_m,
                   {_geometry('v.last_position')}
            FROM volunteer v JOIN shift s ON s.id = v.on_duty_shift_id
            WHERE s.zone_id = %(zone)s AND s.ends_at > %(now)s ORDER BY v.id""", params)
    if sees_positions:
        for vid, name, team, shift_id, shift_title, at, accuracy, geometry in on_duty:
            features.append(_feature("volunteer", vid, geometry, name=name, team=team, shift_id=shift_id,
                                     shift_title=shift_title, position_at=at.isoformat() if at else None,
                                     accuracy_m=accuracy))
    visible = requests_service.visible(select(ServiceRequest.id), actor).where(
        ServiceRequest.zone_id == zone_id, ServiceRequest.status.in_(OPEN_STATUSES))
    request_ids = list(session.scalars(visible))
    if request_ids:
        for rid, code, status, created, due, description, geometry in _rows(session, f"""
                SELECT id, service_code, status, created_at, sla_due_at, description, {_geometry('location')}
                FROM service_request WHERE id = ANY(%(ids)s) ORDER BY created_at, id""", {"ids": request_ids}):
            features.append(_feature("request", rid, geometry, service_code=code, status=status,
                                     created_at=created.isoformat(), sla_due_at=due.isoformat() if due else None,
                                     description=description))
    return {"type": "FeatureCollection", "zone": {"id": zone.id, "code": zone.code, "name": zone.name},
            "volunteers_on_duty": len(on_duty), "features": features}
