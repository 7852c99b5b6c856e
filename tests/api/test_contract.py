"""The volunteer features' HTTP contract: what the OpenAPI document says against what the API does, and the
consistency a mobile client relies on (found in review; each test failed before its fix)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.api.test_checkins import admin, duty  # noqa: F401  (the checking-in volunteer's shift)
from tests.api.volunteer_helpers import make_shift, zone_center, zone_of

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class Spec:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def operation(self, method, path):
        return self.doc["paths"][path][method.lower()]

    def response(self, method, path, status):
        responses = self.operation(method, path)["responses"]
        return self.resolve(responses.get(str(status)) or responses.get("default"))

    def errors(self, schema, value, where="$"):
        """The places where ``value`` breaks ``schema`` (an OpenAPI 3.0 subset)."""
        schema = self.resolve(schema)
        found = []
        if value is None:
            if not schema.get("nullable") and not any(self.resolve(s).get("nullable") for s in schema.get("anyOf", [])):
                found.append(f"{where}: null but not nullable")
            return found
        if "allOf" in schema:
            for part in schema["allOf"]:
                found += self.errors(part, value, where)
        if "anyOf" in schema:
            if all(self.errors(part, value, where) for part in schema["anyOf"]):
                found.append(f"{where}: matches no anyOf branch")
        kind = schema.get("type")
        checks = {"object": dict, "array": list, "string": str, "boolean": bool}
        if kind in checks and not isinstance(value, checks[kind]):
            return found + [f"{where}: {value!r} is not {kind}"]
        if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
            return found + [f"{where}: {value!r} is not integer"]
        if kind == "number" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return found + [f"{where}: {value!r} is not number"]
        if "enum" in schema and value not in schema["enum"]:
            found.append(f"{where}: {value!r} not in {schema['enum']}")
        if schema.get("format") == "date-time" and isinstance(value, str) and not DATE_TIME.match(value):
            found.append(f"{where}: {value!r} is not a date-time")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    found.append(f"{where}: missing required {name}")
            for name, item in value.items():
                if name in props:
                    found += self.errors(props[name], item, f"{where}.{name}")
                elif schema.get("additionalProperties") is False:
                    found.append(f"{where}: undocumented member {name!r}")
        if kind == "array":
            for index, item in enumerate(value):
                found += self.errors(schema.get("items", {}), item, f"{where}[{index}]")
        return found

    def check(self, method, path, response):
        """Every way the answer differs from what the document says of it."""
        responses = self.operation(method, path)["responses"]
        problems = []
        if str(response.status_code) not in responses:
            problems.append(f"status {response.status_code} not documented (only {sorted(responses)})")
        documented = self.response(method, path, response.status_code)
        content = documented.get("content", {})
        if content and response.mimetype not in content:
            problems.append(f"{response.mimetype} not among {sorted(content)}")
        if response.mimetype in content and response.mimetype.endswith("json"):
            problems += self.errors(content[response.mimetype]["schema"], response.get_json())
        return problems


@pytest.fixture()
def spec(client):
    return Spec(client.get("/api/openapi.json").get_json())


# ---------------------------------------------------------------- the OpenAPI document


def test_statuses_the_volunteer_endpoints_send_are_documented(duty, spec, admin, login):
    """A generated SDK types only the documented statuses; everything else
    falls to `default`. The check-in/sign-up 409s (with `reason`), the 404 of
    "no volunteer profile yet" and the 401/403s are none of them documented."""
    v, sid, vid = duty["client"], duty["shift"]["id"], duty["id"]
    lon, lat = duty["center"]
    seen = []

    def call(client, method, path, url, **kwargs):
        response = client.open(url, method=method, **kwargs)
        seen.append((method, path, response.status_code, spec.check(method, path, response)))
        return response

    assert call(v, "POST", "/api/v1/shifts/{shift_id}/check-in", f"/api/v1/shifts/{sid}/check-in",
                json={"lon": lon, "lat": lat}).status_code == 201
    assert call(v, "POST", "/api/v1/shifts/{shift_id}/check-in", f"/api/v1/shifts/{sid}/check-in",
                json={"lon": lon, "lat": lat}).status_code == 409  # already_checked_in
    assert call(v, "POST", "/api/v1/shifts/{shift_id}/signups", f"/api/v1/shifts/{sid}/signups",
                json={}).status_code == 409  # started / already_signed_up
    assert call(login("worker-001"), "GET", "/api/v1/me/volunteer", "/api/v1/me/volunteer").status_code == 404
    assert call(login("worker-001"), "POST", "/api/v1/shifts/{shift_id}/check-in", f"/api/v1/shifts/{sid}/check-in",
                json={"lon": lon, "lat": lat}).status_code == 403
    assert call(v, "GET", "/api/v1/shifts/{shift_id}", "/api/v1/shifts/2147483000").status_code == 404
    undocumented = [entry for entry in seen if any(p.startswith("status") for p in entry[3])]
    assert undocumented == [], undocumented


@pytest.mark.parametrize("kind", ["check-in", "check-out"])
def test_every_422_of_check_in_and_out_matches_the_document(duty, spec, kind):
    """The check-in's 422 was documented as the recorded refusal alone, its reason an enum of outside_geofence and
    outside_window: a reused Idempotency-Key (422, reason key_reused) or a body out of range broke a client that
    checks the enum."""
    v, sid = duty["client"], duty["shift"]["id"]
    lon, lat = duty["center"]
    path, url = f"/api/v1/shifts/{{shift_id}}/{kind}", f"/api/v1/shifts/{sid}/{kind}"
    if kind == "check-out":
        assert v.post(f"/api/v1/shifts/{sid}/check-in", json={"lon": lon, "lat": lat}).status_code == 201
    first = v.post(url, json={"lon": lon, "lat": lat}, headers={"Idempotency-Key": "k-422"})
    assert first.status_code == 201, first.get_json()
    answers = [v.post(url, json={"lon": lon, "lat": lat + 0.001}, headers={"Idempotency-Key": "k-422"}),
               v.post(url, json={"lon": 181, "lat": lat})]
    assert [(a.status_code, a.get_json().get("reason")) for a in answers] == [(422, "key_reused"), (422, None)]
    assert [spec.check("POST", path, answer) for answer in answers] == [[], []]


def test_idempotency_headers_are_in_the_openapi_document(spec):
    """README: send an Idempotency-Key header; a retry is answered with
    Idempotent-Replayed: true. Neither header appears in the document, so an
    SDK generated from it cannot send the key nor read the replay flag."""
    for path in ("/api/v1/shifts/{shift_id}/check-in", "/api/v1/shifts/{shift_id}/check-out"):
        operation = spec.operation("POST", path)
        headers = [p["name"].lower() for p in operation.get("parameters", []) + spec.doc["paths"][path].get("parameters", [])
                   if p.get("in") == "header"]
        assert "idempotency-key" in headers, (path, headers)
        replayed = {name.lower() for name in spec.response("POST", path, 201).get("headers", {})}
        assert "idempotent-replayed" in replayed, path


def test_the_offline_upload_limit_is_documented(spec, app):
    """README/issue: up to 200 events, "refuse over a documented limit";
    the document has minItems 1 and no maxItems (nor a word of it)."""
    limit = app.config["GRIDSVC_OFFLINE_MAX_EVENTS"]
    events = spec.resolve(spec.doc["components"]["schemas"]["OfflineBatchIn"])["properties"]["events"]
    operation = spec.operation("POST", "/api/v1/me/check-events")
    assert events.get("maxItems") == int(limit) or str(limit) in (operation.get("description", "")
                                                                   + operation.get("summary", "")), events


def test_check_answer_at_is_documented_as_a_date_time(spec):
    """Every other time in the API is `format: date-time`; the check-in/out
    answer's `at` is a bare string, so an SDK hands it out untyped."""
    at = spec.doc["components"]["schemas"]["CheckEventOut"]["properties"]["at"]
    assert at.get("format") == "date-time", at


def test_calendar_and_csv_exports_document_their_media_type_and_key(spec):
    """The 200 of shifts.ics and hours.csv documents no content at all
    (content_type without a schema is dropped), and the calendar's `key`
    query parameter (calendar_url) is not documented: an SDK sees a void
    answer and cannot subscribe without a token."""
    ics = spec.response("GET", "/api/v1/volunteers/{volunteer_id}/shifts.ics", 200)
    csv = spec.response("GET", "/api/v1/volunteers/{volunteer_id}/hours.csv", 200)
    assert "text/calendar" in ics.get("content", {}), ics
    assert "text/csv" in csv.get("content", {}), csv
    parameters = spec.operation("GET", "/api/v1/volunteers/{volunteer_id}/shifts.ics").get("parameters", [])
    assert any(p["name"] == "key" and p["in"] == "query" for p in parameters), parameters


# ---------------------------------------------------------------- consistency a mobile client relies on


def test_withdrawing_while_checked_in_says_reason_checked_in(duty):
    """README: a sign-up with a check-in cannot be withdrawn (409, reason: checked_in).
    While the volunteer is still on duty the 409 is a bare /problems/conflict without `reason`."""
    v, sid, vid = duty["client"], duty["shift"]["id"], duty["id"]
    assert v.post(f"/api/v1/shifts/{sid}/check-in", json={"lon": duty["center"][0], "lat": duty["center"][1]}).status_code == 201
    refused = v.delete(f"/api/v1/shifts/{sid}/signups/{vid}")
    assert refused.status_code == 409
    assert refused.get_json().get("reason") == "checked_in", refused.get_json()


def test_check_in_to_a_cancelled_shift_says_why(admin, login, session, clock):
    """Every other /problems/check-state 409 carries `reason` (not_signed_up,
    already_checked_in, not_checked_in); a cancelled shift's has none."""
    zone = zone_of(session, "G01")
    center = zone_center(admin, zone.id)
    shift = make_shift(admin, zone_id=zone.id, starts_at=clock() + timedelta(minutes=20))
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    assert admin.delete(f"/api/v1/shifts/{shift['id']}").status_code == 200
    refused = volunteer.post(f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": center[0], "lat": center[1]})
    assert refused.status_code == 409 and refused.get_json()["type"] == "/problems/check-state"
    assert refused.get_json().get("reason") == "cancelled", refused.get_json()


def test_a_shifts_signup_list_is_paginated_like_every_list(duty, admin):
    """DESIGN: lists paginate and say how many matched. GET /shifts/{id}/signups
    (capacity up to 10,000, plus the waitlist) has neither total nor limit/offset."""
    answer = admin.get(f"/api/v1/shifts/{duty['shift']['id']}/signups?limit=1")
    assert answer.status_code == 200
    body = answer.get_json()
    assert {"total", "limit", "offset", "items"} <= body.keys(), body


def test_created_resources_are_located(admin, session, clock, login):
    """201 Created without Location: RFC 9110 then identifies the new resource
    as the request's own URI (/api/v1/shifts, /api/v1/volunteers)."""
    shift = admin.post("/api/v1/shifts", json={
        "title": "x", "activity": "traffic_guidance", "zone_id": zone_of(session, "G01").id, "capacity": 1,
        "starts_at": (clock() + timedelta(days=1)).isoformat(), "ends_at": (clock() + timedelta(days=1, hours=1)).isoformat()})
    assert shift.status_code == 201
    assert shift.headers.get("Location", "").endswith(f"/api/v1/shifts/{shift.get_json()['id']}"), dict(shift.headers)
    volunteer = login("worker-001").post("/api/v1/volunteers", json={"real_name": "王师傅", "phone": "13900000009"})
    assert volunteer.status_code == 201
    assert volunteer.headers.get("Location", "").endswith(f"/api/v1/volunteers/{volunteer.get_json()['id']}")


def test_every_created_resource_with_its_own_url_is_located(admin, session, login):
    """The README promises Location on a 201; communities, zones, enterprises, lots, spaces, requests and
    accounts had none. Each Location reads back the resource just made."""
    from tests.helpers import community_body, rect, zone_feature

    def located(answer, item_path: str) -> None:
        assert answer.status_code == 201, answer.get_json()
        location = answer.headers.get("Location", "")
        assert location.endswith(item_path), (location, item_path)
        assert admin.get(location).status_code == 200

    community = admin.post("/api/v1/communities", json=community_body())
    cid = community.get_json()["id"]
    located(community, f"/api/v1/communities/{cid}")
    zone = admin.post(f"/api/v1/communities/{cid}/zones", json=zone_feature("G01", rect(120.301, 31.501, 200, 200)))
    located(zone, f"/api/v1/zones/{zone.get_json()['id']}")
    enterprise = admin.post(f"/api/v1/communities/{cid}/enterprises",
                            json={"name": "测试厂", "location": {"lon": 120.3015, "lat": 31.5015}})
    located(enterprise, f"/api/v1/communities/{cid}/enterprises/{enterprise.get_json()['id']}")
    lot = admin.post("/api/v1/parking/lots", json={"type": "Feature", "geometry": rect(120.302, 31.502, 40, 40),
                                                    "properties": {"name": "北门停车场", "capacity": {"car": 20}}})
    located(lot, f"/api/v1/parking/lots/{lot.get_json()['id']}")
    space = admin.post("/api/v1/parking/spaces", json={"type": "Feature",
                                                        "geometry": {"type": "Point", "coordinates": [120.3022, 31.5022]},
                                                        "properties": {"lot_id": lot.get_json()["id"], "ref": "N-1"}})
    located(space, f"/api/v1/parking/spaces/{space.get_json()['id']}")
    account = admin.post("/api/v1/users", json={"username": "li.na", "password": "long-enough-pass-1",
                                               "display_name": "李娜", "roles": ["worker"]})
    located(account, f"/api/v1/users/{account.get_json()['id']}")
    here = zone_center(admin, zone_of(session, "G03").id)
    request = login("worker-001").post("/api/v1/requests", json={
        "service_code": "parking", "description": "北门找不到车位", "lon": here[0], "lat": here[1],
        "attributes": {"problem": "no_space"}})
    located(request, f"/api/v1/requests/{request.get_json()['id']}")


def test_the_bearer_scheme_is_case_insensitive(app, client, duty):
    """RFC 9110 §11.1 / RFC 6750: the auth scheme is case-insensitive; HTTP
    stacks that send `bearer <token>` get a 401 invalid_request everywhere."""
    from tests.helpers import token_for

    token = token_for(app, "volunteer-001")
    answer = client.get("/api/v1/me/volunteer", headers={"Authorization": f"bearer {token}"})
    assert answer.status_code == 200, answer.get_json()


# ---------------------------------------------------------------- who sees what


def test_another_volunteer_does_not_see_where_someone_is_on_duty(duty, login):
    """README: a volunteer's positions and check-ins are for the volunteer, the
    liaison of a zone they work in and admins. Any signed-in account reads
    `on_duty_shift_id` (the shift they are checked in to now: its zone or its
    5 m circle) from GET /volunteers/{id}, while `last_position` is hidden."""
    v, sid, vid = duty["client"], duty["shift"]["id"], duty["id"]
    assert v.post(f"/api/v1/shifts/{sid}/check-in", json={"lon": duty["center"][0], "lat": duty["center"][1]}).status_code == 201
    seen = login("volunteer-002").get(f"/api/v1/volunteers/{vid}").get_json()
    assert seen["last_position"] is None  # hidden, as the README says
    assert seen["on_duty_shift_id"] is None, seen  # ... but the check-in gives the place away

