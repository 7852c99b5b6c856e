"""Open311 GeoReport v2, exercised with a client written from the spec, in JSON and XML."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gridsvc.models import User
from gridsvc.services.accounts import new_api_key
from tests.api.test_requests import file, open_shift, put_on_duty
from tests.api.volunteer_helpers import zone_center, zone_of
from tests.helpers import offset
from tests.open311_client import GeoReportClient


@pytest.fixture()
def key_for(session):
    def make(username: str) -> str:
        user_id = session.scalar(select(User.id).where(User.username == username))
        key = new_api_key(session, user_id, "test client")
        session.commit()
        return key
    return make


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_discovery_and_service_list(client, fmt):
    geo = GeoReportClient(client, fmt=fmt)
    status, found = geo.discovery()
    assert status == 200 and found["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    status, services = geo.services()
    codes = {s["service_code"] for s in services}
    assert status == 200 and {"parking", "housing", "labour_dispute"} <= codes
    parking = next(s for s in services if s["service_code"] == "parking")
    assert str(parking["metadata"]).lower() == "true" and parking["type"] == "realtime"
    status, definition = geo.service_definition("parking")
    assert status == 200 and definition["service_code"] == "parking"
    problem = next(a for a in definition["attributes"] if a["code"] == "problem")
    assert problem["datatype"] == "singlevaluelist" and str(problem["required"]).lower() == "true"
    assert {v["key"] for v in problem["values"]} == {"no_space", "blocked", "illegal"}
    status, errors = geo.service_definition("nope")
    assert status == 404 and errors[0]["code"] in (404, "404") and errors[0]["description"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_then_read_back_with_status_mapping(client, session, key_for, fmt, login):
    geo = GeoReportClient(client, api_key=key_for("worker-009"), fmt=fmt)
    lon, lat = zone_center(login("admin"), zone_of(session, "G05").id)
    status, created = geo.post_request("parking", lat, lon, attributes={"problem": "blocked"},
                                       description="车被堵住了", first_name="Wei", phone="13900000009")
    assert status == 201, created
    request_id = created[0]["service_request_id"]
    status, found = geo.request(request_id)
    assert status == 200 and found[0]["service_request_id"] == request_id
    assert found[0]["status"] == "open" and found[0]["status_notes"]
    assert float(found[0]["lat"]) == pytest.approx(lat) and float(found[0]["long"]) == pytest.approx(lon)
    status, listed = geo.requests(status="open", service_code="parking")
    assert request_id in [r["service_request_id"] for r in listed]
    status, none_closed = geo.requests(status="closed", service_code="parking")
    assert request_id not in [r["service_request_id"] for r in none_closed]
    # resolved in our API -> closed in Open311
    liaison = login("liaison-g05")
    liaison.post(f"/api/v1/requests/{request_id}/resolve", json={"note": "已疏通"})
    status, closed = geo.request(request_id)
    assert closed[0]["status"] == "closed" and closed[0]["status_notes"] == "Resolved."


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_errors_in_the_spec_format(client, key_for, fmt):
    anonymous = GeoReportClient(client, fmt=fmt)
    status, errors = anonymous.requests()
    assert status == 401 and "api_key" in errors[0]["description"]
    status, errors = GeoReportClient(client, api_key="wrong", fmt=fmt).requests()
    assert status == 403
    geo = GeoReportClient(client, api_key=key_for("worker-010"), fmt=fmt)
    status, errors = geo.post_request("parking", 29.87, 121.78)  # missing the required attribute
    assert status == 422 and "problem" in errors[0]["description"]
    status, errors = geo.post_request("parking", 29.87, 121.78, attributes={"problem": ["blocked", "illegal"]})
    assert status == 422 and "problem" in errors[0]["description"]  # one value of the list, given twice
    status, errors = geo.post_request("parking", 29.87, 121.78, attributes={"problem": "blocked"}, email="nobody")
    assert status == 400 and "email" in errors[0]["description"]
    status, errors = geo.post_request("parking", 95, 121.78, attributes={"problem": "blocked"})
    assert status == 400 and "lat" in errors[0]["description"]
    status, errors = geo.post_request("no_such_service", 29.87, 121.78)
    assert status == 422
    status, errors = geo.requests(start_date="yesterday")
    assert status == 400
    status, errors = geo.request("987654")
    assert status == 404
    for bad in ("abc", "99999999999", "-1"):  # not ids at all: still the spec's error list (they were problem+json)
        status, errors = geo.request(bad)
        assert status == 404 and bad in errors[0]["description"]


def test_a_volunteer_key_cannot_file(client, key_for):
    geo = GeoReportClient(client, api_key=key_for("volunteer-001"))
    status, errors = geo.post_request("parking", 29.87, 121.78, attributes={"problem": "blocked"})
    assert status == 403


@pytest.mark.parametrize("read", ["one", "list"])
def test_reads_move_an_expired_offer_on(client, session, clock, key_for, login, read):
    """Expired offers are handled whenever requests are read (README): an Open311 client reads them too."""
    zone = zone_of(session, "G03")
    here = zone_center(login("admin"), zone.id)
    put_on_duty(session, "volunteer-013", *offset(*here, 120, 0), open_shift(session, zone.id, clock()))
    session.commit()
    geo = GeoReportClient(client, api_key=key_for("worker-001"))
    filed = file(login("worker-001"), here).get_json()
    status, found = geo.request(str(filed["id"]))
    assert status == 200 and found[0]["status_notes"] == "Offered to a nearby volunteer, waiting for an answer."
    clock.advance(minutes=6)  # past the 5-minute deadline, and nobody else on duty
    if read == "one":
        status, found = geo.request(str(filed["id"]))
    else:
        status, found = geo.requests(service_request_id=str(filed["id"]))
    assert status == 200 and found[0]["status_notes"] == "With the zone's liaison.", found
    trail = [e["action"] for e in login("liaison-g03").get(f"/api/v1/requests/{filed['id']}/events").get_json()]
    assert trail == ["file", "offer", "expire", "to_liaison"]


def test_a_multivaluelist_attribute_is_posted_as_repeated_or_bracketed_keys(client, session, key_for, login):
    """The spec's multivaluelist values come as repeated ``attribute[code][]`` keys (or ``attribute[code]``):
    ``attribute[sources][]`` was read as an attribute named ``sources][``, and a single value as text, so
    every such request was refused as not fitting the service."""
    from werkzeug.datastructures import MultiDict

    from gridsvc.models import ServiceRequest, ServiceType

    session.add(ServiceType(code="noise", name_zh="噪音", name_en="Noise", group="环境", attributes=[
        {"code": "sources", "datatype": "multivaluelist", "required": True, "description": "什么在响",
         "values": [{"key": "machines", "name": "机器"}, {"key": "traffic", "name": "车辆"}, {"key": "music", "name": "音乐"}]}]))
    session.commit()
    lon, lat = zone_center(login("admin"), zone_of(session, "G05").id)
    key = key_for("worker-009")
    base = [("api_key", key), ("service_code", "noise"), ("lat", str(lat)), ("long", str(lon)), ("description", "夜里很吵")]
    for attributes, expected in (([("attribute[sources][]", "machines"), ("attribute[sources][]", "traffic")],
                                  ["machines", "traffic"]),
                                 ([("attribute[sources][]", "music")], ["music"]),
                                 ([("attribute[sources]", "traffic")], ["traffic"])):
        answer = client.post("/open311/v2/requests.json", data=MultiDict(base + attributes))
        assert answer.status_code == 201, answer.get_json()
        request_id = int(answer.get_json()[0]["service_request_id"])
        session.expire_all()
        assert session.get(ServiceRequest, request_id).attributes == {"sources": expected}
    refused = client.post("/open311/v2/requests.json", data=MultiDict(base + [("attribute[sources][]", "thunder")]))
    assert refused.status_code == 422 and "sources" in refused.get_json()[0]["description"]
