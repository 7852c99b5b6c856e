"""Review of the /map page as a liaison (and an admin) uses it, in real headless Chromium.

Each test is a defect a user hit: the park's tiles failing without a word, a
session that ended without the admin being told, and a liaison of several
zones losing one zone's data because another zone's map failed.
"""
from __future__ import annotations

import json

import pytest
import requests
from shapely.geometry import shape
from sqlalchemy import select

from gridsvc.models import User, Zone
from tests.web import test_map_page as map_page
from tests.web.test_map_page import playwright_sync, sign_in_and_wait

# The map page's fixtures: a live server, Chromium, and a fresh tab.
base_url, browser, page = map_page.base_url, map_page.browser, map_page.page

expect = playwright_sync.expect


def _tiles_answer(status: int):
    problem = {"type": "about:blank", "title": "Internal Server Error" if status == 500 else "Unauthorized",
               "status": status, "detail": "Something broke." if status == 500 else "The token is invalid."}
    return lambda route: route.fulfill(status=status, content_type="application/problem+json",
                                       body=json.dumps(problem))


def test_tiles_failing_are_reported_not_silently_blank(page):
    """An admin's whole park (parking, enterprises, requests, volunteers) is
    drawn from /tiles: when they fail, the page must say so."""
    page.route("**/tiles/**", _tiles_answer(500))
    sign_in_and_wait(page, "admin")
    status = page.locator("#status")
    expect(status).to_contain_text("500")
    expect(status).to_contain_text("Map tiles")


def test_admin_whose_session_ended_is_asked_to_sign_in_again(page):
    """An admin has no zone map whose refresh would notice an ended session:
    the tiles are what notice it, and the admin must be told, not left with
    a park that stays blank as they pan."""
    sign_in_and_wait(page, "admin")
    # The session ends (tokens revoked, or both expired overnight): every token is refused.
    page.evaluate("""() => sessionStorage.setItem('gridsvc.map.tokens',
        JSON.stringify({access_token: 'ended', refresh_token: 'ended'}))""")
    page.evaluate("window.gridMap.jumpTo({zoom: window.gridMap.getZoom() + 2})")  # new tiles are needed
    error = page.locator("#sign-in-error")
    expect(error).to_be_visible(timeout=15_000)
    expect(error).to_contain_text("expired")
    expect(page.get_by_label("Username")).to_be_visible()
    assert page.evaluate("document.body.dataset.mapState") == "signed-out"


@pytest.fixture()
def liaison_of_two_zones(engine):
    """liaison-g02 is also the liaison of G03 (a real commit, undone after)."""
    with engine.begin() as connection:
        g02 = connection.scalar(select(User.id).where(User.username == "liaison-g02"))
        g03_liaison = connection.scalar(select(Zone.liaison_id).where(Zone.code == "G03"))
        connection.execute(Zone.__table__.update().where(Zone.code == "G03").values(liaison_id=g02))
        ids = dict(connection.execute(select(Zone.code, Zone.id).where(Zone.code.in_(["G02", "G03"]))).all())
    try:
        yield ids
    finally:
        with engine.begin() as connection:
            connection.execute(Zone.__table__.update().where(Zone.code == "G03").values(liaison_id=g03_liaison))


def _zone_map_drawn(page, zone_id: int) -> int:
    """How many features of that zone's map the zone-map source holds."""
    return page.evaluate("""async (zoneId) => {
        const features = await window.gridMap.getSource('zone-map').getData();
        return features.features.filter((f) => f.properties.layer === 'zone' && f.properties.id === zoneId).length;
    }""", zone_id)


def test_one_zone_failing_does_not_hide_the_liaisons_other_zones(page, liaison_of_two_zones):
    g02, g03 = liaison_of_two_zones["G02"], liaison_of_two_zones["G03"]
    page.route(f"**/api/v1/zones/{g02}/map", _tiles_answer(500))
    sign_in_and_wait(page, "liaison-g02")
    expect(page.locator("#status")).to_contain_text("Something broke")
    assert _zone_map_drawn(page, g03) == 1, "G03's map was never asked for because G02's failed"


def test_a_zone_that_changed_is_drawn_even_when_another_zone_failed(page, liaison_of_two_zones):
    """A refresh where G02 changed and G03 failed must still draw G02's new
    data: its new ETag is kept, so the next refresh gets a 304 for it and
    would never draw it."""
    g02, g03 = liaison_of_two_zones["G02"], liaison_of_two_zones["G03"]
    sign_in_and_wait(page, "liaison-g02")
    renamed = "已更新 Renamed zone"

    def changed(route):
        # the server's own answer (asked without the ETag, which would be a 304), then changed
        response = route.fetch(headers={k: v for k, v in route.request.headers.items() if k != "if-none-match"})
        body = response.json()
        for feature in body["features"]:
            if feature["properties"]["layer"] == "zone":
                feature["properties"]["name"] = renamed
        route.fulfill(response=response, json=body, headers={**response.headers, "etag": '"changed-g02"'})

    page.route(f"**/api/v1/zones/{g02}/map", changed)
    page.route(f"**/api/v1/zones/{g03}/map", _tiles_answer(500))
    with page.expect_response(f"**/api/v1/zones/{g03}/map"):
        page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#status")).to_contain_text("Something broke")
    names = page.evaluate("""async (zoneId) => {
        const data = await window.gridMap.getSource('zone-map').getData();
        return data.features.filter((f) => f.properties.layer === 'zone' && f.properties.id === zoneId)
                            .map((f) => f.properties.name);
    }""", g02)
    assert names == [renamed]


def test_request_description_is_text_and_a_volunteer_without_position_breaks_nothing(page):
    """Checked sound: a request's description (typed by a resident) shows as
    text in its popup, and a volunteer on duty with no position yet (null
    geometry) is simply not drawn."""
    evil = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">路灯坏了'

    def poisoned(route):
        response = route.fetch(headers={k: v for k, v in route.request.headers.items() if k != "if-none-match"})
        body = response.json()
        zone = next(f for f in body["features"] if f["properties"]["layer"] == "zone")
        ring = zone["geometry"]["coordinates"][0] if zone["geometry"]["type"] == "Polygon" \
            else zone["geometry"]["coordinates"][0][0]
        lon = sum(c[0] for c in ring[:-1]) / (len(ring) - 1)
        lat = sum(c[1] for c in ring[:-1]) / (len(ring) - 1)
        body["features"] += [
            {"type": "Feature", "id": "request.999999", "geometry": {"type": "Point", "coordinates": [lon, lat]},
             "properties": {"layer": "request", "id": 999999, "service_code": "streetlight", "status": "open",
                            "description": evil}},
            {"type": "Feature", "id": "volunteer.999999", "geometry": None,
             "properties": {"layer": "volunteer", "id": 999999, "name": "王<b>芳</b>"}},
        ]
        route.fulfill(response=response, json=body)

    page.route("**/api/v1/zones/*/map", poisoned)
    sign_in_and_wait(page, "liaison-g02")
    page.evaluate("document.querySelectorAll('.zone-label').forEach((l) => l.remove())")
    spot = page.evaluate("""() => {
        const [r] = window.gridMap.queryRenderedFeatures({layers: ['own-request']}).filter((f) => f.properties.id === 999999);
        return window.gridMap.project(r.geometry.coordinates);
    }""")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    popup = page.locator(".maplibregl-popup")
    expect(popup.locator("h3")).to_have_text("999999")
    description = popup.locator("dt", has_text="description").locator("xpath=following-sibling::dd[1]")
    expect(description).to_have_text(evil)
    assert popup.locator("img, script").count() == 0
    assert page.evaluate("window.pwned") is None


# ------------------------------------------------------------------ acting on a request from its popup


def _api(base_url: str, username: str):
    """A requests session signed in as ``username`` against the live server."""
    session = requests.Session()
    token = session.post(f"{base_url}/api/v1/auth/token", json={"username": username, "password": map_page.PASSWORD},
                         timeout=10).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _file_request(base_url: str, lon: float, lat: float, description: str) -> dict:
    answer = _api(base_url, "worker-001").post(f"{base_url}/api/v1/requests", timeout=10, json={
        "service_code": "parking", "description": description, "lon": lon, "lat": lat,
        "attributes": {"problem": "no_space"}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _open_popup_of_request(page, request_id: int):
    """Click the request's dot (the zone labels out of the way) and return its popup."""
    page.evaluate("document.querySelectorAll('.zone-label').forEach((l) => l.remove())")
    page.wait_for_function("""(id) => window.gridMap.queryRenderedFeatures({layers: ['own-request']})
        .some((f) => f.properties.id === id)""", arg=request_id, timeout=15_000)
    spot = page.evaluate("""(id) => {
        const [r] = window.gridMap.queryRenderedFeatures({layers: ['own-request']}).filter((f) => f.properties.id === id);
        return window.gridMap.project(r.geometry.coordinates);
    }""", request_id)
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    popup = page.locator(".maplibregl-popup")
    expect(popup.locator("h3")).to_have_text(str(request_id))
    return popup


def test_a_liaison_starts_and_resolves_a_request_from_its_popup(page, base_url):
    """The map showed a liaison the open requests of their zone, but to take one on they had to leave it for the
    API. The request's popup now offers what its status allows (a request waiting with the liaison: start,
    resolve, escalate, withdraw, comment; claiming is for escalated ones), with an optional note; the answer shows in the
    card, and a resolved request leaves the map at once. What the API refuses is shown as it words it."""
    g02 = shape(map_page.zone_feature(base_url, "G02")["geometry"]).representative_point()
    request = _file_request(base_url, g02.x, g02.y, "北门车位被占")
    assert request["status"] == "with_liaison", request  # nobody on duty in G02: its liaison's
    liaison = _api(base_url, "liaison-g02")

    sign_in_and_wait(page, "liaison-g02")
    popup = _open_popup_of_request(page, request["id"])
    page.wait_for_function("""(id) => window.gridMap.querySourceFeatures('park', {sourceLayer: 'requests'})
        .some((f) => f.id === id)""", arg=request["id"], timeout=15_000)
    buttons = popup.locator(".request-actions button")
    expect(buttons).to_have_text(["开始处理 Start", "办结 Resolve", "上报 Escalate", "撤销 Withdraw", "留言 Comment"])
    popup.get_by_label("Note").fill("已到现场 on site")
    popup.get_by_role("button", name="Start").click()
    expect(popup.locator(".outcome")).to_have_text("✓ 开始处理 Start: in_progress")
    expect(popup.locator('dd[data-key="status"]')).to_have_text("in_progress")
    expect(buttons).to_have_text(["办结 Resolve", "上报 Escalate", "撤销 Withdraw", "留言 Comment"])
    trail = liaison.get(f"{base_url}/api/v1/requests/{request['id']}/events", timeout=10).json()
    assert [(e["action"], e["to_status"], e["note"]) for e in trail][-1] == ("start", "in_progress", "已到现场 on site")

    popup.get_by_role("button", name="Comment").click()  # no note written: nothing is sent
    expect(popup.locator(".outcome")).to_contain_text("Write the comment")
    popup.get_by_role("button", name="Resolve").click()
    expect(popup.locator(".outcome")).to_have_text("✓ 办结 Resolve: resolved")
    assert liaison.get(f"{base_url}/api/v1/requests/{request['id']}", timeout=10).json()["status"] == "resolved"
    page.wait_for_function("""(id) => !window.gridMap.queryRenderedFeatures({layers: ['own-request']})
        .some((f) => f.properties.id === id)""", arg=request["id"], timeout=15_000)
    # and from the park's tiles, which drew it too: the browser's copy of them (max-age 60) kept it there
    page.wait_for_function("""(id) => !window.gridMap.querySourceFeatures('park', {sourceLayer: 'requests'})
        .some((f) => f.id === id)""", arg=request["id"], timeout=15_000)

    # resolved meanwhile by someone else: the popup says what the API said, and offers what is left
    other = _file_request(base_url, g02.x, g02.y, "北门车位被占 (2)")
    page.get_by_role("button", name="Refresh").click()
    popup = _open_popup_of_request(page, other["id"])
    assert liaison.post(f"{base_url}/api/v1/requests/{other['id']}/resolve", json={}, timeout=10).status_code == 200
    popup.get_by_role("button", name="Start").click()
    expect(popup.locator(".outcome")).to_have_text("✗ 'start' is not possible while the request is 'resolved'.")
    expect(popup.locator('dd[data-key="status"]')).to_have_text("resolved")
    expect(popup.locator(".request-actions button")).to_have_text(["留言 Comment"])
    assert liaison.get(f"{base_url}/api/v1/requests/{other['id']}", timeout=10).json()["status"] == "resolved"


def test_a_lots_new_count_shows_on_the_park_tiles_at_the_next_refresh(page, base_url):
    """liaison-g02's map draws the lots beyond their zones from the park's tiles. After a lot's new count, the
    refresh asked for the tiles again, but the browser answered from its own copy (max-age 60): the count did not
    show at the next minute's refresh, nor the one after. The refresh now revalidates the tiles in view."""
    sign_in_and_wait(page, "liaison-g02")
    g02 = map_page.zone_feature(base_url, "G02")["properties"]["id"]
    page.wait_for_function("window.gridMap.querySourceFeatures('park', {sourceLayer: 'parking'}).length > 0",
                           timeout=15_000)
    lots = page.evaluate("""(g02) => window.gridMap.querySourceFeatures('park', {sourceLayer: 'parking'})
        .filter((f) => f.properties.zone_id !== g02 && f.properties.capacity > 2)
        .map((f) => ({id: f.id, occupied: f.properties.occupied ?? null}))""", g02)
    assert lots, "lots of other zones are in view"
    lot = lots[0]
    count = 1 if lot["occupied"] != 1 else 2
    now = page.evaluate("new Date().toISOString()")
    answer = _api(base_url, "admin").post(f"{base_url}/api/v1/parking/lots/{lot['id']}/occupancy", timeout=10,
                                          json={"observed_at": now, "occupied": count})
    assert answer.status_code == 201, answer.text
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_function("""([id, count]) => window.gridMap.querySourceFeatures('park', {sourceLayer: 'parking'})
        .some((f) => f.id === id && f.properties.occupied === count)""", arg=[lot["id"], count],
                           timeout=15_000)
