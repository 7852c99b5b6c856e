"""Requests, dispatch and Open311: what an adversarial review found (each test failed before its fix, but the
one race marked as a guard).

The races looked at (an accept against the deadline, a check-out or a liaison's reassign; two claims; the task
cap under concurrent filings) held; what failed is what an Open311 client meets.
"""
from __future__ import annotations

from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.models import RequestOffer, ServiceRequest, User
from gridsvc.services.accounts import new_api_key
from gridsvc.services import requests as service
from gridsvc.services.accounts import update_user
from gridsvc.services.checks import CheckPolicy
from gridsvc.services.requests import Actor
from tests.api.test_requests import account_id
from tests.api.test_review_requests import _offered_for_real
from tests.api.volunteer_helpers import volunteer_id, zone_center, zone_of
from tests.helpers import client_as, community_body, count, rect, while_uncommitted, zone_feature


@pytest.fixture()
def key(session):
    """worker-009's api_key."""
    user_id = session.scalar(select(User.id).where(User.username == "worker-009"))
    made = new_api_key(session, user_id, "review")
    session.commit()
    return made


@pytest.fixture()
def g05(login, session) -> tuple[float, float]:
    return zone_center(login("admin"), zone_of(session, "G05").id)


def _errors(answer, fmt: str = "json") -> list[dict]:
    """The spec's error list, read as a client would, whatever the format."""
    if fmt == "json":
        assert answer.mimetype == "application/json", answer.get_data(as_text=True)
        return answer.get_json()
    assert answer.mimetype == "text/xml", answer.get_data(as_text=True)
    root = ET.fromstring(answer.get_data())
    assert root.tag == "errors"
    return [{child.tag: child.text for child in error} for error in root]


# ---------------------------------------------------------------- a race that held (a guard)


def test_an_accept_waiting_on_a_liaisons_reassign_is_refused_and_the_reassign_stands(committed_app, engine, clock):
    """G04's liaison hands the offered request to volunteer-019 while volunteer-013, to whom it is offered,
    accepts it. The accept waits for the reassign's lock, then must be told the request is no longer offered
    (409), not take it from volunteer-019; the withdrawn offer stays withdrawn."""
    with _offered_for_real(committed_app, engine, clock) as (request_id, offered_to):
        with engine.connect() as conn, Session(bind=conn) as s:
            other = volunteer_id(s, "volunteer-019")
            liaison = Actor(user_id=account_id(s, "liaison-g04"), roles=frozenset({"liaison"}),
                            liaison_zone_ids=frozenset({zone_of(s, "G04").id}))

        def reassign(own):
            service.act(own, request_id, "reassign", liaison, now=clock(), policy=service.DispatchPolicy(),
                        volunteer_id=other)

        volunteer = client_as(committed_app, "volunteer-013")
        answer = while_uncommitted(engine, reassign, lambda: volunteer.post(f"/api/v1/requests/{request_id}/accept", json={}))
        assert answer.status_code == 409 and answer.get_json()["type"].endswith("/problems/request-state"), answer.get_json()
        with engine.connect() as conn:
            held = conn.execute(select(ServiceRequest.status, ServiceRequest.volunteer_id)
                                .where(ServiceRequest.id == request_id)).one()
            outcome = conn.execute(select(RequestOffer.outcome).where(RequestOffer.request_id == request_id,
                                                                      RequestOffer.volunteer_id == offered_to)).scalar()
        assert tuple(held) == ("assigned", other) and outcome == "withdrawn"


def test_an_accept_racing_with_the_volunteers_disabling_leaves_the_request_with_the_next_volunteer(committed_app,
                                                                                                   engine, clock):
    """volunteer-013 accepts the request offered to them while the admin disables their account. The disabling
    withdraws their offers and hands back what they hold; it waits for the accept's lock on the request, and must
    then find the request held and hand it back. Read in the other order (held requests first, then offers), it
    found nothing held, skipped the offer the accept had answered, and left the request assigned to an account
    that can no longer act. The disabling is rolled back afterwards (the committed tests share the database)."""
    with _offered_for_real(committed_app, engine, clock) as (request_id, offered_to):
        with engine.connect() as conn, Session(bind=conn) as s:
            user_id = account_id(s, "volunteer-013")
            next_one = volunteer_id(s, "volunteer-019")
        volunteer = Actor(user_id=user_id, roles=frozenset({"volunteer"}), volunteer_id=offered_to)

        def accept(own):
            service.act(own, request_id, "accept", volunteer, now=clock(), policy=service.DispatchPolicy())

        def disable():
            with Session(engine) as own:
                update_user(own, user_id, {"disabled": True}, check_policy=CheckPolicy(),
                            dispatch_policy=service.DispatchPolicy())
                own.flush()
                status, holder = own.execute(select(ServiceRequest.status, ServiceRequest.volunteer_id)
                                             .where(ServiceRequest.id == request_id)).one()
                offered = own.scalar(select(RequestOffer.volunteer_id).where(RequestOffer.request_id == request_id,
                                                                             RequestOffer.outcome == "pending"))
                own.rollback()
            return status, holder, offered

        assert while_uncommitted(engine, accept, disable) == ("offered", None, next_one)


# ---------------------------------------------------------------- Open311: a JSON body


@pytest.mark.parametrize("attributes", [{"attribute[problem]": "blocked"}, {"attribute": {"problem": "blocked"}}],
                         ids=["bracketed-key", "attribute-object"])
def test_open311_takes_a_request_posted_as_json(client, session, key, g05, attributes):
    """Many GeoReport clients post JSON (the spec's names, numbers as numbers). The key was read from the form
    only: a JSON post with its api_key was answered 401 "api_key is required", and nothing was filed."""
    lon, lat = g05
    answer = client.post("/open311/v2/requests.json", json={
        "api_key": key, "service_code": "parking", "lat": lat, "long": lon, "description": "车被堵住了",
        "first_name": "Wei", "phone": "13900000009", **attributes})
    assert answer.status_code == 201, answer.get_json()
    [created] = answer.get_json()
    request = session.get(ServiceRequest, int(created["service_request_id"]))
    assert request.requester_id == account_id(session, "worker-009")
    assert request.zone_id == zone_of(session, "G05").id and request.attributes == {"problem": "blocked"}
    assert request.description == "车被堵住了" and request.contact == {"first_name": "Wei", "phone": "13900000009"}


def test_open311_json_that_is_no_object_is_its_400_and_files_nothing(client, session, key):
    before = count(session, ServiceRequest)
    for body in ("[1, 2]", "{not json", '{"api_key": "%s", "service_code": "parking", "lat": true, "long": 121.78}' % key):
        answer = client.post("/open311/v2/requests.json", data=body, content_type="application/json")
        assert answer.status_code == 400, answer.get_data(as_text=True)
        assert _errors(answer)[0]["description"]
    assert count(session, ServiceRequest) == before


def test_open311_post_takes_the_api_key_from_the_query_string(client, session, key, g05):
    """GET reads api_key from the query string; a client that puts it there for POST too (the form holding the
    request itself) was told the key is missing."""
    lon, lat = g05
    answer = client.post(f"/open311/v2/requests.json?api_key={key}", data={
        "service_code": "parking", "lat": str(lat), "long": str(lon), "attribute[problem]": "no_space"})
    assert answer.status_code == 201, answer.get_json()
    request = session.get(ServiceRequest, int(answer.get_json()[0]["service_request_id"]))
    assert request.requester_id == account_id(session, "worker-009")


# ---------------------------------------------------------------- Open311: W3C dates as clients send them


def _filed_at(clock, client, key: str, g05, when: datetime) -> str:
    """A request of worker-009's filed (Open311) at ``when``; its id."""
    clock.current = when
    answer = client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "parking", "lat": str(g05[1]), "long": str(g05[0]),
        "attribute[problem]": "blocked"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()[0]["service_request_id"]


def test_open311_start_date_with_its_plus_sent_unencoded(client, clock, key, g05):
    """``?start_date=2026-11-21T08:00:00+08:00`` typed into curl or a browser arrives with the ``+`` decoded as a
    space (``...T08:00:00 08:00``): it was refused as no w3 date-time."""
    found = _filed_at(clock, client, key, g05, datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc))  # 09:00 in Ningbo
    for start, listed in (("2026-11-21T08:00:00 08:00", True), ("2026-11-21T09:30:00 08:00", False)):
        answer = client.get("/open311/v2/requests.json", query_string={"api_key": key, "start_date": start})
        assert answer.status_code == 200, answer.get_json()
        assert (found in [r["service_request_id"] for r in answer.get_json()]) is listed, start


def test_open311_a_date_alone_is_that_whole_day_on_the_communitys_clock(client, clock, key, g05):
    """W3C-DTF's complete date (``2026-11-21``) was refused ("needs a time zone offset"). A day is the community's
    (Asia/Shanghai): from its midnight, and an end_date includes the day it names."""
    late = _filed_at(clock, client, key, g05, datetime(2026, 11, 21, 15, 30, tzinfo=timezone.utc))  # 23:30 on the 21st
    early = _filed_at(clock, client, key, g05, datetime(2026, 11, 21, 16, 30, tzinfo=timezone.utc))  # 00:30 on the 22nd
    for query, expected in (({"start_date": "2026-11-22"}, {early}), ({"end_date": "2026-11-21"}, {late}),
                            ({"start_date": "2026-11-21", "end_date": "2026-11-22"}, {late, early})):
        answer = client.get("/open311/v2/requests.json", query_string={"api_key": key, **query})
        assert answer.status_code == 200, answer.get_json()
        assert {r["service_request_id"] for r in answer.get_json()} & {late, early} == expected, query
    answer = client.get("/open311/v2/requests.json", query_string={"api_key": key, "start_date": "2026-11-31"})
    assert answer.status_code == 400 and "start_date" in _errors(answer)[0]["description"]


# ---------------------------------------------------------------- Open311: its own error shape everywhere


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_a_wrong_method_or_path_is_answered_in_the_spec_format(client, fmt):
    """A method a resource does not take, or a resource that does not exist, under /open311/v2 was answered
    with the JSON API's problem+json: the spec's client, reading a list of errors (in XML, say), could not."""
    wrong = client.delete(f"/open311/v2/requests.{fmt}")
    assert wrong.status_code == 405
    assert set(wrong.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    [error] = _errors(wrong, fmt)
    assert str(error["code"]) == "405" and "DELETE" in error["description"]
    for path in (f"/open311/v2/tickets.{fmt}", f"/open311/v2/services/parking/extra.{fmt}"):
        missing = client.get(path)
        assert missing.status_code == 404
        assert str(_errors(missing, fmt)[0]["code"]) == "404"
    assert client.put(f"/open311/v2/services.{fmt}").status_code == 405


# ---------------------------------------------------------------- Open311: who is responsible


def test_open311_names_the_community_that_is_responsible(client, session, key, login):
    """Every request said ``agency_responsible: 灵峰社区 community office``, a request in the Wuxi market
    included: a server holds many parks (DOMAIN: Beilun's 12 industrial communities)."""
    admin = login("admin")
    origin = (120.30, 31.50)
    market = admin.post("/api/v1/communities", json=community_body(name="华夏家居港 Huaxia Home Port",
                                                                    boundary=rect(*origin, 1000, 1000)))
    assert market.status_code == 201, market.get_json()
    zone = admin.post(f"/api/v1/communities/{market.get_json()['id']}/zones", json=zone_feature("G01", rect(*origin, 1000, 1000)))
    assert zone.status_code == 201, zone.get_json()
    lon, lat = zone_center(admin, zone.get_json()["id"])
    filed = client.post("/open311/v2/requests.json", data={"api_key": key, "service_code": "housing",
                                                          "lat": str(lat), "long": str(lon), "description": "想找宿舍"})
    assert filed.status_code == 201, filed.get_json()
    request_id = filed.get_json()[0]["service_request_id"]
    [found] = client.get(f"/open311/v2/requests/{request_id}.json", query_string={"api_key": key}).get_json()
    assert "华夏家居港" in found["agency_responsible"] and "灵峰" not in found["agency_responsible"]
