"""Importing a parking inventory: all or nothing, with a report per feature.

The features arrive parsed (gridsvc.schemas.parking.parse_import); this adds
what needs the database: which zone and community each feature falls in,
the owning enterprise by name, refs unique within the community, and a
space's lot by ref or id (a lot of the community it stands in); and that no
feature is given twice or stored already. Any error anywhere means nothing
is written; imports into one community run one at a time.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridsvc.errors import GridsvcError, ImportFailed
from gridsvc.models import Enterprise, ParkingLot, ParkingSpace, Zone
from gridsvc.services import parking


@dataclass(frozen=True)
class ImportResult:
    lots: int
    spaces: int
    by_zone: dict[str, int]


def _stored_already(session: Session, placed: list[tuple[Any, int, int]]) -> list[dict[str, Any]]:
    """Features without a ref that are already stored: a lot of the same name
    and kind on the same ground, a space in the same place. Why: a file
    imported a second time (the first answer lost to a timeout, say) doubled
    the supply of every lot without a ref; with a ref the ref check names it."""
    errors = []
    for item, community_id, _ in placed:
        if item.ref is not None:
            continue
        if item.feature_type == "lot":
            found = parking.stored_as(session, ParkingLot, community_id, item.geometry, name=item.fields["name"],
                                      kind=item.fields["kind"])
        else:
            found = parking.stored_as(session, ParkingSpace, community_id, item.geometry)
        if found is not None:
            errors.append({"index": item.index, "feature": item.label, "errors": {"_schema": [
                f"the same {item.feature_type} is stored already as {item.feature_type} {found}: imported before?"]}})
    return errors


def import_parking(session: Session, items: list, *, parse_errors: list[dict[str, Any]], now: datetime,
                   dry_run: bool = False, progress: Callable[[int], None] | None = None) -> ImportResult:
    errors = list(parse_errors)
    # The same feature twice (a row copied in the sheet the file was made
    # from): with a ref the ref check names it; without one nothing did, and
    # its spaces were counted twice.
    first_of: dict[tuple, int] = {}
    for item in items:
        if item.ref is not None:
            continue
        key = (item.feature_type, shapely.normalize(item.geometry).wkb, json.dumps(item.fields, sort_keys=True, default=str),
               item.enterprise, item.lot_ref, item.lot_id)
        if key in first_of:
            errors.append({"index": item.index, "feature": item.label,
                           "errors": {"_schema": [f"the same {item.feature_type} as feature #{first_of[key]}: given twice?"]}})
        else:
            first_of[key] = item.index
    placed: list[tuple[Any, int, int]] = []
    for item in items:
        try:
            community_id, zone_id = parking.place_of(session, item.geometry)
            placed.append((item, community_id, zone_id))
        except GridsvcError as exc:
            errors.append({"index": item.index, "feature": item.label, "errors": exc.errors or {"_": [exc.detail]}})
    # One import at a time per community: the checks below (refs free, nothing
    # stored already) hold until the commit only if no other import writes in
    # between; the same file uploaded twice at once was written twice.
    for community_id in sorted({community_id for _, community_id, _ in placed}):
        session.execute(select(func.pg_advisory_xact_lock(parking.INVENTORY_LOCKS, community_id)))
    errors.extend(_stored_already(session, placed))
    refs = Counter((community_id, item.feature_type, item.ref) for item, community_id, _ in placed if item.ref)
    for (community_id, feature_type, ref), n in refs.items():
        model = ParkingLot if feature_type == "lot" else ParkingSpace
        if n > 1 or parking.holder_of_ref(session, model, community_id, ref) is not None:
            errors.extend({"index": item.index, "feature": item.label,
                           "errors": {"ref": [f"{ref} is already used in this community"]}}
                          for item, c, _ in placed if (c, item.feature_type, item.ref) == (community_id, feature_type, ref))
    enterprise_ids: dict[int, int | None] = {}
    for item, community_id, _ in placed:
        if item.feature_type == "lot" and item.enterprise:
            found = session.scalar(select(Enterprise.id).where(Enterprise.community_id == community_id,
                                                               Enterprise.name == item.enterprise))
            if found is None:
                errors.append({"index": item.index, "feature": item.label,
                               "errors": {"enterprise": [f"no enterprise named {item.enterprise} in this community"]}})
            enterprise_ids[item.index] = found
    # Refs are unique per community, so a space's lot_ref names a lot of the
    # space's own community: a lot of that ref in another community of the
    # same file is not it (the space was then written as a lone stall,
    # adding a space of supply the planner never had).
    lot_refs = {(community_id, item.ref) for item, community_id, _ in placed if item.feature_type == "lot" and item.ref}
    for item, community_id, _ in placed:
        if (item.feature_type == "space" and item.lot_ref and (community_id, item.lot_ref) not in lot_refs
                and parking.holder_of_ref(session, ParkingLot, community_id, item.lot_ref) is None):
            errors.append({"index": item.index, "feature": item.label,
                           "errors": {"lot_ref": [f"no lot {item.lot_ref} in this import or this community"]}})
        if item.feature_type == "space" and item.lot_id is not None and not session.scalar(
                select(ParkingLot.id).where(ParkingLot.community_id == community_id, ParkingLot.id == item.lot_id)):
            errors.append({"index": item.index, "feature": item.label,
                           "errors": {"lot_id": [f"no lot {item.lot_id} in this community"]}})
    # the file itself (not a FeatureCollection, say): said as such, not as a feature "#None"
    whole_file = [str(message) for e in errors if e["index"] is None for messages in e["errors"].values()
                  for message in (messages if isinstance(messages, list) else [messages])]
    if whole_file:
        raise ImportFailed(f"The file is wrong: {'; '.join(whole_file)}; nothing was imported.", errors=errors)
    if errors:
        errors.sort(key=lambda e: (e["index"] is None, e["index"] or 0))
        named = ", ".join(f"#{e['index']} {e.get('feature', '')}".strip() for e in errors[:5])
        raise ImportFailed(f"{len(errors)} feature(s) are wrong ({named}); nothing was imported.", errors=errors)

    by_zone = _count_by_zone(session, placed)
    lots = [p for p in placed if p[0].feature_type == "lot"]
    spaces = [p for p in placed if p[0].feature_type == "space"]
    if dry_run:
        return ImportResult(lots=len(lots), spaces=len(spaces), by_zone=dict(by_zone))
    created_lots: dict[tuple[int, str], int] = {}
    for item, community_id, _ in lots:
        lot = parking.create_lot(session, geometry=item.geometry, enterprise_id=enterprise_ids.get(item.index),
                                 checked_as_new=True, **item.fields)  # (_stored_already, above)
        if item.ref:
            created_lots[(community_id, item.ref)] = lot.id
        if progress:
            progress(1)
    for item, community_id, _ in spaces:
        lot_id = item.lot_id
        if item.lot_ref:
            lot_id = (created_lots.get((community_id, item.lot_ref))
                      or parking.holder_of_ref(session, ParkingLot, community_id, item.lot_ref))
        parking.create_space(session, geometry=item.geometry, lot_id=lot_id, now=now, checked_as_new=True,
                             **item.fields)
        if progress:
            progress(1)
    return ImportResult(lots=len(lots), spaces=len(spaces), by_zone=dict(by_zone))


def _count_by_zone(session: Session, placed: list[tuple[Any, int, int | None]]) -> dict[str, int]:
    """Features per zone code ("?": in no zone); for a file spanning several communities, whose codes repeat
    (each park has its G01), per "community_id:code". Why: by code alone, two parks' G01 were added up."""
    codes = dict(session.execute(select(Zone.id, Zone.code).where(
        Zone.id.in_({zone_id for _, _, zone_id in placed if zone_id is not None}))).all())
    several = len({community_id for _, community_id, _ in placed}) > 1
    return dict(Counter(f"{community_id}:{codes.get(zone_id, '?')}" if several else codes.get(zone_id, "?")
                        for _, community_id, zone_id in placed))
