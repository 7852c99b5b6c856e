"""Health, OpenAPI document and the (vendored, offline) Swagger UI."""
from __future__ import annotations

import re
import socket

from gridsvc.app import create_app
from tests.helpers import assert_problem


def test_health_reports_database_and_postgis(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert re.match(r"^3\.\d+", body["postgis"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket closes


def test_health_is_503_problem_when_database_unreachable():
    url = f"postgresql+psycopg2://nobody:nothing@127.0.0.1:{_closed_port()}/none"
    app = create_app({"DATABASE_URL": url, "GRIDSVC_DB_CONNECT_TIMEOUT": 2})
    body = assert_problem(app.test_client().get("/api/v1/health"), 503, "database-unavailable")
    assert body["database"] == "unreachable"
    assert "nobody" not in str(body) and "nothing" not in str(body)


def test_liveness_needs_no_database():
    url = f"postgresql+psycopg2://nobody:nothing@127.0.0.1:{_closed_port()}/none"
    app = create_app({"DATABASE_URL": url, "GRIDSVC_DB_CONNECT_TIMEOUT": 2})
    assert app.test_client().get("/api/v1/health/live").get_json() == {"status": "ok"}


def test_other_endpoints_answer_503_not_500_without_database():
    url = f"postgresql+psycopg2://nobody:nothing@127.0.0.1:{_closed_port()}/none"
    app = create_app({"DATABASE_URL": url, "GRIDSVC_DB_CONNECT_TIMEOUT": 2})
    response = app.test_client().get("/api/v1/communities")
    assert_problem(response, 503)
    assert response.headers["Retry-After"]


def test_openapi_document_lists_the_resources(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/health", "/api/v1/communities", "/api/v1/communities/{community_id}/zones",
                 "/api/v1/zones/{zone_id}", "/api/v1/zones/locate", "/api/v1/communities/{community_id}/coverage",
                 "/api/v1/communities/{community_id}/zones/split", "/api/v1/communities/{community_id}/enterprises"):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/api/v1/communities"]) >= {"get", "post"}


def test_swagger_ui_loads_only_local_assets(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.data) > 1000
    assert "openapi.json" in html


def _documented_error(spec: dict, path: str, method: str, status: int) -> tuple[str, dict]:
    """The content type and schema the document gives for this error (the status's own entry, else the default)."""
    responses = spec["paths"][path][method]["responses"]
    response = responses.get(str(status), responses.get("default"))
    while "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    [(content_type, media)] = response["content"].items()
    schema = media["schema"]
    return content_type, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


JSON_TYPES = {"string": str, "integer": int, "object": dict}


def test_errors_are_documented_as_they_are_sent(client, login, session):
    """A generated client reads errors by the document: problem+json with type, title and status."""
    spec = client.get("/api/openapi.json").get_json()
    volunteer = login("volunteer-001")
    cases = [
        ("/api/v1/communities", "post", login("admin").post("/api/v1/communities", json={"kind": "castle"})),  # 422
        ("/api/v1/shifts/{shift_id}", "get", volunteer.get("/api/v1/shifts/2147483647")),  # 404
        ("/api/v1/me", "get", client.get("/api/v1/me")),  # 401
        ("/api/v1/shifts/{shift_id}/check-in", "post",  # 409: not signed up, from the view
         volunteer.post("/api/v1/shifts/1/check-in", json={"lon": 121.78, "lat": 29.87}, headers={"Idempotency-Key": "k-1"})),
    ]
    for path, method, response in cases:
        assert response.status_code >= 400, (path, response.status_code)
        content_type, schema = _documented_error(spec, path, method, response.status_code)
        assert response.mimetype == content_type == "application/problem+json", path
        body = response.get_json()
        assert set(schema["required"]) <= body.keys() and schema.get("additionalProperties", True) is not False
        for name, value in body.items():
            kind = schema["properties"].get(name, {}).get("type")
            assert kind is None or isinstance(value, JSON_TYPES[kind]), (path, name, value)


def test_a_body_is_documented_as_required_only_when_a_field_is(client, login, session, clock):
    """An all-optional body may be left out (it loads as {}); the document said it must be sent."""
    from datetime import timedelta

    from tests.api.volunteer_helpers import make_shift, zone_of

    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert paths["/api/v1/shifts"]["post"]["requestBody"]["required"] is True
    assert paths["/api/v1/shifts/{shift_id}/signups"]["post"]["requestBody"]["required"] is False
    assert paths["/api/v1/shifts/{shift_id}"]["patch"]["requestBody"]["required"] is False
    shift = make_shift(login("admin"), zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=1))
    signed_up = login("volunteer-001").post(f"/api/v1/shifts/{shift['id']}/signups")  # no body at all
    assert signed_up.status_code == 201 and signed_up.get_json()["status"] == "confirmed"
