"""Service requests, dispatch and Open311: what a review found (each test failed before its fix)."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gridsvc.models import RequestOffer, ServiceRequest, Shift, User, Volunteer, VolunteerPosition
from gridsvc.services.accounts import new_api_key
from gridsvc.services import requests as service
from tests.api.test_requests import file, g03, open_shift, put_on_duty  # noqa: F401  (g03: three volunteers on duty)
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import client_as, offset, while_uncommitted


def _key(session, username: str) -> str:
    user_id = session.scalar(select(User.id).where(User.username == username))
    key = new_api_key(session, user_id, "review")
    session.commit()
    return key


# ---------------------------------------------------------------- races with a deadline (real connections)


@contextmanager
def _offered_for_real(app, engine, clock):
    """Committed: two traffic volunteers on duty in G04 (volunteer-013 nearest), a parking request filed there
    and offered to volunteer-013. Yields (request id, volunteer-013's id); everything is removed afterwards."""
    with Session(engine) as s:
        zone_id = zone_of(s, "G04").id
        here = zone_center(client_as(app, "admin"), zone_id)
        shift_id = open_shift(s, zone_id, clock())
        ids = [put_on_duty(s, name, *offset(*here, metres, 0), shift_id)
               for name, metres in (("volunteer-013", 100), ("volunteer-019", 300))]
        s.commit()
    request_id = None
    try:
        filed = file(client_as(app, "worker-004"), here).get_json()
        request_id = filed["id"]
        assert filed["offer"]["volunteer_id"] == ids[0]
        yield request_id, ids[0]
    finally:
        with engine.begin() as conn:
            if request_id is not None:
                conn.execute(ServiceRequest.__table__.delete().where(ServiceRequest.id == request_id))
            conn.execute(Volunteer.__table__.update().where(Volunteer.id.in_(ids))
                         .values(on_duty_shift_id=None, last_position=None, last_position_at=None))
            conn.execute(VolunteerPosition.__table__.delete().where(VolunteerPosition.volunteer_id.in_(ids)))
            conn.execute(Shift.__table__.delete().where(Shift.id == shift_id))


def test_a_read_moving_an_expired_offer_on_does_not_deadlock_with_an_answer_to_it(committed_app, engine, clock):
    """The volunteer declines at the deadline's last second; an action takes the request's row first, then
    answers the offer. Meanwhile a read (here the liaison's list, as `gridsvc tick` would) moves expired offers
    on: it took the offer first, then waited for the request. Each waited for the other: PostgreSQL broke the
    deadlock by killing one, and the liaison's mere read was answered 409 "Another change got in the way" (or
    the volunteer's decline was). The read must leave a request someone is acting on to them."""
    with _offered_for_real(committed_app, engine, clock) as (request_id, volunteer_id):
        clock.advance(minutes=6)  # the reader's now is past the deadline

        def act_begins(own):  # as act() does: the request's row first ...
            own.execute(select(ServiceRequest.id).where(ServiceRequest.id == request_id).with_for_update())

        def act_answers(own):  # ... then the offer (the decline the volunteer sent in time)
            own.execute(update(RequestOffer).where(RequestOffer.request_id == request_id,
                                                   RequestOffer.outcome == "pending").values(outcome="declined"))

        liaison = client_as(committed_app, "liaison-g04")
        answer = while_uncommitted(engine, act_begins, lambda: liaison.get("/api/v1/requests"), then=act_answers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        with engine.connect() as conn:
            outcome = conn.execute(select(RequestOffer.outcome).where(RequestOffer.request_id == request_id,
                                                                      RequestOffer.volunteer_id == volunteer_id)).scalar()
        assert outcome == "declined"


def test_a_decline_that_loses_the_race_with_the_deadline_is_told_the_offer_expired(committed_app, engine, clock):
    """The volunteer sends "decline" as the deadline passes, while `gridsvc tick` (a moment later) moves the
    offer on to the next volunteer. The volunteer was answered 403 "Only the volunteer it is offered to may
    accept or decline it", though it was offered to them: the answer must be the 409 saying their offer
    expired, as it is when the tick came first."""
    with _offered_for_real(committed_app, engine, clock) as (request_id, volunteer_id):
        with engine.connect() as conn:
            deadline = conn.execute(select(RequestOffer.deadline).where(RequestOffer.request_id == request_id)).scalar()
        clock.current = deadline  # the volunteer's now: still in time

        def tick(own):
            service.expire_offers(own, now=deadline + timedelta(seconds=1), policy=service.DispatchPolicy())

        volunteer = client_as(committed_app, "volunteer-013")
        answer = while_uncommitted(engine, tick, lambda: volunteer.post(f"/api/v1/requests/{request_id}/decline", json={}))
        assert answer.status_code == 409, answer.get_json()
        assert answer.get_json()["type"].endswith("/problems/request-state") and "expired" in answer.get_json()["detail"]


# ---------------------------------------------------------------- Open311 XML


def test_open311_xml_stays_well_formed_with_control_characters_in_a_description(login, g03, client, session):
    """A description from a phone may carry a control character (a pasted BEL or ESC); the JSON API stores
    it. The Open311 XML answer wrote it raw, which XML 1.0 cannot hold: the client's parser refused the whole
    list. Chinese text and markup characters must come back as they were."""
    filed = file(login("worker-001"), g03["here"], description="北门\x07车位 <满了> & \x1b 谢谢")
    assert filed.status_code == 201, filed.get_json()
    key = _key(session, "worker-001")
    for path in (f"/open311/v2/requests/{filed.get_json()['id']}.xml", "/open311/v2/requests.xml"):
        answer = client.get(path, query_string={"api_key": key})
        assert answer.status_code == 200
        description = ET.fromstring(answer.get_data()).find("request/description").text
        assert description == "北门\ufffd车位 <满了> & \ufffd 谢谢"  # each unwritable character marked, the rest kept
