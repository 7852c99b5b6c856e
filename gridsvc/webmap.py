"""The liaison web map at /map (网格地图): one page, MapLibre GL JS, no CDN.

The page itself holds no data: it signs in against /api/v1/auth/token and
draws what the API and /tiles return for that account. Its scripts are in
gridsvc/static (map/ and the vendored maplibre/), served by Flask's static
route, so the page works in a park with no internet and no basemap.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, render_template

from gridsvc.services.requests import ALLOWED_FROM

blp = Blueprint("webmap", __name__)

# Nothing but our own origin. MapLibre 6 starts its web workers from
# /static/maplibre/maplibre-gl-worker.mjs as same-origin module workers, so
# worker-src is 'self' (the v5 UMD build needed blob: workers; v6 only makes
# blob: ones for a cross-origin script, which we never serve). img-src keeps
# data: and blob: for images MapLibre builds in memory. Markers and popups
# place themselves with inline styles: 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "img-src 'self' data: blob:",
    "worker-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


# The statuses each request action is possible from, the service's own rules, for the popup (map.js chooses
# which actions it offers). Who may is still the API's to say.
_REQUEST_ACTIONS_JSON = json.dumps({action: list(statuses) for action, statuses in ALLOWED_FROM.items()})


@blp.get("/map")
def map_page() -> Response:
    """The map page; everything after sign-in happens in static/map/map.js."""
    response = Response(render_template("map.html", request_actions=_REQUEST_ACTIONS_JSON), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"  # a new release's page is picked up at once
    return response
