"""Values the database cannot hold are the client's error, said clearly, with
nothing written: numbers past PostgreSQL's integer, times with impossible UTC
offsets or in far-off years, text with a NUL character. Each of these was a
500 found by fuzzing the OpenAPI document (schemathesis)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gridsvc.models import CheckEvent, Community, ServiceRequest, Shift, User, Volunteer, VolunteerPosition
from gridsvc.services.accounts import new_api_key
from tests.api.volunteer_helpers import volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, count
from tests.open311_client import GeoReportClient

TOO_BIG = 2**31  # one past PostgreSQL's largest integer


@pytest.fixture()
def admin(login):
    return login("admin")


# ---------------------------------------------------------------- integers


@pytest.mark.parametrize("path", ["/api/v1/communities/{n}", "/api/v1/shifts/{n}", "/api/v1/volunteers/{n}/hours",
                                  "/api/v1/requests/{n}"])
def test_an_id_past_the_integer_range_is_an_unknown_id(admin, path):
    for n in (TOO_BIG, 20338287666598320, 10**40):
        assert_problem(admin.get(path.format(n=n)), 404, "not-found")


def test_a_check_in_to_a_huge_shift_id_is_404_and_records_nothing(login, session):
    before = count(session, CheckEvent)
    answer = login("volunteer-001").post("/api/v1/shifts/20338287666598320/check-in",
                                         json={"lon": 121.78, "lat": 29.87, "crs": "gcj02"},
                                         headers={"Idempotency-Key": "huge-shift-id"})
    assert_problem(answer, 404, "not-found")
    assert count(session, CheckEvent) == before


def test_a_huge_offset_or_filter_id_is_a_422_naming_the_parameter(admin):
    for path, name, value in (("/api/v1/communities", "offset", 214210179338257591498178560),
                              ("/api/v1/users", "offset", 539887335455271354368),
                              ("/api/v1/parking/lots", "zone_id", 3357942889),
                              ("/api/v1/shifts", "zone_id", 19605339431)):
        problem = assert_problem(admin.get(path, query_string={name: value}), 422, "validation")
        assert list(problem["errors"]) == [name]
        assert "2147483647" in problem["errors"][name][0]


def test_a_huge_capacity_creates_no_shift(admin, session, clock):
    g01 = zone_of(session, "G01")
    before = count(session, Shift)
    start = clock() + timedelta(days=1)
    body = {"title": "北门交通疏导", "activity": "traffic_guidance", "zone_id": g01.id, "capacity": TOO_BIG,
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()}
    problem = assert_problem(admin.post("/api/v1/shifts", json=body), 422, "validation")
    assert "capacity" in problem["errors"]
    assert count(session, Shift) == before


def test_a_number_with_a_fraction_is_no_integer(admin, session, clock):
    """marshmallow's Integer truncated them: a capacity of 10.7 made a shift of 10, an id of 2.5 meant 2."""
    g01 = zone_of(session, "G01")
    before = count(session, Shift)
    start = clock() + timedelta(days=1)
    body = {"title": "北门交通疏导", "activity": "traffic_guidance", "zone_id": g01.id,
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat()}
    assert "capacity" in assert_problem(admin.post("/api/v1/shifts", json={**body, "capacity": 10.7}), 422)["errors"]
    assert "zone_id" in assert_problem(admin.post("/api/v1/shifts", json={**body, "zone_id": g01.id + 0.5,
                                                                          "capacity": 10}), 422)["errors"]
    assert "ids" in assert_problem(admin.post("/api/v1/hours/review", json={"ids": [2.5], "action": "approve"}), 422)["errors"]
    assert count(session, Shift) == before
    whole = admin.post("/api/v1/shifts", json={**body, "capacity": 10.0})  # a JSON integer written with ".0"
    assert whole.status_code == 201 and whole.get_json()["capacity"] == 10


def test_the_documented_id_range_is_the_one_enforced(client):
    spec = client.get("/api/openapi.json").get_json()
    [shift_id] = spec["paths"]["/api/v1/shifts/{shift_id}"]["parameters"]
    assert shift_id["schema"]["maximum"] == 2**31 - 1
    offset = next(p for p in spec["paths"]["/api/v1/shifts"]["get"]["parameters"] if p["name"] == "offset")
    assert offset["schema"]["minimum"] == 0 and offset["schema"]["maximum"] == 2**31 - 1


# ---------------------------------------------------------------- times


def test_a_utc_offset_no_place_uses_is_a_422(admin):
    # PostgreSQL refuses offsets of 16 h and more; the world uses -12:00 .. +14:00
    for stamp in ("2026-12-01T08:00:00+17:15", "2026-12-01T08:00:00-16:41", "2026-12-01T08:00:00+14:01"):
        problem = assert_problem(admin.get("/api/v1/shifts", query_string={"to": stamp}), 422, "validation")
        assert "UTC offset" in problem["errors"]["to"][0]
    assert admin.get("/api/v1/shifts", query_string={"to": "2026-12-01T08:00:00+14:00"}).status_code == 200
    assert admin.get("/api/v1/shifts", query_string={"to": "2026-12-01T08:00:00-12:00"}).status_code == 200


def test_times_in_far_off_years_are_a_422(admin, login, session):
    problem = assert_problem(admin.get("/api/v1/requests", query_string={
        "from": "0683-11-28T18:09:01+08:00", "to": "9257-01-16T17:45:37Z"}), 422, "validation")
    assert set(problem["errors"]) == {"from", "to"} and "1900 to 2199" in problem["errors"]["from"][0]
    me = volunteer_id(session, "volunteer-001")
    problem = assert_problem(login("volunteer-001").get(f"/api/v1/volunteers/{me}/hours",
                                                        query_string={"to": "9999-12-31"}), 422, "validation")
    assert "1900 to 2199" in problem["errors"]["to"][0]


def test_a_shift_far_in_the_future_is_refused_not_written(admin, session):
    g01 = zone_of(session, "G01")
    before = count(session, Shift)
    body = {"title": "北门交通疏导", "activity": "traffic_guidance", "zone_id": g01.id, "capacity": 3,
            "starts_at": "9999-12-31T22:00:00+08:00", "ends_at": "9999-12-31T23:00:00+08:00"}
    problem = assert_problem(admin.post("/api/v1/shifts", json=body), 422, "validation")
    assert {"starts_at", "ends_at"} <= set(problem["errors"])
    assert count(session, Shift) == before


# ---------------------------------------------------------------- NUL characters


def test_nul_in_a_profile_field_is_a_422_and_the_profile_is_unchanged(admin, session):
    me = volunteer_id(session, "volunteer-001")
    team_before = session.get(Volunteer, me).team
    problem = assert_problem(admin.patch(f"/api/v1/volunteers/{me}", json={"team": "灵动\u0000", "skills": ["first_aid"]}),
                             422, "validation")
    assert problem["errors"] == {"team": ["Text may not contain the NUL character (U+0000)."]}
    session.expire_all()
    assert session.get(Volunteer, me).team == team_before


def test_nul_anywhere_in_a_request_body_is_found_and_nothing_filed(login, session):
    here = zone_center(login("admin"), zone_of(session, "G03").id)
    before = count(session, ServiceRequest)
    body = {"service_code": "parking", "description": "北门\u0000找不到车位", "lon": here[0], "lat": here[1],
            "attributes": {"problem\u0000": "no_space", "notes": ["ok", "bad\u0000"]}}
    problem = assert_problem(login("worker-001").post("/api/v1/requests", json=body), 422, "validation")
    assert set(problem["errors"]) == {"description", "attributes.problem\u0000", "attributes.notes.1"}
    assert count(session, ServiceRequest) == before


def test_nul_in_the_query_string_is_a_422_naming_the_parameter(admin):
    problem = assert_problem(admin.get("/api/v1/requests", query_string={"service_code": "park\u0000ing"}),
                             422, "validation")
    assert list(problem["errors"]) == ["service_code"]


def test_a_json_backslash_u_that_is_not_nul_still_passes(admin, session):
    me = volunteer_id(session, "volunteer-001")
    answer = admin.patch(f"/api/v1/volunteers/{me}", data='{"team": "a\\\\u0000b"}', content_type="application/json")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["team"] == "a\\u0000b"  # a backslash, then the letters u0000


def test_json_nested_past_the_recursion_limit_is_malformed_json(admin, login, session):
    deep = "[" * 100_000 + "]" * 100_000
    before = count(session, CheckEvent), count(session, Community)
    for client, path in ((admin, "/api/v1/communities"), (admin, "/api/v1/parking/import"),
                         (login("volunteer-001"), "/api/v1/shifts/1/check-in")):
        answer = client.post(path, data='{"name": %s}' % deep, content_type="application/json",
                             headers={"Idempotency-Key": "deep-json"})
        assert "nested too deeply" in assert_problem(answer, 400, "malformed-json")["detail"]
    assert (count(session, CheckEvent), count(session, Community)) == before



def test_a_json_integer_longer_than_python_converts_is_malformed_json(admin, login, session):
    """An integer of 4,301 digits: Python refuses to convert it (a guard against quadratic work) with a bare
    ValueError, which reached the client as a 500 from every JSON endpoint."""
    long_number = "1" + "0" * 4300
    before = count(session, VolunteerPosition), count(session, Community)
    for client, path in ((login("volunteer-001"), "/api/v1/me/location"), (admin, "/api/v1/communities"),
                         (admin, "/api/v1/parking/import"), (login("volunteer-001"), "/api/v1/shifts/1/check-in")):
        answer = client.post(path, data='{"lon": %s, "lat": 29.87}' % long_number, content_type="application/json",
                             headers={"Idempotency-Key": "long-number"})
        assert "more than 4300 digits" in assert_problem(answer, 400, "malformed-json")["detail"], path
    assert (count(session, VolunteerPosition), count(session, Community)) == before


# ---------------------------------------------------------------- Open311, OGC API, tiles


@pytest.fixture()
def geo(client, session):
    user_id = session.scalar(select(User.id).where(User.username == "worker-010"))
    key = new_api_key(session, user_id, "test client")
    session.commit()
    return GeoReportClient(client, api_key=key)


def test_open311_says_these_in_its_own_error_shape(geo, session):
    before = count(session, ServiceRequest)
    status, errors = geo.post_request("parking", 29.87, 121.78, attributes={"problem": "blocked"}, description="a\u0000b")
    assert status == 400 and "NUL" in errors[0]["description"]
    assert count(session, ServiceRequest) == before
    status, errors = geo.requests(service_request_id=f"1,{TOO_BIG}")
    assert status == 400 and "service_request_id" in errors[0]["description"]
    status, errors = geo.requests(start_date="2026-11-21T08:00:00+17:00")
    assert status == 400 and "UTC offset" in errors[0]["description"]
    status, errors = geo.requests(end_date="0683-11-28T18:09:01+08:00")
    assert status == 400 and "1900 to 2199" in errors[0]["description"]


def test_open311_holds_a_request_to_the_json_apis_rules(geo, session):
    """The form took what the JSON API refuses: a 100,000-character description, any text as media_url."""
    before = count(session, ServiceRequest)
    for fields, named in (({"description": "堵" * 4001}, "description"), ({"media_url": "javascript:alert(1)"}, "media_url")):
        status, errors = geo.post_request("parking", 29.87, 121.78, attributes={"problem": "blocked"}, **fields)
        assert status == 400 and errors[0]["description"].startswith(named), errors
    assert count(session, ServiceRequest) == before
    status, filed = geo.post_request("parking", 29.87, 121.78, attributes={"problem": "blocked"},
                                     description="堵" * 4000, media_url="https://example.cn/gate.jpg")
    assert status == 201
    request = session.get(ServiceRequest, int(filed[0]["service_request_id"]))
    assert len(request.description) == 4000 and request.media_urls == ["https://example.cn/gate.jpg"]


def test_ogc_api_refuses_numbers_and_times_out_of_range(client):
    for query, name in (({"offset": str(10**30)}, "offset"), ({"limit": str(10**30)}, "limit"),
                        ({"datetime": "0683-11-28/.."}, "datetime")):
        answer = client.get("/ogc/collections/zones/items", query_string=query)
        assert answer.status_code == 400 and name in answer.get_json()["errors"], answer.get_json()
    assert client.get("/ogc/collections/zones/items/%C2%B2").status_code == 404  # "²" counts as a digit to str.isdigit
    for feature_id in (585801618665, 2**63):  # past PostgreSQL's integer
        answer = client.get(f"/ogc/collections/zones/items/{feature_id}")
        assert answer.status_code == 404 and str(feature_id) in answer.get_json()["detail"]
    answer = client.get("/ogc/collections/zones/items", query_string={"code": "G0\u00001"})
    assert answer.status_code == 400 and list(answer.get_json()["errors"]) == ["code"]  # OGC's status for a bad parameter


def test_the_ogc_document_names_the_400_every_operation_can_answer(client):
    document = client.get("/ogc/api").get_json()
    for path, item in document["paths"].items():
        assert "400" in item["get"]["responses"], path
    [feature_id, _] = document["paths"]["/collections/zones/items/{featureId}"]["get"]["parameters"]
    assert feature_id["schema"]["maximum"] == 2**31 - 1


def test_a_tile_coordinate_that_only_looks_like_a_digit_is_400(client):
    assert_problem(client.get("/tiles/0/0/%C2%B2.pbf"), 400)


def test_a_username_phone_or_zone_code_ending_in_a_newline_is_refused(admin, lingfeng, session):
    """Python's ``$`` matches before a final newline: "wang.wei\\n" became an account no one could sign in as
    by typing its name, and "G11\\n" a zone code that ?code= and the map never found."""
    users = count(session, User)
    for body in ({"username": "wang.wei\n", "password": "long-enough-pass-1", "display_name": "王伟", "roles": ["worker"]},
                 {"username": "wang.wei", "password": "long-enough-pass-1", "display_name": "王伟", "roles": ["worker"],
                  "phone": "13800000000\n"}):
        problem = assert_problem(admin.post("/api/v1/users", json=body), 422)
        assert set(problem["errors"]) & {"username", "phone"}
    assert count(session, User) == users
    zone = {"type": "Feature", "properties": {"code": "G11\n", "name": "第十一网格"},
            "geometry": {"type": "Polygon", "coordinates": [[[121.70, 29.90], [121.701, 29.90], [121.701, 29.901],
                                                             [121.70, 29.901], [121.70, 29.90]]]}}
    assert "code" in assert_problem(admin.post(f"/api/v1/communities/{lingfeng.id}/zones", json=zone), 422)["errors"]["properties"]
