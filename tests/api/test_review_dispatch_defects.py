"""Dispatch, the request lifecycle and Open311: what a review found (each test failed before its fix)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from gridsvc.models import Shift, Signup, Skill, User, Volunteer
from gridsvc.services.accounts import new_api_key
from tests.api.test_requests import account_id, file, g03, open_shift, put_on_duty  # noqa: F401  (g03: three on duty)
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import assert_problem, offset


def _events(client, request_id: int) -> list[dict]:
    return client.get(f"/api/v1/requests/{request_id}/events").get_json()


def _figures(client, community_id: int) -> dict:
    answer = client.get(f"/api/v1/requests/stats?community_id={community_id}")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


# ---------------------------------------------------------------- a lapsed offer is no open task


def test_a_volunteer_who_let_an_offer_lapse_is_not_busy(login, g03, clock):  # noqa: F811
    """An offer past its deadline counted against the volunteer's cap (1) until some read moved it on (filing
    reads nothing first): the nearest volunteer, who had merely let one offer lapse, was passed over as busy."""
    nearest, second_nearest = g03["volunteers"]["volunteer-013"], g03["volunteers"]["volunteer-019"]
    first = file(login("worker-001"), g03["here"]).get_json()
    assert first["offer"]["volunteer_id"] == nearest
    clock.advance(minutes=6)  # past the 5-minute deadline; nothing has read the request since
    ranked = login("admin").get("/api/v1/dispatch/candidates", query_string={
        "lon": g03["here"][0], "lat": g03["here"][1], "skill": "traffic_parking"}).get_json()
    assert [c["volunteer_id"] for c in ranked] == list(g03["volunteers"].values())  # 013 was left out
    second = file(login("worker-002"), g03["here"]).get_json()
    assert second["offer"]["volunteer_id"] == nearest  # was volunteer-019
    # the lapsed offer still moves on when read: a refusal, to the next (013 let it lapse, and is busy now)
    moved = login("liaison-g03").get(f"/api/v1/requests/{first['id']}").get_json()
    assert moved["status"] == "offered" and moved["refusals"] == 1
    assert moved["offer"]["volunteer_id"] == second_nearest
    assert [r["id"] for r in login("volunteer-013").get("/api/v1/me/offers").get_json()] == [second["id"]]


# ---------------------------------------------------------------- an offer to who checked out


@pytest.fixture()
def checked_in(login, session, clock):
    """G03: volunteer-013 checked in for real (the app's check-in) 120 m from the spot, volunteer-019 on duty at
    400 m; a parking request filed there is offered to volunteer-013."""
    zone = zone_of(session, "G03")
    here = zone_center(login("admin"), zone.id)
    shift_id = open_shift(session, zone.id, clock())
    volunteer = session.scalar(select(Volunteer).join(User, User.id == Volunteer.user_id)
                               .where(User.username == "volunteer-013"))
    if "traffic_parking" not in volunteer.skill_codes:
        volunteer.skills = [*volunteer.skills, session.get(Skill, "traffic_parking")]
    session.add(Signup(shift_id=shift_id, volunteer_id=volunteer.id, status="confirmed"))
    next_id = put_on_duty(session, "volunteer-019", *offset(*here, 400, 0), shift_id)
    session.commit()
    at = offset(*here, 120, 0)
    app_client = login("volunteer-013")
    checked = app_client.post(f"/api/v1/shifts/{shift_id}/check-in",
                              json={"lon": at[0], "lat": at[1], "crs": "wgs84", "accuracy_m": 10})
    assert checked.status_code == 201 and checked.get_json()["on_duty"], checked.get_json()
    filed = file(login("worker-001"), here).get_json()
    assert filed["offer"]["volunteer_id"] == volunteer.id, filed

    def check_out():
        out = app_client.post(f"/api/v1/shifts/{shift_id}/check-out",
                              json={"lon": at[0], "lat": at[1], "crs": "wgs84", "accuracy_m": 10})
        assert out.status_code == 201 and not out.get_json()["on_duty"], out.get_json()

    return {"request": filed, "volunteer": app_client, "volunteer_id": volunteer.id, "next_id": next_id,
            "check_out": check_out}


def test_checking_out_withdraws_the_offer_and_the_request_goes_on(login, checked_in):
    """The volunteer checks out (goes home) with the offer unanswered: it stayed theirs until the deadline, the
    request waiting for someone who had left. Read now, it goes to the next volunteer on duty, and the volunteer
    who left no longer has it (not a refusal of theirs: they were not asked to stay)."""
    request_id = checked_in["request"]["id"]
    checked_in["check_out"]()
    assert checked_in["volunteer"].get("/api/v1/me/offers").get_json() == []
    seen = login("worker-001").get(f"/api/v1/requests/{request_id}").get_json()
    assert seen["status"] == "offered" and seen["offer"]["volunteer_id"] == checked_in["next_id"]
    assert seen["refusals"] == 0
    trail = _events(login("liaison-g03"), request_id)
    assert [e["action"] for e in trail] == ["file", "offer", "withdraw", "offer"]
    assert str(checked_in["volunteer_id"]) in trail[2]["note"] and "withdrawn" in trail[2]["note"]
    late = assert_problem(checked_in["volunteer"].post(f"/api/v1/requests/{request_id}/accept", json={}), 409,
                          "request-state")
    assert "duty" in late["detail"]


def test_a_volunteer_who_checked_out_cannot_accept_the_offer(login, checked_in):
    """Accepting is the first thing after checking out (nothing read the request in between): it was accepted,
    and the request was 'assigned' to someone who had gone home."""
    request_id = checked_in["request"]["id"]
    checked_in["check_out"]()
    late = assert_problem(checked_in["volunteer"].post(f"/api/v1/requests/{request_id}/accept", json={}), 409,
                          "request-state")
    assert "duty" in late["detail"]
    seen = login("liaison-g03").get(f"/api/v1/requests/{request_id}").get_json()
    assert seen["status"] == "offered" and seen["volunteer_id"] is None
    assert seen["offer"]["volunteer_id"] == checked_in["next_id"]


def test_an_offer_is_not_taken_after_the_shift_has_ended(login, session, clock, checked_in):
    """The offer came two minutes before the shift's end; the volunteer, who forgot to check out, accepted it a
    minute after the end, inside the offer's five minutes: the request was assigned to someone off duty (the
    candidates, the volunteer search and the zone map all count the duty as over at the end). Now the accept
    is a 409, and the request, with nobody else on duty at that shift, goes to the zone's liaison."""
    request_id = checked_in["request"]["id"]
    session.expire_all()  # checked in over HTTP
    shift = session.get(Shift, session.get(Volunteer, checked_in["volunteer_id"]).on_duty_shift_id)
    shift.ends_at = clock() + timedelta(minutes=2)
    session.commit()
    clock.advance(minutes=3)
    late = assert_problem(checked_in["volunteer"].post(f"/api/v1/requests/{request_id}/accept", json={}), 409,
                          "request-state")
    assert "shift ends" in late["detail"] and late["state"] == "withdrawn"
    seen = login("liaison-g03").get(f"/api/v1/requests/{request_id}").get_json()
    assert (seen["status"], seen["volunteer_id"], seen["refusals"]) == ("with_liaison", None, 0)
    trail = _events(login("admin"), request_id)
    assert [e["action"] for e in trail][-2:] == ["withdraw", "to_liaison"]
    assert "can no longer answer" in trail[-2]["note"]


def test_with_nobody_else_on_duty_the_withdrawn_request_goes_to_the_liaison(login, session, checked_in):
    session.execute(Volunteer.__table__.update().where(Volunteer.id == checked_in["next_id"])
                    .values(on_duty_shift_id=None))
    session.commit()
    checked_in["check_out"]()
    seen = login("liaison-g03").get("/api/v1/requests").get_json()["items"]  # the list's read moves offers on too
    mine = next(r for r in seen if r["id"] == checked_in["request"]["id"])
    assert mine["status"] == "with_liaison" and mine["liaison_id"] == account_id(session, "liaison-g03")
    assert [e["action"] for e in _events(login("admin"), mine["id"])][-2:] == ["withdraw", "to_liaison"]


# ---------------------------------------------------------------- reopen


def test_the_reopen_event_says_to_which_status_the_request_moved(login, g03):  # noqa: F811
    worker = login("worker-001")
    filed = file(worker, g03["here"]).get_json()
    volunteer = login("volunteer-013")
    for action in ("accept", "resolve"):
        assert volunteer.post(f"/api/v1/requests/{filed['id']}/{action}", json={}).status_code == 200
    reopened = worker.post(f"/api/v1/requests/{filed['id']}/reopen", json={"note": "又满了"}).get_json()
    assert reopened["status"] == "offered"
    reopen = next(e for e in _events(worker, filed["id"]) if e["action"] == "reopen")
    assert (reopen["from_status"], reopen["to_status"]) == ("resolved", "offered")  # to_status was null


def test_a_reopened_request_nobody_can_take_says_it_went_to_the_liaison(login, session):
    here = zone_center(login("admin"), zone_of(session, "G07").id)  # nobody on duty there
    worker = login("worker-003")
    filed = file(worker, here, service="housing").get_json()
    assert filed["status"] == "with_liaison"
    liaison = login("liaison-g07")
    assert liaison.post(f"/api/v1/requests/{filed['id']}/resolve", json={}).status_code == 200
    assert worker.post(f"/api/v1/requests/{filed['id']}/close", json={}).status_code == 200
    reopened = worker.post(f"/api/v1/requests/{filed['id']}/reopen", json={}).get_json()
    assert reopened["status"] == "with_liaison"
    reopen = next(e for e in _events(worker, filed["id"]) if e["action"] == "reopen")
    assert (reopen["from_status"], reopen["to_status"]) == ("closed", "with_liaison")


def test_a_rating_does_not_outlive_a_reopen(login, g03):  # noqa: F811
    """The requester rated the resolution 1/5 and reopened it: the rating stayed on the request and in the
    figures' mean, though it judged work that was undone. After the next resolution they rate again."""
    community_id = g03["zone"].community_id
    figures = login("admin")
    before = _figures(figures, community_id)
    worker, volunteer = login("worker-001"), login("volunteer-013")
    filed = file(worker, g03["here"]).get_json()
    for action in ("accept", "resolve"):
        assert volunteer.post(f"/api/v1/requests/{filed['id']}/{action}", json={}).status_code == 200
    assert worker.post(f"/api/v1/requests/{filed['id']}/rate", json={"rating": 1, "comment": "没解决"}).status_code == 200
    assert _figures(figures, community_id)["ratings"] == before["ratings"] + 1
    reopened = worker.post(f"/api/v1/requests/{filed['id']}/reopen", json={"note": "又满了"}).get_json()
    assert reopened["rating"] is None and reopened["feedback"] is None
    after = _figures(figures, community_id)
    assert (after["ratings"], after["mean_rating"]) == (before["ratings"], before["mean_rating"])
    # the old rating stays in the trail; once resolved again, the requester rates the new resolution
    assert any(e["action"] == "rate" and e["note"] == "1/5 没解决" for e in _events(worker, filed["id"]))
    assert_problem(worker.post(f"/api/v1/requests/{filed['id']}/rate", json={"rating": 5}), 409)  # not resolved yet
    assert reopened["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-013"]
    for action in ("accept", "resolve"):
        assert volunteer.post(f"/api/v1/requests/{filed['id']}/{action}", json={}).status_code == 200
    rated = worker.post(f"/api/v1/requests/{filed['id']}/rate", json={"rating": 5})
    assert rated.status_code == 200 and rated.get_json()["rating"] == 5
    assert _figures(figures, community_id)["ratings"] == before["ratings"] + 1


# ---------------------------------------------------------------- Open311 lists with an empty item


@pytest.fixture()
def open311(session, login, g03):  # noqa: F811
    """worker-001's api_key, and one open and one closed request of theirs."""
    user_id = session.scalar(select(User.id).where(User.username == "worker-001"))
    key = new_api_key(session, user_id, "review")
    session.commit()
    worker = login("worker-001")
    open_one = file(worker, g03["here"]).get_json()["id"]
    closed_one = file(worker, g03["here"]).get_json()["id"]
    liaison = login("liaison-g03")
    assert liaison.post(f"/api/v1/requests/{closed_one}/reassign",
                        json={"volunteer_id": g03["volunteers"]["volunteer-025"]}).status_code == 200
    assert liaison.post(f"/api/v1/requests/{closed_one}/resolve", json={}).status_code == 200
    return {"key": key, "open": str(open_one), "closed": str(closed_one)}


@pytest.mark.parametrize("status, listed", [
    ("open,", {"open"}), (",open", {"open"}), ("closed,", {"closed"}), ("open,,closed", {"open", "closed"}),
    ("open, closed", {"open", "closed"})])
def test_open311_status_list_ignores_empty_items(client, open311, status, listed):
    """Open311: status is a comma-separated list; clients that build lists send `open,` (this was a 400)."""
    answer = client.get("/open311/v2/requests.json", query_string={"api_key": open311["key"], "status": status})
    assert answer.status_code == 200, answer.get_json()
    found = {r["service_request_id"] for r in answer.get_json()}
    assert {name for name in ("open", "closed") if open311[name] in found} == listed


@pytest.mark.parametrize("status", [",", " , ", "open,pending", "Open"])
def test_open311_status_with_no_value_or_an_unknown_one_is_still_400(client, open311, status):
    """(a guard, passing before the fix too: ignoring empty items must not let a list of none through)"""
    answer = client.get("/open311/v2/requests.json", query_string={"api_key": open311["key"], "status": status})
    assert answer.status_code == 400, answer.get_json()
    assert "status" in answer.get_json()[0]["description"]


def test_open311_request_id_list_ignores_empty_items(client, open311):
    ids = f"{open311['open']},{open311['closed']},"
    answer = client.get("/open311/v2/requests.json", query_string={"api_key": open311["key"], "service_request_id": ids})
    assert answer.status_code == 200, answer.get_json()
    assert {r["service_request_id"] for r in answer.get_json()} == {open311["open"], open311["closed"]}
    refused = client.get("/open311/v2/requests.json", query_string={"api_key": open311["key"], "service_request_id": ","})
    assert refused.status_code == 400


# ---------------------------------------------------------------- reassign is a response


def test_reassigning_is_the_first_response(login, g03, clock):  # noqa: F811
    """Accepting, starting, resolving and escalating set first_response_at when unset; a liaison giving the
    request to a volunteer by hand did not, and the request counted as unanswered (and past its SLA)."""
    filed = file(login("worker-001"), g03["here"]).get_json()
    assert filed["first_response_at"] is None
    clock.advance(minutes=3)
    answered_at = clock()
    liaison = login("liaison-g03")
    moved = liaison.post(f"/api/v1/requests/{filed['id']}/reassign",
                         json={"volunteer_id": g03["volunteers"]["volunteer-025"]})
    assert moved.status_code == 200, moved.get_json()
    assert datetime.fromisoformat(moved.get_json()["first_response_at"]) == answered_at
    clock.advance(minutes=10)  # a second reassign is no first response
    again = liaison.post(f"/api/v1/requests/{filed['id']}/reassign",
                         json={"volunteer_id": g03["volunteers"]["volunteer-019"]}).get_json()
    assert datetime.fromisoformat(again["first_response_at"]) == answered_at
    figures = _figures(login("admin"), g03["zone"].community_id)
    assert figures["median_first_response_min"] == pytest.approx(3, abs=0.1)
