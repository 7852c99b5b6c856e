"""Trigger-kept counts stay equal to counting the rows, through every kind of write."""
from __future__ import annotations

from sqlalchemy import delete, func, select, text, update

from gridsvc.models import LotSpaceTally, ParkingLot, ParkingSpace, RowCount


def tallies(session) -> dict[int, tuple[int, int]]:
    return {t.lot_id: (t.spaces, t.occupied) for t in session.scalars(select(LotSpaceTally)) if t.spaces or t.occupied}


def counted(session) -> dict[int, tuple[int, int]]:
    rows = session.execute(select(ParkingSpace.lot_id, func.count(),
                                  func.count().filter(ParkingSpace.status.in_(("occupied", "reserved"))))
                           .where(ParkingSpace.lot_id.is_not(None)).group_by(ParkingSpace.lot_id)).all()
    return {lot: (n, occupied) for lot, n, occupied in rows}


def space(lot: ParkingLot, ref: str, status: str = "free") -> ParkingSpace:
    return ParkingSpace(community_id=lot.community_id, zone_id=lot.zone_id, lot_id=lot.id, ref=ref, space_type="car",
                        status=status, geom="SRID=4326;POINT(121.7703 29.8707)")


def test_lot_tallies_follow_inserts_status_changes_moves_and_deletes(session):
    first, second = session.scalars(select(ParkingLot).order_by(ParkingLot.id).limit(2)).all()
    session.add_all([space(first, f"A-{i}", "occupied" if i < 3 else "free") for i in range(8)]
                    + [space(second, f"B-{i}", "reserved") for i in range(2)])
    session.flush()
    assert tallies(session) == counted(session) == {first.id: (8, 3), second.id: (2, 2)}

    session.execute(update(ParkingSpace).where(ParkingSpace.ref.in_(["A-3", "A-4"])).values(status="reserved"))
    session.execute(update(ParkingSpace).where(ParkingSpace.ref == "A-0").values(status="out_of_service"))
    assert tallies(session) == counted(session) == {first.id: (8, 4), second.id: (2, 2)}

    session.execute(update(ParkingSpace).where(ParkingSpace.ref == "A-1").values(lot_id=second.id))  # moved
    session.execute(update(ParkingSpace).where(ParkingSpace.ref == "A-2").values(lot_id=None))  # now a lone space
    assert tallies(session) == counted(session) == {first.id: (6, 2), second.id: (3, 3)}

    session.execute(delete(ParkingSpace).where(ParkingSpace.ref.like("B-%")))
    assert tallies(session) == counted(session) == {first.id: (6, 2), second.id: (1, 1)}

    session.execute(delete(ParkingLot).where(ParkingLot.id == first.id))  # its spaces go with it
    assert tallies(session) == counted(session) == {second.id: (1, 1)}


def test_row_counts_equal_count_star(session):
    for table in ("community", "zone", "enterprise", "parking_lot", "parking_space"):
        kept = session.scalar(select(RowCount.n).where(RowCount.table_name == table))
        assert kept == session.execute(text(f"SELECT count(*) FROM {table}")).scalar(), table
