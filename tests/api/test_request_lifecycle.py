"""The service-request lifecycle after dispatch: reassigning, escalating again, commenting after resolving (found in
review; each failed before its fix)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gridsvc.models import User
from gridsvc.services.accounts import new_api_key

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
    from gridsvc.models import ServiceHours, Signup, Skill, Volunteer, Zone
    from tests.helpers import community_body, rect, zone_feature

    admin = login("admin")
    other = admin.post("/api/v1/communities", json=community_body(name="Other park", boundary=rect(120.30, 31.50, 800, 800))).get_json()["id"]
    other_zone = admin.post(f"/api/v1/communities/{other}/zones", json=zone_feature("O1", rect(120.30, 31.50, 800, 800))).get_json()["id"]
    outsider = session.get(Volunteer, session.scalar(select(Volunteer.id).join(User, User.id == Volunteer.user_id)
                                                     .where(User.username == "volunteer-030")))
    outsider.home_zone_id = other_zone
    if "traffic_parking" not in outsider.skill_codes:  # (a parking need asks for it)
        outsider.skills = [*outsider.skills, session.get(Skill, "traffic_parking")]
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


# ---------------------------------------------------------------- withdrawing a request


def test_the_requester_withdraws_a_request_no_longer_needed_and_nobody_is_sent(login, g03, client,  # noqa: F811
                                                                              session):
    """A worker who found a space after all (or raised the need twice) could not take the request back: the nearest
    volunteer kept the offer, and the request stayed open until someone resolved what never needed resolving. The
    requester withdraws it while it is open: the offer is withdrawn, the volunteer no longer sees it, Open311 says
    closed, and a second withdrawal (or one by someone else on it) is refused."""
    worker = login("worker-001")
    filed = file(worker, g03["here"]).get_json()
    assert filed["status"] == "offered" and filed["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-013"]
    volunteer = login("volunteer-013")
    assert [o["id"] for o in volunteer.get("/api/v1/me/offers").get_json()] == [filed["id"]]
    url = f"/api/v1/requests/{filed['id']}"

    assert volunteer.post(f"{url}/withdraw", json={}).status_code == 403  # offered it, not theirs to withdraw
    assert login("worker-002").post(f"{url}/withdraw", json={}).status_code == 404  # someone else's request
    withdrawn = worker.post(f"{url}/withdraw", json={"note": "已自行找到车位"})
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert withdrawn.get_json()["status"] == "withdrawn"
    assert volunteer.get("/api/v1/me/offers").get_json() == []
    refused = volunteer.post(f"{url}/accept", json={})
    assert refused.status_code == 409, refused.get_json()
    again = worker.post(f"{url}/withdraw", json={})
    assert again.status_code == 409 and again.get_json()["state"] == "withdrawn", again.get_json()
    last = worker.get(f"{url}/events").get_json()[-1]
    assert (last["action"], last["from_status"], last["to_status"], last["note"]) == (
        "withdraw", "offered", "withdrawn", "已自行找到车位")
    key = new_api_key(session, account_id(session, "worker-001"), "withdraw test")
    session.commit()
    open311 = client.get(f"/open311/v2/requests/{filed['id']}.json?api_key={key}").get_json()[0]
    assert (open311["status"], open311["status_notes"]) == ("closed", "Withdrawn: no longer needed.")


def test_a_liaison_withdraws_a_duplicate_and_its_volunteer_is_free_for_the_next(login, g03):  # noqa: F811
    """A duplicate the volunteer had already taken held their one task place (GRIDSVC_DISPATCH_TASK_CAP, 1) until
    it was resolved; withdrawn by the zone's liaison, it leaves their tasks and the next request is theirs again."""
    worker, volunteer = login("worker-001"), login("volunteer-013")
    first = file(worker, g03["here"]).get_json()
    assert volunteer.post(f"/api/v1/requests/{first['id']}/accept", json={}).get_json()["status"] == "assigned"
    duplicate = file(worker, g03["here"]).get_json()
    assert duplicate["offer"]["volunteer_id"] != g03["volunteers"]["volunteer-013"]  # their place is taken
    liaison = login("liaison-g03")
    assert liaison.post(f"/api/v1/requests/{first['id']}/withdraw", json={"note": "重复"}).get_json()["status"] == "withdrawn"
    assert volunteer.get("/api/v1/me/tasks").get_json() == []
    later = file(worker, g03["here"]).get_json()
    assert later["offer"]["volunteer_id"] == g03["volunteers"]["volunteer-013"]


def test_a_request_withdrawn_before_its_due_time_does_not_count_as_a_missed_sla(login, g03, session,  # noqa: F811
                                                                                clock):
    """Unanswered and past its due time counts as a missed SLA: a request withdrawn before anyone answered it,
    and before it was due, was counted as missed for ever after. One withdrawn after its due time still is."""
    from datetime import timedelta

    from gridsvc.models import ServiceRequest
    from gridsvc.services.requests import stats

    worker = login("worker-001")
    filed = []
    for _ in range(2):
        filed.append(file(worker, g03["here"]).get_json())
        clock.advance(minutes=1)  # filed a minute apart: each its own window of the stats
    assert worker.post(f"/api/v1/requests/{filed[0]['id']}/withdraw", json={}).status_code == 200
    late = session.get(ServiceRequest, filed[1]["id"])
    session.refresh(late)
    late.sla_due_at = late.created_at + timedelta(seconds=1)  # due a second after filing: withdrawn too late
    session.commit()
    assert worker.post(f"/api/v1/requests/{filed[1]['id']}/withdraw", json={}).status_code == 200
    for request_id, share in ((filed[0]["id"], None), (filed[1]["id"], 0.0)):
        row = session.get(ServiceRequest, request_id)
        session.refresh(row)
        answer = stats(session, community_id=row.community_id, start=row.created_at,
                       end=row.created_at + timedelta(microseconds=1), now=row.created_at + timedelta(days=2))
        assert (answer["total"], answer["within_sla_share"]) == (1, share), answer


# ---------------------------------------------------------------- handing a request back


def test_a_volunteer_hands_back_a_request_they_cannot_finish_and_the_next_one_gets_it(login, g03):  # noqa: F811
    """A volunteer who took a request and then could not do it (called away) had no way to say so: it stayed theirs,
    the requester waiting, until a liaison noticed. They hand it back: it is offered to the next nearest volunteer
    (never to them again this round), their task place is free, the trail says so, and it counts as a refusal
    (three, and it goes to the liaison)."""
    worker = login("worker-001")
    names = ("volunteer-013", "volunteer-019", "volunteer-025")  # 120 m, 400 m, 900 m away
    filed = file(worker, g03["here"]).get_json()
    url = f"/api/v1/requests/{filed['id']}"
    for turn, name in enumerate(names):
        volunteer = login(name)
        seen = login("liaison-g03").get(url).get_json()
        assert (seen["status"], seen["offer"]["volunteer_id"]) == ("offered", g03["volunteers"][name]), (turn, seen)
        assert volunteer.post(f"{url}/hand_back", json={}).status_code == 409  # offered, not taken yet
        assert volunteer.post(f"{url}/accept", json={}).get_json()["status"] == "assigned"
        if turn == 0:
            assert login("volunteer-019").post(f"{url}/hand_back", json={}).status_code == 404  # not theirs to see
            assert volunteer.post(f"{url}/start", json={}).get_json()["status"] == "in_progress"
        handed = volunteer.post(f"{url}/hand_back", json={"note": "临时有事"})
        assert handed.status_code == 200, handed.get_json()
        assert volunteer.get("/api/v1/me/tasks").get_json() == []
    # the third refusal: with the zone's liaison
    assert handed.get_json()["status"] == "with_liaison"
    trail = login("liaison-g03").get(f"{url}/events").get_json()
    backs = [(e["action"], e["from_status"], e["note"]) for e in trail if e["action"] == "hand_back"]
    assert backs == [("hand_back", "in_progress", "临时有事"), ("hand_back", "assigned", "临时有事"),
                     ("hand_back", "assigned", "临时有事")]
    assert [e["to_status"] for e in trail if e["action"] == "hand_back"] == ["offered", "offered", "with_liaison"]


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["worker"]}], ids=["disabled", "role-removed"])
def test_the_requests_of_a_volunteer_who_may_no_longer_volunteer_go_to_the_next_one(login, g03, session,  # noqa: F811
                                                                                    change):
    """volunteer-013 took a request; the admin disables the account (or takes the role away). The request stayed
    assigned to someone who could no longer sign in or act, its requester waiting, until a liaison noticed. Now it
    is handed back for them at once: offered to the next nearest volunteer, the trail saying why."""
    filed = file(login("worker-001"), g03["here"]).get_json()
    url = f"/api/v1/requests/{filed['id']}"
    assert login("volunteer-013").post(f"{url}/accept", json={}).get_json()["status"] == "assigned"

    changed = login("admin").patch(f"/api/v1/users/{account_id(session, 'volunteer-013')}", json=change)
    assert changed.status_code == 200, changed.get_json()

    seen = login("liaison-g03").get(url).get_json()
    assert (seen["status"], seen["offer"]["volunteer_id"]) == ("offered", g03["volunteers"]["volunteer-019"]), seen
    back = [e for e in login("liaison-g03").get(f"{url}/events").get_json() if e["action"] == "hand_back"]
    assert [(e["system"], e["from_status"], e["to_status"]) for e in back] == [(True, "assigned", "offered")]
    assert "may no longer volunteer" in back[0]["note"]


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["worker"]}], ids=["disabled", "role-removed"])
def test_an_offer_to_a_volunteer_who_may_no_longer_volunteer_goes_to_the_next_one_at_once(login, g03, session,  # noqa: F811
                                                                                          change):
    """A request is offered to volunteer-013 (the nearest); before they answer, the admin disables the account (or
    takes the role away). The offer stayed pending until someone read the request or its deadline passed: the next
    volunteer, looking at their own offers, saw nothing meanwhile. Now it is withdrawn at once, with no refusal
    counted, and volunteer-019 (next nearest) finds it among their offers without anyone reading the request."""
    filed = file(login("worker-001"), g03["here"]).get_json()
    url = f"/api/v1/requests/{filed['id']}"
    next_one = login("volunteer-019")
    assert next_one.get("/api/v1/me/offers").get_json() == []

    changed = login("admin").patch(f"/api/v1/users/{account_id(session, 'volunteer-013')}", json=change)
    assert changed.status_code == 200, changed.get_json()

    offered = next_one.get("/api/v1/me/offers").get_json()
    assert [r["id"] for r in offered] == [filed["id"]], offered
    seen = login("liaison-g03").get(url).get_json()
    assert (seen["status"], seen["offer"]["volunteer_id"]) == ("offered", g03["volunteers"]["volunteer-019"]), seen
    withdrawn = [e for e in login("liaison-g03").get(f"{url}/events").get_json() if e["action"] == "withdraw"]
    assert [(e["system"], e["from_status"], e["to_status"]) for e in withdrawn] == [(True, "offered", "offered")]
    assert "may no longer volunteer" in withdrawn[0]["note"]
    assert next_one.post(f"{url}/accept", json={}).get_json()["status"] == "assigned"
