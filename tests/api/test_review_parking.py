"""Parking defects found in review: each test fails without its fix and checks what a planner,
a liaison or an admin importing lots would check (the space's lot, the supply, the right problem)."""
from __future__ import annotations

import codecs
import json
from datetime import timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from gridsvc.models import Community, OccupancyObservation, ParkingLot, ParkingSpace
from gridsvc.schemas.parking import parse_import
from gridsvc.services.parking_import import import_parking
from tests.api.test_parking import ORIGIN, _feature, admin, lot, market, point, space, supply  # noqa: F401
from tests.helpers import (assert_problem, client_as, community_body, count, offset, rect, while_uncommitted,
                           zone_feature)

OTHER = (120.40, 31.50)  # a second market, 10 km east of the first


def _other_market(admin) -> dict:
    community = admin.post("/api/v1/communities", json=community_body(name="Other", boundary=rect(*OTHER, 500, 500))).get_json()["id"]
    zone = admin.post(f"/api/v1/communities/{community}/zones", json=zone_feature("O", rect(*OTHER, 500, 500))).get_json()["id"]
    return {"community": community, "O": zone}


# ---------------------------------------------------------------- a space's lot named by ref


def test_a_space_posted_with_its_lots_ref_marks_a_stall_of_that_lot(admin, market):
    """POST /parking/spaces documents lot_ref ("the space's lot"): it was a 500."""
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), ref="P1", capacity={"car": 10})
    answer = admin.post("/api/v1/parking/spaces", json=_feature(point(110, 110), lot_ref="P1", ref="P1-01"))
    assert answer.status_code == 201, answer.get_json()
    stall = answer.get_json()["properties"]
    assert (stall["lot_id"], stall["zone_id"]) == (the_lot["id"], market["W"])
    capacity = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert (capacity["supply"]["total"], capacity["spaces"]) == (10, 1)  # a stall of the lot adds no supply


def test_a_space_naming_a_lot_ref_not_in_its_community_or_two_lots_is_422(admin, market, session):
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), ref="P1", capacity={"car": 10})
    before = count(session, ParkingSpace)
    unknown = admin.post("/api/v1/parking/spaces", json=_feature(point(110, 110), lot_ref="P404"))
    assert "lot_ref" in assert_problem(unknown, 422)["errors"]
    both = admin.post("/api/v1/parking/spaces", json=_feature(point(110, 110), lot_ref="P1", lot_id=the_lot["id"]))
    assert "lot_id" in assert_problem(both, 422)["errors"]
    assert count(session, ParkingSpace) == before


# ---------------------------------------------------------------- unknown lot ids in a body


def test_a_space_naming_an_unknown_lot_id_is_422_not_404(admin, market, session):
    """The body names a lot that does not exist: the body is wrong (422 naming lot_id, as the import
    says it), not the URL (a 404 on POST /parking/spaces reads as "no such endpoint")."""
    stall = space(admin, point(300, 300))
    before = count(session, ParkingSpace)
    created = admin.post("/api/v1/parking/spaces", json=_feature(point(110, 110), lot_id=987654))
    assert "lot_id" in assert_problem(created, 422)["errors"]
    patched = admin.patch(f"/api/v1/parking/spaces/{stall['id']}", json={"properties": {"lot_id": 987654}})
    assert "lot_id" in assert_problem(patched, 422)["errors"]
    assert count(session, ParkingSpace) == before
    assert admin.get(f"/api/v1/parking/spaces/{stall['id']}").get_json()["properties"]["lot_id"] is None


# ---------------------------------------------------------------- refs used twice


def test_a_ref_already_used_in_the_community_is_a_422_naming_ref(admin, market, session):
    """A second lot P1 was a 409 "another request changed the same records at the same moment":
    a planner retried it for ever. It is the body's error, named as the import names it."""
    first = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), ref="P1", capacity={"car": 10})
    second = lot(admin, rect(*offset(*ORIGIN, 300, 100), 40, 40), ref="P2", capacity={"car": 5})
    stall = space(admin, point(300, 600), ref="S1")
    other_stall = space(admin, point(320, 600), ref="S2")
    lots_before, spaces_before = count(session, ParkingLot), count(session, ParkingSpace)
    again = admin.post("/api/v1/parking/lots", json=_feature(rect(*offset(*ORIGIN, 700, 100), 40, 40), name="x", ref="P1"))
    assert "ref" in assert_problem(again, 422)["errors"]
    renamed = admin.patch(f"/api/v1/parking/lots/{second['id']}", json={"properties": {"ref": "P1"}})
    assert "ref" in assert_problem(renamed, 422)["errors"]
    again = admin.post("/api/v1/parking/spaces", json=_feature(point(800, 800), ref="S1"))
    assert "ref" in assert_problem(again, 422)["errors"]
    renamed = admin.patch(f"/api/v1/parking/spaces/{other_stall['id']}", json={"properties": {"ref": "S1"}})
    assert "ref" in assert_problem(renamed, 422)["errors"]
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == (lots_before, spaces_before)
    assert admin.get(f"/api/v1/parking/lots/{second['id']}").get_json()["properties"]["ref"] == "P2"
    # keeping one's own ref, or the same ref in another community, is fine
    kept = admin.patch(f"/api/v1/parking/lots/{first['id']}", json={"properties": {"ref": "P1", "name": "北门"}})
    assert kept.status_code == 200, kept.get_json()
    assert admin.patch(f"/api/v1/parking/spaces/{stall['id']}", json={"properties": {"ref": "S1"}}).status_code == 200
    other = _other_market(admin)
    elsewhere = lot(admin, rect(*offset(*OTHER, 100, 100), 40, 40), ref="P1")
    assert elsewhere["properties"]["community_id"] == other["community"]


def test_a_lot_moved_into_a_community_that_uses_its_ref_is_422_and_stays(admin, market):
    other = _other_market(admin)
    lot(admin, rect(*offset(*OTHER, 100, 100), 40, 40), ref="P1")
    moving = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), ref="P1", capacity={"car": 10})
    refused = admin.patch(f"/api/v1/parking/lots/{moving['id']}", json={"geometry": rect(*offset(*OTHER, 300, 300), 40, 40)})
    assert "ref" in assert_problem(refused, 422)["errors"]
    assert admin.get(f"/api/v1/parking/lots/{moving['id']}").get_json()["properties"]["zone_id"] == market["W"]
    assert (supply(admin, market["W"]), supply(admin, other["O"])) == (10, 0)


# ---------------------------------------------------------------- import


def test_import_a_spaces_lot_ref_is_a_lot_of_its_own_community(admin, market, session):
    """Refs are per community: a space standing in the other market names "P1", which only the first
    market's lot of the file has. It was imported as a lone stall of the other market (one space of
    supply no one has); now the import is refused, naming the space, and writes nothing."""
    other = _other_market(admin)
    before = count(session, ParkingLot), count(session, ParkingSpace)
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), feature_type="lot", ref="P1", name="北门", capacity_car=10),
        _feature(point(100, 100, origin=OTHER), feature_type="space", ref="S1", lot_ref="P1")]}
    problem = assert_problem(admin.post("/api/v1/parking/import", json=collection), 422, "import-failed")
    assert [(e["index"], list(e["errors"])) for e in problem["errors"]] == [(1, ["lot_ref"])]
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == before
    assert supply(admin, other["O"]) == 0


def test_import_reads_a_file_with_a_byte_order_mark_and_crlf_lines(admin, market):
    """Saved by Notepad or exported from Excel on Windows: a UTF-8 BOM and CRLF line ends (was a 400)."""
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="员工停车场", ref="P1", capacity_car=80, capacity_accessible=3)]}
    body = codecs.BOM_UTF8 + json.dumps(collection, ensure_ascii=False, indent=1).replace("\n", "\r\n").encode()
    answer = admin.post("/api/v1/parking/import", data=body, content_type="application/json")
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json() == {"lots": 1, "spaces": 0, "by_zone": {"W": 1}}
    assert supply(admin, market["W"]) == 83


def test_import_refuses_a_feature_given_twice(admin, market, session):
    """A row copied twice in the sheet the file was made from: without a ref, the lot's 40 spaces and
    the stall were counted twice in the zone's supply. Now the copies are named and nothing is written."""
    before = count(session, ParkingLot), count(session, ParkingSpace)
    the_lot = _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="北门停车场", capacity_car=40)
    stall = _feature(point(300, 300), feature_type="space", space_type="accessible")
    collection = {"type": "FeatureCollection", "features": [the_lot, stall, the_lot, stall]}
    problem = assert_problem(admin.post("/api/v1/parking/import", json=collection), 422, "import-failed")
    assert [(e["index"], list(e["errors"])) for e in problem["errors"]] == [(2, ["_schema"]), (3, ["_schema"])]
    assert "#0" in problem["errors"][0]["errors"]["_schema"][0] and "#1" in problem["errors"][1]["errors"]["_schema"][0]
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == before
    # two lots alike but for their capacity, or two stalls a few metres apart, are two
    other_lot = _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="北门停车场", capacity_car=20, kind="underground")
    collection = {"type": "FeatureCollection", "features": [the_lot, other_lot, stall,
                                                            _feature(point(303, 300), feature_type="space", space_type="accessible")]}
    answer = admin.post("/api/v1/parking/import", json=collection)
    assert answer.status_code == 201, answer.get_json()
    assert supply(admin, market["W"]) == 62


# ---------------------------------------------------------------- huge geometries


def test_a_lot_or_space_hundreds_of_kilometres_across_is_422(admin, market, session):
    """A vertex with a slipped digit made a lot 300 km wide: it was placed in zone W and its spaces
    counted in every capacity by box, radius or drawn area across the region."""
    lots_before, spaces_before = count(session, ParkingLot), count(session, ParkingSpace)
    slipped = {"type": "Polygon", "coordinates": [[list(ORIGIN), list(offset(*ORIGIN, 40, 0)), [ORIGIN[0] + 3, ORIGIN[1] + 0.0004],
                                                   list(offset(*ORIGIN, 0, 40)), list(ORIGIN)]]}
    problem = assert_problem(admin.post("/api/v1/parking/lots", json=_feature(slipped, name="x", capacity={"car": 50})), 422)
    assert "geometry" in problem["errors"]
    good = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 10})
    moved = admin.patch(f"/api/v1/parking/lots/{good['id']}", json={"geometry": slipped})
    assert "geometry" in assert_problem(moved, 422)["errors"]
    street = admin.post("/api/v1/parking/spaces", json=_feature(rect(*offset(*ORIGIN, 100, 600), 300, 3)))  # a 300 m "stall"
    assert "geometry" in assert_problem(street, 422)["errors"]
    imported = admin.post("/api/v1/parking/import", json={"type": "FeatureCollection", "features": [
        _feature(slipped, name="x", capacity_car=50), _feature(rect(*offset(*ORIGIN, 100, 600), 300, 3), feature_type="space")]})
    assert [list(e["errors"]) for e in assert_problem(imported, 422, "import-failed")["errors"]] == [["geometry"], ["geometry"]]
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == (lots_before + 1, spaces_before)
    far_east = offset(*ORIGIN, 200_000, 500)
    around = admin.get("/api/v1/parking/capacity", query_string={"lon": far_east[0], "lat": far_east[1], "radius_m": 1000})
    assert around.get_json()["supply"]["total"] == 0
    # a large lot (800 m x 300 m) and a truck bay (20 m x 4 m) are fine
    assert lot(admin, rect(*offset(*ORIGIN, 100, 100), 300, 800), capacity={"car": 900})["properties"]["zone_id"] == market["W"]
    assert space(admin, rect(*offset(*ORIGIN, 600, 600), 20, 4), space_type="truck")["properties"]["zone_id"] == market["E"]


# ---------------------------------------------------------------- capacity on a day to come


def test_capacity_on_a_day_to_come_does_not_count_unopened_lots_as_free_now(admin, market, clock):
    """A 100-space lot opens next month. Capacity as of next month gave the supply with it and
    today's occupancy against it: 100 free spaces that no one could park in today."""
    open_now = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 50})
    next_month = (clock() + timedelta(days=31)).date()
    lot(admin, rect(*offset(*ORIGIN, 200, 100), 40, 40), capacity={"car": 100}, opened_on=next_month.isoformat())
    answer = admin.post(f"/api/v1/parking/lots/{open_now['id']}/occupancy", json={"observed_at": clock().isoformat(), "occupied": 45})
    assert answer.status_code == 201, answer.get_json()
    today = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert (today["supply"]["total"], today["occupied"], today["free"]) == (50, 45, 5)
    later = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}&as_of={next_month.isoformat()}").get_json()
    assert later["supply"]["total"] == 150 and later["lots"] == 2
    assert (later["occupied"], later["free"], later["out_of_service"], later["utilisation_pct"]) == (None, None, None, None)


# ---------------------------------------------------------------- a file imported again


def test_a_file_imported_again_is_refused_and_does_not_double_the_supply(admin, market, session):
    """The first answer was lost (a timeout), the planner sent the file again: every lot without a
    ref was written a second time and the zone's supply doubled."""
    collection = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="北门停车场", capacity_car=40),
        _feature(point(300, 300), feature_type="space", space_type="accessible")]}
    first = admin.post("/api/v1/parking/import", json=collection)
    assert first.status_code == 201, first.get_json()
    before = count(session, ParkingLot), count(session, ParkingSpace)
    problem = assert_problem(admin.post("/api/v1/parking/import", json=collection), 422, "import-failed")
    assert [(e["index"], list(e["errors"])) for e in problem["errors"]] == [(0, ["_schema"]), (1, ["_schema"])]
    assert (count(session, ParkingLot), count(session, ParkingSpace)) == before
    assert supply(admin, market["W"]) == 41
    # an underground lot under the same ground, under another name, is another lot
    below = {"type": "FeatureCollection", "features": [
        _feature(rect(*offset(*ORIGIN, 100, 100), 40, 40), name="北门地下停车场", kind="underground", capacity_car=60)]}
    assert admin.post("/api/v1/parking/import", json=below).status_code == 201
    assert supply(admin, market["W"]) == 101


def test_the_same_file_imported_twice_at_once_is_written_once(committed_app, engine, clock):
    """Two uploads of one file at the same moment (a double click): each checked that nothing was
    stored yet before the other committed, and both were written."""
    lon, lat = 121.7800, 29.8700  # inside Lingfeng
    collection = {"type": "FeatureCollection", "features": [
        _feature({"type": "Point", "coordinates": [lon, lat]}, name="Review twin lot", capacity_car=12)]}
    planner = client_as(committed_app, "planner")
    try:
        def first_upload(own: Session) -> None:  # the other upload: imported, not yet committed
            report = parse_import(collection)
            import_parking(own, report.items, parse_errors=report.errors, now=clock())

        answer = while_uncommitted(engine, first_upload, lambda: planner.post("/api/v1/parking/import", json=collection))
        assert_problem(answer, 422, "import-failed")
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).where(ParkingLot.name == "Review twin lot")).scalar() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(delete(ParkingLot).where(ParkingLot.name == "Review twin lot"))


# ---------------------------------------------------------------- two counts at one moment


def test_two_counts_at_the_same_moment_capacity_takes_the_later_recorded_as_the_maps(admin, market, clock, session):
    """Two wardens tally the lot at the same minute: the maps (the lot's tally trigger) show the later recorded
    count; capacity took whichever the index gave first. The later one is written to the heap first here, so
    that the index's order (by heap position) would give the earlier."""
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 50})
    at = clock() - timedelta(minutes=1)
    later_id = session.scalar(select(func.nextval("occupancy_observation_id_seq"))) + 1
    session.add(OccupancyObservation(id=later_id, lot_id=the_lot["id"], observed_at=at, occupied=30))
    session.flush()
    session.add(OccupancyObservation(id=later_id - 1, lot_id=the_lot["id"], observed_at=at, occupied=12))
    session.flush()
    session.execute(select(func.setval("occupancy_observation_id_seq", later_id)))
    assert session.get(ParkingLot, the_lot["id"]).observed_occupied == 30  # what the maps show
    capacity = admin.get(f"/api/v1/parking/capacity?zone_id={market['W']}").get_json()
    assert (capacity["occupied"], capacity["free"]) == (30, 20)


# ---------------------------------------------------------------- lock order


def test_a_lot_moved_while_a_sensor_batch_updates_its_spaces_is_not_a_deadlock(committed_app, engine):
    """A bulk status update locks its spaces and then their lots (the tally); moving a lot into another zone
    locked the lot and then its spaces (they follow it). Sent together, one of them was killed as a deadlock
    (a 409 for an admin who did nothing wrong)."""
    admin = client_as(committed_app, "admin")
    origin = (120.60, 31.20)  # a market of its own, away from the others
    community = admin.post("/api/v1/communities", json=community_body(name="Lock-order market",
                                                                      boundary=rect(*origin, 1000, 1000))).get_json()["id"]
    try:
        admin.post(f"/api/v1/communities/{community}/zones", json=zone_feature("W", rect(*origin, 500, 1000)))
        east_edge = rect(*origin, 500, 1000)["coordinates"][0][1][0]
        east = admin.post(f"/api/v1/communities/{community}/zones",
                          json=zone_feature("E", rect(east_edge, origin[1], 500, 1000))).get_json()["id"]
        the_lot = lot(admin, rect(*offset(*origin, 100, 100), 40, 40), name="Lock-order lot")
        for east_m in (105, 115, 125):
            space(admin, point(east_m, 110, origin), lot_id=the_lot["id"])

        def sensor_batch_holds_the_spaces(own: Session) -> None:  # as set_statuses locks them, in id order
            own.execute(text("SET LOCAL lock_timeout = '5s'"))
            own.execute(select(ParkingSpace.id).where(ParkingSpace.lot_id == the_lot["id"])
                        .order_by(ParkingSpace.id).with_for_update())

        def then_its_lot(own: Session) -> None:  # and then their lot, for its tally
            own.execute(select(ParkingLot.id).where(ParkingLot.id == the_lot["id"]).with_for_update(key_share=True))

        moved = {"type": "Feature", "geometry": rect(*offset(*origin, 700, 100), 40, 40), "properties": {}}
        answer = while_uncommitted(engine, sensor_batch_holds_the_spaces,
                                   lambda: admin.patch(f"/api/v1/parking/lots/{the_lot['id']}", json=moved),
                                   then=then_its_lot)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["properties"]["zone_id"] == east
        with engine.connect() as conn:
            assert set(conn.execute(select(ParkingSpace.zone_id).where(ParkingSpace.lot_id == the_lot["id"])).scalars()) == {east}
    finally:
        with engine.begin() as conn:
            conn.execute(delete(Community).where(Community.id == community))
