"""Every error path answers RFC 9457 problem+json and leaks nothing."""
from __future__ import annotations

import pytest

from flask import Blueprint

from gridsvc.models import Community
from tests.helpers import assert_problem, community_body, count


@pytest.fixture()
def client(admin_client):
    """These tests are about the data rules, so they act as an admin (access is tested in test_access*)."""
    return admin_client


def test_unknown_route_is_404_problem(client):
    body = assert_problem(client.get("/api/v1/no-such-thing"), 404, "not-found")
    assert body["detail"]


def test_wrong_method_is_405_with_allow_header(client):
    response = client.put("/api/v1/communities", json={})
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"] and "GET" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/api/v1//shifts", "//api/v1/shifts", "/api/v1/shifts/", "/ogc//collections"])
def test_a_path_with_an_empty_segment_is_a_404_problem_not_an_html_redirect(client, path):
    """A trailing slash was a 404 problem, but "//" inside a path was a 308 redirect written as an HTML page."""
    response = client.get(path)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert "Location" not in response.headers


@pytest.mark.parametrize("path, allowed", [("/api/v1/shifts", {"GET", "HEAD", "POST", "OPTIONS"}),
                                           ("/api/v1/shifts/1/check-in", {"POST", "OPTIONS"}),
                                           ("/ogc/collections", {"GET", "HEAD", "OPTIONS"})])
def test_options_says_what_is_allowed_with_no_content(client, path, allowed):
    """OPTIONS was an empty 200 labelled text/html."""
    response = client.options(path)
    assert response.status_code == 204 and response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed


def test_malformed_json_is_400_saying_where(client, session):
    before = count(session, Community)
    response = client.post("/api/v1/communities", data='{"name": "x",', content_type="application/json")
    body = assert_problem(response, 400, "malformed-json")
    assert "line 1" in body["detail"]
    assert count(session, Community) == before


def test_nan_and_infinity_are_not_json(client, session):
    before = count(session, Community)
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = '{"name": "x", "kind": "market", "worker_count": %s}' % token
        body = assert_problem(client.post("/api/v1/communities", data=raw, content_type="application/json"), 400)
        assert token.lstrip("-") in body["detail"]
    # the detail points at the constant (it said "line 1 column 1" wherever it was), not at one inside a string
    raw = '{"name": "NaN at the gate",\n "kind": "market",\n "worker_count": NaN}'
    body = assert_problem(client.post("/api/v1/communities", data=raw, content_type="application/json"), 400)
    assert "line 3 column 18" in body["detail"], body["detail"]
    assert count(session, Community) == before


def test_non_json_content_type_is_415(client, session):
    before = count(session, Community)
    response = client.post("/api/v1/communities", data="name=x&kind=market", content_type="application/x-www-form-urlencoded")
    body = assert_problem(response, 415, "unsupported-media-type")
    assert "application/json" in body["detail"]
    assert count(session, Community) == before


def test_geo_json_content_type_is_accepted(client):
    import json

    response = client.post("/api/v1/communities", data=json.dumps(community_body()), content_type="application/geo+json")
    assert response.status_code == 201


def test_validation_is_422_with_field_messages(client):
    body = assert_problem(client.post("/api/v1/communities", json={"kind": "castle"}), 422, "validation")
    assert set(body["errors"]) >= {"name", "kind", "boundary"}
    assert "industrial_park" in body["errors"]["kind"][0]


def test_body_over_10_mb_is_413(client, session):
    before = count(session, Community)
    huge = '{"name": "' + "x" * (10 * 1024 * 1024 + 10) + '"}'
    assert_problem(client.post("/api/v1/communities", data=huge, content_type="application/json"), 413)
    assert count(session, Community) == before


def test_500_does_not_leak_internals(app):
    boom = Blueprint("boom", __name__)

    @boom.route("/api/v1/boom")
    def explode():
        raise RuntimeError("password=hunter2 at /srv/secret.py line 42")

    app.register_blueprint(boom)
    response = app.test_client().get("/api/v1/boom")
    body = assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "secret.py" not in text and "RuntimeError" not in text
    assert body["type"] == "about:blank"


def test_unknown_query_parameter_value_is_422(client):
    body = assert_problem(client.get("/api/v1/communities?limit=0"), 422)
    assert "limit" in body["errors"]


def test_a_deadlock_victim_is_told_to_send_again_not_that_the_database_is_down(app, client):
    """PostgreSQL undoes one of two deadlocked transactions: a 409 the client can retry."""
    import psycopg2.errors
    from sqlalchemy.exc import OperationalError

    def victim():
        raise OperationalError("UPDATE parking_lot ...", {}, psycopg2.errors.DeadlockDetected())

    app.add_url_rule("/test-only/deadlock", "deadlock_victim", victim)
    body = assert_problem(client.get("/test-only/deadlock"), 409, "/concurrent-update")
    assert "again" in body["detail"]
    assert client.get("/test-only/deadlock").headers["Retry-After"] == "1"
