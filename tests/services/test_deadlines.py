"""gridsvc tick's work: forgotten check-outs closed, then offers moved on, in one pass."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from gridsvc.models import RequestOffer, ServiceRequest, Shift, Signup, Skill, User, Volunteer
from gridsvc.services.checks import CheckPolicy
from gridsvc.services.deadlines import enforce_deadlines
from gridsvc.services.requests import DispatchPolicy
from tests.api.test_requests import file, open_shift, put_on_duty
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import offset


def test_a_volunteer_whose_check_in_is_closed_loses_the_offer_in_the_same_tick(login, session, clock):
    """volunteer-013 holds an offer with a long deadline (a community that gives hours to answer) and
    forgot to check out: the tick that closes the check-in also moves the offer on to who is still on duty."""
    zone = zone_of(session, "G03")
    here = zone_center(login("admin"), zone.id)
    short = Shift(community_id=zone.community_id, zone_id=zone.id, title="gate", activity="traffic_guidance",
                  starts_at=clock() - timedelta(minutes=30), ends_at=clock() + timedelta(minutes=20), capacity=5)
    session.add(short)
    session.flush()
    forgetful = session.scalar(select(Volunteer).join(User, User.id == Volunteer.user_id)
                               .where(User.username == "volunteer-013"))
    if "traffic_parking" not in forgetful.skill_codes:
        forgetful.skills = [*forgetful.skills, session.get(Skill, "traffic_parking")]
    session.add(Signup(shift_id=short.id, volunteer_id=forgetful.id, status="confirmed"))
    still_on_duty = put_on_duty(session, "volunteer-019", *offset(*here, 400, 0), open_shift(session, zone.id, clock()))
    session.commit()
    at = offset(*here, 120, 0)
    checked = login("volunteer-013").post(f"/api/v1/shifts/{short.id}/check-in",
                                          json={"lon": at[0], "lat": at[1], "crs": "wgs84", "accuracy_m": 10})
    assert checked.status_code == 201, checked.get_json()
    filed = file(login("worker-001"), here).get_json()
    assert filed["offer"]["volunteer_id"] == forgetful.id
    session.execute(update(RequestOffer).where(RequestOffer.request_id == filed["id"])
                    .values(deadline=clock() + timedelta(hours=4)))
    checks = CheckPolicy()
    clock.advance(minutes=20 + checks.checkout_grace.total_seconds() / 60 + 1)  # past the end and the grace

    done = enforce_deadlines(session, now=clock(), checks=checks, dispatch=DispatchPolicy())

    assert (done.closed_check_ins, done.moved_offers) == (1, 1)
    session.expire_all()
    assert session.get(Volunteer, forgetful.id).on_duty_shift_id is None
    outcomes = session.execute(select(RequestOffer.volunteer_id, RequestOffer.outcome)
                               .where(RequestOffer.request_id == filed["id"]).order_by(RequestOffer.id)).all()
    assert [tuple(row) for row in outcomes] == [(forgetful.id, "withdrawn"), (still_on_duty, "pending")]
    request = session.get(ServiceRequest, filed["id"])
    assert request.status == "offered" and request.refusals == 0
