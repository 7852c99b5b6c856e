"""Trigger-kept counts stay equal to counting the rows, through every kind of write."""
from __future__ import annotations

from sqlalchemy import delete, func, select, text, update

from gridsvc.models import ParkingLot, ParkingSpace, RowCount


def tallies(session) -> dict[int, tuple[int, int]]:
    rows = session.execute(select(ParkingLot.id, ParkingLot.spaces_on_record, ParkingLot.spaces_occupied)
                           .where((ParkingLot.spaces_on_record != 0) | (ParkingLot.spaces_occupied != 0))).all()
    return {lot: (n, occupied) for lot, n, occupied in rows}


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


def test_a_bulk_status_update_waits_for_another_writer_instead_of_deadlocking(engine):
    """Real connections: a writer holds lot A and will want lot B; a bulk update
    over the same lots (its spaces B first by id) must wait for it, not deadlock."""
    import threading
    import time
    from datetime import datetime, timezone

    from sqlalchemy.orm import Session

    from gridsvc.services.parking import set_statuses

    now = datetime.now(timezone.utc)
    with Session(engine) as setup:
        template = setup.scalar(select(ParkingLot).order_by(ParkingLot.id).limit(1))
        lots = [ParkingLot(community_id=template.community_id, zone_id=template.zone_id, name=f"race {n}",
                           geom="SRID=4326;POINT(121.7703 29.8707)") for n in "AB"]
        setup.add_all(lots)
        setup.flush()
        # ids interleave across the lots, so the two updates meet the lots in opposite orders
        for i in range(4):
            for lot in (lots if i % 2 == 0 else lots[::-1]):
                setup.add(space(lot, f"race-{lot.name[-1]}-{i}"))
                setup.flush()
        setup.commit()
        lot_ids = [lot.id for lot in lots]
        ids = dict(setup.execute(select(ParkingSpace.ref, ParkingSpace.id).where(ParkingSpace.ref.like("race-%"))).all())
    first = [(ids["race-A-0"], "occupied"), (ids["race-B-0"], "occupied")]  # A before B by id
    second = [(ids["race-B-1"], "reserved"), (ids["race-A-1"], "reserved")]  # B before A by id
    errors: list[BaseException] = []
    try:
        # A writer that goes space by space: it holds lot A (its tally), and will want B next.
        holder = engine.connect()
        holder.begin()
        holder.execute(update(ParkingSpace).where(ParkingSpace.id == first[0][0]).values(status="occupied"))

        def other() -> None:
            try:
                with Session(engine) as session:
                    set_statuses(session, second, now=now)
                    session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        waiting = threading.Thread(target=other)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive()  # queued behind the first writer, not failed
        # Had the bulk update locked lot B before waiting for A, this would deadlock.
        holder.execute(update(ParkingSpace).where(ParkingSpace.id == first[1][0]).values(status="occupied"))
        holder.commit()
        holder.close()
        waiting.join(timeout=30)
        assert not waiting.is_alive() and errors == []
        with Session(engine) as check:
            assert {lot: tallies(check)[lot] for lot in lot_ids} == {lot: (4, 2) for lot in lot_ids}
            assert {lot: counted(check)[lot] for lot in lot_ids} == {lot: (4, 2) for lot in lot_ids}
    finally:
        with Session(engine) as cleanup:
            cleanup.execute(delete(ParkingLot).where(ParkingLot.id.in_(lot_ids)))
            cleanup.commit()


def test_a_lots_latest_observation_follows_inserts_updates_and_deletes(session):
    from datetime import datetime, timedelta, timezone

    from gridsvc.models import OccupancyObservation

    lot = session.scalar(select(ParkingLot).order_by(ParkingLot.id).limit(1))
    session.execute(delete(OccupancyObservation).where(OccupancyObservation.lot_id == lot.id))
    t = datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)

    def latest():
        return session.execute(select(ParkingLot.observed_occupied, ParkingLot.observed_at)
                               .where(ParkingLot.id == lot.id)).one()

    assert tuple(latest()) == (None, None)
    session.add_all([OccupancyObservation(lot_id=lot.id, observed_at=t, occupied=10),
                     OccupancyObservation(lot_id=lot.id, observed_at=t - timedelta(hours=1), occupied=5)])
    session.flush()
    assert tuple(latest()) == (10, t)
    session.add(OccupancyObservation(lot_id=lot.id, observed_at=t - timedelta(hours=2), occupied=1))  # older: no change
    session.flush()
    assert tuple(latest()) == (10, t)
    session.execute(update(OccupancyObservation).where(OccupancyObservation.occupied == 5)
                    .values(observed_at=t + timedelta(minutes=30)))  # moved after the latest
    assert tuple(latest()) == (5, t + timedelta(minutes=30))
    session.execute(delete(OccupancyObservation).where(OccupancyObservation.occupied == 5))
    assert tuple(latest()) == (10, t)
    session.execute(delete(OccupancyObservation).where(OccupancyObservation.lot_id == lot.id))
    assert tuple(latest()) == (None, None)
