"""Swagger UI at /api/docs renders the API in real headless Chromium, offline."""
from __future__ import annotations

import pytest

from gridsvc.app import create_app
from tests.browser import chromium_path, dump_dom, live_server

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (make test installs it as root)")


def test_swagger_ui_renders_the_operations(database_url):
    app = create_app({"DATABASE_URL": database_url})
    with live_server(app) as base:
        dom = dump_dom(f"{base}/api/docs")
    app.extensions["gridsvc.db"].dispose()
    # Rendered by Swagger UI's JavaScript from /api/openapi.json: not in the HTML we send.
    assert 'class="swagger-ui' in dom
    assert "opblock" in dom
    for path in ("/api/v1/communities", "/api/v1/zones/locate", "/api/v1/communities/{community_id}/coverage"):
        assert path in dom, path
