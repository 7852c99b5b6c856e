"""A query parameter given twice is refused, naming it, on every surface: each reader took the first value
silently, so ``?zone_id=1&zone_id=2`` was answered for zone 1 alone."""
from __future__ import annotations

from tests.api.volunteer_helpers import zone_of
from tests.helpers import assert_problem


def test_a_shift_search_with_two_zones_is_refused_not_answered_for_the_first(login, session):
    admin = login("admin")
    g01, g02 = zone_of(session, "G01").id, zone_of(session, "G02").id
    one = admin.get(f"/api/v1/shifts?zone_id={g01}&limit=100")
    assert one.status_code == 200 and {s["zone_id"] for s in one.get_json()["items"]} == {g01}

    twice = assert_problem(admin.get(f"/api/v1/shifts?zone_id={g01}&zone_id={g02}"), 422)
    assert list(twice["errors"]) == ["zone_id"] and "more than once" in twice["errors"]["zone_id"][0]
    assert "zone_id" in twice["detail"]
    # the same value twice is still two values: the client built the URL wrong
    assert_problem(admin.get(f"/api/v1/shifts?zone_id={g01}&zone_id={g01}"), 422)


def test_a_volunteer_search_near_two_points_is_refused(login):
    liaison = login("liaison-g01")
    answer = assert_problem(liaison.get("/api/v1/volunteers?near=121.55,29.87&near=121.56,29.88&radius_m=500"), 422)
    assert set(answer["errors"]) == {"near"}


def test_an_unknown_parameter_given_twice_is_refused_as_unknown(login):
    answer = assert_problem(login("admin").get("/api/v1/shifts?radius=200&radius=300"), 422)
    assert answer["errors"] == {"radius": ["not a query parameter of this operation"]}


def test_ogc_items_and_tiles_refuse_a_parameter_given_twice(client):
    page = assert_problem(client.get("/ogc/collections/parking-lots/items?limit=2&limit=5"), 400)
    assert set(page["errors"]) == {"limit"}
    tile = assert_problem(client.get("/tiles/14/13700/6700.pbf?layers=zones&layers=parking"), 400)
    assert set(tile["errors"]) == {"layers"} and "more than once" in tile["detail"]


def test_open311_refuses_a_parameter_given_twice_in_its_own_error_shape(client):
    answer = client.get("/open311/v2/requests.json?status=open&status=closed")
    assert answer.status_code == 400
    [error] = answer.get_json()
    assert "status given more than once" in error["description"]
