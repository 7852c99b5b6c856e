"""Review (s7): the list and search endpoints of volunteers and shifts, and a shift's check events."""
from __future__ import annotations

from datetime import timedelta

import pytest
from pyproj import Geod

from tests.api.volunteer_helpers import make_shift, north_of, post_check, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, offset

GEOD = Geod(ellps="WGS84")


def metres(a, b) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def put(login, username, point, accuracy=10):
    answer = login(username).post("/api/v1/me/location", json={"lon": point[0], "lat": point[1], "accuracy_m": accuracy})
    assert answer.status_code in (200, 201), answer.get_json()


def all_pages(client, url, limit):
    seen, offset_ = [], 0
    totals = set()
    while True:
        body = client.get(f"{url}&limit={limit}&offset={offset_}").get_json()
        totals.add(body["total"])
        seen += body["items"]
        if len(body["items"]) < limit:
            return seen, totals
        offset_ += limit


# ---------------------------------------------------------------- guards


@pytest.mark.parametrize("radius", ["0", "-5", "nan", "1e400", "inf", "50001", "abc", ""])
@pytest.mark.parametrize("path", ["/api/v1/volunteers", "/api/v1/shifts"])
def test_a_search_radius_out_of_bounds_is_a_422_problem(login, path, radius):
    """Guard: an admin's (or a phone's) search with radius_m 0, negative, NaN, "1e400" (infinity), over 50 km or
    not a number is refused as a 422 problem naming radius_m, never a 500 nor a search of the whole world."""
    problem = assert_problem(login("admin").get(f"{path}?near=121.77,29.87&radius_m={radius}"), 422)
    assert "radius_m" in problem["errors"]


def test_volunteers_near_a_point_page_through_ties_in_distance_without_loss_or_repeat(login, session):
    """Guard: six G05 volunteers report positions, three at one spot (equal distances). An admin's search near
    the zone centre gives each the geodesic distance (pyproj, 0.1 m), nearest first; read two at a time, the
    pages give the same volunteers in the same order, none lost or repeated, with one total; G05's liaison finds
    the six by position with their phones shown."""
    here = zone_center(login("admin"), zone_of(session, "G05").id)
    spots = {}
    names = [f"volunteer-{i:03d}" for i in (5, 15, 25, 35, 45, 55)]
    for n, name in enumerate(names):
        # three at one spot (a tie), three diagonal
        p = offset(*here, 400, 400) if n < 3 else offset(*here, -300 * n, 700)
        spots[name] = p
        put(login, name, p)
    url = f"/api/v1/volunteers?near={here[0]},{here[1]}&radius_m=5000"
    full = login("admin").get(url + "&limit=1000").get_json()
    mine = [v for v in full["items"] if v["username"] in spots]
    for v in mine:
        assert v["distance_m"] == pytest.approx(metres(here, spots[v["username"]]), abs=0.1)
    d = [v["distance_m"] for v in full["items"]]
    assert d == sorted(d)
    paged, totals = all_pages(login("admin"), url, 2)
    assert [v["id"] for v in paged] == [v["id"] for v in full["items"]]
    assert totals == {full["total"]}
    # liaison near search
    lz = login("liaison-g05").get(url + "&limit=1000").get_json()
    assert {v["username"] for v in lz["items"]} == set(names)
    assert all("*" not in v["phone"] for v in lz["items"])


def test_shift_search_from_to_keeps_a_shift_that_overlaps_the_window(login, session, clock):
    """Guard: a 2-hour shift is found by `from` inside it (still running), not by `from` at its end; not by `to`
    at its start, but by `to` one second later; and by a window around it."""
    admin = login("admin")
    g02 = zone_of(session, "G02")
    start = (clock() + timedelta(days=40)).replace(minute=0, second=0)
    s = make_shift(admin, zone_id=g02.id, starts_at=start, hours=2, activity="s7_overlap")
    base = "/api/v1/shifts?activity=s7_overlap"
    iso = lambda t: t.isoformat().replace("+00:00", "Z")
    def ids(q):
        return [x["id"] for x in admin.get(base + q).get_json()["items"]]
    from urllib.parse import quote
    assert ids(f"&from={quote(iso(start + timedelta(hours=1)))}") == [s["id"]]
    assert ids(f"&from={quote(iso(start + timedelta(hours=2)))}") == []
    assert ids(f"&to={quote(iso(start))}") == []
    assert ids(f"&to={quote(iso(start + timedelta(seconds=1)))}") == [s["id"]]
    assert ids(f"&from={quote(iso(start - timedelta(hours=1)))}&to={quote(iso(start + timedelta(hours=3)))}") == [s["id"]]


# ---------------------------------------------------------------- defects


def test_my_shifts_says_on_duty_after_the_shift_ended_while_the_search_says_off_duty(login, session, clock):
    """volunteer-005 checks in at a G05 shift and forgets to check out. One minute after the shift's end (within
    the 2-hour check-out grace), their liaison's search `GET /api/v1/volunteers?on_duty=true` no longer lists them
    and their profile says `on_duty: false` (a check-in left open past the end is not duty), but the app's
    "my shifts" (`GET /api/v1/volunteers/{id}/signups?from=...`) still shows that shift with `on_duty: true`.
    One volunteer, one moment, two answers: the phone keeps showing "on duty" for a shift that is over."""
    admin = login("admin")
    g05 = zone_of(session, "G05")
    here = zone_center(admin, g05.id)
    start = clock() + timedelta(minutes=20)
    shift = make_shift(admin, zone_id=g05.id, starts_at=start, hours=1, capacity=3)
    me = login("volunteer-005")
    vid = volunteer_id(session, "volunteer-005")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    assert post_check(me, shift["id"], "check-in", here).status_code == 201
    clock.current = start + timedelta(hours=1, minutes=1)
    search = login("liaison-g05").get(f"/api/v1/volunteers?zone_id={g05.id}&on_duty=true").get_json()
    assert vid not in [v["id"] for v in search["items"]]
    assert login("liaison-g05").get(f"/api/v1/volunteers/{vid}").get_json()["on_duty"] is False
    from urllib.parse import urlencode
    window = urlencode({"from": (start - timedelta(hours=1)).isoformat(), "to": (start + timedelta(hours=3)).isoformat()})
    mine = me.get(f"/api/v1/volunteers/{vid}/signups?{window}").get_json()
    item = next(i for i in mine["items"] if i["shift"]["id"] == shift["id"])
    assert item["on_duty"] is False


def test_a_query_parameter_the_search_does_not_take_is_a_422_naming_it(login, session):
    """A planner types radius=200 for radius_m=200: the search ran with the default 1,000 m and listed volunteers
    up to a kilometre away, with nothing to say the radius was not read; community=... on /volunteers listed
    every community's. A parameter the operation does not take is now a 422 naming it."""
    liaison = login("liaison-g01")
    g01 = zone_of(session, "G01").id
    problem = assert_problem(liaison.get("/api/v1/volunteers?near=121.78,29.87&radius=200"), 422)
    assert problem["errors"] == {"radius": ["not a query parameter of this operation"]}
    assert problem["detail"] == "Invalid input: radius: not a query parameter of this operation"
    problem = assert_problem(liaison.get(f"/api/v1/shifts?zone={g01}"), 422)
    assert list(problem["errors"]) == ["zone"]
    # the parameters it takes are read as before
    assert liaison.get(f"/api/v1/shifts?zone_id={g01}&limit=5").status_code == 200


def test_a_shift_search_gives_distances_to_a_tenth_of_a_metre_as_the_other_searches(login, session, clock):
    """The shift search answered distance_m as 1234.56789012, where the volunteer search and check-in give
    1234.6: the app showed the same kind of figure two ways."""
    admin = login("admin")
    g01 = zone_of(session, "G01").id
    make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(days=1))
    far = north_of(zone_center(admin, g01), 1500)
    items = admin.get(f"/api/v1/shifts?near={far[0]},{far[1]}&radius_m=50000&zone_id={g01}").get_json()["items"]
    assert items and all(item["distance_m"] == round(item["distance_m"], 1) for item in items)
    assert any(item["distance_m"] > 0 for item in items)
