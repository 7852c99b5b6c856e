"""An account disabled while someone gives it a request (session 13's soak: 40 clients for 15 minutes).

Disabling a volunteer hands back what they hold; reassign, dispatch and the batch give a volunteer a request
only while their account may volunteer. Each side read the other unlocked, so when the two crossed, both
answered 200 and a request stayed with, or was offered to, the disabled account (3 of 67 reassigns and 1 of 162
filings in the soak). Each test makes one crossing deterministic and failed before the fix.

Every test here commits for real (two connections race), so each cleans up after itself.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from gridsvc.models import ServiceRequest, User, Volunteer
from gridsvc.services.requests import OFFER_LOCKS
from tests.api.test_requests import file, open_shift, put_on_duty
from tests.api.test_review_s12_figures import _on_duty_far_from_g06
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import client_as, delete_shifts, offset, while_uncommitted


def _user_of(engine, volunteer_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(Volunteer.user_id).where(Volunteer.id == volunteer_id)).scalar()


def _crossing(engine, change, request, *, hold_s: float = 0.5):
    """``request()`` in another thread while ``change(connection)`` is made and not committed, for ``hold_s``
    (the request tries the lock the change holds, polling, so there is no lock wait to watch for); then the
    commit. Returns what ``request`` returned."""
    answers = []
    with engine.connect() as conn:
        with conn.begin():
            change(conn)
            other = threading.Thread(target=lambda: answers.append(request()))
            other.start()
            time.sleep(hold_s)
        other.join(10)
    assert len(answers) == 1
    return answers[0]


def _disabling(engine, volunteer_id: int):
    """The admin's disabling of the volunteer, in flight: the account disabled, their offer lock held (as
    ``give_back_tasks`` holds it), not committed."""
    def change(db):
        db.execute(update(User).where(User.id == _user_of(engine, volunteer_id)).values(disabled=True))
        db.execute(select(func.pg_advisory_xact_lock(OFFER_LOCKS, volunteer_id)))
    return change


def _cleanup(committed_app, engine, request_ids, volunteer_id, shift_id):
    client_as(committed_app, "admin").patch(f"/api/v1/users/{_user_of(engine, volunteer_id)}",
                                            json={"disabled": False})
    with engine.begin() as conn:
        conn.execute(ServiceRequest.__table__.delete().where(ServiceRequest.id.in_(request_ids)))
        conn.execute(update(Volunteer).where(Volunteer.id == volunteer_id)
                     .values(on_duty_shift_id=None, last_position=None, last_position_at=None))
    delete_shifts(engine, shift_id)


def _holder(engine, request_id: int) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(ServiceRequest.volunteer_id).where(ServiceRequest.id == request_id)).scalar()


def test_a_volunteer_disabled_while_a_reassign_gives_them_a_request_gives_it_back(committed_app, engine, clock):
    """The reassign holds the volunteer's offer lock and has given them the request, not yet committed, when
    the admin disables the account. The disable waits for that lock and then hands the request back."""
    here, shift_id, chosen = _on_duty_far_from_g06(committed_app, engine, clock, "volunteer-046")
    request_id = file(client_as(committed_app, "worker-004"), here, service="commute",
                      description="disabled meanwhile").get_json()["id"]
    try:
        def reassign_in_flight(conn):
            conn.execute(select(func.pg_advisory_xact_lock(OFFER_LOCKS, chosen)))
            conn.execute(update(ServiceRequest).where(ServiceRequest.id == request_id)
                         .values(status="assigned", volunteer_id=chosen, liaison_id=None))

        disabled = _crossing(engine, reassign_in_flight, lambda: client_as(committed_app, "admin").patch(
            f"/api/v1/users/{_user_of(engine, chosen)}", json={"disabled": True}))
        assert disabled.status_code == 200 and disabled.get_json()["disabled"] is True, disabled.get_json()
        assert _holder(engine, request_id) != chosen
        trail = client_as(committed_app, "admin").get(f"/api/v1/requests/{request_id}/events").get_json()
        assert any(e["action"] == "hand_back" and "may no longer volunteer" in (e["note"] or "") for e in trail), trail
    finally:
        _cleanup(committed_app, engine, [request_id], chosen, shift_id)


def test_a_reassign_to_a_volunteer_being_disabled_is_refused(committed_app, engine, clock):
    """The admin's disable holds the volunteer's offer lock (it is giving their tasks back), not yet committed,
    when a liaison's reassign gives them a request. The reassign waits for that lock, then reads the account as
    disabled: a 422, and the request stays where it was."""
    here, shift_id, chosen = _on_duty_far_from_g06(committed_app, engine, clock, "volunteer-047")
    request_id = file(client_as(committed_app, "worker-005"), here, service="commute",
                      description="reassigned meanwhile").get_json()["id"]
    try:
        answer = _crossing(engine, _disabling(engine, chosen), lambda: client_as(committed_app, "admin").post(
            f"/api/v1/requests/{request_id}/reassign", json={"volunteer_id": chosen}))
        assert answer.status_code == 422, answer.get_json()
        assert "may not take requests" in answer.get_json()["detail"]
        assert _holder(engine, request_id) is None
    finally:
        _cleanup(committed_app, engine, [request_id], chosen, shift_id)


def test_a_batch_offers_nothing_to_a_volunteer_being_disabled(committed_app, engine, clock):
    """The batch plans with a volunteer on duty beside the request while the admin's disabling holds their offer
    lock. It waited for the lock and then offered them the request, which they could never take; it now leaves
    out, for this plan, a volunteer whose lock is held (and reads, under the locks it holds, who may serve)."""
    with Session(engine) as session:
        zone = zone_of(session, "G06")
        community_id = zone.community_id
        here = zone_center(client_as(committed_app, "admin"), zone.id)
        shift_id = open_shift(session, zone.id, clock())
        chosen = put_on_duty(session, "volunteer-048", *offset(*here, 10, 0), shift_id)
        session.commit()
    request_id = file(client_as(committed_app, "worker-006"), here, service="commute",
                      description="batch meanwhile").get_json()["id"]
    try:
        answer = while_uncommitted(engine, _disabling(engine, chosen), lambda: client_as(committed_app, "admin").post(
            f"/api/v1/dispatch/batch?community_id={community_id}"))
        assert answer.status_code == 200, answer.get_json()
        with engine.connect() as conn:
            pending = conn.execute(text("SELECT count(*) FROM request_offer WHERE volunteer_id = :v "
                                        "AND outcome = 'pending'"), {"v": chosen}).scalar()
        assert pending == 0
        assert request_id in answer.get_json()["unassigned"] or all(
            p["volunteer_id"] != chosen for p in answer.get_json()["pairs"])
    finally:
        _cleanup(committed_app, engine, [request_id], chosen, shift_id)

