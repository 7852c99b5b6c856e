"""gunicorn settings for ``gridsvc serve`` (``-c python:gridsvc.gunicorn_conf``).

gunicorn answers some requests itself, before the app sees them: a request
line over ``limit_request_line`` (414), too many or too large headers (431),
a malformed request line or header (400). It writes those as an HTML page;
here they are written as the API writes every error, RFC 9457 problem
details in ``application/problem+json``, so a client has one error format
to read. The workers are forked from the master that reads this file, so
they all answer this way.
"""
from __future__ import annotations

import json

from gunicorn import util

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, reason: str, detail: str) -> bytes:
    """The raw HTTP response gunicorn sends for a request it refused."""
    body = json.dumps({"type": "about:blank", "title": reason, "status": status, "detail": detail},
                      ensure_ascii=False).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {PROBLEM_JSON}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``, writing problem+json instead of an HTML page."""
    util.write_nonblock(sock, problem_response(status_int, reason, mesg))


util.write_error = write_problem
