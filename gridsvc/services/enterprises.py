"""Enterprises of a community, each placed in the zone holding its location."""
from __future__ import annotations

from typing import Any

from shapely.geometry import Point
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from gridsvc import spatial as gsql
from gridsvc.errors import NotFound, OutsideCommunity, ValidationFailed
from gridsvc.models import Community, Enterprise, Zone
from gridsvc.services import Page
from gridsvc.services.communities import CONTAINMENT_TOLERANCE_M, get_community


def _zone_for(session: Session, community_id: int, location: Point) -> int | None:
    """The zone holding ``location``; on a shared edge the lowest id, as ``zones.assign_enterprises``."""
    return session.scalar(
        select(Zone.id).where(Zone.community_id == community_id,
                              func.ST_Covers(Zone.geom, gsql.literal_geometry(location)))
        .order_by(Zone.id).limit(1)
    )


def _check_inside(session: Session, community_id: int, location: Point) -> None:
    g = gsql.literal_geometry(location)
    inside, distance = session.execute(
        select(func.ST_Covers(gsql.buffered_m(Community.boundary, CONTAINMENT_TOLERANCE_M), g),
               gsql.distance_m(Community.boundary, g)).where(Community.id == community_id)
    ).one()
    if not inside:
        raise OutsideCommunity(
            f"The location ({location.x:.6f}, {location.y:.6f}) is {distance:.0f} m outside community {community_id}.",
            distance_m=round(distance, 1))


def get_enterprise(session: Session, community_id: int, enterprise_id: int, *, for_update: bool = False) -> Enterprise:
    """The enterprise, or NotFound. ``for_update`` locks its row, so that a change waits for a delete under way
    and then finds it gone (a 404) instead of updating no row (a 500)."""
    enterprise = session.get(Enterprise, enterprise_id, with_for_update=for_update or None)
    if enterprise is None or enterprise.community_id != community_id:
        raise NotFound(f"Enterprise {enterprise_id} does not exist in community {community_id}.")
    return enterprise


def list_enterprises(session: Session, community_id: int, *, zone_id: int | None = None,
                     limit: int = 100, offset: int = 0) -> Page[Enterprise]:
    get_community(session, community_id)
    query = select(Enterprise).where(Enterprise.community_id == community_id)
    if zone_id is not None:
        # an unknown zone, or another community's, lists nothing for a reason the caller should hear
        if session.scalar(select(Zone.id).where(Zone.id == zone_id, Zone.community_id == community_id)) is None:
            raise ValidationFailed(f"Zone {zone_id} is not a zone of community {community_id}.",
                                   errors={"zone_id": [f"not a zone of community {community_id}"]})
        query = query.where(Enterprise.zone_id == zone_id)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    # the page's zones and editors in one query each, not one per enterprise
    items = session.scalars(query.options(selectinload(Enterprise.zone), selectinload(Enterprise.created_by),
                                          selectinload(Enterprise.updated_by))
                            .order_by(Enterprise.id).limit(limit).offset(offset)).all()
    return Page(items=items, total=total or 0, limit=limit, offset=offset)


def create_enterprise(session: Session, community_id: int, *, name: str, location: Point, workers: int = 0,
                      parking_demand: int | None = None, car_commuter_share: float | None = None) -> Enterprise:
    # The community's lock, which every zone and boundary writer takes: without it the zone was looked up before
    # a zone being drawn was committed, whose own placement of enterprises could not see this one yet, and the
    # enterprise stayed in no zone (or outside a boundary shrunk meanwhile).
    get_community(session, community_id, for_update=True)
    _check_inside(session, community_id, location)
    enterprise = Enterprise(community_id=community_id, name=name, workers=workers, parking_demand=parking_demand,
                            car_commuter_share=car_commuter_share, location=gsql.literal_geometry(location),
                            zone_id=_zone_for(session, community_id, location))
    session.add(enterprise)
    session.flush()
    return enterprise


def update_enterprise(session: Session, community_id: int, enterprise_id: int, changes: dict[str, Any]) -> Enterprise:
    location = changes.pop("location", None)
    if location is not None:
        # As in create_enterprise; before the enterprise's own lock, in the order zone writers take them.
        get_community(session, community_id, for_update=True)
    enterprise = get_enterprise(session, community_id, enterprise_id, for_update=True)
    for key, value in changes.items():
        setattr(enterprise, key, value)
    if location is not None:
        _check_inside(session, community_id, location)
        enterprise.location = gsql.literal_geometry(location)
        enterprise.zone_id = _zone_for(session, community_id, location)
    session.flush()
    return enterprise


def delete_enterprise(session: Session, community_id: int, enterprise_id: int) -> None:
    session.delete(get_enterprise(session, community_id, enterprise_id, for_update=True))
    session.flush()
