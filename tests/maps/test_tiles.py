"""Vector tiles, decoded with mapbox-vector-tile: the right layers, features, places and people."""
from __future__ import annotations

import json
import math
from datetime import timedelta

import mapbox_vector_tile
import pytest
from sqlalchemy import func, select

from gridsvc.models import Enterprise, OccupancyObservation, ParkingLot, Zone
from tests.api.test_requests import file, g03  # noqa: F401  (three traffic volunteers on duty in G03)
from tests.helpers import assert_problem

MVT = "application/vnd.mapbox-vector-tile"


def tile_of(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Fractional tile coordinates (x, y) of a point at zoom z (Web Mercator, XYZ scheme)."""
    n = 2 ** z
    return (lon + 180) / 360 * n, (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n


def get_tile(client, lon: float, lat: float, z: int, **query):
    x, y = tile_of(lon, lat, z)
    return client.get(f"/tiles/{z}/{int(x)}/{int(y)}.pbf", query_string=query)


def decode(response) -> dict:
    assert response.status_code == 200, response.data[:300]
    assert response.headers["Content-Type"] == MVT
    return mapbox_vector_tile.decode(response.data, default_options={"y_coord_down": True})


def park_centre(session) -> tuple[float, float]:
    return session.execute(select(func.ST_X(func.ST_Centroid(func.ST_Extent(Zone.geom))),
                                  func.ST_Y(func.ST_Centroid(func.ST_Extent(Zone.geom))))).one()


def test_one_tile_over_the_whole_park_holds_every_zone_lot_and_enterprise(client, session):
    lon, lat = park_centre(session)
    layers = decode(get_tile(client, lon, lat, 12))
    assert set(layers) == {"zones", "parking", "enterprises"}  # no personal layers for an anonymous caller
    zones = session.execute(select(Zone.id, Zone.code)).all()
    assert {f["id"]: f["properties"]["code"] for f in layers["zones"]["features"]} == dict(zones)
    assert len(layers["parking"]["features"]) == session.scalar(select(func.count()).select_from(ParkingLot))
    assert len(layers["enterprises"]["features"]) == session.scalar(select(func.count()).select_from(Enterprise))


def test_an_enterprise_is_drawn_where_it_stands(client, session):
    enterprise = session.scalar(select(Enterprise).order_by(Enterprise.id).limit(1))
    lon, lat = session.execute(select(func.ST_X(enterprise.location), func.ST_Y(enterprise.location))).one()
    z = 17
    answer = get_tile(client, lon, lat, z)
    feature = next(f for f in decode(answer)["enterprises"]["features"] if f["id"] == enterprise.id)
    assert feature["properties"]["name"] == enterprise.name and feature["properties"]["workers"] == enterprise.workers
    x, y = tile_of(lon, lat, z)
    expected = ((x - int(x)) * 4096, (y - int(y)) * 4096)
    assert feature["geometry"]["coordinates"] == pytest.approx(expected, abs=1.5)  # within a pixel and a half of 4096


def test_parking_lots_carry_capacity_and_utilisation(client, session, clock):
    lot = session.scalar(select(ParkingLot).where(ParkingLot.ref == "LF-P003"))
    # only our count: the demo's own (every 15 min around the seed date) would compete
    session.query(OccupancyObservation).filter(OccupancyObservation.lot_id == lot.id).delete()
    session.add(OccupancyObservation(lot_id=lot.id, observed_at=clock() - timedelta(minutes=5), occupied=40))
    session.commit()
    lon, lat = session.execute(select(func.ST_X(func.ST_Centroid(lot.geom)), func.ST_Y(func.ST_Centroid(lot.geom)))).one()
    feature = next(f for f in decode(get_tile(client, lon, lat, 16))["parking"]["features"] if f["id"] == lot.id)
    assert feature["properties"]["capacity"] == 57 and feature["properties"]["name"] == lot.name
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["occupied"] == 40
    assert feature["properties"]["utilisation"] == 0.702  # 40 / 57, to three places like the zone map


def test_a_lot_is_drawn_where_it_lies(client, session):
    """The tile's polygon is the lot's outline (from the stored Web Mercator copy) in the tile's grid."""
    lot = session.scalar(select(ParkingLot).where(ParkingLot.ref == "LF-P003"))
    ring = session.execute(select(func.ST_AsGeoJSON(func.ST_ExteriorRing(lot.geom)))).scalar()
    corners = json.loads(ring)["coordinates"][:-1]
    lon, lat = corners[0]
    z = 17
    x0, y0 = (int(v) for v in tile_of(lon, lat, z))
    feature = next(f for f in decode(client.get(f"/tiles/{z}/{x0}/{y0}.pbf"))["parking"]["features"]
                   if f["id"] == lot.id)
    drawn = feature["geometry"]["coordinates"][0]
    for lon, lat in corners:
        x, y = tile_of(lon, lat, z)
        expected = ((x - x0) * 4096, (y - y0) * 4096)
        if -64 <= expected[0] <= 4160 and -64 <= expected[1] <= 4160:  # not clipped away at the tile's buffer
            assert any(p == pytest.approx(expected, abs=1.5) for p in drawn), (expected, drawn)


def test_personal_layers_only_for_the_zones_liaison_and_admins(client, login, g03):  # noqa: F811
    request = file(login("worker-001"), g03["here"]).get_json()
    lon, lat = g03["here"]
    assert "volunteers" not in decode(get_tile(client, lon, lat, 14))
    mine = decode(get_tile(login("liaison-g03"), lon, lat, 14))
    assert {f["id"] for f in mine["volunteers"]["features"]} == set(g03["volunteers"].values())
    assert [f["id"] for f in mine["requests"]["features"]] == [request["id"]]
    assert mine["requests"]["features"][0]["properties"]["service_code"] == "parking"
    other = decode(get_tile(login("liaison-g02"), lon, lat, 14))  # G03 is not theirs: nothing personal of G03
    assert "volunteers" not in other and "requests" not in other
    admin = decode(get_tile(login("admin"), lon, lat, 14))
    assert len(admin["volunteers"]["features"]) == 3 and len(admin["requests"]["features"]) == 1
    assert_problem(get_tile(client, lon, lat, 14, layers="volunteers"), 403)


def test_layers_can_be_chosen(client, session):
    lon, lat = park_centre(session)
    assert set(decode(get_tile(client, lon, lat, 12, layers="parking"))) == {"parking"}
    assert set(decode(get_tile(client, lon, lat, 12, layers="zones,enterprises"))) == {"zones", "enterprises"}


def test_an_empty_tile_is_204(client):
    answer = get_tile(client, -150.0, -40.0, 14)  # the South Pacific
    assert answer.status_code == 204 and answer.data == b""


def test_etag_and_caching(app, client, login, session):
    app.config["GRIDSVC_TILE_CACHE_SECONDS"] = 60
    lon, lat = park_centre(session)
    first = get_tile(client, lon, lat, 14)
    assert first.headers["Cache-Control"] == "public, max-age=60" and first.headers["ETag"]
    x, y = tile_of(lon, lat, 14)
    again = client.get(f"/tiles/14/{int(x)}/{int(y)}.pbf", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert get_tile(login("admin"), lon, lat, 14).headers["Cache-Control"] == "private, max-age=60"


def test_public_tiles_tell_clients_the_time_this_worker_keeps_them(app, client, session):
    """An operator who keeps tiles 5 minutes (GRIDSVC_TILE_CACHE_SECONDS=300) sends max-age=300: with a fixed
    max-age=60, a copy served from memory at Age 120 was already stale to every browser and proxy."""
    app.config["GRIDSVC_TILE_CACHE_SECONDS"] = 300
    lon, lat = park_centre(session)
    first = get_tile(client, lon, lat, 14, layers="parking")
    assert first.headers["Cache-Control"] == "public, max-age=300"
    cache = app.extensions["gridsvc.tiles"]
    [key] = list(cache._entries)
    stored_at, data, etag = cache._entries[key]
    cache._entries[key] = (stored_at - 120, data, etag)  # the copy in memory is now 2 minutes old
    again = get_tile(client, lon, lat, 14, layers="parking")
    assert again.headers["Cache-Control"] == "public, max-age=300" and again.headers["Age"] == "120"
    del app.extensions["gridsvc.tiles"]  # as a worker started with the setting 0 has it
    app.config["GRIDSVC_TILE_CACHE_SECONDS"] = 0  # kept nowhere: clients ask again (If-None-Match) each time
    assert get_tile(client, lon, lat, 13, layers="parking").headers["Cache-Control"] == "public, max-age=0"


def test_public_tiles_are_kept_for_their_max_age_and_no_cache_rebuilds_them(app, client, login, session, g03):  # noqa: F811
    app.config["GRIDSVC_TILE_CACHE_SECONDS"] = 60
    lon, lat = g03["here"]
    before = len(decode(get_tile(client, lon, lat, 14, layers="parking"))["parking"]["features"])
    session.add(ParkingLot(community_id=g03["zone"].community_id, zone_id=g03["zone"].id, name="新停车场 New lot",
                           capacity_car=20, geom=f"SRID=4326;POINT({lon} {lat})"))
    session.commit()
    kept = decode(get_tile(client, lon, lat, 14, layers="parking"))["parking"]["features"]
    assert len(kept) == before  # the copy kept for its max-age
    x, y = tile_of(lon, lat, 14)
    rebuilt = client.get(f"/tiles/14/{int(x)}/{int(y)}.pbf?layers=parking", headers={"Cache-Control": "no-cache"})
    assert len(decode(rebuilt)["parking"]["features"]) == before + 1
    assert len(decode(get_tile(client, lon, lat, 14, layers="parking"))["parking"]["features"]) == before + 1
    # personal layers are never kept: a new request shows up at once
    admin = login("admin")
    assert "requests" not in decode(get_tile(admin, lon, lat, 14))
    file(login("worker-001"), g03["here"])
    assert len(decode(get_tile(admin, lon, lat, 14))["requests"]["features"]) == 1


@pytest.mark.parametrize("url", ["/tiles/23/0/0.pbf", "/tiles/3/8/0.pbf", "/tiles/3/0/8.pbf", "/tiles/x/0/0.pbf",
                                 "/tiles/-1/0/0.pbf", "/tiles/1/0/0.pbf?layers=roads", "/tiles/1/0/0.pbf?layers=",
                                 "/tiles/1/0/0.pbf?format=png"])
def test_bad_tiles_are_400(client, url):
    assert_problem(client.get(url), 400)


def test_a_liaison_sees_on_the_map_the_requests_handed_to_them_from_a_zone_without_a_liaison(login, session):
    """G07 has no liaison: a request filed there goes to G09's liaison, who lists and handles it, but their
    map left it out (the requests layer showed their own zones only). Other liaisons still do not see it."""
    from tests.api.test_requests import G07_SOUTH_EAST

    g07 = session.scalar(select(Zone).where(Zone.code == "G07"))
    assert login("admin").patch(f"/api/v1/zones/{g07.id}", json={"properties": {"liaison": None}}).status_code == 200
    filed = file(login("worker-003"), G07_SOUTH_EAST, service="housing").get_json()
    assert filed["zone_id"] == g07.id and filed["status"] == "with_liaison", filed
    lon, lat = G07_SOUTH_EAST
    handling = decode(get_tile(login("liaison-g09"), lon, lat, 15))
    assert [f["id"] for f in handling["requests"]["features"]] == [filed["id"]]
    assert "requests" not in decode(get_tile(login("liaison-g02"), lon, lat, 15))
