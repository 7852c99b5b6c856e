"""Grid zones: the N zones (often 10) that tile a community, one liaison each."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session, selectinload

from geo.crs import geodesic_area_m2
from geo.grid import Coverage, coverage, split_equal_area
from gridsvc import spatial as gsql
from gridsvc.errors import (Conflict, DuplicateCode, HasDependents, NotFound, OutsideCommunity, ValidationFailed,
                            ZoneOverlap)
from gridsvc.fields import MIN_DRAWN_AREA_M2, as_shape
from gridsvc.models import Community, Enterprise, ServiceRequest, Shift, User, Volunteer, Zone
from gridsvc.services.communities import CONTAINMENT_TOLERANCE_M, get_community
from gridsvc.services.parking import assign_parking

# Overlaps smaller than this are floating-point noise along a shared edge.
OVERLAP_TOLERANCE_M2 = 0.01
# The API publishes coordinates to 7 decimals (about 1 cm, features.COORDINATE_DECIMALS). A zone sent back
# as published (edited in QGIS from the OGC feed, say) has its shared edges a centimetre off its neighbours':
# its vertices within this many degrees of a neighbour's vertex or edge are put back on it before the checks.
SNAP_TOLERANCE_DEG = 2e-7


def get_zone(session: Session, zone_id: int, *, for_update: bool = False) -> Zone:
    zone = session.get(Zone, zone_id, with_for_update=for_update or None)
    if zone is None:
        raise NotFound(f"Zone {zone_id} does not exist.")
    return zone


def list_zones(session: Session, community_id: int) -> list[Zone]:
    get_community(session, community_id)
    # the liaisons and editors of all the zones in one query each, not one per zone
    return list(session.scalars(select(Zone).where(Zone.community_id == community_id).order_by(Zone.code)
                                .options(selectinload(Zone.liaison), selectinload(Zone.created_by),
                                         selectinload(Zone.updated_by))))


def _liaison_id(session: Session, username: str | None) -> int | None:
    """The account named as a zone's liaison: it must exist and have the liaison role."""
    if username is None:
        return None
    user = session.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))
    if user is None or "liaison" not in user.roles:
        reason = "does not exist" if user is None else "does not have the liaison role"
        raise ValidationFailed(f"The liaison {username} {reason}.",
                               errors={"properties": {"liaison": [f"{username} {reason}"]}})
    return user.id


def manages_a_zone_of(session: Session, liaison_zone_ids: Iterable[int], community_id: int) -> bool:
    """Whether any of a liaison's zones is in the community."""
    return session.scalar(select(Zone.id).where(Zone.community_id == community_id,
                                                Zone.id.in_(list(liaison_zone_ids))).limit(1)) is not None


def create_zone(session: Session, community_id: int, *, code: str, name: str, geometry: BaseGeometry,
                liaison: str | None = None) -> Zone:
    get_community(session, community_id, for_update=True)  # one zone writer per community at a time
    liaison_id = _liaison_id(session, liaison)
    _check_code_free(session, community_id, code)
    geometry = _snapped_to_neighbours(session, community_id, geometry)
    _check_inside_community(session, community_id, geometry)
    _check_no_overlap(session, community_id, geometry)
    zone = Zone(community_id=community_id, code=code, name=name, liaison_id=liaison_id,
                geom=gsql.literal_geometry(geometry))
    session.add(zone)
    session.flush()
    assign_enterprises(session, community_id)
    assign_parking(session, community_id)
    return zone


def _locked_zone(session: Session, zone_id: int) -> Zone:
    """The zone, read again once its community's lock is held: a zone deleted by the writer that held the lock
    before us is a 404 (changed regardless, the UPDATE matched no row: a 500)."""
    zone = get_zone(session, zone_id)
    get_community(session, zone.community_id, for_update=True)
    return get_zone(session, zone_id, for_update=True)


def update_zone(session: Session, zone_id: int, changes: dict[str, Any]) -> Zone:
    zone = _locked_zone(session, zone_id)
    geometry = changes.pop("geometry", None)
    if "liaison" in changes:
        zone.liaison_id = _liaison_id(session, changes.pop("liaison"))
    for key, value in changes.items():
        setattr(zone, key, value)
    if geometry is not None:
        geometry = _snapped_to_neighbours(session, zone.community_id, geometry, exclude_zone_id=zone.id)
        _check_inside_community(session, zone.community_id, geometry)
        _check_no_overlap(session, zone.community_id, geometry, exclude_zone_id=zone.id)
        zone.geom = gsql.literal_geometry(geometry)
    session.flush()
    if geometry is not None:
        assign_enterprises(session, zone.community_id)
        assign_parking(session, zone.community_id)
    return zone


def delete_zone(session: Session, zone_id: int) -> None:
    """Delete a zone that holds no record of work. Its shifts (with their
    volunteers' check-ins and service hours, declined ones included) and
    service requests would go with it by ON DELETE CASCADE: those are
    people's records, so a zone that has any stays (409); to redraw the grid,
    change its geometry instead."""
    zone = _locked_zone(session, zone_id)
    community_id = zone.community_id
    shifts = session.scalar(select(func.count()).where(Shift.zone_id == zone_id))
    requests = session.scalar(select(func.count()).where(ServiceRequest.zone_id == zone_id))
    if shifts or requests:
        raise HasDependents(f"Zone {zone.code} has {shifts} shift(s) and {requests} service request(s), the record "
                            "of volunteers' hours and of needs raised; it cannot be deleted. Change its geometry or "
                            "name instead.", shifts=shifts, service_requests=requests)
    # A volunteer's home zone says whose liaison they are (who reaches them, sees their whole record): deleted, it
    # was set to none without a word, and they belonged to no liaison.
    at_home = session.scalar(select(func.count()).where(Volunteer.home_zone_id == zone_id))
    if at_home:
        raise HasDependents(f"Zone {zone.code} is the home zone of {at_home} volunteer(s), whose liaison is its "
                            "liaison; give them another home zone first (PATCH /api/v1/volunteers/{id}), or change "
                            "this zone's geometry or name instead.", volunteers=at_home)
    session.delete(zone)
    session.flush()
    assign_enterprises(session, community_id)
    assign_parking(session, community_id)


def _snapped_to_neighbours(session: Session, community_id: int, geometry: BaseGeometry,
                           exclude_zone_id: int | None = None) -> BaseGeometry:
    """``geometry`` with the vertices that lie within ``SNAP_TOLERANCE_DEG`` of a neighbouring zone put on
    it (``ST_Snap``); unchanged when nothing is that close, or when snapping would make it invalid."""
    g = gsql.literal_geometry(geometry)
    neighbours = select(func.ST_Collect(Zone.geom)).where(
        Zone.community_id == community_id, func.ST_DWithin(Zone.geom, g, SNAP_TOLERANCE_DEG))
    if exclude_zone_id is not None:
        neighbours = neighbours.where(Zone.id != exclude_zone_id)
    snapped = func.ST_Snap(g, neighbours.scalar_subquery(), SNAP_TOLERANCE_DEG)
    wkb, valid = session.execute(select(func.ST_AsBinary(snapped), func.ST_IsValid(snapped))).one()
    if wkb is None or not valid:
        return geometry
    result = shapely.from_wkb(bytes(wkb))
    return result if result.geom_type == geometry.geom_type else geometry


def _check_code_free(session: Session, community_id: int, code: str) -> None:
    """A zone code is free in its community whatever its case: "g01" beside "G01" is one grid zone to the people
    who say it, and two on every list. (Zones are written one at a time per community: no race to lose.)"""
    taken = session.scalar(select(Zone.code).where(Zone.community_id == community_id,
                                                   func.upper(Zone.code) == code.upper()))
    if taken is not None:
        raise DuplicateCode(f"Community {community_id} already has a zone with code {taken}.", code=code)


def _check_inside_community(session: Session, community_id: int, geometry: BaseGeometry) -> None:
    g = gsql.literal_geometry(geometry)
    inside, outside_m2 = session.execute(
        select(func.ST_Covers(gsql.buffered_m(Community.boundary, CONTAINMENT_TOLERANCE_M), g),
               gsql.area_m2(func.ST_Difference(g, Community.boundary)))
        .where(Community.id == community_id)
    ).one()
    if not inside:
        raise OutsideCommunity(
            f"The zone lies partly outside community {community_id}: {outside_m2:.1f} m² outside "
            f"(tolerance {CONTAINMENT_TOLERANCE_M:g} m).", outside_area_m2=round(outside_m2, 2))


def _check_no_overlap(session: Session, community_id: int, geometry: BaseGeometry,
                      exclude_zone_id: int | None = None) -> None:
    g = gsql.literal_geometry(geometry)
    query = (
        select(Zone.id, Zone.code, Zone.name, gsql.area_m2(func.ST_Intersection(Zone.geom, g)).label("area"))
        .where(Zone.community_id == community_id, func.ST_Intersects(Zone.geom, g), gsql.interiors_intersect(Zone.geom, g))
    )
    if exclude_zone_id is not None:
        query = query.where(Zone.id != exclude_zone_id)
    overlaps = [row for row in session.execute(query) if row.area > OVERLAP_TOLERANCE_M2]
    if overlaps:
        overlaps.sort(key=lambda row: -row.area)
        worst = overlaps[0]
        raise ZoneOverlap(
            f"The zone overlaps zone {worst.code} ({worst.name}) by {worst.area:.1f} m².",
            overlaps=[{"zone_id": r.id, "code": r.code, "area_m2": round(r.area, 2)} for r in overlaps])


def assign_enterprises(session: Session, community_id: int) -> None:
    """Put every enterprise of the community in the zone holding its location.

    Run after any zone change; a point on a shared edge goes to the zone
    with the lowest id, as in ``locate`` and wherever requests, shifts and
    parking are placed: by lowest code, an enterprise on the edge was shown
    in one zone while its requests went to the liaison of the other.
    """
    session.execute(text("""
        UPDATE enterprise e SET zone_id = z.zone_id
        FROM (
            SELECT e2.id AS enterprise_id,
                   (SELECT z.id FROM zone z
                     WHERE z.community_id = e2.community_id AND ST_Covers(z.geom, e2.location)
                     ORDER BY z.id LIMIT 1) AS zone_id
            FROM enterprise e2 WHERE e2.community_id = :cid
        ) z
        WHERE e.id = z.enterprise_id AND e.zone_id IS DISTINCT FROM z.zone_id
    """), {"cid": community_id})
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Enterprise) and obj.community_id == community_id:
            session.expire(obj, ["zone_id", "zone"])


# ------------------------------------------------------------ coverage & split


@dataclass(frozen=True)
class CoverageReport:
    community: Community
    zones: list[Zone]
    coverage: Coverage

    @property
    def without_liaison(self) -> list[Zone]:
        """Zones nobody can answer for: no liaison named, or one whose account is disabled or no longer has the
        liaison role (dispatch passes them over too)."""
        return [z for z in self.zones if not has_acting_liaison(z)]


def has_acting_liaison(zone: Zone) -> bool:
    liaison = zone.liaison
    return liaison is not None and not liaison.disabled and "liaison" in liaison.roles


def coverage_report(session: Session, community_id: int) -> CoverageReport:
    community = get_community(session, community_id)
    zones = list_zones(session, community_id)
    result = coverage(as_shape(community.boundary), {z.id: as_shape(z.geom) for z in zones},
                      min_area_m2=OVERLAP_TOLERANCE_M2)
    return CoverageReport(community=community, zones=zones, coverage=result)


@dataclass(frozen=True)
class ZoneProposal:
    code: str
    name: str
    geometry: BaseGeometry
    area_m2: float


def zone_code(index: int, count: int) -> str:
    """G01..G10 for ten zones; G001.. once there are more than 99."""
    return f"G{index:0{max(2, len(str(count)))}d}"


def propose_split(session: Session, community_id: int, count: int) -> list[ZoneProposal]:
    community = get_community(session, community_id)
    boundary = as_shape(community.boundary)
    # zones of at least what a drawn zone must enclose (a boundary stored before that floor may be a sliver: its
    # bisection made empty pieces, a 500)
    area = geodesic_area_m2(boundary)
    if area / count < MIN_DRAWN_AREA_M2:
        raise ValidationFailed(f"Community {community_id} encloses {area:.3g} m²: too small for {count} zones of at "
                               f"least {MIN_DRAWN_AREA_M2:g} m² each.",
                               errors={"count": [f"at most {int(area // MIN_DRAWN_AREA_M2)} zones for this boundary"]})
    pieces = split_equal_area(boundary, count)
    proposals = []
    for index, piece in enumerate(pieces, start=1):
        code = zone_code(index, count)
        proposals.append(ZoneProposal(code=code, name=f"网格 {code}", geometry=piece, area_m2=geodesic_area_m2(piece)))
    return proposals


def commit_split(session: Session, community_id: int, count: int) -> list[ZoneProposal]:
    """Save a split; only for a community without zones (else 409). A split replaces no zone: zones with shifts
    or service requests hold people's records and are never deleted (``delete_zone``), so the answer points to
    redrawing them, not to deleting them."""
    get_community(session, community_id, for_update=True)
    existing = session.scalar(select(func.count()).where(Zone.community_id == community_id))
    if existing:
        raise Conflict(f"Community {community_id} already has {existing} zone(s); a split is only for a community "
                       "without zones. Redraw its zones instead (PATCH /api/v1/zones/{id} with a new geometry): "
                       "zones with shifts or service requests hold volunteers' hours and needs raised, and are "
                       "never deleted; a zone without them may be deleted first.", zone_count=existing)
    proposals = propose_split(session, community_id, count)
    session.add_all(Zone(community_id=community_id, code=p.code, name=p.name, geom=gsql.literal_geometry(p.geometry))
                    for p in proposals)
    session.flush()
    assign_enterprises(session, community_id)
    assign_parking(session, community_id)
    return proposals


# ------------------------------------------------------------ locate


@dataclass(frozen=True)
class Located:
    """The answer of ``locate``: plain values, no geometries (it is a hot path)."""

    zone_id: int
    zone_code: str
    zone_name: str
    liaison_name: str | None
    zone_area_m2: float
    community_id: int
    community_name: str
    community_kind: str


# Built once: locate is the hot path, and building the statement per call
# costs more than the index lookup it performs.
_LOCATE = (
    select(Zone.id, Zone.code, Zone.name, User.display_name, gsql.area_m2(Zone.geom),
           Community.id, Community.name, Community.kind)
    .join(Community, Zone.community_id == Community.id)
    .outerjoin(User, Zone.liaison_id == User.id)
    .where(func.ST_Covers(Zone.geom, gsql.point(bindparam("lon"), bindparam("lat"))))
    .order_by(Zone.id).limit(1)
)


def locate(session: Session, lon: float, lat: float) -> Located:
    """The zone (and its community) that contains a WGS-84 point.

    ``ST_Covers`` uses the GiST index on zone.geom; a point on a shared edge
    belongs to both zones and the lowest id wins so the answer is stable.
    Only the columns the answer needs are read: a town's boundary can be
    megabytes and has no business crossing the wire for a point lookup.
    """
    row = session.execute(_LOCATE, {"lon": lon, "lat": lat}).first()
    if row is None:
        raise NotFound(f"No zone contains the point ({lon:.6f}, {lat:.6f}).", point={"lon": lon, "lat": lat, "crs": "wgs84"})
    return Located(*row)
