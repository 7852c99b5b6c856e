"""The OpenAPI document gives the form of a position (``near``) and a box (``bbox``) in a query string, and the
server reads them by that same form: a generated client can check what it sends before sending it."""
from __future__ import annotations

import re

from tests.helpers import assert_problem


def _query_parameters(spec: dict, name: str) -> dict[str, dict]:
    """``{"GET /path": parameter}`` for each operation taking query parameter ``name``."""
    found = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and parameter.get("name") == name:
                    found[f"{method.upper()} {path}"] = parameter
    return found


def test_near_and_bbox_are_documented_with_their_form_and_an_example_that_fits_it(client):
    spec = client.get("/api/openapi.json").get_json()
    near, bbox = _query_parameters(spec, "near"), _query_parameters(spec, "bbox")
    assert {"GET /api/v1/shifts", "GET /api/v1/volunteers"} <= set(near)
    assert {"GET /api/v1/parking/lots", "GET /api/v1/requests"} <= set(bbox)
    for operation, parameter in {**near, **bbox}.items():
        schema = parameter["schema"]
        pattern, example = schema["pattern"], schema["example"]
        assert re.fullmatch(pattern, example), operation
        for wrong in ("121.78", "121.78;29.87", "1_21.78,29.87", "infinity,29.87", "121.78,29.87,"):
            assert not re.fullmatch(pattern, wrong), (operation, wrong)
    assert all(re.fullmatch(p["schema"]["pattern"], "121.78,-29.87") for p in near.values())
    assert all(re.fullmatch(p["schema"]["pattern"], "121.77,29.86,121.80,29.88") for p in bbox.values())


def test_the_server_reads_near_by_the_documented_form(login):
    volunteer = login("volunteer-001")
    # the document's example, as a client would send it, and with spaces around a number
    found = volunteer.get("/api/v1/shifts?near=121.78,29.87&radius_m=5000")
    assert found.status_code == 200 and all("distance_m" in s for s in found.get_json()["items"])
    assert volunteer.get("/api/v1/shifts?near=121.78,%2029.87&radius_m=5000").get_json() == found.get_json()
    # forms float() took and the document does not: refused, naming near
    for wrong in ("1_21.78,29.87", "121.78,2_9.87", "infinity,29.87"):
        answer = assert_problem(volunteer.get(f"/api/v1/shifts?near={wrong}"), 422)
        assert set(answer["errors"]) == {"near"}, wrong


def test_the_server_reads_a_bbox_by_the_documented_form(login):
    planner = login("planner")
    inside = planner.get("/api/v1/parking/lots?bbox=121.0,29.0,122.0,30.5&limit=5")
    assert inside.status_code == 200 and inside.get_json()["features"]
    for wrong in ("121.0,29.0,122.0", "1_21.0,29.0,122.0,30.5", "121.0,29.0,122.0,30.5,"):
        answer = assert_problem(planner.get(f"/api/v1/parking/lots?bbox={wrong}"), 422)
        assert set(answer["errors"]) == {"bbox"}, wrong
