"""A liaison's zone map: one FeatureCollection with layers, personal data only for whom it concerns."""
from __future__ import annotations

from datetime import timedelta

import pytest
from shapely.geometry import shape
from sqlalchemy import select

from gridsvc.models import Enterprise, OccupancyObservation, ParkingLot
from tests.api.test_requests import file, g03  # noqa: F401  (three traffic volunteers on duty in G03)
from tests.helpers import assert_problem


def layers(body) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for feature in body["features"]:
        found.setdefault(feature["properties"]["layer"], []).append(feature)
    return found


def test_liaison_sees_their_zone_with_volunteers_and_open_requests(login, session, g03):  # noqa: F811
    request = file(login("worker-001"), g03["here"]).get_json()
    answer = login("liaison-g03").get(f"/api/v1/zones/{g03['zone'].id}/map")
    assert answer.status_code == 200 and answer.headers["ETag"]
    body = answer.get_json()
    by_layer = layers(body)
    assert body["zone"]["code"] == "G03" and [f["properties"]["code"] for f in by_layer["zone"]] == ["G03"]
    zone_shape = shape(by_layer["zone"][0]["geometry"])
    enterprises = session.scalars(select(Enterprise.name).where(Enterprise.zone_id == g03["zone"].id)).all()
    assert sorted(f["properties"]["name"] for f in by_layer["enterprise"]) == sorted(enterprises)
    for feature in by_layer["enterprise"]:
        assert zone_shape.buffer(1e-6).covers(shape(feature["geometry"]))
    assert {f["properties"]["id"] for f in by_layer["volunteer"]} == set(g03["volunteers"].values())
    assert body["volunteers_on_duty"] == 3
    nearest = next(f for f in by_layer["volunteer"] if f["properties"]["id"] == g03["volunteers"]["volunteer-013"])
    assert nearest["geometry"]["type"] == "Point" and nearest["properties"]["shift_id"] == g03["shift_id"]
    assert [f["properties"]["id"] for f in by_layer["request"]] == [request["id"]]
    assert by_layer["request"][0]["properties"]["service_code"] == "parking"
    assert by_layer["request"][0]["geometry"]["coordinates"] == pytest.approx(list(g03["here"]), abs=1e-6)


def test_others_get_no_positions_and_no_requests(login, client, g03):  # noqa: F811
    file(login("worker-001"), g03["here"])
    for caller in (client, login("liaison-g02"), login("volunteer-001")):
        body = caller.get(f"/api/v1/zones/{g03['zone'].id}/map").get_json()
        by_layer = layers(body)
        assert "volunteer" not in by_layer and "request" not in by_layer
        assert body["volunteers_on_duty"] == 3  # how many, not who or where
        assert by_layer["zone"] and by_layer["parking"]
    admin = layers(login("admin").get(f"/api/v1/zones/{g03['zone'].id}/map").get_json())
    assert len(admin["volunteer"]) == 3 and len(admin["request"]) == 1


def test_parking_lots_carry_capacity_and_utilisation_now(login, session, clock):
    lot = session.scalar(select(ParkingLot).where(ParkingLot.ref == "LF-P003"))
    capacity = (lot.capacity_car + lot.capacity_accessible + lot.capacity_ev_charging + lot.capacity_truck
                + lot.capacity_ebike)
    # the demo's own counts (every 15 min around the seed date) would compete: only ours count here
    session.query(OccupancyObservation).filter(OccupancyObservation.lot_id == lot.id).delete()
    session.add(OccupancyObservation(lot_id=lot.id, observed_at=clock() - timedelta(minutes=5), occupied=40))
    session.add(OccupancyObservation(lot_id=lot.id, observed_at=clock() - timedelta(hours=2), occupied=3))
    session.commit()
    body = login("liaison-g03").get(f"/api/v1/zones/{lot.zone_id}/map").get_json()
    feature = next(f for f in layers(body)["parking"] if f["properties"]["id"] == lot.id)
    assert feature["properties"]["capacity"] == capacity == 57
    assert feature["properties"]["occupied"] == 40  # the latest observation wins
    assert feature["properties"]["utilisation"] == pytest.approx(40 / 57, abs=1e-3)
    # A day later the observation is stale and the lot has no spaces on record: unknown, not empty.
    clock.advance(hours=25)
    body = login("liaison-g03").get(f"/api/v1/zones/{lot.zone_id}/map").get_json()
    feature = next(f for f in layers(body)["parking"] if f["properties"]["id"] == lot.id)
    assert feature["properties"]["occupied"] is None and feature["properties"]["utilisation"] is None



def test_a_count_dated_after_now_does_not_hide_the_latest_before(login, session, clock):
    """The lot row keeps its latest count; one entered for later (a clock ahead) is not "now" yet."""
    lot = session.scalar(select(ParkingLot).where(ParkingLot.ref == "LF-P003"))
    session.query(OccupancyObservation).filter(OccupancyObservation.lot_id == lot.id).delete()
    session.add(OccupancyObservation(lot_id=lot.id, observed_at=clock() - timedelta(minutes=5), occupied=40))
    session.add(OccupancyObservation(lot_id=lot.id, observed_at=clock() + timedelta(minutes=20), occupied=7))
    session.commit()
    body = login("liaison-g03").get(f"/api/v1/zones/{lot.zone_id}/map").get_json()
    feature = next(f for f in layers(body)["parking"] if f["properties"]["id"] == lot.id)
    assert feature["properties"]["occupied"] == 40
    clock.advance(minutes=30)  # now the later count is the latest
    body = login("liaison-g03").get(f"/api/v1/zones/{lot.zone_id}/map").get_json()
    feature = next(f for f in layers(body)["parking"] if f["properties"]["id"] == lot.id)
    assert feature["properties"]["occupied"] == 7

def test_etag_gives_304_until_something_changes(login, session, g03):  # noqa: F811
    liaison = login("liaison-g03")
    url = f"/api/v1/zones/{g03['zone'].id}/map"
    first = liaison.get(url)
    etag = first.headers["ETag"]
    again = liaison.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    file(login("worker-001"), g03["here"])  # a new open request changes the map
    changed = liaison.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    # the tag is the caller's: an anonymous caller with the liaison's tag still gets its own map
    assert login("admin").get(url, headers={"If-None-Match": changed.headers["ETag"]}).status_code == 200
    # If-None-Match compares weakly (RFC 9110 13.1.2): a proxy that compresses makes the tag weak
    assert liaison.get(url, headers={"If-None-Match": "W/" + changed.headers["ETag"]}).status_code == 304


def test_unknown_zone_is_404(client):
    assert_problem(client.get("/api/v1/zones/999999/map"), 404)
