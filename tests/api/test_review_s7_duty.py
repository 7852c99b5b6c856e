"""On duty, seen the same everywhere: a review of every surface that shows or uses it (issue #4)."""
from __future__ import annotations


def test_placeholder(login):
    assert login("admin").get("/api/v1/me").status_code == 200
