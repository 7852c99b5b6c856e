"""Parking as planners read it (second review): each test checks the figures a planner would work out by
hand from the lots, spaces and counts it creates. Defects found are written first as a failing test;
the sound areas checked keep a guard test where none covered them."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.api.test_parking import ORIGIN, _enterprise, admin, lot, market, point, space  # noqa: F401
from tests.helpers import assert_problem, community_body, csv_rows, offset, rect, zone_feature


def _capacity(admin, **query) -> dict:
    answer = admin.get("/api/v1/parking/capacity", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _drawn(admin, geometry) -> dict:
    answer = admin.post("/api/v1/parking/capacity", json={"geometry": geometry})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _count(admin, lot_id, at, occupied):
    answer = admin.post(f"/api/v1/parking/lots/{lot_id}/occupancy", json={"observed_at": at.isoformat(), "occupied": occupied})
    assert answer.status_code == 201, answer.get_json()


def _bbox(geometry) -> str:
    ring = geometry["coordinates"][0]
    return f"{ring[0][0]},{ring[0][1]},{ring[2][0]},{ring[2][1]}"


# ---------------------------------------------------------------- what is not known is not free


def test_a_lot_with_no_count_of_the_last_day_is_not_counted_free(admin, market, clock):
    """North lot (50) was counted full two days ago and not since; south lot (20) holds 10 now. Capacity said
    10 occupied, 60 free, 14.3 % used: the 50 stalls nobody has looked at since were "free", while the zone's
    map shows that lot's occupancy as unknown. Known: 20 spaces, 10 of them free, 50 %."""
    north = lot(admin, rect(*offset(*ORIGIN, 100, 600), 40, 40), capacity={"car": 50})
    south = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 20})
    _count(admin, north["id"], clock() - timedelta(days=2), 50)
    _count(admin, south["id"], clock() - timedelta(minutes=10), 10)
    zone = _capacity(admin, zone_id=market["W"])
    assert zone["supply"]["total"] == 70
    assert (zone["occupied"], zone["unknown"], zone["free"], zone["out_of_service"]) == (10, 50, 10, 0)
    assert zone["utilisation_pct"] == 50.0
    on_the_map = {f["properties"]["id"]: f["properties"]["occupied"]
                  for f in admin.get(f"/api/v1/zones/{market['W']}/map").get_json()["features"]
                  if f["properties"]["layer"] == "parking"}
    assert on_the_map == {north["id"]: None, south["id"]: 10}
    # a lot with neither counts nor marked stalls is unknown too; one whose stalls are marked is known
    marked = lot(admin, rect(*offset(*ORIGIN, 300, 100), 40, 40), capacity={"car": 4})
    stalls = [space(admin, point(305 + 5 * i, 110), lot_id=marked["id"]) for i in range(4)]
    admin.put(f"/api/v1/parking/spaces/{stalls[0]['id']}/status", json={"status": "occupied"})
    lot(admin, rect(*offset(*ORIGIN, 700, 100), 40, 40), capacity={"car": 30})
    space(admin, point(800, 800), status="reserved")  # a lone stall always has a status
    whole = _capacity(admin, community_id=market["community"])
    assert whole["supply"]["total"] == 70 + 4 + 30 + 1
    assert (whole["occupied"], whole["unknown"], whole["free"]) == (10 + 1 + 1, 50 + 30, 10 + 3)
    assert whole["utilisation_pct"] == round(100 * 12 / 25, 1)
    # nothing known at all: no utilisation rather than 0 %
    east = _capacity(admin, zone_id=market["E"])
    assert east["unknown"] == 30 and east["utilisation_pct"] == 100.0  # the reserved stall, the one thing known
    past = _capacity(admin, zone_id=market["W"], as_of="2020-01-01")
    assert (past["occupied"], past["unknown"], past["free"]) == (None, None, None)


def test_a_zone_where_nothing_is_counted_has_no_utilisation(admin, market, clock):
    lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 20})
    zone = _capacity(admin, zone_id=market["W"])
    assert (zone["occupied"], zone["unknown"], zone["free"], zone["utilisation_pct"]) == (0, 20, 0, None)


# ---------------------------------------------------------------- lots partly inside a drawn area


def test_a_lot_across_two_drawn_areas_is_counted_in_one_as_zones_count_it(admin, market):
    """A 40-space lot 60 m in the west half and 140 m in the east (zone E holds it). Drawn exactly over
    the two zones, each area counted it whole: west 40 + east 40 = 80 of a 40-space market, and the
    drawn west half (40) disagreed with capacity?zone_id=W (0). A lot counts where its middle (a point
    on its surface) lies; a box as a drawn area."""
    straddling = lot(admin, rect(*offset(*ORIGIN, 440, 100), 200, 50), capacity={"car": 40})
    assert straddling["properties"]["zone_id"] == market["E"]
    west, east = rect(*ORIGIN, 500, 1000), rect(*offset(*ORIGIN, 500, 0), 500, 1000)
    drawn_west, drawn_east = _drawn(admin, west), _drawn(admin, east)
    assert (drawn_west["supply"]["total"], drawn_east["supply"]["total"]) == (0, 40)
    assert drawn_west["supply"] == _capacity(admin, zone_id=market["W"])["supply"]
    assert (_capacity(admin, bbox=_bbox(west))["lots"], _capacity(admin, bbox=_bbox(east))["lots"]) == (0, 1)
    west_table = csv_rows(admin.get("/api/v1/parking/capacity", query_string={"bbox": _bbox(west), "format": "csv"}))
    assert [row[0] for row in west_table[1:]] == ["TOTAL"] and west_table[-1][-1] == "0"  # no lot, nothing in all
    # a lot wholly inside, a point lot and a lone stall on the line's west side stay in the west
    lot(admin, rect(*offset(*ORIGIN, 100, 300), 40, 40), capacity={"car": 7})
    lot(admin, point(495, 700), kind="street_side", capacity={"car": 3})
    space(admin, point(498, 800))
    assert (_drawn(admin, west)["supply"]["total"], _drawn(admin, east)["supply"]["total"]) == (11, 40)
    assert _drawn(admin, rect(*ORIGIN, 1000, 1000))["supply"]["total"] == 51


def test_a_circle_counts_every_lot_it_reaches(admin, market):
    """Documented, kept: around an enterprise, a lot whose near edge is within the radius can be
    parked in, so it counts whole, and nearest_lots gives the distance to that edge."""
    big = lot(admin, rect(*offset(*ORIGIN, 400, 100), 300, 100), capacity={"car": 120})
    centre = offset(*ORIGIN, 100, 150)
    reached = _capacity(admin, lon=centre[0], lat=centre[1], radius_m=320)
    assert (reached["lots"], reached["supply"]["total"]) == (1, 120)
    assert reached["nearest_lots"][0]["id"] == big["id"]
    assert reached["nearest_lots"][0]["distance_m"] == pytest.approx(300, rel=0.01)
    assert _capacity(admin, lon=centre[0], lat=centre[1], radius_m=290)["lots"] == 0


# ---------------------------------------------------------------- drawn areas: holes, parts, the far side of the world


def test_drawn_areas_with_holes_and_parts_and_circles_across_the_antimeridian(admin, market):
    """Checked sound: a lot in a hole of the drawn polygon is out; a MultiPolygon counts both parts; a
    circle around a point just east of 180 reaches a lot just west of it (metres on the spheroid, 2 km
    apart, not 360 degrees)."""
    inner = lot(admin, rect(*offset(*ORIGIN, 450, 450), 40, 40), capacity={"car": 10})
    lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 5})
    lot(admin, rect(*offset(*ORIGIN, 850, 850), 40, 40), capacity={"car": 3})
    outer = rect(*ORIGIN, 1000, 1000)["coordinates"][0]
    hole = rect(*offset(*ORIGIN, 400, 400), 200, 200)["coordinates"][0][::-1]
    holed = _drawn(admin, {"type": "Polygon", "coordinates": [outer, hole]})
    assert (holed["lots"], holed["supply"]["total"]) == (2, 8)
    parts = {"type": "MultiPolygon", "coordinates": [rect(*offset(*ORIGIN, 50, 50), 200, 200)["coordinates"],
                                                     rect(*offset(*ORIGIN, 800, 800), 200, 200)["coordinates"]]}
    assert _drawn(admin, parts)["supply"]["total"] == 8
    assert inner["properties"]["zone_id"] == market["W"]
    # Fiji: a park just west of the antimeridian
    west_of_180 = (179.97, -16.80)
    community = admin.post("/api/v1/communities", json=community_body(name="Dateline", boundary=rect(*west_of_180, 2000, 1000),
                                                                      timezone="Pacific/Fiji")).get_json()["id"]
    admin.post(f"/api/v1/communities/{community}/zones", json=zone_feature("F", rect(*west_of_180, 2000, 1000)))
    lot(admin, point(1900, 500, origin=west_of_180), capacity={"car": 12})
    east_of_180 = (-179.99, -16.80 + 500 / 110_940)
    across = _capacity(admin, lon=east_of_180[0], lat=east_of_180[1], radius_m=3000)
    assert across["supply"]["total"] == 12 and across["nearest_lots"][0]["distance_m"] == pytest.approx(2353, rel=0.02)


# ---------------------------------------------------------------- the gap's CSV adds up


def test_the_gap_csv_rows_add_up_to_its_total_when_some_supply_is_in_no_zone(admin, market, clock):
    """Zone W deleted: its lot (30 spaces, counted 12) and stall are in no zone. The JSON total says so
    (unzoned_supply 31); the CSV's TOTAL row counted them but no row showed them, so the planner's sum
    of the column (40) did not give the TOTAL (71). A row "(no zone)" carries them, as the JSON's
    unzoned_* figures, in the same order as the JSON's rows."""
    west_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 30})
    _count(admin, west_lot["id"], clock() - timedelta(hours=1), 12)
    space(admin, point(200, 700))
    lot(admin, rect(*offset(*ORIGIN, 700, 100), 40, 40), capacity={"car": 40})
    _enterprise(admin, market["community"], "West Works", 100, workers=500)
    _enterprise(admin, market["community"], "East Works", 800, workers=300)
    assert admin.delete(f"/api/v1/zones/{market['W']}").status_code == 204
    report = admin.get(f"/api/v1/parking/gap?community_id={market['community']}").get_json()
    rows = csv_rows(admin.get(f"/api/v1/parking/gap?community_id={market['community']}&format=csv"))
    header, body, total = rows[0], rows[1:-1], rows[-1]
    assert header == ["zone", "name", "supply", "demand", "gap", "status", "peak_occupancy"]
    assert total[:5] == ["TOTAL", "", "71", "80", "9"]
    for column in ("supply", "demand", "gap", "peak_occupancy"):
        i = header.index(column)
        assert sum(int(r[i] or 0) for r in body) == int(total[i]), column
    assert [r[0] for r in body] == [z["code"] for z in report["zones"]] + ["(no zone)"]
    assert body[-1][2:5] == ["31", "50", "19"] and body[-1][6] == "12"
    assert report["total"]["unzoned_supply"] == 31 and report["total"]["unzoned_demand"] == 50
    # a zone drawn over the west again takes them: no such row
    again = admin.post(f"/api/v1/communities/{market['community']}/zones", json=zone_feature("W2", rect(*ORIGIN, 500, 1000)))
    assert again.status_code == 201, again.get_json()
    assert [r[0] for r in csv_rows(admin.get(f"/api/v1/parking/gap?community_id={market['community']}&format=csv"))] == \
        ["zone", "E", "W2", "TOTAL"]


# ---------------------------------------------------------------- the capacity CSV adds up


def test_the_capacity_csv_adds_up_to_the_supply_the_json_gives(admin, market):
    """A 40-space lot and two stalls of their own: JSON supply 42, the CSV's total column 40."""
    lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 40})
    space(admin, point(300, 300))
    space(admin, point(320, 300), space_type="accessible")
    answer = _capacity(admin, zone_id=market["W"])
    rows = csv_rows(admin.get("/api/v1/parking/capacity", query_string={"zone_id": market["W"], "format": "csv"}))
    assert rows[-1][0] == "TOTAL" and int(rows[-1][-1]) == answer["supply"]["total"] == 42
    assert sum(int(r[-1]) for r in rows[1:-1]) == 42


# ---------------------------------------------------------------- days on a clock with summer time


def test_day_buckets_and_the_peak_window_follow_local_midnight_under_summer_time(admin, clock):
    """A market in Budapest (UTC+1, +2 in summer). Day buckets were cut every 24 h from a winter
    midnight: in summer they began at 01:00 local, and a count at 00:30 fell into the day before."""
    origin = (19.05, 47.45)
    tz = ZoneInfo("Europe/Budapest")
    community = admin.post("/api/v1/communities", json=community_body(name="Budapest market", boundary=rect(*origin, 1000, 1000),
                                                                      timezone="Europe/Budapest")).get_json()["id"]
    admin.post(f"/api/v1/communities/{community}/zones", json=zone_feature("B", rect(*origin, 1000, 1000)))
    the_lot = lot(admin, rect(*offset(*origin, 100, 100), 40, 40), capacity={"car": 50})
    now = clock().astimezone(tz)
    summer = now.year - 1  # a whole past year: its summer and its spring
    day = datetime.combine(datetime(summer, 7, 15).date(), time.min, tz)
    for hours, occupied in ((0.5, 10), (12, 30), (23.5, 20)):
        _count(admin, the_lot["id"], day + timedelta(hours=hours), occupied)
    series = admin.get(f"/api/v1/parking/lots/{the_lot['id']}/occupancy",
                       query_string={"from": (day - timedelta(days=1)).isoformat(), "to": (day + timedelta(days=2)).isoformat(),
                                     "bucket": "1d"}).get_json()
    assert [(b["start"], b["peak"], b["samples"]) for b in series["buckets"]] == [(day.isoformat(), 30, 3)]
    hourly = admin.get(f"/api/v1/parking/lots/{the_lot['id']}/occupancy",
                       query_string={"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat(), "bucket": "1h"}).get_json()
    assert [b["start"][11:16] for b in hourly["buckets"]] == ["00:00", "12:00", "23:00"]
    # the gap's 30 days are local days: as of 8 April, from 10 March 00:00 (winter time) to 8 April 24:00 (summer
    # time); 30 x 24 h back from the end took in the last hour of 9 March
    spring = datetime.combine(datetime(summer, 3, 9).date(), time.min, tz)
    _count(admin, the_lot["id"], spring + timedelta(hours=23.5), 40)
    _count(admin, the_lot["id"], spring + timedelta(hours=24.5), 35)
    april_8 = datetime(summer, 4, 8).date()
    report = admin.get(f"/api/v1/parking/gap?community_id={community}&as_of={april_8.isoformat()}").get_json()
    assert report["total"]["peak_occupancy"] == 35


# ---------------------------------------------------------------- counts: late, early, too many


def test_counts_in_the_future_or_over_capacity_are_refused_and_a_count_due_in_minutes_waits(admin, market, clock, session):
    """Checked sound: a count an hour ahead (a phone's clock) or of 51 in a 50-space lot is a 422 and
    changes nothing; one 3 minutes ahead (clock drift, allowed) is not "now" before it is due."""
    the_lot = lot(admin, rect(*offset(*ORIGIN, 100, 100), 40, 40), capacity={"car": 50})
    url = f"/api/v1/parking/lots/{the_lot['id']}/occupancy"
    ahead = admin.post(url, json={"observed_at": (clock() + timedelta(hours=1)).isoformat(), "occupied": 10})
    assert "observed_at" in assert_problem(ahead, 422)["errors"]
    over = admin.post(url, json={"observed_at": clock().isoformat(), "occupied": 51})
    assert "occupied" in assert_problem(over, 422)["errors"]
    _count(admin, the_lot["id"], clock() - timedelta(minutes=30), 20)
    _count(admin, the_lot["id"], clock() + timedelta(minutes=3), 45)
    assert _capacity(admin, zone_id=market["W"])["occupied"] == 20
    clock.advance(minutes=4)
    assert _capacity(admin, zone_id=market["W"])["occupied"] == 45
