"""A review of check-in as a real HTTP server (gunicorn) hands it to the app (each test failed before its fix).

gunicorn takes ``Transfer-Encoding`` case-insensitively (RFC 9112 7: the
coding names are case-insensitive) and accepts a coding list that ends in
chunked (``gzip, chunked``); it then gives the WSGI app the de-chunked body
with no CONTENT_LENGTH, ``wsgi.input_terminated`` set, and the header as
sent. These tests build that environ by hand.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from gridsvc.models import CheckEvent
from tests.api.test_checkins import admin, duty  # noqa: F401 (fixtures)
from tests.helpers import token_for


def _chunked_post(app, url: str, body: bytes, *, transfer_encoding: str, content_type: str, token: str):
    """The environ gunicorn builds for a chunked POST, sent through the whole
    WSGI stack (the fast path first, then Flask)."""
    environ = EnvironBuilder(path=url, method="POST", data=body, content_type=content_type,
                             headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "r5-http-chunked",
                                      "Transfer-Encoding": transfer_encoding}).get_environ()
    del environ["CONTENT_LENGTH"]  # gunicorn sets none for a chunked body
    environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    return int(status.split()[0]), headers, b"".join(app_iter)


@pytest.mark.parametrize("transfer_encoding", ["Chunked", "CHUNKED", "gzip, chunked"])
def test_a_chunked_body_that_is_not_json_is_415_whatever_the_case_of_transfer_encoding(
        app, duty, session, transfer_encoding):
    """A body sent chunked with a Content-Type other than JSON is 415, as
    ``Transfer-Encoding: chunked`` (and any Content-Length body) gets. With
    ``Chunked`` (or a coding list such as ``gzip, chunked``, both of which
    gunicorn accepts) the body is ignored instead and the check-in is
    refused 422 "lon: Missing data for required field", which tells the
    phone its body lacks fields it did send.
    Cause: gridsvc/api.py:require_json_body compares the Transfer-Encoding
    header with ``== "chunked"`` (case-sensitive, whole value)."""
    center, shift_id = duty["center"], duty["shift"]["id"]
    url = f"/api/v1/shifts/{shift_id}/check-in"
    body = json.dumps({"lon": center[0], "lat": center[1]}).encode()
    token = token_for(app, "volunteer-001")
    # the control: lower-case chunked is refused 415 before the body is read
    status, _, _ = _chunked_post(app, url, body, transfer_encoding="chunked", content_type="text/plain", token=token)
    assert status == 415
    status, headers, answer = _chunked_post(app, url, body, transfer_encoding=transfer_encoding,
                                            content_type="text/plain", token=token)
    assert headers["Content-Type"] == "application/problem+json"
    assert status == 415, answer
    assert session.scalar(select(func.count()).select_from(CheckEvent)) == 0
