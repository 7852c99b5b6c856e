"""The liaison web map at /map, as a user sees it in real headless Chromium.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright with
``executable_path``: Playwright never downloads a browser here. WebGL runs in
software (SwiftShader through ANGLE). The app is served by a live server on
127.0.0.1 with real commits, so the browser's requests (on other threads and
connections) see the seeded Lingfeng park.
"""
from __future__ import annotations

import io
import math
from urllib.parse import urlsplit

import pytest
import requests
from shapely.geometry import Point, shape
from sqlalchemy import delete

from gridsvc.app import create_app
from gridsvc.models import LoginFailure
from tests.browser import CHROMIUM_FLAGS, chromium_path, live_server

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (pip install -e '.[dev]')")

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (make test installs it as root)")

# Playwright adds its own headless switch. WebGL in software: pin ANGLE to
# SwiftShader and opt in to it (Chromium is retiring the silent fallback to
# software WebGL, which is all a headless box without a GPU has).
WEBGL_FLAGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
FLAGS = [flag for flag in CHROMIUM_FLAGS if flag != "--headless"] + WEBGL_FLAGS
VIEWPORT = {"width": 1000, "height": 700}
PASSWORD = "gridsvc-demo"
SECRET = "test-secret-not-for-production-0123456789"
IDLE = "body[data-map-state=idle]"
COLOUR_TOLERANCE = 10  # per channel: software rendering and blending round a little


@pytest.fixture(scope="module")
def base_url(database_url, engine):
    """The app on a loopback port; ``engine`` has loaded the Lingfeng park."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True, "GRIDSVC_SECRET_KEY": SECRET})
    with live_server(app) as base:
        yield base
    app.extensions["gridsvc.db"].dispose()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, base_url):
    """A fresh tab (own sessionStorage) that records every request it makes."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
    page = context.new_page()
    page.seen_requests = []
    page.errors = []
    page.on("request", lambda request: page.seen_requests.append(request))
    page.on("pageerror", lambda error: page.errors.append(error))
    yield page
    context.close()
    assert not page.errors, page.errors


# ------------------------------------------------------------------ helpers


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/map")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in_and_wait(page, username: str) -> None:
    sign_in(page, username)
    page.wait_for_selector(IDLE, state="attached", timeout=30_000)


def api_get(base_url: str, path: str, username: str | None = None):
    headers = {}
    if username:
        token = requests.post(f"{base_url}/api/v1/auth/token", json={"username": username, "password": PASSWORD},
                              timeout=10).json()["access_token"]
        headers["Authorization"] = f"Bearer {token}"
    response = requests.get(f"{base_url}{path}", headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


def zone_feature(base_url: str, code: str) -> dict:
    community = api_get(base_url, "/api/v1/communities")["items"][0]
    zones = api_get(base_url, f"/api/v1/communities/{community['id']}/zones")
    return next(f for f in zones["features"] if f["properties"]["code"] == code)


def screen_points(page, lonlats: list[tuple[float, float]]) -> list[dict]:
    """For each lon/lat: page pixel, the rendered features there (and 4 px
    around), and whether the map canvas is what the user sees at that pixel
    (not a label, the legend or a control)."""
    return page.evaluate("""(lonlats) => {
        const map = window.gridMap;
        const box = map.getContainer().getBoundingClientRect();
        return lonlats.map(([lon, lat]) => {
            const p = map.project([lon, lat]);
            const x = box.left + p.x, y = box.top + p.y;
            const near = map.queryRenderedFeatures([[p.x - 4, p.y - 4], [p.x + 4, p.y + 4]]);
            const here = map.queryRenderedFeatures([p.x, p.y]);
            const seen = document.elementFromPoint(x, y);
            return {
                x, y, lon, lat,
                onCanvas: seen !== null && seen.classList.contains("maplibregl-canvas"),
                near: near.map((f) => f.layer.id),
                here: here.map((f) => ({layer: f.layer.id, properties: f.properties})),
            };
        });
    }""", [list(p) for p in lonlats])


def grid(polygon, steps: int = 12) -> list[tuple[float, float]]:
    minx, miny, maxx, maxy = polygon.bounds
    return [(minx + (maxx - minx) * (i + 0.5) / steps, miny + (maxy - miny) * (j + 0.5) / steps)
            for j in range(steps) for i in range(steps)]


def css_colour(page, name: str) -> tuple[int, int, int]:
    value = page.evaluate("(n) => getComputedStyle(document.documentElement).getPropertyValue(`--${n}`).trim()", name)
    assert value.startswith("#") and len(value) == 7, value
    return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))


def pixel(screenshot: bytes, x: float, y: float) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(screenshot)).convert("RGB").getpixel((int(x), int(y)))


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def close(a, b) -> bool:
    return all(abs(p - q) <= COLOUR_TOLERANCE for p, q in zip(a, b))


# ------------------------------------------------------------------ tests


def test_liaison_signs_in_and_sees_their_zone(page, base_url):
    sign_in_and_wait(page, "liaison-g02")
    g02 = shape(zone_feature(base_url, "G02")["geometry"])

    # An interior point of G02 where nothing but the zone is drawn, and
    # nothing covers the canvas: the user sees the zone's own colour there.
    inside = [c for c in grid(g02) if g02.contains(Point(c)) and g02.exterior.distance(Point(c)) > 0.0002]
    points = screen_points(page, inside)
    clear = [p for p in points if p["onCanvas"] and set(p["near"]) == {"zones-fill"}]
    assert clear, "no spot of G02 free of parking, enterprises and labels"
    spot = clear[len(clear) // 2]
    # ... and a spot on screen far (> ~100 m) outside G02.
    on_screen = page.evaluate("""() => {
        const map = window.gridMap, {clientWidth: width, clientHeight: height} = map.getContainer(), points = [];
        for (let x = 20; x < width; x += 40) for (let y = 20; y < height; y += 40) points.push(map.unproject([x, y]).toArray());
        return points;
    }""")
    outside = [tuple(c) for c in on_screen if g02.distance(Point(c)) > 0.001]
    far = next(p for p in screen_points(page, outside) if p["onCanvas"])

    shot = page.screenshot()
    own_zone = css_colour(page, "own-zone")
    assert close(pixel(shot, spot["x"], spot["y"]), own_zone), (pixel(shot, spot["x"], spot["y"]), own_zone)
    assert not close(pixel(shot, far["x"], far["y"]), own_zone), (pixel(shot, far["x"], far["y"]), own_zone)

    zones_here = [f["properties"] for f in spot["here"] if f["layer"] == "zones-fill"]
    assert [z["code"] for z in zones_here] == ["G02"]
    assert "G02" not in [f["properties"].get("code") for f in far["here"] if f["layer"] == "zones-fill"]

    label = page.locator('.zone-label[data-zone-code="G02"]')
    playwright_sync.expect(label).to_be_visible()
    playwright_sync.expect(label).to_have_text("G02")
    box = label.bounding_box()
    assert 0 < box["x"] < VIEWPORT["width"] and 0 < box["y"] < VIEWPORT["height"]
    playwright_sync.expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_wrong_password_shows_the_problem_and_no_map(page, engine):
    try:
        with page.expect_response("**/api/v1/auth/token") as answer:
            sign_in(page, "liaison-g03", "not-the-password")
        problem = answer.value.json()
        assert answer.value.status == 401 and problem["detail"]

        error = page.locator("#sign-in-error")
        playwright_sync.expect(error).to_be_visible()
        playwright_sync.expect(error).to_have_text(problem["detail"])
        playwright_sync.expect(page.get_by_label("Password")).to_be_visible()
        assert page.evaluate("document.body.dataset.mapState") == "signed-out"
        assert page.evaluate("window.gridMap === undefined")
        assert page.locator(".zone-label").count() == 0
        assert page.locator("canvas").count() == 0
        asked = [urlsplit(r.url).path for r in page.seen_requests]
        assert not [p for p in asked if p.startswith(("/api/v1/me", "/api/v1/zones", "/tiles"))], asked
    finally:
        # The failure was committed (it feeds the sign-in throttle): leave none behind.
        with engine.begin() as connection:
            connection.execute(delete(LoginFailure).where(LoginFailure.username == "liaison-g03"))


def test_clicking_a_parking_lot_shows_its_name_and_utilisation(page, base_url):
    sign_in_and_wait(page, "liaison-g02")
    zone_id = zone_feature(base_url, "G02")["properties"]["id"]
    lots = [f for f in api_get(base_url, f"/api/v1/zones/{zone_id}/map", "liaison-g02")["features"]
            if f["properties"]["layer"] == "parking"]
    assert lots, "the demo park has parking lots in G02"

    # A lot whose middle is on screen, on top, and not under a zone label.
    targets = screen_points(page, [shape(lot["geometry"]).representative_point().coords[0] for lot in lots])
    target, lot = next((t, lot) for t, lot in zip(targets, lots)
                       if t["onCanvas"] and t["here"] and t["here"][0]["layer"] == "own-parking-fill"
                       and t["here"][0]["properties"]["id"] == lot["properties"]["id"])

    # Coloured by utilisation: green below 70 %, amber below 90 %, red above, grey unknown.
    u = lot["properties"]["utilisation"]
    band = "parking-none" if u is None else "parking-low" if u < 0.7 else "parking-mid" if u < 0.9 else "parking-high"
    assert close(pixel(page.screenshot(), target["x"], target["y"]), css_colour(page, band))

    page.mouse.click(target["x"], target["y"])
    popup = page.locator(".maplibregl-popup")
    playwright_sync.expect(popup).to_be_visible()
    playwright_sync.expect(popup.locator("h3")).to_have_text(lot["properties"]["name"])
    shown = "—" if u is None else f"{math.floor(u * 100 + 0.5)} %"  # JavaScript's Math.round
    utilisation = popup.locator("dt", has_text="utilisation")
    playwright_sync.expect(utilisation.locator("xpath=following-sibling::dd[1]")).to_have_text(shown)


def test_popup_shows_names_as_text_never_as_html(page, base_url):
    """A name is whatever someone typed: the popup must not run it as HTML."""
    evil = '<img src="x" onerror="window.pwned = true">停车场'

    def poisoned_zone_map(route):
        response = route.fetch()
        body = response.json()
        for feature in body["features"]:
            if feature["properties"]["layer"] == "parking":
                feature["properties"]["name"] = evil
        route.fulfill(response=response, json=body)

    page.route("**/api/v1/zones/*/map", poisoned_zone_map)
    sign_in_and_wait(page, "liaison-g02")
    spot = page.evaluate("""() => {
        const map = window.gridMap;
        const [lot] = map.queryRenderedFeatures({layers: ["own-parking-fill"]});
        const ring = lot.geometry.coordinates[0];
        const mid = ring.slice(0, -1).reduce((a, c) => [a[0] + c[0] / (ring.length - 1), a[1] + c[1] / (ring.length - 1)], [0, 0]);
        return map.project(mid);
    }""")
    box = page.locator("#map").bounding_box()
    page.evaluate("document.querySelectorAll('.zone-label').forEach((l) => l.remove())")  # nothing in the way
    page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    popup = page.locator(".maplibregl-popup")
    playwright_sync.expect(popup.locator("h3")).to_have_text(evil)
    assert popup.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_refresh_asks_with_the_etag_and_keeps_the_data_on_304(page):
    sign_in_and_wait(page, "liaison-g02")
    first = next(r for r in page.seen_requests if "/map" in r.url and "/zones/" in r.url)
    etag = first.response().headers["etag"]

    with page.expect_response("**/api/v1/zones/*/map") as answer:
        page.get_by_role("button", name="Refresh").click()
    assert answer.value.request.headers.get("if-none-match") == etag
    assert answer.value.status == 304
    playwright_sync.expect(page.locator("#status")).to_contain_text("no change")
    drawn = page.evaluate("window.gridMap.queryRenderedFeatures({layers: ['own-parking-fill']}).length")
    assert drawn > 0


def test_admin_sees_the_whole_community_and_can_sign_out(page):
    sign_in_and_wait(page, "admin")
    labels = page.locator(".zone-label")
    playwright_sync.expect(labels).to_have_count(10)
    assert sorted(labels.all_text_contents()) == [f"G{i:02d}" for i in range(1, 11)]
    # Every code is on screen, and not under the legend or the zoom buttons.
    covers = [page.locator(selector).bounding_box() for selector in ("#legend", ".maplibregl-ctrl-top-right")]
    for box in (labels.nth(i).bounding_box() for i in range(10)):
        assert 0 <= box["x"] and box["x"] + box["width"] <= VIEWPORT["width"], box
        assert 0 <= box["y"] and box["y"] + box["height"] <= VIEWPORT["height"], box
        assert not any(overlaps(box, cover) for cover in covers), box

    page.get_by_role("button", name="Sign out").click()
    playwright_sync.expect(page.get_by_label("Username")).to_be_visible()
    assert page.locator(".zone-label").count() == 0
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("document.body.dataset.mapState") == "signed-out"


def test_the_page_talks_to_no_other_host(page, base_url):
    sign_in_and_wait(page, "liaison-g02")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a popup, whatever is there
    page.get_by_role("button", name="Refresh").click()
    playwright_sync.expect(page.locator("#status")).to_contain_text("Checked")

    urls = [r.url for r in page.seen_requests]
    hosts = {urlsplit(u).hostname for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, hosts
    assert {urlsplit(u).scheme for u in urls} <= {"http", "data", "blob"}
    # The strict policy is on, and MapLibre worked under it (same-origin module worker).
    policy = page.seen_requests[0].response().headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "http" not in policy
    assert "/static/maplibre/maplibre-gl-worker.mjs" in {urlsplit(u).path for u in urls}
    tiles = [r for r in page.seen_requests if urlsplit(r.url).path.startswith("/tiles/")]
    assert tiles, "the park's vector tiles were requested"
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in tiles)
