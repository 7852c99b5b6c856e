"""Communities, zones, enterprises and the zone map: defects found in review (each test failed before its fix),
on real PostGIS, asserting what an admin, a liaison or an enterprise would see."""
from __future__ import annotations

import pytest
from shapely.geometry import shape
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gridsvc import spatial as gsql
from gridsvc.app import create_app
from gridsvc.models import Community, Enterprise, User, Zone
from gridsvc.services import accounts as account_service
from gridsvc.services import communities as community_service
from gridsvc.services import enterprises as enterprise_service
from gridsvc.services import zones as zone_service
from tests.browser import CHROMIUM_FLAGS, chromium_path, live_server
from tests.helpers import assert_problem, client_as, community_body, count, offset, rect, while_uncommitted, zone_feature

ORIGIN = (120.30, 31.50)  # SW corner of the 1 km x 1 km test market


@pytest.fixture()
def admin(admin_client):
    return admin_client


@pytest.fixture()
def market(admin) -> int:
    return admin.post("/api/v1/communities", json=community_body(boundary=rect(*ORIGIN, 1000, 1000))).get_json()["id"]


def _enterprise(client, community_id: int, lon: float, lat: float, name: str = "宁波测试机械有限公司"):
    return client.post(f"/api/v1/communities/{community_id}/enterprises",
                       json={"name": name, "location": {"lon": lon, "lat": lat}, "workers": 120})


# ---------------------------------------------------------------- an enterprise on a shared edge


def test_an_enterprise_on_a_shared_edge_is_in_the_zone_its_requests_go_to(admin, login, market):
    """Two zones share the meridian between them; G02 (east) was drawn before G01 (west). An enterprise whose gate
    is on that edge was listed in G01 (lowest code), while locate, and every request raised at the gate, named G02
    (lowest id): G01's liaison saw the enterprise on their map and never heard of its needs."""
    west = rect(*ORIGIN, 500, 1000)
    edge_lon = west["coordinates"][0][1][0]
    east = rect(edge_lon, ORIGIN[1], 500, 1000)
    gate = (edge_lon, offset(*ORIGIN, 0, 400)[1])
    before_zones = _enterprise(admin, market, *gate, name="先登记的企业").get_json()  # placed when the zones are drawn
    assert before_zones["zone"] is None
    g02 = admin.post(f"/api/v1/communities/{market}/zones", json=zone_feature("G02", east)).get_json()
    g01 = admin.post(f"/api/v1/communities/{market}/zones", json=zone_feature("G01", west)).get_json()
    after_zones = _enterprise(admin, market, *gate, name="后登记的企业").get_json()

    located = admin.get(f"/api/v1/zones/locate?lon={gate[0]}&lat={gate[1]}").get_json()["zone"]
    request = login("worker-001").post("/api/v1/requests", json={
        "service_code": "parking", "description": "厂门口没有车位", "lon": gate[0], "lat": gate[1],
        "attributes": {"problem": "no_space"}})
    assert request.status_code == 201, request.get_json()
    assert located["id"] == g02["id"]  # the lowest id, as requests, shifts and parking are placed
    assert request.get_json()["zone_id"] == g02["id"]
    listed = admin.get(f"/api/v1/communities/{market}/enterprises").get_json()["items"]
    assert {e["name"]: e["zone"]["code"] for e in listed} == {"先登记的企业": "G02", "后登记的企业": "G02"}
    assert after_zones["zone"]["id"] == g02["id"] != g01["id"]
    g02_map = admin.get(f"/api/v1/zones/{g02['id']}/map").get_json()
    assert sorted(f["properties"]["name"] for f in g02_map["features"] if f["properties"]["layer"] == "enterprise") \
        == ["先登记的企业", "后登记的企业"]


# ---------------------------------------------------------------- an enterprise registered while a zone is drawn


@pytest.mark.parametrize("how", ["register", "move"])
def test_an_enterprise_written_while_a_zone_is_drawn_lands_in_that_zone(committed_app, engine, how):
    """One admin draws zone G01 while another registers an enterprise inside it (or moves one there). The
    enterprise looked its zone up before G01 was committed, and G01's own placement of the community's enterprises
    could not see the enterprise yet: it was saved in no zone, off G01's map and its counts, until some later zone
    change happened to place it."""
    admin = client_as(committed_app, "admin")
    community_id = admin.post("/api/v1/communities", json=community_body(name="Race Market Z")).get_json()["id"]
    try:
        inside = offset(*ORIGIN, 250, 250)
        moved_id = None
        if how == "move":
            outside_g01 = offset(*ORIGIN, 800, 800)
            moved_id = _enterprise(admin, community_id, *outside_g01).get_json()["id"]

        def draw(own):
            zone_service.create_zone(own, community_id, code="G01", name="第一网格", geometry=shape(rect(*ORIGIN, 500, 500)))

        def write():
            if how == "register":
                return _enterprise(admin, community_id, *inside)
            return admin.patch(f"/api/v1/communities/{community_id}/enterprises/{moved_id}",
                               json={"location": {"lon": inside[0], "lat": inside[1]}})

        answer = while_uncommitted(engine, draw, write)
        assert answer.status_code in (200, 201), answer.get_json()
        enterprise_id = answer.get_json()["id"]
        shown = admin.get(f"/api/v1/communities/{community_id}/enterprises/{enterprise_id}").get_json()
        assert shown["zone"] is not None and shown["zone"]["code"] == "G01", shown["zone"]
    finally:
        admin.delete(f"/api/v1/communities/{community_id}?cascade=true")


# ---------------------------------------------------------------- names as typed on a phone


def test_names_are_trimmed_so_a_search_by_name_finds_them(admin, market):
    """A trailing space or newline from a phone keyboard was kept: the OGC feed's ?name= never found the
    enterprise under the name everyone knows it by."""
    lon, lat = offset(*ORIGIN, 300, 300)
    created = _enterprise(admin, market, lon, lat, name=" 宁波灵峰精密机械有限公司\n")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["name"] == "宁波灵峰精密机械有限公司"
    found = admin.get("/ogc/collections/enterprises/items?name=宁波灵峰精密机械有限公司").get_json()
    assert [f["id"] for f in found["features"]] == [created.get_json()["id"]]

    zone = admin.post(f"/api/v1/communities/{market}/zones",
                      json=zone_feature("G01", rect(*ORIGIN, 500, 500), name="第一网格 ")).get_json()
    assert zone["properties"]["name"] == "第一网格"
    renamed = admin.patch(f"/api/v1/communities/{market}", json={"name": "  测试市场\t"}).get_json()
    assert renamed["name"] == "测试市场"


def test_a_name_of_spaces_is_refused_and_nothing_is_written(admin, session, market):
    """A community, zone or enterprise named "   " was saved: a blank line in every list and on the map."""
    lon, lat = offset(*ORIGIN, 300, 300)
    before = (count(session, Community), count(session, Zone), count(session, Enterprise))
    for response in (admin.post("/api/v1/communities", json=community_body(name="   ")),
                     admin.post(f"/api/v1/communities/{market}/zones", json=zone_feature("G01", rect(*ORIGIN, 100, 100), name=" ")),
                     _enterprise(admin, market, lon, lat, name="\n")):
        assert "name" in str(assert_problem(response, 422)["errors"])
    assert (count(session, Community), count(session, Zone), count(session, Enterprise)) == before
    zone_id = admin.post(f"/api/v1/communities/{market}/zones", json=zone_feature("G01", rect(*ORIGIN, 100, 100))).get_json()["id"]
    assert_problem(admin.patch(f"/api/v1/zones/{zone_id}", json={"properties": {"name": "  "}}), 422)
    assert_problem(admin.patch(f"/api/v1/communities/{market}", json={"name": ""}), 422)
    assert session.scalar(select(Zone.name).where(Zone.id == zone_id)) == "Zone G01"


# ---------------------------------------------------------------- a zone changed while it is deleted


def test_renaming_a_zone_while_an_admin_deletes_it_is_a_404_not_a_500(committed_app, engine):
    """An admin deletes zone G02 while its liaison renames it from the phone. The rename waited for the delete's
    lock, then wrote to a row that was gone: a plain 500 instead of "this zone does not exist"."""
    admin = client_as(committed_app, "admin")
    community_id = admin.post("/api/v1/communities", json=community_body(name="Race Market D")).get_json()["id"]
    try:
        zone_id = admin.post(f"/api/v1/communities/{community_id}/zones",
                             json=zone_feature("G02", rect(*ORIGIN, 500, 500))).get_json()["id"]
        answer = while_uncommitted(engine, lambda own: zone_service.delete_zone(own, zone_id),
                                   lambda: admin.patch(f"/api/v1/zones/{zone_id}", json={"properties": {"name": "北门网格"}}))
        assert_problem(answer, 404)
        assert admin.get(f"/api/v1/communities/{community_id}/zones").get_json()["numberMatched"] == 0
    finally:
        admin.delete(f"/api/v1/communities/{community_id}?cascade=true")


def test_changing_an_enterprise_while_another_admin_deletes_it_is_a_404_not_a_500(committed_app, engine):
    """Two admins tidy the register: one deletes a closed enterprise while the other corrects its head count.
    The correction waited for the delete, then updated a row that was gone: a plain 500."""
    admin = client_as(committed_app, "admin")
    community_id = admin.post("/api/v1/communities", json=community_body(name="Race Market E")).get_json()["id"]
    try:
        enterprise_id = _enterprise(admin, community_id, *offset(*ORIGIN, 200, 200)).get_json()["id"]
        answer = while_uncommitted(engine, lambda own: enterprise_service.delete_enterprise(own, community_id, enterprise_id),
                                   lambda: admin.patch(f"/api/v1/communities/{community_id}/enterprises/{enterprise_id}",
                                                       json={"workers": 80}))
        assert_problem(answer, 404)
        assert admin.get(f"/api/v1/communities/{community_id}/enterprises").get_json()["total"] == 0
    finally:
        admin.delete(f"/api/v1/communities/{community_id}?cascade=true")


# ---------------------------------------------------------------- the /map page of a liaison of a later park


def test_the_map_page_opens_on_the_liaisons_own_park_past_the_first_hundred(database_url, engine):
    """The page looked for the liaison's park in the first page (100) of GET /communities and, not finding it
    there, drew the first park (Lingfeng and its G01..G10) around a liaison whose zone is elsewhere."""
    playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if chromium_path() is None:
        pytest.skip("chromium is not installed")
    with Session(engine) as s:
        fillers = [Community(name=f"Filler {i:03d}", kind="market", boundary=gsql.literal_geometry(
            shape(rect(100.0 + i * 0.01, 20.0, 100, 100)))) for i in range(100)]
        s.add_all(fillers)
        far = community_service.create_community(s, name="远方工业社区 Far Park", kind="industrial_park",
                                                 boundary=shape(rect(*ORIGIN, 1000, 1000)), timezone="Asia/Shanghai")
        account_service.create_user(s, username="liaison-far", password="far-park-liaison", display_name="远方联络员",
                                    roles=["liaison"])
        zone_service.create_zone(s, far.id, code="F01", name="远方一格", geometry=shape(rect(*ORIGIN, 500, 500)),
                                 liaison="liaison-far")
        s.commit()
        created = [c.id for c in fillers] + [far.id]
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "GRIDSVC_SECRET_KEY": "test-secret-not-for-production-0123456789"})
    try:
        with live_server(app) as base, playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(),
                args=[f for f in CHROMIUM_FLAGS if f != "--headless"] + ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 700}, base_url=base)
                page.goto("/map")
                page.get_by_label("Username").fill("liaison-far")
                page.get_by_label("Password").fill("far-park-liaison")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("body[data-map-state=idle]", state="attached", timeout=30_000)
                labels = page.locator(".zone-label")
                assert labels.all_text_contents() == ["F01"]
                box = labels.first.bounding_box()
                assert 0 < box["x"] < 1000 and 0 < box["y"] < 700
            finally:
                browser.close()
    finally:
        app.extensions["gridsvc.db"].dispose()
        with engine.begin() as conn:
            conn.execute(delete(Community).where(Community.id.in_(created)))
            conn.execute(delete(User).where(User.username == "liaison-far"))


def test_a_liaison_renaming_a_zone_that_does_not_exist_gets_a_404_not_a_403(login, session):
    """"A liaison may change only the zones they are liaison of" for a zone that is no one's (a stale id in
    the app) sent them looking for a permission they could never get."""
    answer = login("liaison-g01").patch("/api/v1/zones/999999", json={"properties": {"name": "北区"}})
    assert_problem(answer, 404)
    assert "999999" in answer.get_json()["detail"]
    g02 = session.scalar(select(Zone.id).where(Zone.code == "G02"))
    assert_problem(login("liaison-g01").patch(f"/api/v1/zones/{g02}", json={"properties": {"name": "北区"}}), 403)
