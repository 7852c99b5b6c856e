"""Review of shift creation and changes, and of the Idempotency-Key's documentation: what a liaison or a client
sees (each test failed before its fix, unless its docstring says it guards behaviour that was right)."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsvc.models import Shift
from tests.api.volunteer_helpers import make_shift, zone_of
from tests.helpers import assert_problem, community_body, count, rect, zone_feature

SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")  # UTC+6 all year: two hours behind Shanghai's clock


@pytest.fixture()
def admin(login):
    return login("admin")


def _body(zone_id: int, starts_at: datetime | str, ends_at: datetime | str, **overrides) -> dict:
    def text(moment):
        return moment if isinstance(moment, str) else moment.isoformat()

    return {"title": "北门交通疏导", "activity": "traffic_guidance", "zone_id": zone_id, "capacity": 3,
            "starts_at": text(starts_at), "ends_at": text(ends_at)} | overrides


def _on_urumqi_time(admin, session) -> None:
    """The Lingfeng community set to keep Xinjiang time (its own `timezone`, as a community PATCH sets it)."""
    community_id = zone_of(session, "G01").community_id
    answer = admin.patch(f"/api/v1/communities/{community_id}", json={"timezone": "Asia/Urumqi"})
    assert answer.status_code == 200, answer.get_json()


# ------------------------------------------------------------------ 1. shifts entirely in the past


def test_a_shift_that_has_already_ended_is_refused_and_nothing_is_created(admin, session, clock):
    """It was created (201): nobody could ever work it, and, having "begun", it could not be cancelled either."""
    before = count(session, Shift)
    problem = assert_problem(admin.post("/api/v1/shifts", json=_body(
        zone_of(session, "G01").id, clock() - timedelta(hours=3), clock() - timedelta(hours=1))), 422, "validation")
    assert list(problem["errors"]) == ["ends_at"], problem
    assert "has already passed" in problem["detail"], problem
    assert count(session, Shift) == before


def test_a_shift_running_now_can_still_be_created(admin, session, clock):
    """Guard (was right): a shift that has started but not ended can be worked, so it is created."""
    answer = admin.post("/api/v1/shifts", json=_body(zone_of(session, "G01").id, clock() - timedelta(hours=1),
                                                     clock() + timedelta(hours=1)))
    assert answer.status_code == 201, answer.get_json()


def test_a_patch_moving_a_shift_to_end_in_the_past_is_refused_and_changes_nothing(admin, session, clock):
    """The move was accepted (200): the shift then lay in the past, could not be worked, nor cancelled."""
    shift = make_shift(admin, zone_id=zone_of(session, "G02").id, starts_at=clock() + timedelta(days=1))
    url = f"/api/v1/shifts/{shift['id']}"
    problem = assert_problem(admin.patch(url, json={"starts_at": (clock() - timedelta(hours=3)).isoformat(),
                                                    "ends_at": (clock() - timedelta(hours=1)).isoformat()}), 422)
    assert list(problem["errors"]) == ["ends_at"], problem
    now = admin.get(url).get_json()
    assert (now["starts_at"], now["ends_at"]) == (shift["starts_at"], shift["ends_at"])
    assert admin.delete(url).get_json()["status"] == "cancelled"  # still a shift that can be called off


def test_a_patch_leaving_the_times_of_a_shift_already_over_is_answered_as_before(admin, session, clock):
    """Guard (was right): a shift already over keeps taking a new title, also when the PATCH repeats its times;
    moving it is the 409 it always was (it has begun), not the new 422."""
    shift = make_shift(admin, zone_id=zone_of(session, "G02").id, starts_at=clock() + timedelta(hours=1), hours=1)
    url = f"/api/v1/shifts/{shift['id']}"
    clock.advance(hours=3)
    assert admin.patch(url, json={"title": "北门交通疏导（记录）"}).status_code == 200
    same_times = admin.patch(url, json={"starts_at": shift["starts_at"], "ends_at": shift["ends_at"], "capacity": 4})
    assert same_times.status_code == 200, same_times.get_json()
    assert same_times.get_json()["capacity"] == 4
    moved_start = datetime.fromisoformat(shift["starts_at"]) - timedelta(minutes=30)
    assert assert_problem(admin.patch(url, json={"starts_at": moved_start.isoformat()}), 409)["reason"] == "started"


def test_a_series_leaves_out_the_occurrences_already_over(admin, session, clock):
    """A template starting today made today's morning shift although the morning was over; a template wholly
    in the past made nothing but past shifts. Now the past occurrences are left out, and none left is a 422."""
    clock.current = datetime(2031, 3, 3, 10, 0, tzinfo=SHANGHAI)  # a Monday, after the 07:30-09:00 shift
    body = {"title": "北门早高峰", "activity": "traffic_guidance", "zone_id": zone_of(session, "G06").id,
            "capacity": 2, "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "07:30", "end_time": "09:00",
            "from_date": "2031-03-03", "until_date": "2031-03-05"}
    answer = admin.post("/api/v1/shifts/series", json=body)
    assert answer.status_code == 201, answer.get_json()
    starts = [datetime.fromisoformat(s["starts_at"]) for s in answer.get_json()["items"]]
    assert starts == [datetime(2031, 3, d, 7, 30, tzinfo=SHANGHAI) for d in (4, 5)]
    assert answer.get_json()["count"] == 2
    before = count(session, Shift)
    problem = assert_problem(admin.post("/api/v1/shifts/series", json=body | {"from_date": "2031-02-24",
                                                                              "until_date": "2031-03-03"}), 422)
    assert list(problem["errors"]) == ["until_date"], problem
    assert count(session, Shift) == before


def test_a_series_of_more_than_366_future_occurrences_is_refused_and_366_are_made(admin, session, clock):
    """Guard (the answers were right; what changed is their cost, which tests do not time): a template from 1900 to
    2199 walked all three centuries, a second of CPU, before its 422; now only the days from now until one
    occurrence too many. The limit counts the occurrences still to come: a template that began long ago and has
    366 left makes them."""
    clock.current = datetime(2031, 3, 3, 10, 0, tzinfo=SHANGHAI)
    body = {"title": "北门早高峰", "activity": "traffic_guidance", "zone_id": zone_of(session, "G06").id,
            "capacity": 2, "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "07:30", "end_time": "09:00"}
    before = count(session, Shift)
    for span in (("1900-01-01", "2199-12-31"), ("2031-03-04", "2032-03-04")):  # 367 to come in the second
        problem = assert_problem(admin.post("/api/v1/shifts/series", json=body | dict(zip(("from_date", "until_date"),
                                                                                       span))), 422)
        assert list(problem["errors"]) == ["until_date"] and "366" in problem["errors"]["until_date"][0], problem
    assert count(session, Shift) == before
    made = admin.post("/api/v1/shifts/series", json=body | {"from_date": "1999-01-01", "until_date": "2032-03-03"})
    assert made.status_code == 201, made.get_json()
    starts = [datetime.fromisoformat(s["starts_at"]) for s in made.get_json()["items"]]
    assert len(starts) == 366
    assert (starts[0], starts[-1]) == (datetime(2031, 3, 4, 7, 30, tzinfo=SHANGHAI),
                                       datetime(2032, 3, 3, 7, 30, tzinfo=SHANGHAI))


# ------------------------------------------------------------------ 2. naive times on the community's clock


def test_naive_shift_times_are_read_on_the_communitys_clock(admin, session):
    """A time without an offset was read in Asia/Shanghai whatever the community's `timezone`: a community on
    Xinjiang time got its 08:00 shift at 06:00 its time."""
    _on_urumqi_time(admin, session)
    g01 = zone_of(session, "G01").id
    created = admin.post("/api/v1/shifts", json=_body(g01, "2031-03-04T08:00:00", "2031-03-04T10:00:00"))
    assert created.status_code == 201, created.get_json()
    shift = created.get_json()
    assert datetime.fromisoformat(shift["starts_at"]) == datetime(2031, 3, 4, 8, tzinfo=URUMQI)
    assert datetime.fromisoformat(shift["ends_at"]) == datetime(2031, 3, 4, 10, tzinfo=URUMQI)
    url = f"/api/v1/shifts/{shift['id']}"
    # one time with an offset, one without: each read as it was sent (an offset always wins)
    moved = admin.patch(url, json={"starts_at": "2031-03-04T09:00:00", "ends_at": "2031-03-04T05:00:00Z"})
    assert moved.status_code == 200, moved.get_json()
    assert datetime.fromisoformat(moved.get_json()["starts_at"]) == datetime(2031, 3, 4, 9, tzinfo=URUMQI)
    assert datetime.fromisoformat(moved.get_json()["ends_at"]) == datetime(2031, 3, 4, 11, tzinfo=URUMQI)
    # a naive time equal to the shift's own is no move at all
    same = admin.patch(url, json={"starts_at": "2031-03-04T09:00:00", "title": "北门交通疏导（新疆时间）"})
    assert same.status_code == 200, same.get_json()
    assert datetime.fromisoformat(same.get_json()["starts_at"]) == datetime(2031, 3, 4, 9, tzinfo=URUMQI)


def test_a_naive_end_before_a_start_with_an_offset_is_a_422(admin, session):
    """Guard (was right; naive times now reach the service unread): a naive end before a start with an offset is
    refused (422 naming ends_at), not compared as a 500."""
    _on_urumqi_time(admin, session)
    problem = assert_problem(admin.post("/api/v1/shifts", json=_body(
        zone_of(session, "G01").id, "2031-03-04T08:00:00+06:00", "2031-03-04T07:00:00")), 422)
    assert "ends_at" in problem["errors"], problem


def test_cancelling_a_series_from_a_naive_time_reads_it_on_the_communitys_clock(admin, session):
    """?from=2031-03-04T08:00 (no offset) was 00:00 UTC, Shanghai's 08:00, and cancelled that day's 07:30 (Xinjiang
    time) shift too; on the community's clock it is 02:00 UTC, after that shift's start."""
    _on_urumqi_time(admin, session)
    created = admin.post("/api/v1/shifts/series", json={
        "title": "北门早高峰", "activity": "traffic_guidance", "zone_id": zone_of(session, "G06").id, "capacity": 2,
        "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "07:30", "end_time": "09:00",
        "from_date": "2031-03-03", "until_date": "2031-03-05"}).get_json()
    assert created["count"] == 3
    outcome = admin.delete(f"/api/v1/shifts/series/{created['series_id']}?from=2031-03-04T08:00:00")
    assert outcome.status_code == 200, outcome.get_json()
    assert [s["id"] for s in outcome.get_json()["cancelled"]] == [created["items"][2]["id"]]


# ------------------------------------------------------------------ 4. Idempotency-Key documentation


def test_the_idempotency_key_parameter_says_how_long_answers_are_kept_and_what_a_retry_sees(client):
    """The OpenAPI document said "Kept 24 hours", though GRIDSVC_IDEMPOTENCY_HOURS sets it."""
    operation = client.get("/api/openapi.json").get_json()["paths"]["/api/v1/shifts/{shift_id}/signups"]["post"]
    description = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")["description"]
    assert "Kept 24 hours" not in description
    assert "GRIDSVC_IDEMPOTENCY_HOURS" in description and "default 24" in description
    assert "Idempotent-Replayed: true" in description and "Retry-After" in description


def test_a_retried_logout_is_401(login):
    """Guard (was right; README says so now): the first logout revoked the token its retry carries."""
    account = login("volunteer-031")
    key = {"Idempotency-Key": "logout-1"}
    assert account.post("/api/v1/auth/logout", headers=key).status_code == 204
    assert_problem(account.post("/api/v1/auth/logout", headers=key), 401)


def test_a_day_long_shift_over_a_clock_change_is_measured_in_real_hours(admin, session):
    """A market on Berlin's clock: 00:00 to 00:00 over the autumn change is 25 real hours, and was accepted (the
    two times share a tzinfo, and Python measured them on the wall clock); over the spring change it is 23."""
    origin = (13.40, 52.52)
    community = admin.post("/api/v1/communities", json=community_body(
        name="Berlin Markt", boundary=rect(*origin, 1000, 1000), timezone="Europe/Berlin")).get_json()
    zone = admin.post(f"/api/v1/communities/{community['id']}/zones", json=zone_feature("B1", rect(*origin, 1000, 1000)))
    zone_id = zone.get_json()["id"]
    before = count(session, Shift)
    autumn = admin.post("/api/v1/shifts", json=_body(zone_id, "2031-10-26T00:00:00", "2031-10-27T00:00:00"))
    assert assert_problem(autumn, 422)["errors"]["ends_at"] == ["at most 24 h after starts_at"]
    assert count(session, Shift) == before
    spring = admin.post("/api/v1/shifts", json=_body(zone_id, "2031-03-30T00:00:00", "2031-03-31T00:00:00"))
    assert spring.status_code == 201, spring.get_json()
    made = spring.get_json()
    assert datetime.fromisoformat(made["ends_at"]) - datetime.fromisoformat(made["starts_at"]) == timedelta(hours=23)
