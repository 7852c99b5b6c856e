"""The volunteer/shift/check-in/hours part of the OpenAPI document against what the API really answers, reviewed.
Each test failed while the document said something other than what the API does; a client generated from the
document (the mobile app's) would get that case wrong."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.test_checkins import admin, duty  # noqa: F401  (volunteer-001 on a shift started 5 min ago)
from tests.api.test_contract import Spec

UNKNOWN_ID = 2147483000


@pytest.fixture()
def spec(client):
    return Spec(client.get("/api/openapi.json").get_json())


def documented_property(spec, schema, name):
    """The schema the document gives member ``name`` of ``schema`` (looking into allOf/anyOf/oneOf), or None."""
    schema = spec.resolve(schema)
    if name in schema.get("properties", {}):
        return spec.resolve(schema["properties"][name])
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            found = documented_property(spec, part, name)
            if found is not None:
                return found
    return None


def response_schema(spec, method, path, status):
    response = spec.response(method, path, status)
    return response.get("content", {}).get("application/problem+json", {}).get("schema", {})


def documented_enum(spec, schema, name):
    found = documented_property(spec, schema, name)
    return None if found is None else found.get("enum")


# ---------------------------------------------------------------- 409 reasons


def test_every_409_reason_the_api_sends_is_in_the_document(duty, spec, admin, login, clock):
    """The document: every 409 of check-in, check-out, sign-up, withdrawal and shift cancellation is the
    CONFLICT component, a bare Problem (type/title/status/detail/errors); `reason` is not a documented member
    anywhere in the document, let alone with an enum. The API: clients are told to branch on `reason`
    (already_checked_in, not_checked_in, not_signed_up, already_signed_up, started, over, checked_in, ...), all
    on problem types shared by several reasons (/problems/conflict, /problems/shift-conflict,
    /problems/check-state). A generated client has no field for it: the app cannot tell "already signed up"
    (fine) from "started" (closed) from "over", nor read on_duty_shift_id/signup_status/missing_skills."""
    v, sid, vid = duty["client"], duty["shift"]["id"], duty["id"]
    lon, lat = duty["center"]
    other = login("volunteer-002")
    seen = []

    def sent(client, method, path, url, **kwargs):
        answer = client.open(url, method=method, **kwargs)
        assert answer.status_code == 409, (url, answer.get_json())
        seen.append((method, path, answer.get_json()["reason"]))

    check_in, check_out = "/api/v1/shifts/{shift_id}/check-in", "/api/v1/shifts/{shift_id}/check-out"
    signups, signup = "/api/v1/shifts/{shift_id}/signups", "/api/v1/shifts/{shift_id}/signups/{volunteer_id}"
    here = {"lon": lon, "lat": lat}
    sent(v, "POST", check_out, f"/api/v1/shifts/{sid}/check-out", json=here)                  # not_checked_in
    sent(other, "POST", check_in, f"/api/v1/shifts/{sid}/check-in", json=here)                # not_signed_up
    assert v.post(f"/api/v1/shifts/{sid}/check-in", json=here).status_code == 201
    sent(v, "POST", check_in, f"/api/v1/shifts/{sid}/check-in", json=here)                    # already_checked_in
    sent(v, "POST", signups, f"/api/v1/shifts/{sid}/signups", json={})                        # already_signed_up
    sent(other, "POST", signups, f"/api/v1/shifts/{sid}/signups", json={})                    # started
    sent(v, "DELETE", signup, f"/api/v1/shifts/{sid}/signups/{vid}")                          # checked_in
    sent(admin, "DELETE", "/api/v1/shifts/{shift_id}", f"/api/v1/shifts/{sid}")               # started
    clock.advance(hours=3)
    sent(v, "DELETE", signup, f"/api/v1/shifts/{sid}/signups/{vid}")                          # over

    undocumented = [(method, path, reason) for method, path, reason in seen
                    if f"`{reason}`" not in documented_reasons(spec, response_schema(spec, method, path, 409))]
    assert undocumented == [], undocumented


def documented_reasons(spec, schema) -> str:
    """What the document says `reason` may be: its description (no enum: a client generated with one would fail
    on a reason added later)."""
    found = documented_property(spec, schema, "reason")
    return "" if found is None else found.get("description", "")


def test_every_reason_in_the_code_is_documented():
    """The list the document gives (PROBLEM_REASONS) against every reason the code sends: a reason added without
    it would reach clients undocumented."""
    import re
    from pathlib import Path

    from gridsvc.schemas.common import PROBLEM_REASONS

    root = Path(__file__).resolve().parents[2]
    sent = set()
    for source in [*(root / "gridsvc").rglob("*.py"), *(root / "migrations" / "versions").glob("*.py")]:
        text = source.read_text()
        sent |= set(re.findall(r'reason="([a-z_]+)"', text))
        sent |= set(re.findall(r"'(outside_[a-z]+)'", text))
    assert sent and sorted(sent - set(PROBLEM_REASONS)) == []


# ---------------------------------------------------------------- check-in's refusal


def test_a_refused_check_in_documents_the_distance_it_answers_with(duty, spec):
    """The document: check-in's 422 is "Refused (outside the area or the time window): recorded, with the
    distance", with the schema Problem, which has no distance_m, allowed_m, event_id, inside or reason. The
    API: a refused check-in is a /problems/check-refused with reason outside_geofence|outside_window,
    distance_m, allowed_m, event_id, accepted, inside, point... A generated client cannot show "you are 4,606 m
    outside the area (10 m allowed)" nor tell the geofence refusal from the time-window one."""
    v, sid = duty["client"], duty["shift"]["id"]
    lon, lat = duty["center"]
    refused = v.post(f"/api/v1/shifts/{sid}/check-in", json={"lon": lon + 0.05, "lat": lat, "accuracy_m": 10})
    assert refused.status_code == 422 and refused.get_json()["type"] == "/problems/check-refused", refused.get_json()
    body = refused.get_json()
    schema = response_schema(spec, "POST", "/api/v1/shifts/{shift_id}/check-in", 422)
    missing = [name for name in ("reason", "distance_m", "allowed_m", "event_id", "inside")
               if name in body and documented_property(spec, schema, name) is None]
    assert missing == [], (missing, body)
    assert body["reason"] in (documented_enum(spec, schema, "reason") or []), body["reason"]


# ---------------------------------------------------------------- the offline upload's results


def test_the_offline_uploads_results_document_what_each_event_got(duty, spec, clock):
    """The document: each of POST /me/check-events' results has `result`, an object of anything
    (additionalProperties: {}). The API: `result` is either the check-in/check-out answer (CheckEventOut) or a problem
    whose `reason` (client_time_out_of_range, not_checked_in, hours_reviewed, already_checked_in, outside_geofence
    ...) says why that event was refused. A generated client gets a bare map and cannot read why an offline
    check-out was refused (say hours_reviewed: the liaison decided meanwhile), which the results exist to say."""
    v, sid = duty["client"], duty["shift"]["id"]
    lon, lat = duty["center"]
    event = {"shift_id": sid, "lon": lon, "lat": lat}
    answer = v.post("/api/v1/me/check-events", json={"events": [
        {**event, "kind": "check_in", "client_time": (clock() - timedelta(days=3)).isoformat(), "idempotency_key": "a"},
        {**event, "kind": "check_out", "client_time": clock().isoformat(), "idempotency_key": "b"}]})
    assert answer.status_code == 200, answer.get_json()
    reasons = [r["result"].get("reason") for r in answer.get_json()["results"]]
    assert reasons == ["client_time_out_of_range", "not_checked_in"], answer.get_json()
    result = documented_property(spec, spec.resolve(spec.doc["components"]["schemas"]["OfflineResultOut"]), "result")
    assert [reason for reason in reasons if reason not in result.get("description", "")] == [], result


# ---------------------------------------------------------------- statuses sent but not documented


def test_a_malformed_json_body_is_a_documented_400(duty, spec, admin, login):
    """The document: no volunteer, shift, check-in or hours operation lists 400 (only 401/403/404/409/415/422
    and `default`). The API: a body that is not valid JSON (cut off by a dropped connection, NaN, a number of
    4,301 digits) is a 400 /problems/malformed-json on every one of them. A generated client has no typed 400
    and files it under `default` with the unexpected errors."""
    v, sid, vid = duty["client"], duty["shift"]["id"], duty["id"]
    calls = [
        (v, "POST", "/api/v1/shifts/{shift_id}/check-in", f"/api/v1/shifts/{sid}/check-in"),
        (v, "POST", "/api/v1/shifts/{shift_id}/check-out", f"/api/v1/shifts/{sid}/check-out"),
        (v, "POST", "/api/v1/me/check-events", "/api/v1/me/check-events"),
        (v, "POST", "/api/v1/me/location", "/api/v1/me/location"),
        (v, "POST", "/api/v1/shifts/{shift_id}/signups", f"/api/v1/shifts/{sid}/signups"),
        (v, "PATCH", "/api/v1/volunteers/{volunteer_id}", f"/api/v1/volunteers/{vid}"),
        (login("worker-001"), "POST", "/api/v1/volunteers", "/api/v1/volunteers"),
        (admin, "POST", "/api/v1/shifts", "/api/v1/shifts"),
        (admin, "POST", "/api/v1/shifts/series", "/api/v1/shifts/series"),
        (admin, "PATCH", "/api/v1/shifts/{shift_id}", f"/api/v1/shifts/{sid}"),
        (admin, "POST", "/api/v1/hours/review", "/api/v1/hours/review"),
        (admin, "POST", "/api/v1/hours/{hours_id}/approve", f"/api/v1/hours/{UNKNOWN_ID}/approve"),
        (admin, "POST", "/api/v1/skills", "/api/v1/skills"),
    ]
    undocumented = []
    for client, method, path, url in calls:
        answer = client.open(url, method=method, data='{"lon": 121.7', content_type="application/json")
        assert answer.status_code == 400 and answer.mimetype == "application/problem+json", (url, answer.get_json())
        if "400" not in spec.operation(method, path)["responses"]:
            undocumented.append((method, path))
    assert undocumented == [], undocumented


def test_reads_without_parameters_document_the_422_a_nul_in_the_query_gets(duty, spec):
    """The document: GET /volunteers/{id}/shifts.ics (whose `key` parameter it documents), /me/volunteer,
    /volunteers/{id} and /shifts/{id} answer 200/401/403/404 only. The API: a query holding NUL (%00), in `key`
    or any parameter, is a 422 /problems/validation before the view runs (api.refuse_nul_in_url). Low stakes (a
    client rarely sends one), but the status is really sent and falls under `default` in a generated client."""
    v, sid, vid = duty["client"], duty["shift"]["id"], duty["id"]
    undocumented = []
    for path, url in (("/api/v1/volunteers/{volunteer_id}/shifts.ics", f"/api/v1/volunteers/{vid}/shifts.ics?key=%00"),
                      ("/api/v1/me/volunteer", "/api/v1/me/volunteer?x=%00"),
                      ("/api/v1/volunteers/{volunteer_id}", f"/api/v1/volunteers/{vid}?x=%00"),
                      ("/api/v1/shifts/{shift_id}", f"/api/v1/shifts/{sid}?x=%00")):
        answer = v.get(url)
        assert answer.status_code == 422, (url, answer.get_json())
        if "422" not in spec.operation("GET", path)["responses"]:
            undocumented.append(path)
    assert undocumented == [], undocumented


# ---------------------------------------------------------------- request bodies


def test_the_availability_rules_the_api_enforces_are_in_the_document(duty, spec):
    """The document: `availability` is an array (up to 50) of {weekday, start, end} with HH:MM patterns, and
    says nothing more. The API (fb9e91e): windows of one weekday that overlap (08:00-10:00 and 09:00-11:00) are a
    422, as is a window whose end is not after its start. A client validating against the document sends both and
    is refused; its form cannot warn the volunteer beforehand."""
    v, vid = duty["client"], duty["id"]
    overlapping = v.patch(f"/api/v1/volunteers/{vid}", json={"availability": [
        {"weekday": 1, "start": "08:00", "end": "10:00"}, {"weekday": 1, "start": "09:00", "end": "11:00"}]})
    assert overlapping.status_code == 422, overlapping.get_json()
    schemas = spec.doc["components"]["schemas"]
    texts = [schemas["VolunteerUpdate"]["properties"]["availability"].get("description", ""),
             schemas["VolunteerCreate"]["properties"]["availability"].get("description", ""),
             spec.resolve(schemas["AvailabilityWindow"]).get("description", ""),
             spec.operation("PATCH", "/api/v1/volunteers/{volunteer_id}").get("description", "")]
    assert any("overlap" in text for text in texts), texts
