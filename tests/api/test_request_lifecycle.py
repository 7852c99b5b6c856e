"""The service-request lifecycle after dispatch: reassigning, escalating again, commenting after resolving (found in
review; each failed before its fix)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gridsvc.models import User

from tests.api.test_requests import account_id, file, g03  # noqa: F401  (g03: three traffic volunteers on duty)


def _escalate_and_claim(login, request_id: int) -> None:
    assert login("liaison-g03").post(f"/api/v1/requests/{request_id}/escalate", json={}).status_code == 200
    assert login("dept-traffic").post(f"/api/v1/requests/{request_id}/claim", json={}).status_code == 200






# ---------------------------------------------------------------- reassign


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["worker"]}], ids=["disabled", "role-removed"])
def test_reassign_refuses_a_volunteer_who_may_no_longer_volunteer(login, g03, session, change):  # noqa: F811
    """Dispatch never offers to a disabled account or one without the volunteer role (README); reassign gives
    the request to them anyway, and it sits 'assigned' to someone who cannot act on it."""
    filed = file(login("worker-001"), g03["here"]).get_json()
    assert login("admin").patch(f"/api/v1/users/{account_id(session, 'volunteer-025')}", json=change).status_code == 200
    answer = login("liaison-g03").post(f"/api/v1/requests/{filed['id']}/reassign",
                                       json={"volunteer_id": g03["volunteers"]["volunteer-025"]})
    assert answer.status_code in (409, 422), answer.get_json()


def test_the_trail_says_to_whom_a_request_was_reassigned(login, g03):  # noqa: F811
    filed = file(login("worker-001"), g03["here"]).get_json()
    to = g03["volunteers"]["volunteer-025"]
    assert login("liaison-g03").post(f"/api/v1/requests/{filed['id']}/reassign",
                                     json={"volunteer_id": to}).status_code == 200
    last = login("admin").get(f"/api/v1/requests/{filed['id']}/events").get_json()[-1]
    assert last["action"] == "reassign"
    assert str(to) in (last["note"] or ""), last  # offers say "offered to volunteer N"; reassign says nothing


# ---------------------------------------------------------------- the department after the request left it


def test_a_department_no_longer_reaches_a_request_reassigned_away_from_it(login, g03):  # noqa: F811
    contact = {"name": "王师傅", "phone": "13900000009"}
    filed = file(login("worker-001"), g03["here"], contact=contact).get_json()
    _escalate_and_claim(login, filed["id"])
    moved = login("liaison-g03").post(f"/api/v1/requests/{filed['id']}/reassign",
                                      json={"volunteer_id": g03["volunteers"]["volunteer-025"]})
    assert moved.status_code == 200 and moved.get_json()["status"] == "assigned"
    seen = login("dept-traffic").get(f"/api/v1/requests/{filed['id']}")
    # README: contact goes to "the department it was passed to"; it is no longer theirs
    assert seen.status_code == 404 or seen.get_json()["contact"] is None, seen.get_json()


def test_escalating_again_clears_the_previous_claim(login, g03):  # noqa: F811
    filed = file(login("worker-001"), g03["here"]).get_json()
    _escalate_and_claim(login, filed["id"])
    assert login("dept-traffic").post(f"/api/v1/requests/{filed['id']}/start", json={}).status_code == 200
    back = login("liaison-g03").post(f"/api/v1/requests/{filed['id']}/escalate", json={"note": "换部门"}).get_json()
    assert back["status"] == "escalated"
    assert back["claimed_by_id"] is None and back["department_id"] is None, back  # in the pool, claimed by nobody


# ---------------------------------------------------------------- reopen


def test_a_reopened_request_is_offered_again_to_who_declined_it_the_first_time(login, g03):  # noqa: F811
    """Reopen dispatches "again from the start", yet whoever declined or let the first offer lapse stayed
    excluded for good: the nearest volunteer, busy the first time and free now, was never asked again."""
    worker, nearest = login("worker-001"), g03["volunteers"]["volunteer-013"]
    filed = file(worker, g03["here"]).get_json()
    assert filed["offer"]["volunteer_id"] == nearest
    assert login("volunteer-013").post(f"/api/v1/requests/{filed['id']}/decline", json={}).status_code == 200
    helper = login("volunteer-019")
    for action in ("accept", "resolve"):
        assert helper.post(f"/api/v1/requests/{filed['id']}/{action}", json={}).status_code == 200
    assert worker.post(f"/api/v1/requests/{filed['id']}/close", json={}).status_code == 200
    reopened = worker.post(f"/api/v1/requests/{filed['id']}/reopen", json={"note": "又满了"}).get_json()
    assert reopened["status"] == "offered" and reopened["offer"]["volunteer_id"] == nearest
    # within this round, a decline still counts: the next nearest is asked, not the decliner again
    assert login("volunteer-013").post(f"/api/v1/requests/{filed['id']}/decline", json={}).status_code == 200
    again = worker.get(f"/api/v1/requests/{filed['id']}").get_json()
    assert again["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-019"]




# ---------------------------------------------------------------- comments after resolution


def test_the_volunteer_who_resolved_it_may_comment(login, g03):  # noqa: F811
    filed = file(login("worker-001"), g03["here"]).get_json()
    volunteer = login("volunteer-013")
    assert volunteer.post(f"/api/v1/requests/{filed['id']}/accept", json={}).status_code == 200
    assert volunteer.post(f"/api/v1/requests/{filed['id']}/resolve", json={}).status_code == 200
    answer = volunteer.post(f"/api/v1/requests/{filed['id']}/comment", json={"note": "已引导到南侧停车场"})
    assert answer.status_code == 200, answer.get_json()  # today: 403 "Only the people on this request may comment."


def test_the_department_member_who_resolved_it_may_comment(login, g03):  # noqa: F811
    filed = file(login("worker-001"), g03["here"]).get_json()
    _escalate_and_claim(login, filed["id"])
    member = login("dept-traffic")
    assert member.post(f"/api/v1/requests/{filed['id']}/resolve", json={}).status_code == 200
    answer = member.post(f"/api/v1/requests/{filed['id']}/comment", json={"note": "已划定临时车位"})
    assert answer.status_code == 200, answer.get_json()


def test_a_liaison_cannot_hand_a_request_to_a_volunteer_of_another_park(login, g03, session):  # noqa: F811
    """Reassign took any volunteer id: a liaison could give a Lingfeng worker's request, with their phone
    number, to a volunteer who serves only in another park. A liaison may now reassign only to volunteers who
    work in the request's community (home zone, sign-ups or hours there), as dispatch only offers to those on
    duty nearby; an admin still may."""
    from gridsvc.models import ServiceHours, Signup, Volunteer, Zone
    from tests.helpers import community_body, rect, zone_feature

    admin = login("admin")
    other = admin.post("/api/v1/communities", json=community_body(name="Other park", boundary=rect(120.30, 31.50, 800, 800))).get_json()["id"]
    other_zone = admin.post(f"/api/v1/communities/{other}/zones", json=zone_feature("O1", rect(120.30, 31.50, 800, 800))).get_json()["id"]
    outsider = session.get(Volunteer, session.scalar(select(Volunteer.id).join(User, User.id == Volunteer.user_id)
                                                     .where(User.username == "volunteer-030")))
    outsider.home_zone_id = other_zone
    session.commit()
    for model in (Signup, ServiceHours):
        assert not session.scalar(select(model.id).where(model.volunteer_id == outsider.id).limit(1))
    assert session.get(Zone, other_zone).community_id == other

    filed = file(login("worker-001"), g03["here"], contact={"name": "王师傅", "phone": "13900000009"}).get_json()
    holder = filed.get("volunteer_id")
    refused = login("liaison-g03").post(f"/api/v1/requests/{filed['id']}/reassign", json={"volunteer_id": outsider.id})
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["errors"]["volunteer_id"] == ["does not work in this request's community"]
    assert login("admin").get(f"/api/v1/requests/{filed['id']}").get_json()["volunteer_id"] == holder
    # a volunteer of the park is fine, and so is an admin's choice
    assert login("liaison-g03").post(f"/api/v1/requests/{filed['id']}/reassign",
                                     json={"volunteer_id": g03["volunteers"]["volunteer-025"]}).status_code == 200
    moved = admin.post(f"/api/v1/requests/{filed['id']}/reassign", json={"volunteer_id": outsider.id})
    assert moved.status_code == 200 and moved.get_json()["volunteer_id"] == outsider.id


def test_a_request_is_not_reassigned_to_the_volunteer_who_raised_it(login, g03, session):  # noqa: F811
    """Dispatch never offers a request to its requester's own volunteer profile; reassign gave it to them."""
    # a worker who volunteers (on duty in G03) raises a need of their own
    assert login("admin").patch(f"/api/v1/users/{account_id(session, 'volunteer-013')}",
                                json={"roles": ["volunteer", "worker"]}).status_code == 200
    requester = login("volunteer-013")
    filed = file(requester, g03["here"]).get_json()
    assert "id" in filed, filed
    for caller in ("liaison-g03", "admin"):
        refused = login(caller).post(f"/api/v1/requests/{filed['id']}/reassign",
                                     json={"volunteer_id": g03["volunteers"]["volunteer-013"]})
        assert refused.status_code == 422, refused.get_json()
        assert refused.get_json()["errors"]["volunteer_id"] == ["raised this request"]
