"""Importing a parking inventory: all or nothing, with a report per feature.

The features arrive parsed (gridsvc.schemas.parking.parse_import); this adds
what needs the database: which zone and community each feature falls in,
the owning enterprise by name, refs unique within the community, and a
space's lot by ref or id (a lot of the community it stands in). Any error
anywhere means nothing is written.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.errors import GridsvcError, ValidationFailed
from gridsvc.models import Enterprise, ParkingLot, ParkingSpace, Zone
from gridsvc.services import parking


class ImportFailed(ValidationFailed):
    type, title = "/problems/import-failed", "Import failed: nothing was imported"


@dataclass(frozen=True)
class ImportResult:
    lots: int
    spaces: int
    by_zone: dict[str, int]


def import_parking(session: Session, items: list, *, parse_errors: list[dict[str, Any]], now: datetime,
                   dry_run: bool = False, progress: Callable[[int], None] | None = None) -> ImportResult:
    errors = list(parse_errors)
    placed: list[tuple[Any, int, int]] = []
    for item in items:
        try:
            community_id, zone_id = parking.place_of(session, item.geometry)
            placed.append((item, community_id, zone_id))
        except GridsvcError as exc:
            errors.append({"index": item.index, "feature": item.label, "errors": exc.errors or {"_": [exc.detail]}})
    refs = Counter((community_id, item.feature_type, item.ref) for item, community_id, _ in placed if item.ref)
    for (community_id, feature_type, ref), n in refs.items():
        model = ParkingLot if feature_type == "lot" else ParkingSpace
        if n > 1 or session.scalar(select(model.id).where(model.community_id == community_id, model.ref == ref)):
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
    lot_refs = {item.ref for item, _, _ in placed if item.feature_type == "lot" and item.ref}
    for item, community_id, _ in placed:
        if item.feature_type == "space" and item.lot_ref and item.lot_ref not in lot_refs and not session.scalar(
                select(ParkingLot.id).where(ParkingLot.community_id == community_id, ParkingLot.ref == item.lot_ref)):
            errors.append({"index": item.index, "feature": item.label,
                           "errors": {"lot_ref": [f"no lot {item.lot_ref} in this import or this community"]}})
        if item.feature_type == "space" and item.lot_id is not None and not session.scalar(
                select(ParkingLot.id).where(ParkingLot.community_id == community_id, ParkingLot.id == item.lot_id)):
            errors.append({"index": item.index, "feature": item.label,
                           "errors": {"lot_id": [f"no lot {item.lot_id} in this community"]}})
    if errors:
        errors.sort(key=lambda e: (e["index"] is None, e["index"] or 0))
        named = ", ".join(f"#{e['index']} {e.get('feature', '')}".strip() for e in errors[:5])
        raise ImportFailed(f"{len(errors)} feature(s) are wrong ({named}); nothing was imported.", errors=errors)

    zone_codes = dict(session.execute(select(Zone.id, Zone.code)).all())
    by_zone: Counter[str] = Counter(zone_codes.get(zone_id, "?") for _, _, zone_id in placed)
    lots = [p for p in placed if p[0].feature_type == "lot"]
    spaces = [p for p in placed if p[0].feature_type == "space"]
    if dry_run:
        return ImportResult(lots=len(lots), spaces=len(spaces), by_zone=dict(by_zone))
    created_lots: dict[tuple[int, str], int] = {}
    for item, community_id, _ in lots:
        lot = parking.create_lot(session, geometry=item.geometry, enterprise_id=enterprise_ids.get(item.index),
                                 **item.fields)
        if item.ref:
            created_lots[(community_id, item.ref)] = lot.id
        if progress:
            progress(1)
    for item, community_id, _ in spaces:
        lot_id = item.lot_id
        if item.lot_ref:
            lot_id = created_lots.get((community_id, item.lot_ref)) or session.scalar(
                select(ParkingLot.id).where(ParkingLot.community_id == community_id, ParkingLot.ref == item.lot_ref))
        parking.create_space(session, geometry=item.geometry, lot_id=lot_id, now=now, **item.fields)
        if progress:
            progress(1)
    return ImportResult(lots=len(lots), spaces=len(spaces), by_zone=dict(by_zone))
