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
