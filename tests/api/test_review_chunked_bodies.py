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


@pytest.mark.parametrize("compressed", [True, False])
def test_a_compressed_body_is_a_415_that_names_the_codings_taken(app, duty, session, compressed):
    """Content-Encoding: gzip is decoded by nobody (Werkzeug, gunicorn): a gzipped check-in was answered 400
    "Malformed JSON: 'utf-8' codec can't decode byte 0x8b", and a plain body labelled gzip was taken as sent.
    RFC 9110 15.5.16: a content coding the server does not take is a 415 with Accept-Encoding; nothing recorded."""
    import gzip

    center, shift_id = duty["center"], duty["shift"]["id"]
    body = json.dumps({"lon": center[0], "lat": center[1]}).encode()
    answer = duty["client"].post(f"/api/v1/shifts/{shift_id}/check-in", data=gzip.compress(body) if compressed else body,
                                 content_type="application/json",
                                 headers={"Content-Encoding": "gzip", "Idempotency-Key": "gz"})
    assert (answer.status_code, answer.mimetype) == (415, "application/problem+json"), answer.get_data(as_text=True)
    assert answer.headers["Accept-Encoding"] == "identity" and "uncompressed" in answer.get_json()["detail"]
    assert session.scalar(select(func.count()).where(CheckEvent.idempotency_key == "gz")) == 0


def test_an_id_in_the_path_is_ascii_digits(duty):
    """/api/v1/shifts/２０１ (full-width, percent-encoded by the phone) and Arabic-Indic digits reached shift 201:
    Werkzeug's int converter matches Python's \\d. An id is ASCII digits; anything else names no resource (404)."""
    shift_id = duty["shift"]["id"]
    assert duty["client"].get(f"/api/v1/shifts/{shift_id}").status_code == 200
    for other in ("".join(chr(0xFF10 + int(d)) for d in str(shift_id)), "".join(chr(0x0660 + int(d)) for d in str(shift_id)),
                  f"0{shift_id}", f"00{shift_id}"):  # nor is it written with a leading zero: one address per shift
        answer = duty["client"].get(f"/api/v1/shifts/{other}")
        assert (answer.status_code, answer.mimetype) == (404, "application/problem+json"), other
