"""The OpenAPI document as a client generator reads it (review s8).

Each test failed before the change: no operation had an operationId (generators named the methods from the
paths: apiV1ShiftsShiftIdCheckInPost), no operation documented the 413 of a body over MAX_CONTENT_LENGTH, and
the fields the service fills from a fixed set (statuses, kinds, reasons) were bare strings. The values are
produced through the API where that is cheap, and read from the database's functions and the services' calls
for the rest, so an enum that misses a value the code writes fails here.
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.views import MethodView
from sqlalchemy import text

import gridsvc
from gridsvc.models import CheckEvent
from gridsvc.api import OPERATION_NAMES, Api, Blueprint
from tests.api.test_checkins import admin, duty  # noqa: F401  (volunteer-001 on a shift started 5 min ago)
from tests.api.test_contract import Spec
from tests.api.test_review_openapi import operations
from tests.helpers import count
from tests.api.volunteer_helpers import make_shift, north_of, volunteer_id, zone_of

CHECK_IN, CHECK_OUT = "/api/v1/shifts/{shift_id}/check-in", "/api/v1/shifts/{shift_id}/check-out"
HOURS = "/api/v1/volunteers/{volunteer_id}/hours"
EVENTS = "/api/v1/shifts/{shift_id}/check-events"


@pytest.fixture()
def spec(client):
    return Spec(client.get("/api/openapi.json").get_json())


def enum(spec, schema, field):
    """The documented set of member ``field`` of component ``schema`` (None: no enum)."""
    return spec.resolve(spec.doc["components"]["schemas"][schema]["properties"][field]).get("enum")


def answered(spec, client, method, path, url, status, **kwargs):
    """The body of an answer that has ``status`` and is what the document says of it (enums included)."""
    response = client.open(url, method=method, **kwargs)
    assert response.status_code == status, (method, url, response.get_json())
    assert spec.check(method, path, response) == [], (method, url)
    return response.get_json()


# ---------------------------------------------------------------- operationId


def test_every_operation_has_an_operation_id_and_no_two_share_one(spec):
    names = {(method, path): operation.get("operationId") for method, path, operation in operations(spec)}
    assert [where for where, name in names.items() if not name] == []
    assert [name for name, times in Counter(names.values()).items() if times > 1] == []
    # usable as a method name in every generator's language, camelCase as api.py chose
    assert [name for name in names.values() if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", name)] == []


def test_the_operation_ids_a_client_calls_by_name(spec):
    """The mobile app's and the liaison tools' calls, by the names their generated clients give them."""
    expected = {
        ("GET", "/api/v1/shifts"): "listShifts",
        ("POST", "/api/v1/shifts"): "createShift",
        ("GET", "/api/v1/shifts/{shift_id}"): "getShift",
        ("PATCH", "/api/v1/shifts/{shift_id}"): "updateShift",
        ("DELETE", "/api/v1/shifts/{shift_id}"): "cancelShift",
        ("POST", "/api/v1/shifts/{shift_id}/signups"): "signUp",
        ("DELETE", "/api/v1/shifts/{shift_id}/signups/{volunteer_id}"): "cancelSignup",
        ("POST", CHECK_IN): "checkIn",
        ("POST", CHECK_OUT): "checkOut",
        ("POST", "/api/v1/me/check-events"): "uploadCheckEvents",
        ("GET", "/api/v1/volunteers/{volunteer_id}/signups"): "listVolunteerSignups",
        ("GET", HOURS): "getVolunteerHours",
        ("GET", "/api/v1/hours"): "listHoursToReview",
        ("POST", "/api/v1/hours/{hours_id}/approve"): "approveHours",
        ("POST", "/api/v1/auth/token"): "signIn",
        ("GET", "/api/v1/communities"): "listCommunities",
        ("POST", "/api/v1/communities"): "createCommunity",
        ("POST", "/api/v1/requests/{request_id}/hand_back"): "handBackRequest",
        ("PUT", "/api/v1/parking/spaces/{space_id}/status"): "setSpaceStatus",
    }
    named = {(method, path): spec.operation(method, path).get("operationId") for method, path in expected}
    assert named == expected


def test_every_name_given_by_hand_is_an_operation_of_the_app(app):
    """A view renamed leaves its entry in OPERATION_NAMES behind, and the operation falls back to the rule."""
    routed = {(rule.endpoint, method.lower()) for rule in app.url_map.iter_rules() for method in rule.methods}
    assert set(OPERATION_NAMES) - routed == set()


def test_two_operations_of_one_name_stop_the_document():
    """Generators rename the second of two equal operationIds (or refuse the document): refused at start-up."""
    app = Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="v1", OPENAPI_VERSION="3.0.3")
    api = Api(app)
    for name in ("first", "second"):
        blp = Blueprint(name, __name__)
        blp.route("/things")(type("Things", (MethodView,), {"get": blp.response(200)(lambda self: [])}))
        if name == "first":
            api.register_blueprint(blp, url_prefix="/a")
        else:
            with pytest.raises(RuntimeError, match="listThings"):
                api.register_blueprint(blp, url_prefix="/b")


# ---------------------------------------------------------------- 413


def test_every_operation_that_reads_a_body_documents_413_as_a_problem(spec):
    reading, missing = set(), []
    for method, path, operation in operations(spec):
        if "requestBody" not in operation:
            continue
        reading.add((method, path))
        too_large = spec.resolve(operation["responses"].get("413", {}))
        schema = too_large.get("content", {}).get("application/problem+json", {}).get("schema", {})
        if schema.get("$ref") != "#/components/schemas/Problem" or "MAX_CONTENT_LENGTH" not in too_large["description"]:
            missing.append((method, path))
    assert missing == []
    assert {("POST", CHECK_IN), ("POST", "/api/v1/me/check-events"), ("PATCH", "/api/v1/shifts/{shift_id}"),
            ("PUT", "/api/v1/parking/spaces/{space_id}/status")} <= reading


def test_a_body_over_the_limit_is_answered_as_the_document_says(app, duty, admin, spec):  # noqa: F811
    app.config["MAX_CONTENT_LENGTH"] = 2048  # read per request: 10 MB of test body says nothing more
    big = {"lon": duty["center"][0], "lat": duty["center"][1], "notes": "x" * 5000}  # past check-in's fast path too
    shift_id = duty["shift"]["id"]
    body = answered(spec, duty["client"], "POST", CHECK_IN, f"/api/v1/shifts/{shift_id}/check-in", 413, json=big)
    assert body["type"].endswith("/payload-too-large")
    answered(spec, admin, "PATCH", "/api/v1/shifts/{shift_id}", f"/api/v1/shifts/{shift_id}", 413,
             json={"notes": "x" * 5000})


def test_a_plain_check_in_over_a_small_limit_is_a_413_that_records_nothing(app, duty, spec, session):  # noqa: F811
    """Check-in's fast path read bodies up to its own 4 KiB whatever MAX_CONTENT_LENGTH said: a deployment that set
    the limit lower got a check-in Flask would have refused recorded."""
    app.config["MAX_CONTENT_LENGTH"] = 32
    shift_id = duty["shift"]["id"]
    before = count(session, CheckEvent)
    answered(spec, duty["client"], "POST", CHECK_IN, f"/api/v1/shifts/{shift_id}/check-in", 413,
             json={"lon": duty["center"][0], "lat": duty["center"][1], "crs": "wgs84", "accuracy_m": 5})
    assert count(session, CheckEvent) == before


# ---------------------------------------------------------------- enums: the values the code writes


def test_check_events_refusals_and_a_missing_check_out_are_in_the_enums(duty, admin, spec, clock):  # noqa: F811
    v, shift_id, vid, center = duty["client"], duty["shift"]["id"], duty["id"], duty["center"]
    check_in = f"/api/v1/shifts/{shift_id}/check-in"
    refused = answered(spec, v, "POST", CHECK_IN, check_in, 422,
                       json={"lon": north_of(center, 5000)[0], "lat": north_of(center, 5000)[1]})
    assert (refused["reason"], refused["kind"]) == ("outside_geofence", "check_in")
    answered(spec, v, "POST", CHECK_IN, check_in, 201, json={"lon": center[0], "lat": center[1]})
    clock.advance(hours=5)  # past the shift's end and the grace: the stint is closed without a check-out

    report = answered(spec, v, "GET", HOURS, f"/api/v1/volunteers/{vid}/hours", 200)
    [entry] = report["entries"]
    assert (entry["status"], entry["flag_reason"]) == ("pending", "missing_check_out")
    late = answered(spec, v, "POST", CHECK_IN, check_in, 422, json={"lon": center[0], "lat": center[1]})
    assert late["reason"] == "outside_window"

    events = answered(spec, admin, "GET", EVENTS, f"/api/v1/shifts/{shift_id}/check-events", 200)["items"]
    assert {(e["kind"], e["reason"]) for e in events} == {
        ("check_in", "outside_geofence"), ("check_in", None), ("check_in", "outside_window")}

    approved = answered(spec, admin, "POST", "/api/v1/hours/{hours_id}/approve",
                        f"/api/v1/hours/{entry['id']}/approve", 200, json={})
    assert approved["status"] == "approved"
    again = answered(spec, admin, "POST", "/api/v1/hours/review", "/api/v1/hours/review", 200,
                     json={"ids": [entry["id"]], "action": "decline"})
    assert again["results"][0]["hours_status"] == "approved"


def test_the_hours_of_a_volunteer_taken_off_duty_are_in_the_enums(duty, admin, spec, clock):  # noqa: F811
    v, shift_id, vid, center = duty["client"], duty["shift"]["id"], duty["id"], duty["center"]
    checked_in = answered(spec, v, "POST", CHECK_IN, f"/api/v1/shifts/{shift_id}/check-in", 201,
                          json={"lon": center[0], "lat": center[1], "crs": "wgs84"})
    assert (checked_in["kind"], checked_in["point"]["crs"]) == ("check_in", "wgs84")
    clock.advance(minutes=30)
    user_id = admin.get(f"/api/v1/volunteers/{vid}").get_json()["user_id"]
    assert admin.patch(f"/api/v1/users/{user_id}", json={"roles": ["worker"]}).status_code == 200

    [entry] = answered(spec, admin, "GET", HOURS, f"/api/v1/volunteers/{vid}/hours", 200)["entries"]
    assert (entry["status"], entry["flag_reason"]) == ("pending", "may_not_volunteer")
    declined = answered(spec, admin, "POST", "/api/v1/hours/{hours_id}/decline",
                        f"/api/v1/hours/{entry['id']}/decline", 200, json={})
    assert declined["status"] == "declined"
    conflict = answered(spec, admin, "POST", "/api/v1/hours/{hours_id}/approve",
                        f"/api/v1/hours/{entry['id']}/approve", 409, json={})
    assert conflict["status_now"] == "declined"


def test_shift_and_sign_up_statuses_are_in_the_enums(admin, login, session, spec, clock):  # noqa: F811
    zone_id = zone_of(session, "G01").id
    shift = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(days=1))
    sid = shift["id"]
    first, second = login("volunteer-001"), login("volunteer-002")
    signups = "/api/v1/shifts/{shift_id}/signups"
    url = f"/api/v1/shifts/{sid}/signups"
    assert answered(spec, first, "POST", signups, url, 201, json={})["status"] == "confirmed"
    assert answered(spec, second, "POST", signups, url, 201, json={})["status"] == "waitlisted"
    again = answered(spec, second, "POST", signups, url, 409, json={})
    assert again["signup_status"] == "waitlisted"
    second_id = volunteer_id(session, "volunteer-002")
    mine = answered(spec, second, "GET", "/api/v1/volunteers/{volunteer_id}/signups",
                    f"/api/v1/volunteers/{second_id}/signups", 200)["items"]
    assert [(s["status"], s["shift"]["status"]) for s in mine if s["shift"]["id"] == sid] == [
        ("waitlisted", "scheduled")]

    first_id = volunteer_id(session, "volunteer-001")
    withdrawn = answered(spec, admin, "DELETE", "/api/v1/shifts/{shift_id}/signups/{volunteer_id}",
                         f"/api/v1/shifts/{sid}/signups/{first_id}", 200)
    assert (withdrawn["cancelled"]["status"], [p["status"] for p in withdrawn["promoted"]]) == (
        "cancelled", ["confirmed"])
    cancelled = answered(spec, admin, "DELETE", "/api/v1/shifts/{shift_id}", f"/api/v1/shifts/{sid}", 200)
    assert cancelled["status"] == "cancelled"


def test_the_closed_sets_a_client_switches_on_are_enums(spec):
    """Each set in full as the document gives it (a value left out is a case the generated enum cannot hold)."""
    assert set(enum(spec, "ShiftOut", "status")) == {"scheduled", "cancelled"}
    assert set(enum(spec, "HoursOut", "status")) == {"pending", "approved", "declined"}
    assert set(enum(spec, "HoursOut", "flag_reason")) == {"missing_check_out", "may_not_volunteer", None}
    assert set(enum(spec, "SignupOut", "status")) == {"confirmed", "waitlisted", "cancelled"}
    assert set(enum(spec, "VolunteerSignupOut", "status")) == {"confirmed", "waitlisted"}
    assert set(enum(spec, "ShiftEventOut", "kind")) == {"check_in", "check_out"}
    assert set(enum(spec, "ShiftEventOut", "reason")) == {"outside_geofence", "outside_window", None}
    assert set(enum(spec, "CheckHoursOut", "status")) == {"pending", "approved", "declined"}
    assert set(enum(spec, "PositionOut", "input_crs")) == {"wgs84", "gcj02", "bd09"}
    assert set(enum(spec, "BulkReviewResultOut", "hours_status")) == {"pending", "approved", "declined", None}


def test_every_flag_reason_and_refusal_the_code_writes_is_in_the_enums(session, spec):
    """The values written where no cheap call produces each: the literals the database's functions pass to
    gridsvc_record_hours (or set as flag_reason) and give a refusal, and the reasons the services end a duty for."""
    flag_reasons, refusals = set(), set()
    for source in session.scalars(text(r"SELECT prosrc FROM pg_proc WHERE proname LIKE 'gridsvc\_%'")):
        for arguments in re.findall(r"gridsvc_record_hours\(([^()]*)\)", source):
            last = arguments.rsplit(",", 1)[-1].strip()
            if last.startswith("'"):
                flag_reasons.add(last.strip("'"))
        flag_reasons |= set(re.findall(r"flag_reason\s*=\s*'(\w+)'", source))
        for case in re.findall(r"refusal\s*:=\s*CASE(.*?)END;", source, re.S):
            refusals |= set(re.findall(r"THEN\s+'(\w+)'", case))
    for path in Path(gridsvc.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
            if called == "end_duty":
                [reason] = [keyword.value for keyword in node.keywords if keyword.arg == "reason"]
                assert isinstance(reason, ast.Constant), f"{path}: end_duty's reason is not a literal to check"
                flag_reasons.add(reason.value)
    assert {"missing_check_out", "may_not_volunteer"} <= flag_reasons and refusals  # the search found them
    assert flag_reasons - set(enum(spec, "HoursOut", "flag_reason")) == set()
    assert refusals - set(enum(spec, "ShiftEventOut", "reason")) == set()
    assert refusals - set(enum(spec, "CheckRefusedProblem", "reason")) == set()
