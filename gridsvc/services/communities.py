"""Communities: the park, market or town that grid zones tile."""
from __future__ import annotations

from typing import Any, Iterable
from zoneinfo import ZoneInfo

from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridsvc import spatial as gsql
from gridsvc.errors import Conflict, HasDependents, NotFound
from gridsvc.models import Community, Enterprise, ServiceRequest, Shift, Volunteer, Zone
from gridsvc.services import Page

# A zone or enterprise may stick out of its community by this much: boundaries
# drawn by hand on different maps rarely agree to the centimetre.
CONTAINMENT_TOLERANCE_M = 1.0


def get_community(session: Session, community_id: int, *, for_update: bool = False) -> Community:
    """The community, or NotFound. ``for_update`` locks its row: zone writes of
    one community take this lock so that two racing writers cannot both pass
    the overlap check."""
    community = session.get(Community, community_id, with_for_update=for_update or None)
    if community is None:
        raise NotFound(f"Community {community_id} does not exist.")
    return community


def list_communities(session: Session, *, kind: str | None = None, limit: int = 100, offset: int = 0) -> Page[Community]:
    query = select(Community)
    if kind:
        query = query.where(Community.kind == kind)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(query.order_by(Community.id).limit(limit).offset(offset)).all()
    return Page(items=items, total=total or 0, limit=limit, offset=offset)


def community_timezone(session: Session, community_id: int) -> ZoneInfo:
    """The community's own time zone: its days are the ones its planners count in, its wall-clock times the
    ones its liaisons type."""
    return ZoneInfo(session.scalar(select(Community.timezone).where(Community.id == community_id)))


def community_timezones(session: Session, community_ids: Iterable[int]) -> dict[int, ZoneInfo]:
    """``community_timezone`` of several communities, in one query (usually one community)."""
    return {community_id: ZoneInfo(name) for community_id, name in session.execute(
        select(Community.id, Community.timezone).where(Community.id.in_(set(community_ids))))}


def create_community(session: Session, *, name: str, kind: str, boundary: BaseGeometry, timezone: str,
                     enterprise_count: int | None = None, worker_count: int | None = None,
                     car_commuter_share: float | None = None) -> Community:
    # Without a share of its own the community takes the column's default (0.1).
    own_share = {} if car_commuter_share is None else {"car_commuter_share": car_commuter_share}
    community = Community(name=name, kind=kind, boundary=gsql.literal_geometry(boundary), timezone=timezone,
                          enterprise_count=enterprise_count, worker_count=worker_count, **own_share)
    session.add(community)
    session.flush()
    return community


def update_community(session: Session, community_id: int, changes: dict[str, Any]) -> Community:
    community = get_community(session, community_id, for_update=True)
    boundary = changes.pop("boundary", None)
    for key, value in changes.items():
        setattr(community, key, value)
    if boundary is not None:
        _check_boundary_keeps_contents(session, community_id, boundary)
        community.boundary = gsql.literal_geometry(boundary)
    session.flush()
    return community


def _check_boundary_keeps_contents(session: Session, community_id: int, boundary: BaseGeometry) -> None:
    """A new boundary must still hold the community's zones and enterprises."""
    grown = gsql.buffered_m(gsql.literal_geometry(boundary), CONTAINMENT_TOLERANCE_M)
    zones = session.execute(
        select(Zone.code, gsql.area_m2(func.ST_Difference(Zone.geom, gsql.literal_geometry(boundary))))
        .where(Zone.community_id == community_id, ~func.ST_Covers(grown, Zone.geom))
        .order_by(Zone.code)
    ).all()
    if zones:
        listed = ", ".join(f"{code} ({area:.0f} m² outside)" for code, area in zones)
        raise Conflict(f"The new boundary would leave zones outside the community: {listed}.",
                       zones=[{"code": code, "outside_area_m2": round(area, 2)} for code, area in zones])
    outside = session.scalars(
        select(Enterprise.name).where(Enterprise.community_id == community_id, ~func.ST_Covers(grown, Enterprise.location))
    ).all()
    if outside:
        raise Conflict(f"The new boundary would leave {len(outside)} enterprise(s) outside the community, "
                       f"e.g. {outside[0]}.", enterprises=list(outside))


def delete_community(session: Session, community_id: int, *, cascade: bool = False) -> None:
    community = get_community(session, community_id, for_update=True)
    zones = session.scalar(select(func.count()).where(Zone.community_id == community_id))
    enterprises = session.scalar(select(func.count()).where(Enterprise.community_id == community_id))
    if (zones or enterprises) and not cascade:
        raise HasDependents(
            f"Community {community_id} still has {zones} zone(s) and {enterprises} enterprise(s); "
            "delete them first or pass cascade=true.", zones=zones, enterprises=enterprises)
    # Shifts (with the volunteers' check-ins and service hours, declined ones
    # included) and service requests are people's records, which cascade must
    # not take with the zones: as a zone, a community that has any stays.
    shifts = session.scalar(select(func.count()).where(Shift.community_id == community_id))
    requests = session.scalar(select(func.count()).where(ServiceRequest.community_id == community_id))
    if shifts or requests:
        raise HasDependents(
            f"Community {community_id} has {shifts} shift(s) and {requests} service request(s), the record of "
            "volunteers' hours and of needs raised; it cannot be deleted, not even with cascade=true.",
            zones=zones, enterprises=enterprises, shifts=shifts, service_requests=requests)
    # as for a zone (zones.delete_zone): volunteers whose home zone it holds would belong to no liaison
    at_home = session.scalar(select(func.count()).select_from(Volunteer).join(Zone, Zone.id == Volunteer.home_zone_id)
                             .where(Zone.community_id == community_id))
    if at_home:
        raise HasDependents(
            f"Community {community_id} holds the home zone of {at_home} volunteer(s), whose liaison is that zone's; "
            "give them another home zone first (PATCH /api/v1/volunteers/{id}).", zones=zones, volunteers=at_home)
    session.delete(community)  # zones, enterprises and parking go by ON DELETE CASCADE
    session.flush()
