"""A hostile client's review of the other endpoints (session 12): accounts, communities, zones, parking,
requests, Open311 and the OGC API.

Each test failed before its fix: what the caller sent, what they got, and what they should get (a clear
4xx problem that changes nothing)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gridsvc.models import Community, RequestEvent, ServiceRequest, User
from gridsvc.services.accounts import new_api_key
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import assert_problem, count


@pytest.fixture()
def key_for(session):
    def make(username: str) -> str:
        key = new_api_key(session, session.scalar(select(User.id).where(User.username == username)), "review")
        session.commit()
        return key
    return make


def _housing(worker, here, household):
    return worker.post("/api/v1/requests", json={"service_code": "housing", "description": "宿舍漏水",
                                                  "lon": here[0], "lat": here[1], "attributes": {"household": household}})


def test_a_number_attribute_is_held_to_its_definition(login, session):
    """The demo's housing need took a household of -5, 1.5, 2**63 and 1e308 (which came back as an integer of
    309 digits). "people in the household" is a whole number from 1 to 100; any number attribute is at most
    1e15 either way."""
    worker = login("worker-001")
    here = zone_center(login("admin"), zone_of(session, "G03").id)
    before = count(session, ServiceRequest)
    for household, said in ((-5, "between 1 and 100"), (1.5, "whole number"), (2 ** 63, "between 1 and 100"),
                            (1e308, "between 1 and 100")):
        problem = assert_problem(_housing(worker, here, household), 422, "validation")
        assert said in problem["errors"]["attributes"]["household"][0], (household, problem)
    assert count(session, ServiceRequest) == before
    assert _housing(worker, here, 4).status_code == 201
    [attribute] = next(s for s in login("worker-001").get("/api/v1/services").get_json()
                       if s["code"] == "housing")["attributes"]
    assert (attribute["integer"], attribute["minimum"], attribute["maximum"]) == (True, 1, 100)


def test_an_operation_without_query_parameters_refuses_one(login, session):
    """``/zones/{id}/map?foo=1`` answered 200 and ``DELETE /zones/{id}?cascade=true`` ignored its parameter, where
    the README says a parameter an operation does not take is a 422 naming it (it held only for operations that
    take some)."""
    admin = login("admin")
    g01 = zone_of(session, "G01").id
    for method, url in (("GET", f"/api/v1/zones/{g01}/map?foo=1"), ("GET", "/api/v1/me?x=1"),
                        ("DELETE", f"/api/v1/zones/{g01}?cascade=true"),
                        ("POST", "/api/v1/auth/token?zzz=1")):
        kwargs = {"json": {"username": "admin", "password": "gridsvc-demo"}} if "token" in url else {}
        problem = assert_problem(admin.open(url, method=method, **kwargs), 422, "validation")
        assert list(problem["errors"]) == [url.rsplit("?", 1)[1].split("=")[0]], (url, problem)
    assert zone_of(session, "G01") is not None
    assert admin.get(f"/api/v1/zones/{g01}/map").status_code == 200


def test_a_number_in_a_query_string_is_written_as_one(client):
    """``/zones/locate?lon=1_2&lat=1`` was read as lon 12, and full-width ``lon=１２１`` as 121: Python's float()
    reads both. A query number is written in ASCII decimal."""
    for lon in ("1_2", "１２１", "121.7_7", "0x1p3"):
        problem = assert_problem(client.get("/api/v1/zones/locate", query_string={"lon": lon, "lat": "29.87"}), 422)
        assert "lon" in problem["errors"], lon
    assert client.get("/api/v1/zones/locate", query_string={"lon": " 121.7769 ", "lat": "2.987e1"}).status_code == 200
    for bbox in ("121_7,29.86,121.8,29.88", "１２１,29.86,121.8,29.88"):
        assert client.get("/ogc/collections/parking-lots/items", query_string={"bbox": bbox}).status_code == 400
    assert client.get("/ogc/collections/parking-lots/items", query_string={"limit": "１０"}).status_code == 400


def test_a_range_refused_names_the_fields_own_range(login, lingfeng):
    """A count of 2**31 for a split of 1..1000 zones was told "greater than or equal to -2147483648 and less
    than or equal to 2147483647", the range of PostgreSQL's integer, not the field's."""
    answer = login("admin").post(f"/api/v1/communities/{lingfeng.id}/zones/split", json={"count": 2 ** 31})
    problem = assert_problem(answer, 422, "validation")
    assert problem["errors"]["count"] == ["Must be greater than or equal to 1 and less than or equal to 1000."]


def test_an_import_that_is_no_feature_collection_says_so(login, session):
    """``POST /parking/import`` with ``[]`` said "1 feature(s) are wrong (#None)": the file is wrong, not a
    feature."""
    for body in ([], {"type": "FeatureCollection"}, {"type": "FeatureCollection", "features": None}):
        problem = assert_problem(login("planner").post("/api/v1/parking/import?dry_run=true", json=body), 422)
        assert "#None" not in problem["detail"] and "FeatureCollection" in problem["detail"], problem


def test_the_openapi_document_says_a_capacity_radius_of_0_is_refused(app):
    """The document gave ``radius_m`` ``minimum: 0`` (0 taken); the server refuses 0 ("greater than 0")."""
    from gridsvc.api import Api  # noqa: F401  (the document is the app's)

    spec = app.test_client().get("/api/openapi.json").get_json()
    [radius] = [p for p in spec["paths"]["/api/v1/parking/capacity"]["get"]["parameters"] if p["name"] == "radius_m"]
    assert radius["schema"]["minimum"] == 0 and radius["schema"]["exclusiveMinimum"] is True


def test_open311_errors_read_as_words(client, key_for):
    """An unknown service_code was "nope is not on the service list; see /api/v1/services.
    {\\"service_code\\": [\\"unknown service nope\\"]}", a JSON dump in GeoReport's description; an id past
    PostgreSQL's integer was told the list must be "a comma-separated list of ids"."""
    key = key_for("worker-010")
    answer = client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "nope", "lat": "29.87", "long": "121.78", "description": "x"})
    assert answer.status_code == 422
    description = answer.get_json()[0]["description"]
    assert "{" not in description and "service_code: unknown service nope" in description, description
    answer = client.get("/open311/v2/requests.json",
                        query_string={"api_key": key, "service_request_id": "99999999999999999999"})
    assert answer.status_code == 400 and "2147483647" in answer.get_json()[0]["description"]


def test_an_open311_body_of_another_type_is_a_415(client, key_for, session):
    """A form posted as text/plain was not read, and answered 401 "api_key is required": the key was in it."""
    before = count(session, ServiceRequest)
    answer = client.post("/open311/v2/requests.json", content_type="text/plain",
                         data=f"api_key={key_for('worker-010')}&service_code=commute&lat=29.87&long=121.78&description=x")
    assert answer.status_code == 415
    assert "form" in answer.get_json()[0]["description"]
    assert count(session, ServiceRequest) == before


def test_a_comment_needs_a_note(login, session):
    """``POST /requests/{id}/comment`` with ``{}`` or ``{"note": ""}`` answered 200 and wrote a comment event
    with nothing in it."""
    worker = login("worker-001")
    here = zone_center(login("admin"), zone_of(session, "G03").id)
    created = worker.post("/api/v1/requests", json={"service_code": "commute", "description": "班车晚点",
                                                    "lon": here[0], "lat": here[1]}).get_json()
    url = f"/api/v1/requests/{created['id']}/comment"
    for body in ({}, {"note": ""}, {"note": "   "}):
        problem = assert_problem(worker.post(url, json=body), 422, "validation")
        assert "note" in problem["errors"]
    comments = select(func.count()).where(RequestEvent.request_id == created["id"], RequestEvent.action == "comment")
    assert session.scalar(comments) == 0
    assert worker.post(url, json={"note": "还在等"}).status_code == 200
    assert session.scalar(comments) == 1


def test_a_community_clock_is_a_places_clock(login, lingfeng, session):
    """``PATCH /communities/{id} {"timezone": "localtime"}`` was stored: "localtime" is the host's clock,
    whatever it is set to, and "posixrules" a rule file; both are files of the zoneinfo directory."""
    admin = login("admin")
    for name in ("localtime", "posixrules", "Factory", "posix/Asia/Shanghai", "right/Asia/Shanghai"):
        problem = assert_problem(admin.patch(f"/api/v1/communities/{lingfeng.id}", json={"timezone": name}), 422)
        assert "timezone" in problem["errors"], name
    session.expire_all()
    assert session.get(Community, lingfeng.id).timezone == "Asia/Shanghai"


def test_the_default_timezone_setting_is_a_places_clock():
    from gridsvc.config import check_default_timezone

    with pytest.raises(ValueError, match="GRIDSVC_DEFAULT_TIMEZONE"):
        check_default_timezone({"GRIDSVC_DEFAULT_TIMEZONE": "localtime"})
    check_default_timezone({"GRIDSVC_DEFAULT_TIMEZONE": "Asia/Urumqi"})


def test_a_lot_or_space_posted_twice_is_stored_once(login, session):
    """``POST /parking/lots`` (and ``/parking/spaces``) took the same feature twice, doubling the supply, where an
    import refuses it. Without a ref, the same lot (name, kind, ground) or space (place) is a 409."""
    from gridsvc.models import ParkingLot, ParkingSpace
    from tests.helpers import offset, rect

    planner = login("planner")
    here = zone_center(login("admin"), zone_of(session, "G05").id)
    body = {"type": "Feature", "geometry": rect(*here, 30, 20), "properties": {"name": "西门临时停车场",
                                                                              "capacity": {"car": 40}}}
    assert planner.post("/api/v1/parking/lots", json=body).status_code == 201
    lots = count(session, ParkingLot)
    problem = assert_problem(planner.post("/api/v1/parking/lots", json=body), 409)
    assert "stored already" in problem["detail"]
    assert count(session, ParkingLot) == lots
    # another lot on the same ground (another name) is another lot
    assert planner.post("/api/v1/parking/lots", json={**body, "properties": {"name": "西门二层"}}).status_code == 201
    spot = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(offset(*here, 100, 0))}}
    assert planner.post("/api/v1/parking/spaces", json=spot).status_code == 201
    spaces = count(session, ParkingSpace)
    assert_problem(planner.post("/api/v1/parking/spaces", json=spot), 409)
    assert count(session, ParkingSpace) == spaces


def test_an_empty_json_body_to_open311_is_no_arguments(client, key_for):
    """(The README check.) An empty body labelled JSON was "the body is not valid JSON" (400) in Open311, where
    the README says an empty body counts as none: the arguments missing are named."""
    answer = client.post(f"/open311/v2/requests.json?api_key={key_for('worker-010')}", data=b"",
                         content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_json()[0]["description"].startswith("service_code is required")
