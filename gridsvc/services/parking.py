"""Parking inventory, occupancy, capacity and the supply/demand gap.

Counting rules (one place, documented in the README):
- a lot's supply is its capacity by type; a space inside a lot only carries
  that lot's live status and does not add supply; a space on its own (a
  street-side stall) adds one space of its type;
- car-usable supply = car + accessible + ev_charging (what the gap compares
  with commuters' demand); truck and ebike spaces are reported, not compared;
- as of a date, only lots and spaces whose ``opened_on`` is on or before it
  count (NULL: in use since before records began);
- occupied now, per lot: its latest observation of the last 24 hours, else
  the count of its spaces marked occupied or reserved; plus lone spaces so
  marked. Out-of-service spaces are neither free nor occupied, nor are the
  spaces of a lot with neither a fresh count nor spaces on record (unknown);
- a box or drawn polygon counts a lot or lone space where a point on its
  surface lies; a radius, any lot that reaches within it;
- practical capacity is 85 % of supply (a lot feels full well before the
  last stall goes);
- demand per enterprise = its explicit figure, else round(workers x its
  car-commuter share, else the community's), half up;
- per zone, gap = demand - car-usable supply; "ok" within 5 % of demand,
  else deficit or surplus; the community's total also counts the lots,
  spaces and enterprises that lie in no zone;
- days (the gap's as_of and peak window, the 1d buckets of a series) are the
  community's own (``Community.timezone``);
- a lot is in the zone holding most of its area (or its point), a lone space
  in the zone where it stands, a space of a lot in its lot's zone; zone
  changes re-place them (``assign_parking``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry.base import BaseGeometry
from sqlalchemy import and_, bindparam, case, func, literal_column, or_, select, text, update
from sqlalchemy.orm import Session

from gridsvc import spatial as gsql
from gridsvc.db import fetch_prepared, statement_text, try_advisory_xact_lock
from gridsvc.errors import Conflict, LockHeldElsewhere, NotFound, ValidationFailed
from gridsvc.fields import as_shape
from gridsvc.models import (CAR_USABLE, SPACE_TYPES, Community, Enterprise, OccupancyObservation, ParkingLot,
                            ParkingSpace, Zone)
from gridsvc.services import Page
from gridsvc.services.communities import community_timezone

PRACTICAL_SHARE = 0.85
OK_BAND = 0.05
FRESH_OBSERVATION = timedelta(hours=24)
PEAK_WINDOW_DAYS = 30
BUCKETS = {"15min": "15 minutes", "1h": "1 hour", "1d": "1 day"}
OCCUPYING = ("occupied", "reserved")


# ---------------------------------------------------------------- place


def place_of(session: Session, geometry: BaseGeometry, *, field_name: str = "geometry") -> tuple[int, int]:
    """(community_id, zone_id): the zone holding most of the geometry's area, or its point."""
    g = gsql.literal_geometry(geometry)
    if geometry.geom_type == "Point":
        query = select(Zone.community_id, Zone.id).where(func.ST_Covers(Zone.geom, g)).order_by(Zone.id).limit(1)
    else:
        share = gsql.area_m2(func.ST_Intersection(Zone.geom, g))
        query = (select(Zone.community_id, Zone.id).where(func.ST_Intersects(Zone.geom, g))
                 .order_by(share.desc(), Zone.id).limit(1))
    row = session.execute(query).first()
    if row is None:
        raise ValidationFailed("The geometry lies in no zone of any community.",
                               errors={field_name: ["outside every zone"]})
    return row[0], row[1]


# The zone of the row's community holding most of the row's area, as place_of
# picks it (a point's share is nil everywhere: the lowest-id zone covering it).
_ZONE_HOLDING_MOST_OF = """(
    SELECT z.id FROM zone z
     WHERE z.community_id = {row}.community_id AND ST_Intersects(z.geom, {row}.geom)
     ORDER BY ST_Area(ST_Intersection(z.geom, {row}.geom)::geography) DESC, z.id LIMIT 1)"""

# Only rows their zone no longer covers (or that have none) can change zone:
# the zone covering a lot holds all of it. MATERIALIZED: the zone is worked out
# once per row, not again for the comparison. The lots re-placed take their
# spaces along; "= ANY(ARRAY(...))" lets the planner, which cannot guess how few
# lots moved, find their spaces by the lot_id index instead of reading them all.
_REPLACE_LOTS = text(f"""
    WITH placed AS MATERIALIZED (
        SELECT l.id, {_ZONE_HOLDING_MOST_OF.format(row="l")} AS zone_id
          FROM parking_lot l LEFT JOIN zone current_zone ON current_zone.id = l.zone_id
         WHERE l.community_id = :community_id
           AND (current_zone.id IS NULL OR NOT ST_Covers(current_zone.geom, l.geom))
    ), moved AS (
        UPDATE parking_lot l SET zone_id = placed.zone_id FROM placed
         WHERE l.id = placed.id AND l.zone_id IS DISTINCT FROM placed.zone_id
        RETURNING l.id, l.zone_id
    )
    UPDATE parking_space s SET zone_id = moved.zone_id FROM moved
     WHERE s.lot_id = ANY(ARRAY(SELECT id FROM moved)) AND s.lot_id = moved.id
       AND s.zone_id IS DISTINCT FROM moved.zone_id""")

_REPLACE_LONE_SPACES = text(f"""
    WITH placed AS MATERIALIZED (
        SELECT lone.id, {_ZONE_HOLDING_MOST_OF.format(row="lone")} AS zone_id
          FROM parking_space lone LEFT JOIN zone current_zone ON current_zone.id = lone.zone_id
         WHERE lone.lot_id IS NULL AND lone.community_id = :community_id
           AND (current_zone.id IS NULL OR NOT ST_Covers(current_zone.geom, lone.geom))
    )
    UPDATE parking_space s SET zone_id = placed.zone_id FROM placed
     WHERE s.id = placed.id AND s.zone_id IS DISTINCT FROM placed.zone_id""")


def assign_parking(session: Session, community_id: int) -> None:
    """Put the community's lots and spaces in the zones that now hold them.

    Run after any change to its zones (as ``zones.assign_enterprises``): a
    redrawn, added or deleted zone moves supply from one zone to another, and
    a lot whose zone was deleted stays in none until a zone takes it. Lots go
    to the zone holding most of their area (or their point), lone spaces to
    the zone where they stand, the spaces of a lot with their lot. Two
    statements, whatever the number of lots.
    """
    params = {"community_id": community_id}
    session.execute(_REPLACE_LOTS, params)
    session.execute(_REPLACE_LONE_SPACES, params)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, ParkingLot) and obj.community_id == community_id:
            session.expire(obj, ["zone_id", "zone"])
        elif isinstance(obj, ParkingSpace) and obj.community_id == community_id:
            session.expire(obj, ["zone_id"])


# ---------------------------------------------------------------- lots


def get_lot(session: Session, lot_id: int) -> ParkingLot:
    lot = session.get(ParkingLot, lot_id)
    if lot is None:
        raise NotFound(f"Parking lot {lot_id} does not exist.")
    return lot


def _enterprise_in(session: Session, enterprise_id: int | None, community_id: int) -> int | None:
    if enterprise_id is None:
        return None
    enterprise = session.get(Enterprise, enterprise_id)
    if enterprise is None or enterprise.community_id != community_id:
        raise ValidationFailed(f"Enterprise {enterprise_id} is not an enterprise of the lot's community.",
                               errors={"enterprise_id": [f"unknown in community {community_id}"]})
    return enterprise_id


def holder_of_ref(session: Session, model, community_id: int, ref: str, *, own_id: int | None = None) -> int | None:
    """The id of the community's lot (``model`` ParkingLot) or space (ParkingSpace) with ``ref``, other than
    ``own_id``; refs are unique per community. Also the import's check."""
    held = select(model.id).where(model.community_id == community_id, model.ref == ref)
    if own_id is not None:
        held = held.where(model.id != own_id)
    with session.no_autoflush:  # a lot or space moved but not yet written would hit the constraint first
        return session.scalar(held.limit(1))


def _refuse_used_ref(session: Session, model, community_id: int, ref: str | None, *, own_id: int | None = None) -> None:
    """422 when another lot (or space) of the community has ``ref``. Why here and not
    only the unique constraint: its violation reads as a lost race (409, "another
    request changed the same records"), which sent planners retrying a ref that
    will never be free; the import says the same in the same words."""
    if ref is not None and holder_of_ref(session, model, community_id, ref, own_id=own_id) is not None:
        raise ValidationFailed(f"{ref} is already used in this community.",
                               errors={"ref": [f"{ref} is already used in this community"]})


def _capacity_columns(capacity: dict[str, int] | None) -> dict[str, int]:
    return {f"capacity_{t}": int((capacity or {}).get(t, 0)) for t in SPACE_TYPES}


# "PI": the advisory-lock space of a community's parking inventory, one lock per community: an import, and a lot or
# space posted, check that nothing is stored twice and hold that until their commit
INVENTORY_LOCKS = 0x5049
# how long a lot or space posted waits for a running import of its community before its 409
INVENTORY_LOCK_SECONDS = 5.0


def stored_as(session: Session, model, community_id: int, geometry: BaseGeometry, *, name: str | None = None,
              kind: str | None = None) -> int | None:
    """The id of the same feature stored already, if any: a lot (``model`` ParkingLot) of the same name and kind
    on the same ground, or a space (ParkingSpace) in the same place."""
    same = [model.community_id == community_id, func.ST_Equals(model.geom, gsql.literal_geometry(geometry))]
    if model is ParkingLot:
        same += [ParkingLot.name == name, ParkingLot.kind == (kind or "surface")]
    return session.scalar(select(model.id).where(*same).limit(1))


def refuse_stored_twice(session: Session, model, community_id: int, geometry: BaseGeometry,
                        *, name: str | None = None, kind: str | None = None) -> None:
    """A feature without a ref ``stored_as`` already: a 409 naming it. Why: a lot posted twice (a planner's
    double click, a retry without an Idempotency-Key) doubled its supply, which an import refuses. Under the
    community's inventory lock, tried for ``INVENTORY_LOCK_SECONDS``: an import holds it while it writes, and
    a request waiting for it stayed open as long as that ran (a 409 with Retry-After, nothing saved)."""
    if not try_advisory_xact_lock(session, INVENTORY_LOCKS, community_id, seconds=INVENTORY_LOCK_SECONDS):
        raise LockHeldElsewhere(f"Community {community_id}'s parking is being imported at this moment; nothing "
                                "was saved. Send it again.")
    found = stored_as(session, model, community_id, geometry, name=name, kind=kind)
    if found is not None:
        what = "lot" if model is ParkingLot else "space"
        raise Conflict(f"The same {what} is stored already as {what} {found}: posted before? (Give it a ref of "
                       f"its own if it is another.)")


def create_lot(session: Session, *, geometry: BaseGeometry, name: str, capacity: dict[str, int] | None = None,
               enterprise_id: int | None = None, checked_as_new: bool = False, **fields: Any) -> ParkingLot:
    """A lot; ``checked_as_new``: the caller (an import, all its features at once) has checked it is not
    stored already."""
    community_id, zone_id = place_of(session, geometry)
    _refuse_used_ref(session, ParkingLot, community_id, fields.get("ref"))
    if fields.get("ref") is None and not checked_as_new:
        refuse_stored_twice(session, ParkingLot, community_id, geometry, name=name, kind=fields.get("kind"))
    lot = ParkingLot(community_id=community_id, zone_id=zone_id, name=name, geom=gsql.literal_geometry(geometry),
                     enterprise_id=_enterprise_in(session, enterprise_id, community_id), **_capacity_columns(capacity),
                     **fields)
    session.add(lot)
    session.flush()
    return lot


def update_lot(session: Session, lot_id: int, changes: dict[str, Any]) -> ParkingLot:
    lot = get_lot(session, lot_id)
    geometry = changes.pop("geometry", None)
    if geometry is not None:
        # Its spaces follow a moved lot. Lock them first, in id order, before anything writes the lot: a
        # bulk status update locks spaces and then their lots, and the other order deadlocked with it.
        session.execute(select(ParkingSpace.id).where(ParkingSpace.lot_id == lot.id)
                        .order_by(ParkingSpace.id).with_for_update())
    if "capacity" in changes:
        merged = {**lot.capacity, **changes.pop("capacity")}
        for key, value in _capacity_columns(merged).items():
            setattr(lot, key, value)
    if geometry is not None:
        lot.community_id, lot.zone_id = place_of(session, geometry)
        lot.geom = gsql.literal_geometry(geometry)
        # The owner must be of the community the lot now lies in.
        changes.setdefault("enterprise_id", lot.enterprise_id)
    if "enterprise_id" in changes:
        changes["enterprise_id"] = _enterprise_in(session, changes["enterprise_id"], lot.community_id)
    if "ref" in changes or geometry is not None:  # a new ref, or the old one carried into another community
        _refuse_used_ref(session, ParkingLot, lot.community_id, changes.get("ref", lot.ref), own_id=lot.id)
    for key, value in changes.items():
        setattr(lot, key, value)
    session.flush()
    if geometry is not None:
        _spaces_follow_their_lot(session, lot)
    return lot


def _spaces_follow_their_lot(session: Session, lot: ParkingLot) -> None:
    """Put the spaces of ``lot`` in its community and zone: a liaison answers
    for the spaces of the lots of their zone, and capacity by zone counts
    them there."""
    session.execute(update(ParkingSpace)
                    .where(ParkingSpace.lot_id == lot.id,
                           or_(ParkingSpace.community_id != lot.community_id,
                               ParkingSpace.zone_id.is_distinct_from(lot.zone_id)))
                    .values(community_id=lot.community_id, zone_id=lot.zone_id)
                    .execution_options(synchronize_session="fetch"))


def delete_lot(session: Session, lot_id: int) -> None:
    session.delete(get_lot(session, lot_id))
    session.flush()


def list_lots(session: Session, *, community_id: int | None = None, zone_id: int | None = None,
              enterprise_id: int | None = None, access: str | None = None, kind: str | None = None,
              bbox: tuple[float, float, float, float] | None = None, limit: int = 100, offset: int = 0) -> Page[ParkingLot]:
    query = select(ParkingLot)
    for column, value in ((ParkingLot.community_id, community_id), (ParkingLot.zone_id, zone_id),
                          (ParkingLot.enterprise_id, enterprise_id), (ParkingLot.access, access), (ParkingLot.kind, kind)):
        if value is not None:
            query = query.where(column == value)
    if bbox is not None:
        query = query.where(func.ST_Intersects(ParkingLot.geom, func.ST_MakeEnvelope(*bbox, gsql.SRID)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(ParkingLot.id).limit(limit).offset(offset)).all()
    return Page(items=items, total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------- spaces


def get_space(session: Session, space_id: int) -> ParkingSpace:
    space = session.get(ParkingSpace, space_id)
    if space is None:
        raise NotFound(f"Parking space {space_id} does not exist.")
    return space


def _placed_space(session: Session, geometry: BaseGeometry, lot_id: int | None,
                  lot_ref: str | None = None) -> tuple[int, int | None, int | None]:
    """(community_id, zone_id, lot_id) of a space standing at ``geometry``: in a
    lot (by id, or by ``lot_ref``: a ref of the community the space stands in),
    the lot's zone, and the lot must be of that community; on its own, the zone
    where it stands."""
    community_id, zone_id = place_of(session, geometry)
    if lot_ref is not None:
        lot_id = holder_of_ref(session, ParkingLot, community_id, lot_ref)
        if lot_id is None:
            raise ValidationFailed(f"No lot {lot_ref} in the space's community.",
                                   errors={"lot_ref": [f"no lot {lot_ref} in this community"]})
    if lot_id is None:
        return community_id, zone_id, None
    # The lot is named in the body: unknown, it is the body's error (422, as
    # the import says it), not a missing resource at the URL (404).
    lot = session.get(ParkingLot, lot_id)
    if lot is None:
        raise ValidationFailed(f"Parking lot {lot_id} does not exist.", errors={"lot_id": [f"no lot {lot_id}"]})
    if lot.community_id != community_id:
        raise ValidationFailed(f"The space is not in lot {lot_id}'s community.", errors={"lot_id": ["other community"]})
    return community_id, lot.zone_id, lot.id


def create_space(session: Session, *, geometry: BaseGeometry, lot_id: int | None = None, lot_ref: str | None = None,
                 now: datetime, checked_as_new: bool = False, **fields: Any) -> ParkingSpace:
    """A space; its lot by id or by ``lot_ref`` (as the import names it), not both (``checked_as_new``: as
    ``create_lot``)."""
    if lot_ref is not None and lot_id is not None:
        raise ValidationFailed("Give the space's lot by lot_ref or by lot_id, not both.",
                               errors={"lot_id": ["give lot_ref or lot_id, not both"]})
    community_id, zone_id, lot_id = _placed_space(session, geometry, lot_id, lot_ref)
    _refuse_used_ref(session, ParkingSpace, community_id, fields.get("ref"))
    if fields.get("ref") is None and not checked_as_new:
        refuse_stored_twice(session, ParkingSpace, community_id, geometry)
    space = ParkingSpace(community_id=community_id, zone_id=zone_id, lot_id=lot_id, geom=gsql.literal_geometry(geometry),
                         status_updated_at=now, **fields)
    session.add(space)
    session.flush()
    return space


def update_space(session: Session, space_id: int, changes: dict[str, Any], *, now: datetime) -> ParkingSpace:
    space = get_space(session, space_id)
    geometry = changes.pop("geometry", None)
    if geometry is not None or "lot_id" in changes:
        # Moved, or put into or taken out of a lot: placed again, as a new space would be.
        position = geometry if geometry is not None else as_shape(space.geom)
        space.community_id, space.zone_id, _ = _placed_space(session, position, changes.get("lot_id", space.lot_id))
    if "ref" in changes or geometry is not None or "lot_id" in changes:
        _refuse_used_ref(session, ParkingSpace, space.community_id, changes.get("ref", space.ref), own_id=space.id)
    if geometry is not None:
        space.geom = gsql.literal_geometry(geometry)
    if "status" in changes and changes["status"] != space.status:
        space.status_updated_at = now
    for key, value in changes.items():
        setattr(space, key, value)
    session.flush()
    return space


def delete_space(session: Session, space_id: int) -> None:
    session.delete(get_space(session, space_id))
    session.flush()


def list_spaces(session: Session, *, community_id: int | None = None, zone_id: int | None = None,
                lot_id: int | None = None, status: str | None = None, space_type: str | None = None,
                bbox: tuple[float, float, float, float] | None = None, limit: int = 100,
                offset: int = 0) -> Page[ParkingSpace]:
    query = select(ParkingSpace)
    for column, value in ((ParkingSpace.community_id, community_id), (ParkingSpace.zone_id, zone_id),
                          (ParkingSpace.lot_id, lot_id), (ParkingSpace.status, status),
                          (ParkingSpace.space_type, space_type)):
        if value is not None:
            query = query.where(column == value)
    if bbox is not None:
        query = query.where(func.ST_Intersects(ParkingSpace.geom, func.ST_MakeEnvelope(*bbox, gsql.SRID)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(ParkingSpace.id).limit(limit).offset(offset)).all()
    return Page(items=items, total=total, limit=limit, offset=offset)


def spaces_by_id(session: Session, ids: list[int]) -> dict[int, ParkingSpace]:
    # locked in id order: two bulk updates over the same spaces, each locking in its own scan order, deadlocked
    found = {s.id: s for s in session.scalars(select(ParkingSpace).where(ParkingSpace.id.in_(ids))
                                              .order_by(ParkingSpace.id).with_for_update())}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationFailed(f"Unknown space id(s): {', '.join(map(str, missing[:20]))}; nothing was changed.",
                               errors={"updates": [f"unknown space {i}" for i in missing[:20]]})
    return found


def set_statuses(session: Session, updates: list[tuple[int, str]], *, now: datetime) -> list[ParkingSpace]:
    """Bulk status update (sensors, wardens): all or nothing."""
    spaces = spaces_by_id(session, [space_id for space_id, _ in updates])
    # The updates below run one statement per space, and each statement's
    # trigger locks its lot to update the lot's tally. Taking every such lock
    # first, in lot order, keeps two bulk updates over the same lots from
    # deadlocking (FOR NO KEY UPDATE: the lock the trigger's UPDATE takes).
    lot_ids = sorted({s.lot_id for s in spaces.values() if s.lot_id is not None})
    if lot_ids:
        session.execute(select(ParkingLot.id).where(ParkingLot.id.in_(lot_ids))
                        .order_by(ParkingLot.id).with_for_update(key_share=True))
    for space_id, status in updates:
        space = spaces[space_id]
        if space.status != status:
            space.status = status
            space.status_updated_at = now
    session.flush()
    return [spaces[space_id] for space_id, _ in updates]


# ---------------------------------------------------------------- occupancy


def add_observation(session: Session, lot_id: int, *, observed_at: datetime, occupied: int,
                    by_type: dict[str, int] | None = None, note: str | None = None, now: datetime) -> OccupancyObservation:
    lot = get_lot(session, lot_id)
    # An empty breakdown ({}) says nothing about types: kept as none. Stored as {}
    # it read as "0 cars" in the gap's peak, whatever ``occupied`` said.
    by_type = by_type or None
    if observed_at > now + timedelta(minutes=5):
        raise ValidationFailed("observed_at is in the future.", errors={"observed_at": ["in the future"]})
    if occupied > lot.capacity_total:
        raise ValidationFailed(f"{occupied} occupied is more than the lot's capacity of {lot.capacity_total}.",
                               errors={"occupied": [f"more than capacity {lot.capacity_total}"]})
    if by_type is not None:
        over = {t: n for t, n in by_type.items() if n > lot.capacity[t]}
        if over:
            raise ValidationFailed("More vehicles of a type than the lot has spaces of it: "
                                   + ", ".join(f"{t} {n} > {lot.capacity[t]}" for t, n in over.items()),
                                   errors={"by_type": [f"{t}: more than capacity {lot.capacity[t]}" for t in over]})
        if sum(by_type.values()) != occupied:
            raise ValidationFailed("by_type must add up to occupied.", errors={"by_type": ["does not add up to occupied"]})
    observation = OccupancyObservation(lot_id=lot_id, observed_at=observed_at, occupied=occupied, by_type=by_type,
                                       note=note)
    session.add(observation)
    session.flush()
    return observation


def occupancy_series(session: Session, lot_id: int, *, start: datetime, end: datetime,
                     bucket: str) -> list[dict[str, Any]]:
    """Peak and mean per bucket (buckets aligned to midnight in the lot's community)."""
    lot = get_lot(session, lot_id)
    tz = community_timezone(session, lot.community_id)
    if bucket == "1d":
        # A day is the calendar day on the community's clock (23 or 25 hours where summer time starts or
        # ends): cut every 24 h from a winter midnight, summer days began at 01:00.
        local = func.timezone(tz.key, OccupancyObservation.observed_at)
        bin_start = func.timezone(tz.key, func.date_trunc("day", local))
    else:
        origin = datetime.combine(date(2000, 1, 3), time.min, tz)
        bin_start = func.date_bin(text(f"interval '{BUCKETS[bucket]}'"), OccupancyObservation.observed_at, origin)
    rows = session.execute(
        select(bin_start.label("bucket"), func.max(OccupancyObservation.occupied), func.avg(OccupancyObservation.occupied),
               func.count())
        .where(OccupancyObservation.lot_id == lot_id, OccupancyObservation.observed_at >= start,
               OccupancyObservation.observed_at < end)
        .group_by(literal_column("bucket")).order_by(literal_column("bucket"))).all()
    capacity = lot.capacity_total or 1
    return [{"start": b.astimezone(tz), "peak": peak, "mean": round(float(mean), 1), "samples": n,
             "peak_utilisation_pct": round(100 * peak / capacity, 1)} for b, peak, mean, n in rows]


# ---------------------------------------------------------------- capacity


@dataclass(frozen=True)
class Selector:
    """Exactly one way of choosing an area."""

    kind: str  # community | zone | bbox | radius | polygon
    community_id: int | None = None
    zone_id: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    point: tuple[float, float] | None = None
    radius_m: float | None = None
    polygon: BaseGeometry | None = None
    echo: dict[str, Any] = field(default_factory=dict)

    def where(self, model) -> Any:
        """The area filter with bound parameters (see ``params``): one cached statement per kind."""
        return _area(model, self.kind)

    def params(self) -> dict[str, Any]:
        if self.kind == "community":
            return {"community_id": self.community_id}
        if self.kind == "zone":
            return {"zone_id": self.zone_id}
        if self.kind == "bbox":
            return dict(zip(("minx", "miny", "maxx", "maxy"), self.bbox))
        if self.kind == "radius":
            lon, lat = self.point
            return {"lon": lon, "lat": lat, "radius_m": self.radius_m,
                    **dict(zip(("minx", "miny", "maxx", "maxy"), gsql.degree_box(lon, lat, self.radius_m)))}
        return {"polygon": self.polygon.wkb}


def _area(model, kind: str) -> Any:
    if kind == "community":
        return model.community_id == bindparam("community_id")
    if kind == "zone":
        return model.zone_id == bindparam("zone_id")
    envelope = func.ST_MakeEnvelope(bindparam("minx"), bindparam("miny"), bindparam("maxx"), bindparam("maxy"), gsql.SRID)
    if kind == "radius":
        # the degree box lets the GiST index answer first; the spheroid decides. A lot any part of which
        # is within the radius counts whole: it can be parked in from there (nearest_lots: its near edge).
        here = gsql.point(bindparam("lon"), bindparam("lat"))
        return and_(model.geom.op("&&")(envelope),
                    func.ST_DWithin(gsql.geography(model.geom), gsql.geography(here), bindparam("radius_m")))
    area = envelope if kind == "bbox" else func.ST_SetSRID(func.ST_GeomFromWKB(bindparam("polygon")), gsql.SRID)
    # A drawn area (or box) counts a lot where its middle lies (a point on its surface), as a zone counts
    # the lots it holds most of: a lot across two areas drawn side by side was counted whole in both.
    # A middle on the shared edge itself was still in both (a closed box holds its edges): it is read a
    # hair (1e-9 degrees, 0.1 mm) north-east, so it falls on one side of every edge, as a half-open box
    # [min, max) would have it. "&&" on the column lets the GiST index pick the candidates.
    middle = func.ST_Translate(func.ST_PointOnSurface(model.geom), EDGE_NUDGE_DEGREES, EDGE_NUDGE_DEGREES)
    # (the index's box grown by the nudge: a lot a hair south-west of the area, nudged into it, is a candidate)
    return and_(model.geom.op("&&")(func.ST_Expand(area, EDGE_NUDGE_DEGREES)), func.ST_Intersects(middle, area))


# How far north-east a lot's middle is read, against an area's edges (``_area``)
EDGE_NUDGE_DEGREES = 1e-9


def _in_use(model, as_of: date):
    """In use on ``as_of``: opened on or before it (NULL: since before records began)."""
    return or_(model.opened_on.is_(None), model.opened_on <= as_of)


def _occupying(status_column):
    """``status IN ('occupied', 'reserved')`` written out, not as an expanding
    parameter, so the statement compiles to one fixed SQL text to prepare."""
    return status_column.op("IN")(literal_column("(" + ", ".join(f"'{s}'" for s in OCCUPYING) + ")"))


@functools.lru_cache(maxsize=32)
def _capacity_sql(kind: str, current: bool) -> tuple[str, dict[str, Any]]:
    """The capacity statement as psycopg2 SQL text and the values of its
    built-in parameters, for a prepared statement (planning it was a third
    of the cost of answering)."""
    return statement_text(_capacity_statement(kind, current))


def _capacity_statement(kind: str, current: bool):
    """All the figures in one statement of three aggregate passes (the chosen
    lots, the lone spaces in the area, the spaces inside the chosen lots);
    built once per selector kind (by ``_capacity_sql``), then only bound. Columns, in order: lots;
    lot capacity per type; lone spaces per type; spaces in lots; lone spaces;
    then, for today, occupied in lots, occupied lone, out of service in lots,
    out of service lone, capacity of the lots whose occupancy is unknown, and
    what lots hold beyond their places (each lot's free places are at least 0)."""
    lot_columns = [ParkingLot.id, *[getattr(ParkingLot, f"capacity_{t}") for t in SPACE_TYPES]]
    if current:
        # What a lot holds now: its latest count of the last day, else its marked spaces (the lot's
        # trigger-kept tally), else nobody knows (NULL), as the maps read it.
        latest = (select(OccupancyObservation.occupied)
                  .where(OccupancyObservation.lot_id == ParkingLot.id,
                         OccupancyObservation.observed_at > bindparam("fresh_after"),
                         OccupancyObservation.observed_at <= bindparam("now"))
                  # two counts at the same moment: the later recorded, as the lot's tally trigger (0013) and the maps
                  .order_by(OccupancyObservation.observed_at.desc(), OccupancyObservation.id.desc())
                  .limit(1).scalar_subquery())
        marked = case((ParkingLot.spaces_on_record > 0, ParkingLot.spaces_occupied))
        lot_columns.append(func.coalesce(latest, marked).label("known"))
        # its marked spaces out of service (none without marked spaces: no scan), for its own free places
        out_here = (select(func.count()).where(ParkingSpace.lot_id == ParkingLot.id,
                                               ParkingSpace.status == "out_of_service").scalar_subquery())
        lot_columns.append(case((ParkingLot.spaces_on_record > 0, out_here), else_=0).label("out_here"))
    lots = select(*lot_columns).where(_area(ParkingLot, kind), _in_use(ParkingLot, bindparam("as_of"))).cte("lots")
    lone = select(ParkingSpace.space_type, ParkingSpace.status).where(
        ParkingSpace.lot_id.is_(None), _area(ParkingSpace, kind), _in_use(ParkingSpace, bindparam("as_of"))).cte("lone")

    def tally(where=None):
        counted = func.count()
        return counted.filter(where) if where is not None else counted

    lot_columns = [func.count().label("n")]
    lot_columns += [func.coalesce(func.sum(lots.c[f"capacity_{t}"]), 0).label(t) for t in SPACE_TYPES]
    lone_columns = [tally(lone.c.space_type == t).label(t) for t in SPACE_TYPES] + [tally().label("n")]
    in_lots = select(ParkingSpace.status).where(ParkingSpace.lot_id.in_(select(lots.c.id)))
    if not current:
        # In the past a lot's marked spaces count from their own opening day, as lone ones do (a lot
        # may grow after it opens). Today every marked space of an open lot counts: it carries a live
        # status, and reading opened_on takes the scan off the (lot_id, status) index onto the table
        # (+50 % for a 500 m radius at 1M spaces).
        in_lots = in_lots.where(_in_use(ParkingSpace, bindparam("as_of")))
    in_lots = in_lots.subquery("in_lots")
    inside_columns = [tally().label("n")]
    if current:
        lot_columns.append(func.coalesce(func.sum(lots.c.known), 0).label("occupied"))
        lot_capacity = sum(lots.c[f"capacity_{t}"] for t in SPACE_TYPES)
        lot_columns.append(func.coalesce(func.sum(lot_capacity).filter(lots.c.known.is_(None)), 0).label("unknown"))
        # a lot counted fuller than its places (a count above a lowered capacity, say) has no free place, and
        # takes none from the others: what it holds beyond them, added back to the area's free places
        lot_columns.append(func.coalesce(func.sum(func.greatest(0, lots.c.known + lots.c.out_here - lot_capacity)),
                                         0).label("overfull"))
        lone_columns += [tally(_occupying(lone.c.status)).label("occupied"),
                         tally(lone.c.status == "out_of_service").label("out")]
        inside_columns.append(tally(in_lots.c.status == "out_of_service").label("out"))
    lot_sums = select(*lot_columns).select_from(lots).subquery("lot_sums")
    lone_sums = select(*lone_columns).select_from(lone).subquery("lone_sums")
    inside = select(*inside_columns).select_from(in_lots).subquery("inside")
    columns = [lot_sums.c.n, *[lot_sums.c[t] for t in SPACE_TYPES], *[lone_sums.c[t] for t in SPACE_TYPES],
               inside.c.n, lone_sums.c.n]
    if current:
        columns += [lot_sums.c.occupied, lone_sums.c.occupied, inside.c.out, lone_sums.c.out, lot_sums.c.unknown,
                    lot_sums.c.overfull]
    return select(*columns).select_from(lot_sums).join(lone_sums, literal_column("TRUE")).join(inside, literal_column("TRUE"))


def capacity(session: Session, selector: Selector, *, as_of: date | None, now: datetime, tz: ZoneInfo,
             nearest: int = 50) -> dict[str, Any]:
    """Supply (as of a date, default today), and for today (only) what is occupied and free."""
    today = now.astimezone(tz).date()
    # Occupied, free and out of service are today's figures: against the supply
    # of a later day they counted lots not yet open as free spaces now.
    current = as_of is None or as_of == today
    as_of = as_of or today
    params = {**selector.params(), "as_of": as_of, "now": now, "fresh_after": now - FRESH_OBSERVATION}
    sql, built_in = _capacity_sql(selector.kind, current)
    row = [int(v or 0) for v in fetch_prepared(session, sql, {**built_in, **params})]
    lot_count, lot_capacity, lone_counts = row[0], row[1:6], row[6:11]
    if lot_count == 0:
        _check_exists(session, selector)
    by_type = {t: lot_capacity[i] + lone_counts[i] for i, t in enumerate(SPACE_TYPES)}
    total = sum(by_type.values())
    answer: dict[str, Any] = {
        "selector": selector.echo, "as_of": as_of.isoformat(),
        "lots": lot_count, "spaces": row[11] + row[12],
        "supply": {"total": total, "car_usable": sum(by_type[t] for t in CAR_USABLE), "by_type": by_type},
        "practical_capacity": math.floor(PRACTICAL_SHARE * total),
        "occupied": None, "free": None, "out_of_service": None, "unknown": None, "utilisation_pct": None,
    }
    if current:
        # Spaces of lots with no count of the last day and no marked spaces are neither free nor
        # occupied: counted free, they made a zone look emptier the fewer of its lots were counted.
        occupied, out, unknown, overfull = row[13] + row[14], row[15] + row[16], row[17], row[18]
        known = total - unknown
        answer.update(occupied=occupied, out_of_service=out, unknown=unknown,
                      free=max(0, known - occupied - out + overfull),
                      utilisation_pct=round(100 * occupied / known, 1) if known else None)
    if selector.kind == "radius":
        sql, built_in = _nearest_sql()
        rows = fetch_prepared(session, sql, {**built_in, **params, "nearest": nearest}, many=True)
        answer["nearest_lots"] = [{"id": lot_id, "name": name, "zone_id": zone_id, "distance_m": round(d, 1),
                                   "capacity": dict(zip(SPACE_TYPES, capacity)), "access": access}
                                  for lot_id, name, zone_id, access, d, *capacity in rows]
    return answer


@functools.lru_cache(maxsize=1)
def _nearest_sql() -> tuple[str, dict[str, Any]]:
    """The lots of a radius, nearest first, as prepared SQL (only the columns shown)."""
    distance = gsql.distance_m(ParkingLot.geom, gsql.point(bindparam("lon"), bindparam("lat")))
    statement = (select(ParkingLot.id, ParkingLot.name, ParkingLot.zone_id, ParkingLot.access, distance,
                        *[getattr(ParkingLot, f"capacity_{t}") for t in SPACE_TYPES])
                 .where(_area(ParkingLot, "radius"), _in_use(ParkingLot, bindparam("as_of")))
                 .order_by(distance, ParkingLot.id).limit(bindparam("nearest")))
    return statement_text(statement)


def _check_exists(session: Session, selector: Selector) -> None:
    """An empty answer for a community or zone that does not exist is a 404, not zeros."""
    if selector.kind == "community" and session.get(Community, selector.community_id) is None:
        raise NotFound(f"Community {selector.community_id} does not exist.")
    if selector.kind == "zone" and session.get(Zone, selector.zone_id) is None:
        raise NotFound(f"Zone {selector.zone_id} does not exist.")


def lots_in(session: Session, selector: Selector, *, as_of: str | date) -> list[ParkingLot]:
    as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    return list(session.scalars(select(ParkingLot).where(selector.where(ParkingLot), _in_use(ParkingLot, as_of))
                                .order_by(ParkingLot.zone_id, ParkingLot.id), selector.params()))


def lone_spaces_in(session: Session, selector: Selector, *, as_of: str | date) -> list[tuple[int | None, dict[str, int]]]:
    """The spaces of no lot that ``capacity`` counts, per zone (None: in no zone), by type: the rows beside
    the lots that make a table of supply add up to its total."""
    as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    counts: dict[int | None, dict[str, int]] = {}
    for zone_id, space_type, n in session.execute(
            select(ParkingSpace.zone_id, ParkingSpace.space_type, func.count())
            .where(ParkingSpace.lot_id.is_(None), selector.where(ParkingSpace), _in_use(ParkingSpace, as_of))
            .group_by(ParkingSpace.zone_id, ParkingSpace.space_type), selector.params()):
        counts.setdefault(zone_id, dict.fromkeys(SPACE_TYPES, 0))[space_type] = n
    return sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or 0))


# ---------------------------------------------------------------- demand and gap


def enterprise_demand(workers: int, parking_demand: int | None, car_commuter_share: float | None,
                      community_share: float) -> int:
    """An enterprise's parking demand: its explicit figure, else its workers times its car-commuter share
    (else the community's)."""
    if parking_demand is not None:
        return parking_demand
    share = car_commuter_share if car_commuter_share is not None else community_share
    # Half up, as people round, on the share as written: in binary floating point
    # 100 x 0.145 is 14.499999999999998, which would round down.
    return int((workers * Decimal(str(share))).to_integral_value(rounding=ROUND_HALF_UP))


def gap_status(gap: int, demand: int) -> str:
    if abs(gap) <= OK_BAND * max(demand, 1):
        return "ok"
    return "deficit" if gap > 0 else "surplus"


def gap(session: Session, community_id: int, *, as_of: date | None, now: datetime) -> dict[str, Any]:
    """Supply against demand per zone as of a day (default: today), in the community's own days."""
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound(f"Community {community_id} does not exist.")
    tz = ZoneInfo(community.timezone)
    as_of = as_of or now.astimezone(tz).date()
    zones = session.scalars(select(Zone).where(Zone.community_id == community_id).order_by(Zone.code)).all()
    demand: dict[int | None, int] = {}
    # the four columns, not the enterprises: loading 5,000 of them whole took half a second
    for zone_id, workers, explicit, share in session.execute(
            select(Enterprise.zone_id, Enterprise.workers, Enterprise.parking_demand, Enterprise.car_commuter_share)
            .where(Enterprise.community_id == community_id)):
        demand[zone_id] = demand.get(zone_id, 0) + enterprise_demand(workers, explicit, share,
                                                                     community.car_commuter_share)
    usable = sum(getattr(ParkingLot, f"capacity_{t}") for t in CAR_USABLE)
    lot_supply = dict(session.execute(
        select(ParkingLot.zone_id, func.sum(usable)).where(ParkingLot.community_id == community_id,
                                                           _in_use(ParkingLot, as_of))
        .group_by(ParkingLot.zone_id)).all())
    lone_supply = dict(session.execute(
        select(ParkingSpace.zone_id, func.count()).where(ParkingSpace.community_id == community_id,
                                                         ParkingSpace.lot_id.is_(None),
                                                         ParkingSpace.space_type.in_(CAR_USABLE),
                                                         _in_use(ParkingSpace, as_of))
        .group_by(ParkingSpace.zone_id)).all())
    # local midnights at both ends: 30 x 24 h back took in an hour of the day before across summer time
    window_end = datetime.combine(as_of + timedelta(days=1), time.min, tz)
    window_start = datetime.combine(as_of - timedelta(days=PEAK_WINDOW_DAYS - 1), time.min, tz)
    # Cars only: by_type when the count has it, else the count capped at the lot's car-usable spaces.
    # An empty breakdown (as counts recorded before add_observation kept it as none) has none.
    by_type_cars = sum(func.coalesce(OccupancyObservation.by_type[t].as_integer(), 0) for t in CAR_USABLE)
    has_breakdown = and_(func.jsonb_typeof(OccupancyObservation.by_type) == "object",
                         OccupancyObservation.by_type != literal_column("'{}'::jsonb"))
    cars = case((has_breakdown, by_type_cars), else_=func.least(OccupancyObservation.occupied, usable))
    per_lot_peak = (select(ParkingLot.zone_id.label("zone_id"), func.max(cars).label("peak"))
                    .join(OccupancyObservation, OccupancyObservation.lot_id == ParkingLot.id)
                    .where(ParkingLot.community_id == community_id, _in_use(ParkingLot, as_of),
                           OccupancyObservation.observed_at >= window_start, OccupancyObservation.observed_at < window_end)
                    .group_by(ParkingLot.id, ParkingLot.zone_id).subquery())
    peaks = dict(session.execute(select(per_lot_peak.c.zone_id, func.sum(per_lot_peak.c.peak))
                                 .group_by(per_lot_peak.c.zone_id)).all())
    rows = []
    for zone in zones:
        supply = int(lot_supply.get(zone.id) or 0) + int(lone_supply.get(zone.id) or 0)
        wanted = demand.get(zone.id, 0)
        peak = peaks.get(zone.id)
        rows.append({"zone_id": zone.id, "code": zone.code, "name": zone.name, "supply": supply, "demand": wanted,
                     "gap": wanted - supply, "status": gap_status(wanted - supply, wanted),
                     "peak_occupancy": int(peak) if peak is not None else None,
                     "geometry": zone.geom})
    # The community's total is all of it: lots, spaces and enterprises in no zone
    # (their zone deleted, say) count too, as capacity?community_id counts them.
    unzoned_supply = int(lot_supply.get(None) or 0) + int(lone_supply.get(None) or 0)
    supply_total = sum(r["supply"] for r in rows) + unzoned_supply
    demand_total = sum(demand.values())
    return {"community_id": community_id, "as_of": as_of.isoformat(), "car_commuter_share": community.car_commuter_share,
            "zones": rows,
            "total": {"supply": supply_total, "demand": demand_total, "gap": demand_total - supply_total,
                      "status": gap_status(demand_total - supply_total, demand_total),
                      "unzoned_supply": unzoned_supply, "unzoned_demand": demand.get(None, 0),
                      "unzoned_peak_occupancy": int(peaks[None]) if peaks.get(None) is not None else None,
                      # none where no zone (nor the unzoned) has a count: the columns add up to the total, and a
                      # 0 read as an empty park
                      "peak_occupancy": (None if all(p is None for p in peaks.values()) else
                                         sum(r["peak_occupancy"] or 0 for r in rows) + int(peaks.get(None) or 0))}}

