"""Map outputs a GIS user or the web map relies on: tiles near the antimeridian and zoomed out, a cached tile's
age, OGC datetime in any offset, the web map's expired token (found in review; each failed before its fix)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select

from gridsvc.models import Enterprise, ParkingLot, Zone
from tests.maps.test_tiles import decode, get_tile, park_centre


# ------------------------------------------------------------------ vector tiles


def test_tiles_at_low_zoom_hold_the_park_in_every_layer(client, session):
    """At z1 and z2 every tile touches the antimeridian: its 4326 query box,
    transformed from a Web Mercator envelope with a margin beyond ±180°,
    wrapped around and selected the wrong half of the world. The park's
    enterprises vanished (only parking, filtered in 3857, was left). (Its zones,
    a kilometre across, are smaller than a tile's grid cell there and collapse.)"""
    lon, lat = park_centre(session)
    for z in (1, 2):
        layers = decode(get_tile(client, lon, lat, z))
        assert {"parking", "enterprises"} <= set(layers), (z, set(layers))
        assert len(layers["enterprises"]["features"]) == session.scalar(select(func.count()).select_from(Enterprise))


def test_a_feature_near_the_antimeridian_is_in_its_tile(client, session, lingfeng):
    """Tiles of the first and last column (x = 0, x = 2^z - 1) at every zoom lose
    what lies in them: the margin takes the envelope over ±180° and the
    transformed box wraps to the other side."""
    zone = session.scalar(select(Zone).where(Zone.code == "G01"))
    for lon in (179.9, -179.9):
        session.add(Enterprise(community_id=lingfeng.id, zone_id=zone.id, name=f"东经 {lon}", workers=1,
                               location=f"SRID=4326;POINT({lon} 0.5)"))
    session.commit()
    for lon in (179.9, -179.9):
        answer = get_tile(client, lon, 0.5, 10, layers="enterprises")
        assert answer.status_code == 200, (lon, answer.status_code)
        assert [f["properties"]["name"] for f in decode(answer)["enterprises"]["features"]] == [f"东经 {lon}"]


def test_a_tile_served_from_memory_is_not_kept_by_clients_for_another_full_minute(app, client, session):
    """README: public tiles are kept in memory for 60 s "so a lot's new count
    shows on the map within a minute". A tile already 50 s old in the worker's
    cache is still sent with max-age=60 and no Age, so browsers and proxies keep
    it for up to two minutes in all."""
    app.config["GRIDSVC_TILE_CACHE_SECONDS"] = 60
    lon, lat = park_centre(session)
    first = get_tile(client, lon, lat, 14, layers="parking")
    assert first.status_code == 200
    cache = app.extensions["gridsvc.tiles"]
    [key] = list(cache._entries)
    stored_at, data, etag = cache._entries[key]
    cache._entries[key] = (stored_at - 50, data, etag)  # the copy in memory is now 50 s old
    again = get_tile(client, lon, lat, 14, layers="parking")
    assert again.status_code == 200 and again.data == first.data  # served from memory
    max_age = int(re.search(r"max-age=(\d+)", again.headers["Cache-Control"])[1])
    age = int(again.headers.get("Age", "0"))
    assert max_age - age <= 11, (again.headers["Cache-Control"], again.headers.get("Age"))


# ------------------------------------------------------------------ OGC API - Features


def test_datetime_gives_the_same_features_for_the_same_instant_in_any_offset(client, session):
    """A date-time is cut to its date in the offset it was written in, not in the
    community's zone (Asia/Shanghai, DESIGN.md): 01:00 on the day a lot opened,
    written as +08:00 or as the same instant in Z (17:00 the day before), gives
    two different answers."""
    day = session.scalar(select(func.min(ParkingLot.opened_on)).where(ParkingLot.opened_on >= date(2020, 1, 1)))
    assert not session.scalar(select(func.count()).where(ParkingLot.opened_on == day - timedelta(days=1)))
    local = datetime(day.year, day.month, day.day, 1, 0, tzinfo=timezone(timedelta(hours=8)))
    utc = local.astimezone(timezone.utc)
    answers = {}
    for written in (local.isoformat(), utc.strftime("%Y-%m-%dT%H:%M:%SZ")):
        body = client.get("/ogc/collections/parking-lots/items",
                          query_string={"datetime": written, "limit": 1000}).get_json()
        answers[written] = [f["id"] for f in body["features"]]
    opened_that_day = set(session.scalars(select(ParkingLot.id).where(ParkingLot.opened_on == day)))
    for written, ids in answers.items():
        assert opened_that_day <= set(ids), (written, "a lot opened that (local) day is missing")


# ------------------------------------------------------------------ the web map (real headless Chromium)

from tests.browser import chromium_path  # noqa: E402

try:
    from tests.web.test_map_page import SECRET, base_url, browser, page, sign_in_and_wait  # noqa: F401
except Exception:  # playwright or Pillow missing: the web test below is skipped
    SECRET = None


def test_the_map_renews_an_expired_token_for_its_tiles(request, database_url):
    """An access token lasts an hour. The page renews it only when a zone-map
    request comes back 401, and an admin (no zones of their own) never makes
    one: once the token has expired every new tile is a 401, the park goes
    blank as they pan or zoom, and the page neither renews nor says so."""
    import pytest

    if SECRET is None or chromium_path() is None:
        pytest.skip("playwright, Pillow or chromium is not installed")
    page = request.getfixturevalue("page")
    from gridsvc.app import create_app
    from tests.helpers import token_for

    sign_in_and_wait(page, "admin")
    minting = create_app({"DATABASE_URL": database_url, "TESTING": True, "GRIDSVC_SECRET_KEY": SECRET})
    minting.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=-1)  # (no setting may issue tokens expired)
    expired = token_for(minting, "admin")  # signed by the server's key, expired a minute ago
    minting.extensions["gridsvc.db"].dispose()
    page.evaluate("""(token) => {
        const kept = JSON.parse(sessionStorage.getItem("gridsvc.map.tokens"));
        kept.access_token = token;
        sessionStorage.setItem("gridsvc.map.tokens", JSON.stringify(kept));
    }""", expired)

    answers = []
    page.on("response", lambda response: answers.append((response.request.method, response.url, response.status)))
    page.evaluate("() => { const map = window.gridMap; map.jumpTo({zoom: Math.min(map.getZoom() + 2, 18)}); }")
    page.wait_for_timeout(6000)
    tiles = [(url, status) for method, url, status in answers if "/tiles/" in url]
    assert tiles, "the zoom asked for new tiles"
    assert any(status == 401 for _, status in tiles), tiles  # the token had expired
    renewed = [a for a in answers if a[1].endswith("/api/v1/auth/refresh")]
    last = {}
    for url, status in tiles:
        last[url] = status
    failed_for_good = sorted(url for url, status in last.items() if status == 401)
    assert renewed and not failed_for_good, (renewed, failed_for_good[:5])
